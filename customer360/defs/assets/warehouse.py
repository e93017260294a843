"""warehouse/<table>: staging loaded into the warehouse (DuckDB by default, Snowflake by switch).

The load itself is a plain step (``customer360.steps.load``): only a staging day whose build completed
is loaded, exactly the files its manifest lists, each day's rows replaced in one transaction. This module
is its Dagster wrapping: daily partitions, the refusal of days without a completed staging build (after
waiting a while for a build in progress), the materialization metadata, and the check that the rows COPY
reported loaded reconcile with the staging files' own row counts and the manifest's. The steps share the
``warehouse`` concurrency pool (limit 1 in dagster.yaml): DuckDB allows a single writer, and runs
launched in parallel by the sensor or a backfill queue for it instead of failing on the file lock.
"""

from collections.abc import Iterator

import dagster as dg

from customer360.contracts import Dataset
from customer360.contracts.schemas import PARTITION_COLUMN, RESCUED_DATA
from customer360.defs.assets.days import DayEvent, DayRecord, days_of, record_days
from customer360.defs.assets.metadata import column_descriptions, column_schema, rows_preview
from customer360.defs.assets.staging import wait_for_running_builds
from customer360.defs.checks import WAREHOUSE_CHECKS, LoadedDay, check_specs
from customer360.defs.keys import COLUMN_SCHEMA, ROW_COUNT, STAGING, WAREHOUSE, zone_key
from customer360.defs.partitions import daily_partitions
from customer360.defs.resources.lake import LakeResource
from customer360.defs.resources.warehouse import WarehouseResource
from customer360.steps.load import DayLoad, load_day, staged_days, unstaged_message
from customer360.warehouse.base import Warehouse, sample_rows

WAREHOUSE_POOL = "warehouse"
PREVIEW_COLUMNS = 14


def build_warehouse_asset(dataset: Dataset) -> dg.AssetsDefinition:
    key = zone_key(WAREHOUSE, dataset)

    @dg.asset(
        key=key,
        deps=[zone_key(STAGING, dataset)],
        group_name=WAREHOUSE,
        partitions_def=daily_partitions,
        pool=WAREHOUSE_POOL,
        description=f"Warehouse table {dataset.staging_name}, loaded by COPY from staging/{dataset.name}/ only; "
        "each day's rows replaced as a unit.",
        check_specs=check_specs(key, WAREHOUSE_CHECKS),
    )
    def warehouse_table(
        context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
    ) -> Iterator[DayEvent]:
        store = lake.store()
        days = days_of(context)
        staged, unstaged = staged_days(store, dataset, days)
        if unstaged:
            running = wait_for_running_builds(context, store, dataset, unstaged)
            raise dg.Failure(description=unstaged_message(dataset, unstaged) + running, allow_retries=False)
        target = warehouse.open(store)
        records = [_day_record(target, dataset, load_day(store, target, dataset, day, staged[day])) for day in days]
        yield from record_days(context, key, records)

    return warehouse_table


def _day_record(target: Warehouse, dataset: Dataset, load: DayLoad) -> DayRecord:
    """A loaded day as Dagster shows it: its metadata and its reconciliation check."""
    result, schema, counts = load.result, load.schema, load.reconciliation
    if result is None or schema is None or counts is None:
        return DayRecord(
            load.day,
            {ROW_COUNT: 0, "rows_deleted": load.rows_deleted, "files": 0},
            [check.result(LoadedDay(files=0)) for check in WAREHOUSE_CHECKS],
        )
    per_file = [
        {
            "file": f.key,
            "status": f.status,
            "rows_parsed": f.rows_parsed,
            "rows_loaded": f.rows_loaded,
            "errors_seen": f.errors_seen,
            "first_error": f.first_error,
        }
        for f in result.files
    ]
    shown = [f.name for f in schema if f.name != RESCUED_DATA][:PREVIEW_COLUMNS]
    metadata = {
        ROW_COUNT: result.rows_loaded,
        COLUMN_SCHEMA: column_schema(schema, column_descriptions(dataset)),
        "preview": rows_preview(shown, sample_rows(target, dataset.staging_name, PARTITION_COLUMN, load.day, shown)),
        "rows_deleted": result.rows_deleted,
        "files": len(result.files),
        "added_columns": dg.MetadataValue.json(result.added_columns),
        "copy_results": dg.MetadataValue.json(per_file),
    }
    loaded = LoadedDay(
        files=load.files,
        staging_manifest_rows=counts.staging_manifest_rows,
        staging_rows=counts.staging_rows,
        rows_loaded_per_copy=counts.rows_loaded_per_copy,
        rows_in_table_for_day=counts.rows_in_table_for_day,
        copy_errors=counts.copy_errors,
    )
    return DayRecord(load.day, metadata, [check.result(loaded) for check in WAREHOUSE_CHECKS])
