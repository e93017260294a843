"""Zone steps as plain functions over the lake: gate, unroutable, clean, staging, load, mart.

No Dagster here: each step takes a lake store (and a warehouse) and returns what it did; the assets in
``customer360.defs.assets`` wrap them, so a step can be run and tested without a Dagster instance.
"""
