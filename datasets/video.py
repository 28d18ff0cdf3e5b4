"""video datasets (being written)."""
