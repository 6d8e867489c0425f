"""Cross-protocol exposure graph and contagion models."""
