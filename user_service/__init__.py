"""The gateway: the only HTTP speaker. Auth, users, and every client request turned into RPC commands."""
