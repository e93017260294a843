"""warehouse/<table>: staging loaded into the warehouse (DuckDB by default, Snowflake by switch).

Only staging is ever read, and only a staging day whose build completed: the load takes exactly the
files the day's staging manifest lists (``customer360.steps.staging``), and refuses a day without one
(staging failed, or never ran for it) instead of reading an empty prefix as "the day has no rows" and
deleting the warehouse's rows (a mistyped lake location used to empty the warehouse that way). A
manifest that lists no files is a day staging built empty: then the day's rows are deleted. A run over
a range of days checks every day's manifest before it loads any. A load replaces exactly the partition's
rows in one transaction, so a replay never duplicates and a correction replaces. The steps share the
``warehouse`` concurrency pool (limit 1 in dagster.yaml): DuckDB allows a single writer, and runs
launched in parallel by the sensor or a backfill queue for it instead of failing on the file lock. Each
load carries a check that the rows COPY reported loaded reconcile with the staging files' own row counts
and the manifest's.
"""

from collections.abc import Iterator
from datetime import date

import dagster as dg
import pyarrow.parquet as pq

from customer360.contracts import Dataset
from customer360.defs.assets.days import DayEvent, DayRecord, days_of, record_days
from customer360.defs.assets.metadata import column_descriptions, column_schema, rows_preview
from customer360.defs.assets.staging import wait_for_running_builds
from customer360.defs.checks import WAREHOUSE_CHECKS, LoadedDay, check_specs
from customer360.defs.keys import COLUMN_SCHEMA, ROW_COUNT, STAGING, WAREHOUSE, zone_key
from customer360.defs.partitions import daily_partitions
from customer360.defs.resources.lake import LakeResource
from customer360.defs.resources.warehouse import WarehouseResource
from customer360.lake import layout
from customer360.lake.store import LakeStore
from customer360.lake.transfer import fetch_many, scratch_dir
from customer360.steps.staging import StagingManifest, read_staging_manifest
from customer360.warehouse.base import PARTITION_COLUMN, Warehouse, sample_rows

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
        manifests = {day: read_staging_manifest(store, dataset, day) for day in days}
        staged = {day: manifest for day, manifest in manifests.items() if manifest is not None}
        unstaged = [day for day in days if day not in staged]
        if unstaged:
            running = wait_for_running_builds(context, store, dataset, unstaged)
            raise dg.Failure(description=_unstaged_message(dataset, unstaged) + running, allow_retries=False)
        target = warehouse.open(store)
        records = [_load_day(store, target, dataset, day, staged[day]) for day in days]
        yield from record_days(context, key, records)

    return warehouse_table


def _unstaged_message(dataset: Dataset, days: list[date]) -> str:
    first, last = days[0], days[-1]
    named = str(first) if first == last else f"{', '.join(map(str, days[:5]))}{' ...' if len(days) > 5 else ''}"
    return (
        f"warehouse/{dataset.staging_name}: staging/{dataset.staging_name} has no completed build for {named} (no "
        f"{layout.staging_manifest_key(dataset.name, first)}: its staging failed, or never ran), so there is nothing "
        f"trustworthy to load; the warehouse's rows are left as they are. Materialize staging/{dataset.staging_name} "
        f"for those days first (customer360 replay --start {first} --end {last})."
    )


def _load_day(store: LakeStore, target: Warehouse, dataset: Dataset, day: date, manifest: StagingManifest) -> DayRecord:
    keys = manifest.files
    if not keys:
        # Staging completed with no rows for the day: the warehouse holds nothing for it either.
        deleted = target.delete_partition(dataset.staging_name, day)
        return DayRecord(
            day,
            {ROW_COUNT: 0, "rows_deleted": deleted, "files": 0},
            [check.result(LoadedDay(files=0)) for check in WAREHOUSE_CHECKS],
        )
    with scratch_dir() as folder:
        paths = fetch_many(store, keys, folder)
        schema = pq.read_schema(paths[0])
        staging_rows = sum(pq.ParquetFile(path).metadata.num_rows for path in paths)
    result = target.replace_partition(dataset.staging_name, schema, day, keys)
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
    shown = [f.name for f in schema if f.name != "_rescued_data"][:PREVIEW_COLUMNS]
    metadata = {
        ROW_COUNT: result.rows_loaded,
        COLUMN_SCHEMA: column_schema(schema, column_descriptions(dataset)),
        "preview": rows_preview(shown, sample_rows(target, dataset.staging_name, PARTITION_COLUMN, day, shown)),
        "rows_deleted": result.rows_deleted,
        "files": len(result.files),
        "added_columns": dg.MetadataValue.json(result.added_columns),
        "copy_results": dg.MetadataValue.json(per_file),
    }
    loaded = LoadedDay(
        files=len(keys),
        staging_manifest_rows=manifest.rows,
        staging_rows=staging_rows,
        rows_loaded_per_copy=sum(f.rows_loaded for f in result.files),
        rows_in_table_for_day=result.rows_loaded,
        copy_errors=any(f.errors_seen for f in result.files),
    )
    return DayRecord(day, metadata, [check.result(loaded) for check in WAREHOUSE_CHECKS])
