"""API v1 for memories and contexts."""
