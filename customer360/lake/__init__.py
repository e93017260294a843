"""The data lake: one bucket layout, two interchangeable backends (local folder, S3)."""
