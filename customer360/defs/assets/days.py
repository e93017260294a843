"""One step, one or many days: what every daily asset records per day, whoever launched its run.

Why this module exists. Every daily asset has ``BackfillPolicy.single_run()`` (``customer360.defs.automation``),
so a backfill from the UI or ``customer360 backfill``, or an automation request for several days, is one
run over a *range* of days, and the step walks the days in order (a snapshot after the previous day's).
A run for one day may also carry the range tags instead of ``dagster/partition`` (the backfill daemon and
the automation create their runs that way). Dagster 1.13 writes the partition of an ``AssetCheckResult``
only when the run has the ``dagster/partition`` tag (``AssetCheckResult.to_asset_check_evaluation``), so in
all those runs every check result was stored with no partition, the day's planned check executions
resolved to "Skipped", and the automation's blocking-check condition stalled everything downstream.

So the steps do not hand their check results to Dagster to convert: ``record_days`` yields the
``AssetCheckEvaluation`` itself, naming its day, after that day's materialization has been stored and
pointing at it (the UI and the automation count a check result only when it targets the partition's latest
materialization). Per-day materialization metadata goes through ``context.add_asset_metadata(...,
partition_key=day)``. A failed blocking check (ERROR severity) still fails the step once every day's
results are recorded, exactly as Dagster does with its own results, so nothing downstream in the run
builds on it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,  # not exported at dagster's top level in 1.13
)

DayEvent = dg.MaterializeResult | dg.Output | dg.AssetCheckEvaluation
StepContext = dg.AssetExecutionContext | dg.AssetCheckExecutionContext


def days_of(context: StepContext) -> list[date]:
    """The business days this run covers, oldest first (one for a single-partition run)."""
    return sorted(date.fromisoformat(key) for key in context.partition_keys)


@dataclass
class DayRecord:
    """What one asset records for one day: its materialization metadata and its check results."""

    day: date
    metadata: Mapping[str, object] = field(default_factory=dict)
    checks: Sequence[dg.AssetCheckResult] = ()


def record_days(context: StepContext, asset_key: dg.AssetKey, records: Sequence[DayRecord]) -> Iterator[DayEvent]:
    """Yield the materialization of ``asset_key`` for every day of the run, then each day's check results.

    Every check result in ``records`` is recorded, selected for the run or not: the checks belong to the
    step that wrote the day. (A run the automation launches for a subsettable asset together with other
    assets selects only the other assets' checks in Dagster 1.13, see ``customer360.defs.assets.staging``.) A
    run of the checks alone (the asset not selected) materializes nothing, and each day's results are about
    that day's latest materialization; so are a check op's (``@asset_check``) over the days of its run.
    """
    op = context.op_execution_context
    materialized = asset_key in op.selected_asset_keys
    if materialized:
        assert isinstance(context, dg.AssetExecutionContext), "only an asset's step materializes"
        for record in records:
            context.add_asset_metadata(dict(record.metadata), asset_key=asset_key, partition_key=record.day.isoformat())
        yield dg.MaterializeResult(asset_key=asset_key)  # one event per day, each with its day's metadata

    for output_name in _selected_check_outputs(op, asset_key):
        # What Dagster yields for an AssetCheckResult: the check's output, so the step counts it as produced.
        yield dg.Output(None, output_name=output_name)
    days = [r.day for r in records]
    targets = (
        _materializations_of_this_run(op, asset_key, days)
        if materialized
        else _latest_materializations(op, asset_key, days)
    )
    for record in records:
        for result in record.checks:
            name = str(result.check_name)
            spec = op.assets_def.get_spec_for_check_key(dg.AssetCheckKey(asset_key, name))  # selected or not
            yield dg.AssetCheckEvaluation(
                asset_key=asset_key,
                check_name=name,
                passed=result.passed,
                metadata=result.metadata,
                target_materialization_data=targets.get(record.day),
                severity=result.severity,
                description=result.description,
                blocking=spec.blocking,
                partition=record.day.isoformat(),
            )


def _selected_check_outputs(context: dg.OpExecutionContext, asset_key: dg.AssetKey) -> list[str]:
    selected = context.selected_asset_check_keys
    return [
        output_name
        for output_name, spec in context.assets_def.check_specs_by_output_name.items()
        if spec.asset_key == asset_key and spec.key in selected
    ]


def _target(record: dg.EventLogRecord) -> AssetCheckEvaluationTargetMaterializationData:
    return AssetCheckEvaluationTargetMaterializationData(
        run_id=record.run_id, storage_id=record.storage_id, timestamp=record.timestamp
    )


def _latest_materializations(
    context: dg.OpExecutionContext, asset_key: dg.AssetKey, days: list[date]
) -> dict[date, AssetCheckEvaluationTargetMaterializationData]:
    found = {}
    for day in days:
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[day.isoformat()]), limit=1
        ).records
        if records:
            found[day] = _target(records[0])
    return found


def _materializations_of_this_run(
    context: dg.OpExecutionContext, asset_key: dg.AssetKey, days: list[date]
) -> dict[date, AssetCheckEvaluationTargetMaterializationData]:
    """The materialization this run just stored for each day (what each day's check result is about)."""
    found: dict[date, AssetCheckEvaluationTargetMaterializationData] = {}
    keys = [day.isoformat() for day in days]
    # The newest records first: this run's own, unless another run materialized one of these days since.
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=keys), limit=len(keys)
    ).records
    for record in records:
        day = date.fromisoformat(str(record.partition_key))
        if record.run_id == context.run.run_id and day not in found:
            found[day] = _target(record)
    return found
