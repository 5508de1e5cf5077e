"""Node kinds (modules registered as they land)."""
