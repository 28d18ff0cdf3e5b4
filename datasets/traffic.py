"""traffic datasets (being written)."""
