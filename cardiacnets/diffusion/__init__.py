"""cardiacnets.diffusion."""
