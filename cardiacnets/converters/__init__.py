"""cardiacnets.converters."""
