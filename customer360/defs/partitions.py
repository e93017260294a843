"""The one partitioning scheme: a daily partition per business date, in UTC.

Every zone of every dataset shares it, so a day can be replayed end to end and a backfill range means
the same days everywhere. The first day is configurable (``CUSTOMER360_START_DATE``) so a deployment's
history starts where its data does; ``end_offset=1`` includes today, because files for today land today.
"""

from __future__ import annotations

import os
from datetime import date

import dagster as dg

DEFAULT_START_DATE = "2024-01-01"


def start_date() -> date:
    return date.fromisoformat(os.environ.get("CUSTOMER360_START_DATE", DEFAULT_START_DATE))


daily_partitions = dg.DailyPartitionsDefinition(start_date=start_date().isoformat(), timezone="UTC", end_offset=1)
