"""edge layer of the CardiacNets toolkit (depends on the cardiacnets library only)."""
