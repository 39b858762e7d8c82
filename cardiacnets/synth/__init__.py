"""cardiacnets.synth."""
