"""warehouse/customer_360: the Customer 360 mart, one row per customer per day, built in the warehouse.

Depends on the day's customers table and on 30 days of activity (the trailing usage window), so a late
activity file for any day of the window makes the mart days that include it stale. Personal data is
hashed in the mart (see ``customer360.warehouse.mart``). Two checks guard it: one row per customer of
the day's snapshot, and the mart's 30-day charges reconciling with the activity table's.
"""

import dagster as dg

from customer360.assets.warehouse import WAREHOUSE_POOL, warehouse_key_of
from customer360.contracts import ACTIVITY_LOGS, CUSTOMERS
from customer360.lake.resource import LakeResource
from customer360.partitions import daily_partitions, partition_day
from customer360.warehouse.mart import MART_TABLE, WINDOW_DAYS, build_customer_360, mart_checks
from customer360.warehouse.resource import WarehouseResource
from customer360.zones.staging import staging_schema

MART_KEY = dg.AssetKey(["warehouse", MART_TABLE])
USAGE_WINDOW = dg.TimeWindowPartitionMapping(start_offset=-(WINDOW_DAYS - 1), end_offset=0,
                                              allow_nonexistent_upstream_partitions=True)


@dg.asset(
    key=MART_KEY,
    deps=[
        warehouse_key_of(CUSTOMERS),
        dg.AssetDep(warehouse_key_of(ACTIVITY_LOGS), partition_mapping=USAGE_WINDOW),
    ],
    group_name="mart",
    partitions_def=daily_partitions,
    pool=WAREHOUSE_POOL,
    description="Customer 360: profile, current plan and fee, tenure, churn flag and trailing-30-day usage "
    "(voice minutes, SMS, data MB, charges, roaming share, last activity) per customer per day. "
    "email and msisdn are SHA-256 hashed.",
    kinds={"duckdb", "snowflake"},
    check_specs=[
        dg.AssetCheckSpec("one_row_per_customer", asset=MART_KEY, blocking=True,
                          description="Exactly one mart row per customer of the day's snapshot."),
        dg.AssetCheckSpec("charges_reconcile_with_activity", asset=MART_KEY,
                          description="The mart's 30-day charges equal the activity table's for the window."),
    ],
)
def customer_360(context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource):  # noqa: ANN201
    target = warehouse.open(lake.store())
    day = partition_day(context)
    for dataset in (CUSTOMERS, ACTIVITY_LOGS):
        # A day with no activity yet (or a fresh warehouse) still gets a mart: empty inputs, not errors.
        target.ensure_table(dataset.staging_name, staging_schema(dataset))
    rows = build_customer_360(target, day)
    checks = mart_checks(target, day)
    yield dg.MaterializeResult(metadata={"dagster/row_count": rows, "window_days": WINDOW_DAYS,
                                         "charges_30d": float(checks["mart_charges"])})
    yield dg.AssetCheckResult(
        check_name="one_row_per_customer",
        passed=checks["duplicate_customers"] == 0 and checks["missing_customers"] == 0,
        metadata={k: checks[k] for k in ("mart_rows", "snapshot_customers", "duplicate_customers",
                                         "missing_customers")},
    )
    yield dg.AssetCheckResult(
        check_name="charges_reconcile_with_activity",
        passed=bool(checks["charges_reconciled"]),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"mart_charges": float(checks["mart_charges"]),
                  "activity_charges": float(checks["activity_charges"]),
                  "charges_of_customers_missing_from_snapshot": float(checks["unmatched_activity_charges"])},
    )
