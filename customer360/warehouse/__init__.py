"""The warehouse layer: staging partitions loaded into DuckDB (embedded) or Snowflake, and the mart.

Only staging is exposed to the warehouse. Import the pieces from their modules (``base`` for the
protocol, ``resource`` for the Dagster resource, ``mart`` for the Customer 360 mart); this package file
stays import-light so that the DuckDB path never imports the Snowflake connector it does not need.
"""
