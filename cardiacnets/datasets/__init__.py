"""cardiacnets.datasets."""
