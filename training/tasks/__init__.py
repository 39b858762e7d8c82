"""Training tasks, one per stage."""
