"""customer360: the telco Customer 360 data platform (a Dagster code location)."""
