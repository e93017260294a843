"""staging/<dataset>: see ``customer360.steps.staging`` for what the step does.

Dependencies mirror what the step reads, so Dagster's lineage, staleness and automation are right:
the same day's clean partition, the same day's snapshots it joins, and for snapshots the previous day
of itself (a late customers file for an earlier day makes every later snapshot stale).

The step validates the staging partition it wrote and reports the contract's asset checks per partition
(``customer360.checks``); a failed blocking check (schema, uniqueness, ...) fails the step so the
warehouse never loads it. Only when every blocking check of a day passed does the step write that day's
manifest (``customer360.steps.staging.commit_staging``), which the next snapshot and the warehouse load
require. A run may cover a range of days (``customer360.defs.assets.days``): they are built oldest first, so
each snapshot finds the previous day's; a snapshot that refuses its predecessor
(``SnapshotPredecessorError``) ends the range there, the days before it recorded.

Why a ``multi_asset`` of one asset with ``can_subset=True``: an asset that yields its own checks is, for
Dagster, an "execution set" of the asset and its checks, and when the automation requests days of such a
set (``AutomationConditionEvaluator._handle_execution_set`` in 1.13) it maps the requested days through
the asset's dependency on *itself*, the previous day of a snapshot, and so also requested the day before
every requested snapshot day: a day with no data got a snapshot. A subsettable asset is a set of one, so
nothing is added. Its checks still run in the step that builds the day, always: when the automation puts
a subsettable asset in one run with non-subsettable ones, Dagster 1.13 selects only the latter's checks
(``build_run_requests``: the run's requested check keys are their execution sets'), so the step records
its checks whether selected or not (``customer360.defs.assets.days.record_days``). A run of the checks alone
("Execute checks" in the UI) re-evaluates them from what the lake holds.
"""

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from customer360.contracts import Dataset
from customer360.defs.assets.days import DayEvent, DayRecord, days_of, record_days
from customer360.defs.assets.metadata import column_descriptions, column_schema, peak_memory_mb
from customer360.defs.checks import blocking_passed, check_specs, run_staging_checks, staging_checks
from customer360.defs.keys import AUTOMATION_TAG, CLEAN, COLUMN_SCHEMA, ROW_COUNT, STAGING, zone_key
from customer360.defs.partitions import daily_partitions
from customer360.defs.resources.lake import LakeResource
from customer360.lake.store import LakeStore
from customer360.steps.staging import (
    SnapshotPredecessorError,
    StagingResult,
    abandon_staging,
    build_staging,
    commit_staging,
    staging_build_started,
)

PREVIOUS_DAY = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True)


def build_staging_asset(dataset: Dataset) -> dg.AssetsDefinition:
    key = zone_key(STAGING, dataset)
    deps: list[dg.AssetDep | dg.AssetKey] = [zone_key(CLEAN, dataset)]
    deps += [zone_key(STAGING, join.dataset) for join in dataset.staging_joins]
    if dataset.snapshot:
        deps.append(dg.AssetDep(key, partition_mapping=PREVIOUS_DAY))
    shape = "snapshot of every record as of the day" if dataset.snapshot else "the day's rows, one per key"
    joined = ", ".join(f"{j.dataset} ({', '.join(alias for _, alias in j.columns)})" for j in dataset.staging_joins)

    @dg.multi_asset(
        name=key.to_python_identifier(),
        specs=[
            dg.AssetSpec(
                key,
                deps=deps,
                group_name=STAGING,
                description=f"Analytics-ready {dataset.name}: {shape}, deduplicated on "
                f"{', '.join(dataset.dedup_key)}"
                + (f", joined with {joined}" if joined else "")
                + f". Parquet under `staging/{dataset.name}/dt=YYYY-MM-DD/`, sized for Snowflake COPY.",
                partitions_def=daily_partitions,
            )
        ],
        partitions_def=daily_partitions,
        check_specs=check_specs(key, staging_checks(dataset)),
        can_subset=True,
    )
    def staging(context: dg.AssetExecutionContext, lake: LakeResource) -> Iterator[DayEvent]:
        store = lake.store()
        build = key in context.selected_asset_keys
        records, refused = [], None
        for day in days_of(context):
            try:
                record, result = _staging_day(store, dataset, day, context.log) if build else (DayRecord(day), None)
            except SnapshotPredecessorError as error:
                refused = error
                break
            try:
                outcomes = run_staging_checks(store, dataset, day)
                record.checks = [outcome.result() for outcome in outcomes]
            except BaseException:
                if result is not None:
                    abandon_staging(store, dataset.name, day)
                raise
            if result is not None:
                if blocking_passed(outcomes):
                    commit_staging(store, result)
                else:
                    abandon_staging(store, dataset.name, day)
            records.append(record)
        yield from record_days(context, key, records)
        if refused is not None:
            if context.run.tags.get(AUTOMATION_TAG) and context.retry_number < WAIT_FOR_BUILD_RETRIES:
                # The automation may request a snapshot day in the tick before it requests the missing previous
                # day (whose inputs had not all landed yet): wait for that day instead of failing at once.
                context.log.info("%s: waiting %d s for the previous snapshot", refused, WAIT_FOR_BUILD_SECONDS)
                raise dg.RetryRequested(max_retries=WAIT_FOR_BUILD_RETRIES, seconds_to_wait=WAIT_FOR_BUILD_SECONDS)
            raise refused

    return staging


def _staging_day(store: LakeStore, dataset: Dataset, day: date, log: logging.Logger) -> tuple[DayRecord, StagingResult]:
    """Build the day, not committed yet: the caller writes its manifest once its blocking checks passed."""
    result = build_staging(store, dataset, day, first_day=daily_partitions.start.date(), commit=False)
    log.info(
        "staging/%s %s: %d rows in %d file(s) (%.2fs, %.0f rows/s)%s",
        dataset.staging_name,
        day,
        result.rows,
        len(result.keys),
        result.seconds,
        result.rows / result.seconds if result.seconds else 0,
        "" if dataset.snapshot else f", {result.duplicates_dropped} of {result.input_rows} clean rows were repeats",
    )
    events = (
        {}
        if dataset.snapshot
        else {
            "clean_rows_read": result.input_rows,
            "duplicate_rows_dropped": result.duplicates_dropped,
        }
    )
    metadata = {
        **events,
        ROW_COUNT: result.rows,
        COLUMN_SCHEMA: column_schema(result.schema, column_descriptions(dataset)),
        "files": dg.MetadataValue.json(result.keys),
        "rebuilt_from_history": result.rebuilt_from_history,
        **({"built_on_snapshot_of": str(result.built_on or "-")} if dataset.snapshot else {}),
        "seconds": round(result.seconds, 3),
        "rows_per_second": round(result.rows / result.seconds) if result.seconds else 0,
        "peak_memory_mb": peak_memory_mb(),
    }
    return DayRecord(day, metadata), result


# How long a reader (the warehouse load, the mart) waits for a staging build of its day that is running:
# a rebuild of a day (a late file) may start after the reader's run was queued. A marker older than
# STALE_BUILD belongs to a build that died without cleaning up: fail at once, naming it.
WAIT_FOR_BUILD_RETRIES = 20
WAIT_FOR_BUILD_SECONDS = 15
STALE_BUILD = timedelta(hours=1)


def wait_for_running_builds(
    context: dg.AssetExecutionContext, store: LakeStore, dataset: Dataset, days: list[date]
) -> str:
    """Retry the step later while a staging build of one of ``days`` runs; else say what was found, for the error.

    Raises ``dg.RetryRequested`` (the step runs again after ``WAIT_FOR_BUILD_SECONDS``) while a fresh build
    marker exists and retries remain; returns the note to append to the caller's failure otherwise.
    """
    started = {day: staging_build_started(store, dataset, day) for day in days}
    running = {day: at for day, at in started.items() if at is not None}
    fresh = [day for day, at in running.items() if datetime.now(UTC) - at < STALE_BUILD]
    if fresh and context.retry_number < WAIT_FOR_BUILD_RETRIES:
        context.log.info(
            "staging/%s is being rebuilt for %s: waiting %d s (attempt %d of %d)",
            dataset.staging_name,
            ", ".join(map(str, fresh)),
            WAIT_FOR_BUILD_SECONDS,
            context.retry_number + 1,
            WAIT_FOR_BUILD_RETRIES,
        )
        raise dg.RetryRequested(max_retries=WAIT_FOR_BUILD_RETRIES, seconds_to_wait=WAIT_FOR_BUILD_SECONDS)
    if not running:
        return ""
    return (
        " A staging build started "
        + ", ".join(f"{at:%Y-%m-%d %H:%M:%S} UTC for {day}" for day, at in running.items())
        + (" and has not finished." if fresh else " and never finished (its process died?).")
    )
