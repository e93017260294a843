"""Dagster assets: one factory per zone step, applied to every dataset contract."""
