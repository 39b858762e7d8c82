"""cardiacnets.models."""
