"""Dagster resources: where the lake and the warehouse live, chosen by the environment."""
