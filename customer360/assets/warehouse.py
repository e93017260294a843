"""warehouse/<table>: staging loaded into the warehouse (DuckDB by default, Snowflake by switch).

Only staging is ever read. A load replaces exactly the partition's rows in one transaction, so a
replay never duplicates and a correction replaces. The steps share the ``warehouse`` concurrency pool
(limit 1 in dagster.yaml): DuckDB allows a single writer, and runs launched in parallel by the sensor
or a backfill queue for it instead of failing on the file lock.
"""

import dagster as dg
import pyarrow.parquet as pq

from customer360.assets.staging import staging_key_of
from customer360.contracts import Dataset
from customer360.lake import layout
from customer360.lake.resource import LakeResource
from customer360.lake.transfer import fetch_many, scratch_dir
from customer360.partitions import daily_partitions, partition_day
from customer360.warehouse.resource import WarehouseResource
from customer360.zones.staging import parquet_keys

WAREHOUSE_POOL = "warehouse"


def warehouse_key_of(dataset: Dataset) -> dg.AssetKey:
    return dg.AssetKey(["warehouse", dataset.staging_name])


def build_warehouse_asset(dataset: Dataset) -> dg.AssetsDefinition:
    @dg.asset(
        key=warehouse_key_of(dataset),
        deps=[staging_key_of(dataset)],
        group_name="warehouse",
        partitions_def=daily_partitions,
        pool=WAREHOUSE_POOL,
        description=f"Warehouse table {dataset.staging_name}, loaded by COPY from staging/{dataset.name}/ only; "
        "each day's rows replaced as a unit.",
        kinds={"duckdb", "snowflake"},
    )
    def warehouse_table(
        context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        store = lake.store()
        day = partition_day(context)
        keys = parquet_keys(store, layout.staging_prefix(dataset.name, day))
        schema = None
        if keys:
            with scratch_dir() as folder:
                schema = pq.read_schema(fetch_many(store, keys[:1], folder)[0])
        target = warehouse.open(store)
        if schema is None:
            # Nothing staged for the day: the day's rows are removed, consistent with staging.
            result = None
            if dataset.staging_name in {t.lower() for t in _tables(target)}:
                target.execute_in_transaction([(f"DELETE FROM {dataset.staging_name} WHERE partition_date = ?", [day])])
            return dg.MaterializeResult(metadata={"dagster/row_count": 0, "files": 0})
        result = target.replace_partition(dataset.staging_name, schema, day, keys)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": result.rows_loaded,
                "rows_deleted": result.rows_deleted,
                "files": len(result.files),
                "added_columns": dg.MetadataValue.json(result.added_columns),
                "copy_results": dg.MetadataValue.json(
                    [
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
                ),
            }
        )

    return warehouse_table


def _tables(target: object) -> list[str]:
    query = target.query
    return [row[0] for row in query("SELECT table_name FROM information_schema.tables")]
