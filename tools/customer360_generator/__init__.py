"""Synthetic raw landing data (customers, plans, activity logs) with the faults real feeds have.

``generate_demo_data`` writes a multi-day demo through a ``put(key, data)`` callable;
``write_activity_file`` streams one large activity day in any accepted format with a chosen fault mix
(duplicates, bad-row share, which ways of breaking the contract) and reports exactly what it injected.
"""

from customer360_generator.activity import (
    ACTIVITY_FIELDS,
    BAD_ROW_KINDS,
    FILE_FORMATS,
    FOREIGN_EXAMPLE_KINDS,
    ROW_FAULTS,
    ActivityDayReport,
    RowFault,
    iter_activity_chunks,
    iter_activity_csv_chunks,
    write_activity_day,
    write_activity_file,
)
from customer360_generator.customers import IBM_FIELDS, NEW_LAYOUT_EXTRA, NEW_LAYOUT_FIELDS
from customer360_generator.demo_data import GeneratedFile, GenerationReport, generate_demo_data
from customer360_generator.faults import BAD_ROWS, FAULT_TAGS, LATE_FILE, MALFORMED_FILE, NEW_LAYOUT
from customer360_generator.plans import PLAN_FIELDS

__all__ = [
    "ACTIVITY_FIELDS",
    "BAD_ROWS",
    "BAD_ROW_KINDS",
    "FILE_FORMATS",
    "FOREIGN_EXAMPLE_KINDS",
    "ROW_FAULTS",
    "ActivityDayReport",
    "RowFault",
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
    "iter_activity_chunks",
    "iter_activity_csv_chunks",
    "write_activity_day",
    "write_activity_file",
]
