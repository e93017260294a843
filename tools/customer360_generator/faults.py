"""The faults real feeds have, as tags for the report and as broken file contents.

Why a fixed schedule rather than random faults: a demo or test that sometimes has no malformed
file proves nothing, so each fault lands on a fixed day of the run (clamped into short runs) and
only the hour it hits is drawn from the seed. Healthy files stay the large majority.

File-level tags (``GeneratedFile.fault``):
- ``malformed_file``: the landing gate must reject the whole object (``GeneratedFile.detail`` says
  how: a required column missing, binary garbage named ``.csv``, a truncated ``.csv.gz``, or an
  unknown dataset). The broken object replaces that hour's healthy file: the feed lost the hour.
- ``late_file``: a healthy file whose business date is days before its delivery.
- ``new_layout``: a customers file in the CRM's newer 25-field layout.
- ``bad_rows``: a healthy file in which about 1% of the rows break one contract rule each.

Not a file-level fault: duplicate deliveries (about 1% of each hour's events are sent again in the
next hour's file). The contract allows them, so those files stay ``fault=None``; the report
counts them in ``GenerationReport.duplicate_events``.
"""

from __future__ import annotations

import gzip

import numpy as np

MALFORMED_FILE = "malformed_file"
LATE_FILE = "late_file"
NEW_LAYOUT = "new_layout"
BAD_ROWS = "bad_rows"
FAULT_TAGS: frozenset[str] = frozenset({MALFORMED_FILE, LATE_FILE, NEW_LAYOUT, BAD_ROWS})

# GeneratedFile.detail of the malformed files.
MISSING_COLUMN = "missing_column"
BINARY_GARBAGE = "binary_garbage"
TRUNCATED_GZIP = "truncated_gzip"
UNKNOWN_DATASET = "unknown_dataset"

# Day of the run (0-based, clamped to the last day) each activity-file fault lands on.
MALFORMED_ACTIVITY_DAYS: dict[str, int] = {MISSING_COLUMN: 1, TRUNCATED_GZIP: 2, BINARY_GARBAGE: 4}
UNKNOWN_DATASET_DAY = 5
# The late file belongs to day 1 (0-based) and is delivered three days later.
LATE_BUSINESS_DAY, LATE_DELAY_DAYS = 1, 3
# Share of healthy activity files that carry bad rows, and the share of their rows that are bad
# (together about 0.2% of all rows).
BAD_ROW_FILE_SHARE, BAD_ROW_SHARE_IN_FILE = 0.2, 0.01
# The required column dropped from the missing-column file.
DROPPED_COLUMN = "roaming"


def binary_garbage(rng: np.random.Generator, size: int = 4096) -> bytes:
    """What lands when someone uploads a zip/xlsx under a ``.csv`` name: a zip magic, then noise."""
    return b"PK\x03\x04\x14\x00\x06\x00" + rng.bytes(size) + b"\x00" * 64


def truncated_gzip(data: bytes) -> bytes:
    """A gzip stream cut off mid-way, like an upload interrupted without a retry."""
    compressed = gzip.compress(data, compresslevel=6, mtime=0)
    return compressed[: max(16, len(compressed) * 3 // 5)]
