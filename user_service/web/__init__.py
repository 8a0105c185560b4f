"""The web UI: server-rendered pages of every role, beside the API (issue 14)."""
