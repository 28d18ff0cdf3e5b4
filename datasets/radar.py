"""radar datasets (being written)."""
