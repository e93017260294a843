"""customer360."""
