"""mart/customer_360: the Customer 360 mart, one row per customer per day, built in the warehouse.

Its key names the zone its group shows (``mart``), like every other asset; the table itself is
``customer_360`` in the warehouse, beside the tables it is built from.

Reads the day's customers table and 30 days of activity (the trailing usage window). For Dagster it
depends on the same day of both: a window dependency made the UI's backfill dialog add the 29 following
mart days to every backfill, days without data among them. A late activity file still re-runs every
existing mart day whose window holds it: the automation's ``NewerInWindow`` trigger
(``customer360.defs.automation``). Personal data is hashed in the mart (see ``customer360.steps.mart``).

A mart day is built only over a complete customers snapshot: the day's staging build completed (its
manifest exists) and the warehouse holds exactly its rows; otherwise the step fails naming what to load,
before it changes any mart day of its run. Two checks guard it: one row per customer of the day's
snapshot, and the mart's 30-day charges reconciling with the activity table's.
"""

from collections.abc import Iterator
from datetime import date

import dagster as dg

from customer360.contracts import ACTIVITY_LOGS, CUSTOMERS
from customer360.contracts.schemas import personal_columns, staging_schema
from customer360.defs.assets.days import DayEvent, DayRecord, days_of, record_days
from customer360.defs.assets.metadata import column_schema, rows_preview
from customer360.defs.assets.staging import wait_for_running_builds
from customer360.defs.assets.warehouse import WAREHOUSE_POOL
from customer360.defs.checks import MART_CHECKS, check_specs
from customer360.defs.keys import COLUMN_SCHEMA, MART, MART_KEY, ROW_COUNT, WAREHOUSE, zone_key
from customer360.defs.partitions import daily_partitions
from customer360.defs.resources.lake import LakeResource
from customer360.defs.resources.warehouse import WarehouseResource
from customer360.lake.store import LakeStore
from customer360.steps.mart import (
    MART_DESCRIPTIONS,
    MART_SCHEMA,
    MART_TABLE,
    WINDOW_DAYS,
    build_customer_360,
    mart_checks,
    snapshot_customers,
)
from customer360.steps.staging import read_staging_manifest
from customer360.warehouse.base import Warehouse, sample_rows

PREVIEW_COLUMNS = [f.name for f in MART_SCHEMA][:14]


@dg.asset(
    key=MART_KEY,
    deps=[
        zone_key(WAREHOUSE, CUSTOMERS),
        zone_key(WAREHOUSE, ACTIVITY_LOGS),  # and the 29 days before: see the module docstring
    ],
    group_name=MART,
    partitions_def=daily_partitions,
    pool=WAREHOUSE_POOL,
    description="Customer 360: profile, current plan and fee, tenure, churn flag and trailing-30-day usage "
    "(voice minutes, SMS, data MB, charges, roaming share, last activity) per customer per day. "
    f"{' and '.join(personal_columns(CUSTOMERS))} are SHA-256 hashed.",
    check_specs=check_specs(MART_KEY, MART_CHECKS),
)
def customer_360(
    context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
) -> Iterator[DayEvent]:
    store = lake.store()
    target = warehouse.open(store)
    for dataset in (CUSTOMERS, ACTIVITY_LOGS):
        # A day with no activity yet (or a fresh warehouse) still gets a mart: empty inputs, not errors.
        target.ensure_table(dataset.staging_name, staging_schema(dataset))
    days = days_of(context)
    for day in days:
        _require_complete_snapshot(context, store, target, day)
    yield from record_days(context, MART_KEY, [_mart_day(target, day) for day in days])


def _require_complete_snapshot(
    context: dg.AssetExecutionContext, store: LakeStore, target: Warehouse, day: date
) -> None:
    """Fail unless the warehouse holds the day's whole customers snapshot (never a shrunken or missing one).

    While the day's snapshot is being rebuilt (a late file), the step retries a while before it fails.
    """
    snapshot = read_staging_manifest(store, CUSTOMERS, day)
    replay = f"customer360 replay --start {day} --end {day}"
    if snapshot is None:
        running = wait_for_running_builds(context, store, CUSTOMERS, [day])
        raise dg.Failure(
            description=f"{MART_KEY.to_user_string()} {day}: the customers snapshot of {day} has no completed "
            f"staging build (staging/customers failed, or never ran, for {day}); the mart is left as it is. "
            f"Replay the day: {replay}.{running}",
            allow_retries=False,
        )
    loaded = snapshot_customers(target, day)
    if loaded != snapshot.rows:
        raise dg.Failure(
            description=f"{MART_KEY.to_user_string()} {day}: warehouse/customers holds {loaded} customers for {day}, "
            f"the day's staged snapshot {snapshot.rows}; the mart is left as it is. Load warehouse/customers for "
            f"{day} first ({replay})",
            allow_retries=False,
        )


def _mart_day(target: Warehouse, day: date) -> DayRecord:
    rows = build_customer_360(target, day)
    checks = mart_checks(target, day)
    metadata = {
        ROW_COUNT: rows,
        COLUMN_SCHEMA: column_schema(MART_SCHEMA, MART_DESCRIPTIONS),
        "preview": rows_preview(PREVIEW_COLUMNS, sample_rows(target, MART_TABLE, "mart_date", day, PREVIEW_COLUMNS)),
        "window_days": WINDOW_DAYS,
        "charges_30d": float(checks["mart_charges"]),
    }
    return DayRecord(day, metadata, [check.result(checks) for check in MART_CHECKS])
