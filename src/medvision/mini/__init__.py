"""mini."""
