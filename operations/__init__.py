"""Tools for the people who run the platform: the `pharmacy-ops` command line."""
