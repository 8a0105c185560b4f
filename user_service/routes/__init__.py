"""Routes grouped by resource, all under /api/v1."""
