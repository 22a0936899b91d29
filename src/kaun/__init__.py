"""kaun: neural-network activation functions."""
