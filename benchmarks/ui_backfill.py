"""Benchmark: a whole-graph backfill of the demo week launched as the UI launches it, next to ``customer360 replay``.

    python benchmarks/ui_backfill.py [--start 2024-03-04] [--days 7] [--customers 2000] [--events-per-day 20000]

What a newcomer does after the demo, measured end to end with the real parts and nothing shortened:

1. ``customer360 generate`` writes the demo week (the demo's sizes by default) into a temp lake;
2. ``customer360 replay`` runs it, one run per day in this machine's process (timed: the reference);
3. ``dagster-webserver`` and the unmodified ``dagster-daemon run`` start over the same instance (the project's
   dagster.yaml, storage paths made absolute; nothing else changed: the backfill loop sleeps its fixed 30 s,
   the run queue dequeues every 5 s, the automation ticks every 30 s), and the benchmark waits until the
   automation has nothing left to do after the replay;
4. the whole graph for the week is submitted through the webserver's GraphQL ``launchPartitionBackfill`` with
   the body the UI's launch dialog sends ("Materialize all", a date range: ``assetSelection`` of every daily
   asset the graph can materialize + ``partitionNames`` + the ``dagster/from_ui`` tag), and timed until the
   backfill is complete with none of its runs in flight; then until the automation has settled too.

Prints wall times, runs (the backfill's, per day, and the automation's after it), the backfill's failed runs
and the partitions materialized outside the requested week (days without data). The same script measures an
older commit from a throwaway worktree (see README, Benchmarks): it drives only the CLI, the webserver and the
daemon, and imports nothing from the package but what ``customer360_tests/dagster_stack.py`` needs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dagster as dg  # noqa: E402 - after the project root is importable

from customer360_tests.dagster_stack import BIN, ROOT, Stack, dagster_stack, wait_for  # noqa: E402

BACKFILL_TAG = "dagster/backfill"
AUTOMATION_INTERVAL_SECONDS = 30  # the code location's default; the quiet wait is three ticks of it
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]

DAILY_ASSETS = """
{ assetNodes { assetKey { path } isMaterializable isPartitioned partitionDefinition { type } } }
"""
BACKFILL = """
query Backfill($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }
"""


def write_instance(home: Path) -> None:
    """The project's dagster.yaml, unchanged but for absolute storage paths (the daemon's defaults kept), and the
    stack's empty lake folder (``customer360 init`` would create it; older commits have no such command)."""
    config = (ROOT / "dagster.yaml").read_text().replace("base_dir: .dagster", f"base_dir: {home}/.dagster")
    (home / "dagster.yaml").write_text(config)
    (home / "lake").mkdir()


def customer360(stack_env: dict[str, str], home: Path, *args: str) -> float:
    """Run the CLI in ``home`` (its DAGSTER_HOME); seconds it took."""
    began = time.perf_counter()
    done = subprocess.run([str(BIN / "customer360"), *args], cwd=home, env=stack_env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"customer360 {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - began


def settle(stack: Stack, quiet_seconds: float, timeout: float) -> float:
    """Wait until no run is in flight and none started for ``quiet_seconds``; the time the last run ended."""

    def quiet() -> float | None:
        stack.assert_running()
        with stack.instance() as instance:
            if instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT)):
                return None
            runs = instance.get_runs(limit=1)
            if not runs:
                return time.time() - quiet_seconds - 1
            [latest] = runs
            record = instance.get_run_record_by_id(latest.run_id)
            ended = record.end_time if record and record.end_time else time.time()
            started = record.create_timestamp.timestamp() if record else ended
        return max(ended, started) if time.time() - max(ended, started) > quiet_seconds else None

    return wait_for("the daemon to have nothing left to do", quiet, timeout=timeout, interval=2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 3, 4))
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--events-per-day", type=int, default=20_000)
    parser.add_argument("--timeout-minutes", type=float, default=120)
    parser.add_argument("--keep", action="store_true", help="keep the temp home (instance, lake, logs)")
    args = parser.parse_args()
    days = [(args.start + timedelta(days=offset)).isoformat() for offset in range(args.days)]
    timeout = args.timeout_minutes * 60

    home = Path(tempfile.mkdtemp(prefix="c360-ui-backfill-"))
    write_instance(home)
    with dagster_stack(home, daemon=False) as stack:
        # The webserver is not needed for generate + replay, but stack.env is the environment both share.
        env = stack.env
        customer360(
            env,
            home,
            "generate",
            "--start",
            days[0],
            "--days",
            str(args.days),
            "--customers",
            str(args.customers),
            "--events-per-day",
            str(args.events_per_day),
        )
        replay_seconds = customer360(env, home, "replay", "--start", days[0], "--end", days[-1])
        with stack.instance() as instance:
            replay_runs = len(instance.get_run_ids())
        print(f"customer360 replay of {args.days} days: {replay_seconds:.1f} s, {replay_runs} runs", flush=True)

        stack.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")])
        settle(stack, quiet_seconds=3 * AUTOMATION_INTERVAL_SECONDS + 5, timeout=timeout)
        with stack.instance() as instance:
            before = set(instance.get_run_ids())
        print(
            f"daemon up; {len(before) - replay_runs} run(s) by its sensors and automation after the replay", flush=True
        )

        nodes = stack.graphql(DAILY_ASSETS)["assetNodes"]
        daily = [n["assetKey"] for n in nodes if n["isMaterializable"] and n["isPartitioned"]]
        params = {
            "tags": [{"key": "dagster/from_ui", "value": "true"}],
            "assetSelection": daily,
            "partitionNames": days,
            "fromFailure": False,
        }
        launched_at = time.time()
        backfill_id = stack.launch_backfill(params)

        def backfill_done() -> str | None:
            stack.assert_running()
            status = stack.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]["status"]
            if status in ("REQUESTED", "CANCELING"):
                return None
            with stack.instance() as instance:
                running = instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT, tags={BACKFILL_TAG: backfill_id}))
            return None if running else status

        status = wait_for("the backfill", backfill_done, timeout=timeout, interval=1)
        backfill_seconds = time.time() - launched_at
        print(f"backfill {status} after {backfill_seconds:.1f} s; waiting for the automation to settle", flush=True)
        last_end = settle(stack, quiet_seconds=3 * AUTOMATION_INTERVAL_SECONDS + 5, timeout=timeout)

        with stack.instance() as instance:
            ours = instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_TAG: backfill_id}))
            ours_ids = {run.run_id for run in ours}
            later = [run for run in instance.get_runs() if run.run_id not in before | ours_ids]
            failed = [run for run in ours if run.status != dg.DagsterRunStatus.SUCCESS]
            outside: Counter[str] = Counter()
            for key in daily:
                records = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey(key["path"]), after_timestamp=launched_at), limit=10_000
                ).records
                for record in records:
                    if record.partition_key not in days:
                        outside["/".join(key["path"])] += 1
            busy = sum(
                (r.end_time - r.start_time)
                for r in instance.get_run_records(filters=dg.RunsFilter(run_ids=list(ours_ids)))
                if r.start_time and r.end_time
            )
    if not args.keep:
        import shutil

        shutil.rmtree(home, ignore_errors=True)
    else:
        print(f"kept {home}")

    print(f"\nwhole graph ({len(daily)} daily assets) x {args.days} days, launched as the UI does:")
    print(
        f"  backfill: {backfill_seconds:.1f} s ({backfill_seconds / 60:.1f} min) until {status}, {len(ours)} runs "
        f"({len(ours) / args.days:.2f} per day), {len(failed)} failed; runs busy {busy:.1f} s in total"
    )
    print(
        f"  then the sensors and the automation: {len(later)} run(s); the last run ended "
        f"{last_end - launched_at:.1f} s after launch"
    )
    print(f"  partitions materialized outside the {args.days} days: {sum(outside.values())} {dict(outside) or ''}")
    print(f"  customer360 replay of the same days: {replay_seconds:.1f} s, {replay_runs} runs")
    return 1 if failed or status != "COMPLETED_SUCCESS" else 0


if __name__ == "__main__":
    sys.exit(main())
