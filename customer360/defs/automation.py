"""Declarative automation for the zones after the gate: clean, staging and the warehouse follow their inputs.

Why not ``AutomationCondition.eager()``: it is limited to the latest time window, so a file arriving late
for an earlier day would be archived and then go no further. Here every day is eligible, and what bounds
the work is the lake itself:

* **trigger**: a dependency of this day was updated since this day was last requested or materialized
  (``any_deps_updated().since_last_handled()``), or this day is missing although the day has files.
  The second half is what builds the snapshots of a day whose own feed sent nothing (no plans file on
  most days) so the day's activity can be joined, and what loads every staged day into the warehouse.
* **only days with files**: some dataset's archive partition of that day has been materialized (the gate
  ran for it). Without this, a snapshot's dependency on its own previous day would roll every update
  forward to today, through days that never had a file: a late customers file for 2024-01-02 re-runs the
  snapshots of 2024-01-03 onwards up to the last day with files, not to the present.
* **wait, do not guess**: no dependency of the day in progress and the day itself not in progress; no
  dependency missing that will not be requested on this tick, except that a snapshot does not wait for
  a missing clean partition of its own dataset (no file that day: the snapshot carries the previous
  day forward) nor for a missing previous snapshot of a day without files (no snapshot is built on
  such a day; the staging step builds on the latest earlier day's snapshot across it); blocking asset
  checks on the dependencies passed. That last rule also holds a day back while a dependency's latest
  run failed (its checks' execution failed with it), so a snapshot is not requested over a failed one:
  the day's trigger stays pending and it runs once that dependency succeeds.
* **the mart's usage window**: a mart day reads 30 days of activity but depends, for Dagster, only on the
  same day's activity. A window dependency (``TimeWindowPartitionMapping`` over 30 days) made every
  backfill launched from the UI's dialog (``assetSelection`` + ``partitionNames``) add the 29 following
  mart days, days with no data among them; so the window is a trigger here instead: a mart day that
  exists and is older than the latest load of an activity day of its window re-runs (``NewerInWindow``,
  evaluated in the code location: the sensor has ``use_user_code_server=True``).

* **still out of date when requested**: a day whose trigger fired is requested only if, when the request is
  made, it is missing or an input day (what Dagster maps it to) was materialized after it (``InputsNewer``;
  the mart adds ``NewerInWindow``). The trigger alone re-ran days a backfill or a replay had just rebuilt,
  for two reasons in Dagster 1.13: ``any_deps_updated()`` ignores an input's update when the run that made it
  also targeted this asset (``executed_with_root_target``), but checks that only for the *last* partition
  the input materialized, so every other day of a ranged run counted as updated by someone else; and a tick
  reads updates only up to the event id it started from, while ``in_progress()`` reads the run's state as it
  is now, so a day whose input and own rebuild both landed while the tick was evaluating saw the input's
  update, no longer saw the run in progress, and not yet its own update (the "handled" reset came one tick
  late). Both are comparisons of events; this guard compares what is stored, so it holds whichever tick sees
  what. Measured on the daemon test: a backfill of clean/* for two days followed by three redundant runs
  (staging, warehouse and mart of the first day again, then the mart of the second); now none.

The staging step enforces the snapshot rule on the lake itself (``customer360.steps.staging.snapshot_basis``),
whatever launched it: a snapshot over a day that has files but no completed snapshot (a gate, clean or
staging that failed, or files still in raw/) fails naming that day, instead of shrinking.

The conditions are applied in ``definitions.py`` with ``dg.map_asset_specs`` so the zone factories stay
free of scheduling policy; the automation condition sensor that evaluates them runs by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg

from customer360 import settings
from customer360.contracts import ACTIVITY_LOGS
from customer360.defs.keys import ARCHIVE, AUTOMATION_SENSOR_NAME, CLEAN, MART, STAGING, WAREHOUSE, zone_key, zone_keys
from customer360.steps.mart import WINDOW_DAYS

AUTOMATED_GROUPS = (CLEAN, STAGING, WAREHOUSE, MART)
RELAXED_GROUPS = (STAGING, MART)
DEFAULT_AUTOMATION_INTERVAL_SECONDS = settings.DEFAULT_AUTOMATION_INTERVAL_SECONDS
AUTOMATION_INTERVAL_ENV = settings.AUTOMATION_INTERVAL_ENV


def day_has_files() -> dg.AutomationCondition:
    """True for a day once the gate has run for any dataset of that day."""
    condition: dg.AutomationCondition | None = None
    for key in zone_keys(ARCHIVE):
        archived = dg.AutomationCondition.asset_matches(key, ~dg.AutomationCondition.missing())
        condition = archived if condition is None else condition | archived
    assert condition is not None, "no datasets declared"
    return condition.with_label("day_has_files")


def _blocking_missing_deps(relaxed: bool) -> dg.AutomationCondition:
    will_not_come = dg.AutomationCondition.missing() & ~dg.AutomationCondition.will_be_requested()
    if not relaxed:
        return dg.AutomationCondition.any_deps_match(will_not_come).with_label("any_deps_missing")
    # Staging and the mart wait for a dependency only where it will exist: on a day with files. A clean
    # partition is missing whenever its feed sent nothing that day, which is normal (the day's snapshot
    # carries the previous one forward; the day's activity is empty), so it never blocks them.
    return (
        dg.AutomationCondition.any_deps_match(will_not_come & day_has_files())
        .ignore(dg.AssetSelection.groups(CLEAN))
        .with_label("any_deps_missing_on_days_with_files")
    )


def _blocking_checks_failed() -> dg.AutomationCondition:
    """Some existing dependency's blocking checks did not pass (and will not run on this tick).

    Built instead of ``~all_deps_blocking_checks_passed()``, whose ``all_deps_match`` is false (not
    vacuously true) when a dependency maps to no partition at all: the first day's "previous snapshot"
    would block every snapshot forever. Missing dependencies are the missing rule's business, so a clean
    partition that does not exist (no file that day) has no checks to fail here.
    """
    passed = dg.AutomationCondition.all_checks_match(
        dg.AutomationCondition.check_passed() | dg.AutomationCondition.will_be_requested(), blocking_only=True
    )
    return dg.AutomationCondition.any_deps_match(~dg.AutomationCondition.missing() & ~passed).with_label(
        "any_deps_blocking_checks_failed"
    )


@dataclass(frozen=True)
class NewerInWindow(dg.AutomationCondition):
    """Days of this asset that exist and are older than the latest materialization of a day of ``dep``
    in their trailing window (the ``window_days - 1`` days before them; the same day is an ordinary
    dependency). A custom condition, so it is evaluated in the code location, not in the daemon.
    """

    dep: dg.AssetKey
    window_days: int

    @property
    def name(self) -> str:
        return "newer_in_window"

    @property
    def description(self) -> str:
        return f"{self.dep.to_user_string()} of the {self.window_days - 1} days before was loaded after this day"

    @property
    def requires_cursor(self) -> bool:
        return False

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:  # type: ignore[override]
        from dagster._core.events import DagsterEventType  # the storage query below takes Dagster's enum

        storage = context.asset_graph_view.instance.event_log_storage
        materialized = DagsterEventType.ASSET_MATERIALIZATION
        dep_latest = storage.get_latest_storage_id_by_partition(self.dep, materialized)
        own_latest = storage.get_latest_storage_id_by_partition(context.key, materialized)  # type: ignore[arg-type]
        stale = set()
        for dep_day, dep_storage_id in dep_latest.items():
            first = date.fromisoformat(dep_day)
            for offset in range(1, self.window_days):
                day = (first + timedelta(days=offset)).isoformat()
                if own_latest.get(day, dep_storage_id) < dep_storage_id:  # a missing day is not stale: missing
                    stale.add(day)
        return dg.AutomationResult(
            context=context, true_subset=context.candidate_subset.compute_intersection_with_partition_keys(stale)
        )


@dataclass(frozen=True)
class InputsNewer(dg.AutomationCondition):
    """Days of this asset that are missing, or older than the latest materialization of a day of an input they
    map to (the same day, or the previous day of a snapshot). Evaluated on the days still candidates (those
    whose trigger fired), from the stored materializations as they are when the request is made. An input day
    another run materialized after this day's last build started also counts: that build may have read the
    input before the write landed (a staging day built while its clean day was rewritten stayed empty).
    """

    @property
    def name(self) -> str:
        return "inputs_newer"

    @property
    def description(self) -> str:
        return "missing, or an input day was materialized after this day"

    @property
    def requires_cursor(self) -> bool:
        return False

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:  # type: ignore[override]
        from dagster._core.events import DagsterEventType  # the storage query below takes Dagster's enum

        candidates = context.candidate_subset
        days = candidates.expensively_compute_partition_keys()
        storage = context.asset_graph_view.instance.event_log_storage
        materialized = DagsterEventType.ASSET_MATERIALIZATION
        own_latest = storage.get_latest_storage_id_by_partition(context.key, materialized)  # type: ignore[arg-type]
        out_of_date = {day for day in days if day not in own_latest}
        instance = context.asset_graph_view.instance
        own_builds = {day: _latest_build(instance, context.key, day) for day in days - out_of_date}
        for parent in context.asset_graph.get(context.key).parent_keys:  # type: ignore[arg-type]
            parent_latest = storage.get_latest_storage_id_by_partition(parent, materialized)
            for day in days - out_of_date:
                inputs = context.asset_graph_view.compute_parent_subset(
                    parent, candidates.compute_intersection_with_partition_keys({day})
                )
                for input_day in inputs.expensively_compute_partition_keys():
                    if parent_latest.get(input_day, -1) > own_latest[day] or (
                        input_day in parent_latest and _landed_during(instance, parent, input_day, own_builds[day])
                    ):
                        out_of_date.add(day)
                        break
        return dg.AutomationResult(
            context=context, true_subset=candidates.compute_intersection_with_partition_keys(out_of_date)
        )


def _latest_build(instance: dg.DagsterInstance, key: dg.AssetKey, day: str) -> tuple[str, float] | None:
    """The run that made ``key``'s latest materialization of ``day`` and when that run started."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1)
    if not records.records:
        return None
    run = instance.get_run_record_by_id(records.records[0].run_id)
    started = run.start_time if run is not None else None
    return (records.records[0].run_id, started) if started is not None else None


def _landed_during(instance: dg.DagsterInstance, key: dg.AssetKey, day: str, build: tuple[str, float] | None) -> bool:
    """Whether another run materialized the input day after ``build``'s run started (its step may have read the
    input before that write landed: a staging day built while its clean day was being rewritten)."""
    if build is None:
        return False
    run_id, started = build
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1)
    return bool(records.records) and records.records[0].run_id != run_id and records.records[0].timestamp > started


def _mart_window_stale() -> NewerInWindow:
    return NewerInWindow(zone_key(WAREHOUSE, ACTIVITY_LOGS), WINDOW_DAYS)


def _mart_window_trigger() -> dg.AutomationCondition:
    return _mart_window_stale() & ~dg.AutomationCondition.execution_failed()


def downstream_condition(*, relaxed: bool = False, windowed: bool = False) -> dg.AutomationCondition:
    """The condition for a clean, staging, warehouse or mart asset (see the module docstring)."""
    # ``missing()`` rather than ``newly_missing()``: a day whose gate ran before this sensor's first evaluation
    # (daemon just started) is still picked up; a failed run is not retried every tick, only on new input.
    retry_missing = dg.AutomationCondition.missing() & ~dg.AutomationCondition.execution_failed()
    trigger = dg.AutomationCondition.any_deps_updated() | retry_missing
    out_of_date: dg.AutomationCondition = InputsNewer()
    if windowed:
        trigger = trigger | _mart_window_trigger()
        out_of_date = (out_of_date | _mart_window_stale()).with_label("still_out_of_date")
    return (
        trigger.since_last_handled()
        & day_has_files()
        & out_of_date
        & ~_blocking_missing_deps(relaxed)
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & ~_blocking_checks_failed()
    ).with_label("every_day_eager")


def condition_for(spec: dg.AssetSpec) -> dg.AutomationCondition | None:
    """The automation condition an asset spec gets, or None for zones the raw sensor drives."""
    if spec.group_name not in AUTOMATED_GROUPS:
        return None
    return downstream_condition(relaxed=spec.group_name in RELAXED_GROUPS, windowed=spec.group_name == MART)


def with_automation(assets: list[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """``assets`` with the downstream zones' automation conditions applied (others unchanged)."""

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        condition = condition_for(spec)
        return spec if condition is None else spec.replace_attributes(automation_condition=condition)

    return dg.map_asset_specs(apply, assets)


# One run per *range* of days for every daily asset, wherever a range is requested (a backfill from the UI or
# the CLI, an automation tick that wants several days): the step walks the days in order and records each
# day's materialization and check results on its own (customer360.defs.assets.days), so nothing is lost by
# ranging, and a week costs a few runs instead of one per asset and day. One policy for all also keeps
# Dagster from warning that a job "materializes assets with varying BackfillPolicies".
DAILY_BACKFILL_POLICY = dg.BackfillPolicy.single_run()


def with_backfill_policy(assets: list[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """``assets`` with ``DAILY_BACKFILL_POLICY`` on every partitioned one (unpartitioned ones unchanged).

    ``AssetSpec`` carries no backfill policy, so ``map_asset_specs`` cannot apply it;
    ``AssetsDefinition.with_attributes(backfill_policy=...)`` is what Dagster's own public
    ``load_assets_from_modules(backfill_policy=...)`` applies it with.
    """
    return [
        a.with_attributes(backfill_policy=DAILY_BACKFILL_POLICY) if a.partitions_def is not None else a for a in assets
    ]


def build_automation_sensor(minimum_interval_seconds: int | None = None) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the conditions above; RUNNING by default so ``dagster dev`` moves the pipeline by itself.

    The interval defaults to ``CUSTOMER360_AUTOMATION_INTERVAL_SECONDS`` (else 30 s).
    """
    if minimum_interval_seconds is None:
        minimum_interval_seconds = settings.automation_interval_seconds()
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR_NAME,
        target=dg.AssetSelection.groups(*AUTOMATED_GROUPS),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=minimum_interval_seconds,
        use_user_code_server=True,  # NewerInWindow is Python of this code location
        description="Re-materializes clean, staging and warehouse days whose inputs changed, any day, not "
        "only the latest (late files), bounded to days with files.",
    )
