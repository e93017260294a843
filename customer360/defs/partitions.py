"""The one partitioning scheme: a daily partition per business date, in UTC.

Every zone of every dataset shares it, so a day can be replayed end to end and a backfill range means
the same days everywhere. The first day is configurable (``CUSTOMER360_START_DATE``) so a deployment's
history starts where its data does; ``end_offset=1`` includes today, because files for today land today.
"""

from __future__ import annotations

from datetime import date

import dagster as dg

from customer360 import settings

DEFAULT_START_DATE = settings.DEFAULT_START_DATE


def start_date() -> date:
    return settings.start_date()


daily_partitions = dg.DailyPartitionsDefinition(start_date=start_date().isoformat(), timezone="UTC", end_offset=1)
