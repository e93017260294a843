"""Zone steps as plain functions over the lake (clean, staging); the Dagster assets wrap them."""
