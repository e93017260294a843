"""Synthetic raw landing data (customers, plans, activity logs) with the faults real feeds have.

``generate_demo_data`` writes a multi-day demo through a ``put(key, data)`` callable;
``write_activity_day`` streams one large activity-log CSV to a local file for benchmarks.
"""

from customer360.generator.activity import ACTIVITY_FIELDS, BAD_ROW_KINDS, iter_activity_csv_chunks, write_activity_day
from customer360.generator.customers import IBM_FIELDS, NEW_LAYOUT_EXTRA, NEW_LAYOUT_FIELDS
from customer360.generator.demo_data import GeneratedFile, GenerationReport, generate_demo_data
from customer360.generator.faults import BAD_ROWS, FAULT_TAGS, LATE_FILE, MALFORMED_FILE, NEW_LAYOUT
from customer360.generator.plans import PLAN_FIELDS

__all__ = [
    "ACTIVITY_FIELDS",
    "BAD_ROWS",
    "BAD_ROW_KINDS",
    "FAULT_TAGS",
    "IBM_FIELDS",
    "LATE_FILE",
    "MALFORMED_FILE",
    "NEW_LAYOUT",
    "NEW_LAYOUT_EXTRA",
    "NEW_LAYOUT_FIELDS",
    "PLAN_FIELDS",
    "GeneratedFile",
    "GenerationReport",
    "generate_demo_data",
    "iter_activity_csv_chunks",
    "write_activity_day",
]
