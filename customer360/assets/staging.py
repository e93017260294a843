"""staging/<dataset>: see ``customer360.zones.staging`` for what the step does.

Dependencies mirror what the step reads, so Dagster's lineage, staleness and automation are right:
the same day's clean partition, the same day's snapshots it joins, and for snapshots the previous day
of itself (a late customers file for an earlier day makes every later snapshot stale).

The step validates the staging partition it wrote and reports the contract's asset checks per partition
(``customer360.checks``); a failed blocking check (schema, uniqueness, ...) fails the step so the
warehouse never loads it. One partition per run (multi-run backfill policy): Dagster 1.13 records
partitioned check results only for single-partition runs.
"""

import dagster as dg

from customer360.assets.metadata import column_schema, peak_memory_mb
from customer360.checks import check_results, check_specs, run_staging_checks, staging_check_defs
from customer360.contracts import DATASETS, Dataset
from customer360.lake.resource import LakeResource
from customer360.partitions import daily_partitions, partition_day
from customer360.zones.staging import build_staging

PREVIOUS_DAY = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True)


def staging_key_of(dataset: Dataset) -> dg.AssetKey:
    return dg.AssetKey(["staging", dataset.staging_name])


def build_staging_asset(dataset: Dataset) -> dg.AssetsDefinition:
    deps: list[dg.AssetDep | dg.AssetKey] = [dg.AssetKey(["clean", dataset.name])]
    deps += [staging_key_of(DATASETS[join.dataset]) for join in dataset.staging_joins]
    if dataset.snapshot:
        deps.append(dg.AssetDep(staging_key_of(dataset), partition_mapping=PREVIOUS_DAY))
    shape = "snapshot of every record as of the day" if dataset.snapshot else "the day's rows, one per key"
    checks = staging_check_defs(dataset)
    joined = ", ".join(f"{j.dataset} ({', '.join(alias for _, alias in j.columns)})" for j in dataset.staging_joins)

    @dg.asset(
        key=staging_key_of(dataset),
        deps=deps,
        group_name="staging",
        partitions_def=daily_partitions,
        description=f"Analytics-ready {dataset.name}: {shape}, deduplicated on {', '.join(dataset.dedup_key)}"
        + (f", joined with {joined}" if joined else "")
        + f". Parquet under staging/{dataset.name}/dt=<day>/, sized for Snowflake COPY.",
        kinds={"parquet", "s3"},
        check_specs=check_specs(staging_key_of(dataset), checks),
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
    )
    def staging(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        store = lake.store()
        day = partition_day(context)
        result = build_staging(store, dataset, day)
        context.log.info(
            "staging/%s %s: %d rows in %d file(s) (%.2fs, %.0f rows/s)%s",
            dataset.staging_name,
            context.partition_key,
            result.rows,
            len(result.keys),
            result.seconds,
            result.rows / result.seconds if result.seconds else 0,
            "" if dataset.snapshot else f", {result.duplicates_dropped} of {result.input_rows} clean rows were repeats",
        )
        events = {} if dataset.snapshot else {
            "clean_rows_read": result.input_rows,
            "duplicate_rows_dropped": result.duplicates_dropped,
        }
        return dg.MaterializeResult(
            metadata={
                **events,
                "dagster/row_count": result.rows,
                "dagster/column_schema": column_schema(result.schema),
                "files": dg.MetadataValue.json(result.keys),
                "rebuilt_from_history": result.rebuilt_from_history,
                "seconds": round(result.seconds, 3),
                "rows_per_second": round(result.rows / result.seconds) if result.seconds else 0,
                "peak_memory_mb": peak_memory_mb(),
            },
            check_results=check_results(staging_key_of(dataset), checks, run_staging_checks(store, dataset, day)),
        )

    return staging
