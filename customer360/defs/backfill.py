"""Replay a range of days from the command line: a backfill submitted to the instance, as the UI submits it.

``customer360 backfill --start 2024-01-01 --end 2024-12-31`` records an *asset* backfill in the instance
(``DAGSTER_HOME``); the daemon's backfill loop then runs it exactly like one launched from the UI's
backfill dialog: one run per range of days and group of assets that can run together (every daily
asset's policy is ``BackfillPolicy.single_run()``, see ``customer360.defs.automation``), each after the
assets it depends on, each step walking its days in order and recording every day's materialization
and check results (``customer360.defs.assets.days``).

Why not the alternatives Dagster 1.13 offers:

* ``dagster asset materialize --partition-range`` runs the range in one run, in this process, with no
  daemon: fine for a few days, and it works now that every asset's policy is single-run; it is not recorded
  as a backfill (no backfill page in the UI, no per-asset progress).
* the GraphQL mutation ``launchPartitionBackfill`` (what the UI calls) needs a running webserver, and
  ``DagsterGraphQLClient`` has no method for it. Its resolver does what ``submit_backfill`` does below:
  ``PartitionBackfill.from_partitions_by_assets`` then ``instance.add_backfill``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

import dagster as dg

from customer360.defs.keys import BACKFILL_SOURCE_TAG, PIPELINE_JOB_NAME
from customer360.defs.partitions import daily_partitions

if TYPE_CHECKING:  # what Definitions.resolve_asset_graph() returns; not exported at dagster's top level
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph


class BackfillRequestError(ValueError):
    """The requested range or selection cannot be backfilled; the message says why."""


@dataclass(frozen=True)
class BackfillPlan:
    """What a backfill will materialize: these assets, for these days."""

    asset_keys: list[dg.AssetKey]
    partitions: list[str]
    unpartitioned_skipped: list[dg.AssetKey]

    @property
    def title(self) -> str:
        first, last = self.partitions[0], self.partitions[-1]
        span = first if first == last else f"{first}...{last}"
        return f"customer360 replay {span} ({len(self.asset_keys)} assets)"


def plan_backfill(graph: AssetGraph, start: date, end: date, select: str | None) -> BackfillPlan:
    """Resolve ``select`` (the UI's selection syntax; every daily asset when None) and the day range."""
    if end < start:
        raise BackfillRequestError(f"--end {end} is before --start {start}")
    try:
        selection = dg.AssetSelection.all() if select is None else dg.AssetSelection.from_string(select)
        keys = selection.resolve(graph)
    except dg.DagsterError as error:  # an unparsable string, or keys no asset supplies
        raise BackfillRequestError(f"--select {select!r}: {error}") from error
    if not keys:
        raise BackfillRequestError(f"the selection {select!r} matches no asset")
    partitioned = sorted(k for k in keys if graph.get(k).partitions_def is not None)
    skipped = sorted(keys - set(partitioned))
    if not partitioned:
        raise BackfillRequestError(f"the selection {select!r} matches no daily-partitioned asset")
    try:
        partitions = list(
            daily_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(start.isoformat(), end.isoformat()))
        )
    except Exception as error:  # noqa: BLE001 - Dagster raises several types for keys outside the definition
        raise BackfillRequestError(
            f"{start}...{end} is not within the daily partitions (first day {daily_partitions.start:%Y-%m-%d}, "
            f"last day today UTC): {error}"
        ) from error
    return BackfillPlan(partitioned, partitions, skipped)


def submit_backfill(
    instance: dg.DagsterInstance,
    asset_graph: AssetGraph,
    plan: BackfillPlan,
    tags: dict[str, str] | None = None,
) -> str:
    """Record the backfill in the instance for the daemon to run; returns its id.

    The one place that uses Dagster internals (``dagster._core.execution.backfill``): there is no public
    Python API that submits an asset backfill in 1.13. This is the body of the GraphQL resolver behind
    the UI's backfill dialog (``create_and_launch_partition_backfill``), so the daemon cannot tell the two
    apart; if a Dagster upgrade moves it, ``customer360_tests/test_backfill.py`` fails here. No run config:
    the code location's executor already runs a run's steps in its one process.
    """
    from dagster._core.definitions.selector import (
        PartitionRangeSelector,
        PartitionsByAssetSelector,
        PartitionsSelector,
    )
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id
    from dagster._time import get_current_timestamp

    # Exactly these days of every selected asset (the mutation's ``partitionsByAssets`` form). The other
    # form (``assetSelection`` + ``partitionNames``) widens the target through partition mappings: a
    # three-day replay would also build the 29 following days of the mart (its 30-day usage window),
    # including days with no data. Later mart days whose window holds a replayed day are the automation's
    # to update, and it only touches days with files.
    days = PartitionsSelector(ranges=[PartitionRangeSelector(start=plan.partitions[0], end=plan.partitions[-1])])
    backfill = PartitionBackfill.from_partitions_by_assets(
        backfill_id=make_new_backfill_id(),
        asset_graph=asset_graph,
        backfill_timestamp=get_current_timestamp(),
        tags={BACKFILL_SOURCE_TAG: "cli", **(tags or {})},
        dynamic_partitions_store=instance,
        partitions_by_assets=[PartitionsByAssetSelector(asset_key=key, partitions=days) for key in plan.asset_keys],
        title=plan.title,
        description=None,
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id


# The runs' events are all recorded in the instance (and shown in the UI); the terminal gets warnings only,
# so a replay's one line per day is not buried under every step's debug events.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Not even a failed step's error and traceback: ``customer360 replay`` prints each failure in one line
# (``ReplayedDay.failures``); ``--debug`` uses QUIET_CONSOLE.
SILENT_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass(frozen=True)
class ReplayedDay:
    day: date
    run_id: str
    success: bool
    seconds: float
    failures: tuple[str, ...] = ()
    """One line per failed step: the asset and its error's message."""


def step_failures(result: dg.ExecuteInProcessResult) -> tuple[str, ...]:
    """``"<step>: <message>"`` for every failed step of a run, the message of the error the step's code raised."""
    lines = []
    for event in result.all_events:
        if not event.is_step_failure or event.step_failure_data is None:
            continue
        error = event.step_failure_data.error
        # Dagster wraps what user code raised ("Error occurred while executing op ..."); its cause is what says why.
        while error is not None and error.cause is not None and error.cls_name.startswith("Dagster"):
            error = error.cause
        message = error.message.strip() if error is not None else "failed"
        message = message.removeprefix(f"{error.cls_name}: ") if error is not None else message
        first = next((line.strip() for line in message.splitlines() if line.strip()), "failed")
        step = (event.step_key or "?").replace("__", "/")
        lines.append(f"{step}: {first}")
    return tuple(lines)


def stopped_message(command: str, failed: date, end: date) -> str:
    """Why a replay stops at its first failed day, and how to resume it (every later snapshot builds on it)."""
    rest = "" if failed == end else f"; {failed + timedelta(days=1)}...{end} not replayed"
    return (
        f"customer360 {command}: stopped at {failed}, whose run failed (above; the run's log in the UI has the "
        f"details): every later snapshot builds on this day's{rest}. Fix the cause, then resume with: "
        f"customer360 replay --start {failed} --end {end}"
    )


def replay_days(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    start: date,
    end: date,
    *,
    run_config: dict | None = None,
) -> Iterator[ReplayedDay]:
    """Run the whole pipeline job for each day from ``start`` to ``end``, in order, in this process.

    The fast path for long replays: one run per day (so every day's check results are recorded and the
    runs show in the UI), days in order (so each snapshot finds its previous day), and no process launch or
    daemon hop between days. What the demo runs, and what ``customer360 replay`` runs. A generator, so a
    caller that stops at a failed day (the CLI and the demo do: every later snapshot builds on it) runs
    nothing after it.
    """
    job = defs.resolve_job_def(PIPELINE_JOB_NAME)
    day = start
    while day <= end:
        started = time.perf_counter()
        result = job.execute_in_process(
            partition_key=day.isoformat(),
            instance=instance,
            raise_on_error=False,
            run_config=QUIET_CONSOLE if run_config is None else run_config,
        )
        yield ReplayedDay(day, result.run_id, result.success, time.perf_counter() - started, step_failures(result))
        day += timedelta(days=1)
