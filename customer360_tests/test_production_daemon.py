"""The whole flow on the production instance: a real ``dagster-daemon`` over PostgreSQL, the code location
served by the image's own command (``dagster api grpc``), runs launched as processes by that server, the lake
on S3 (moto's server), compute logs to S3.

One scenario, because each part needs the daemon and the runs of the one before it, and every run is a
process importing the code location (seconds each on this 2-core machine):

1. **Days land at once.** Every file of ``DAYS`` days is dropped into raw/ together. The raw sensor turns
   them into one gate run per (dataset, day); the QueuedRunCoordinator runs at most ``MAX_CONCURRENT_RUNS``
   at a time, and at most one per value of the gate's ``customer360/gate`` tag.
2. **A second file for a day whose gate run is waiting.** Another activity file of the last day lands while
   that day's first gate run is still queued (the week's runs before it fill the queue): the sensor requests
   a second run for the same (dataset, day), and the queue holds it until the first has finished (seen live,
   and from the run records: created before the first ended, started after).
3. **kill -9 of the daemon mid-flow**, once day 1 has reached the warehouse and while other runs are queued or
   running. While it is down, a late activity file for day 1 lands and a backfill is submitted the way the
   UI submits one (``customer360.defs.backfill.submit_backfill``: the warehouse loads of day 1 again, while the
   late file rebuilds that day: a load that finds the rebuild running waits for it; a day not staged yet
   would rightly be refused). The daemon
   starts again and everything settles.

Then, what a user would check: every run succeeded; no run key twice and exactly one gate run per batch of
files (so neither the restart nor a lost cursor launched a file twice); every file sent is in exactly one
place (archive/ or rejected/, byte-for-byte) with exactly one ledger entry, and raw/ is empty; every activity
row is in the warehouse exactly once (the warehouse's event ids of each day are the day's distinct clean event
ids, the late file's included, the backfill's replay adding nothing); every customers snapshot and mart day is
loaded; the backfill completed.

Intervals are shortened through the environment variables the deployment reads (README: sensor and
automation intervals); the daemon's own loops tick every 5 s (sensors, automation), and its backfill loop every
2 s instead of 30 (``fast_daemon.py``: the real ``dagster-daemon`` with that one constant shortened).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

import dagster as dg
import pyarrow.parquet as pq
import pytest
from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES, BulkActionStatus
from dagster._core.storage.dagster_run import RunRecord

from customer360.contracts import DATASETS
from customer360.defs.backfill import plan_backfill, submit_backfill
from customer360.defs.definitions import defs
from customer360.defs.keys import GATE_TAG
from customer360.defs.resources.lake import open_lake
from customer360.defs.resources.warehouse import WarehouseResource
from customer360.lake import layout
from customer360.lake.ledger import Ledger, query
from customer360.lake.routing import route
from customer360.lake.s3 import S3LakeStore
from customer360.lake.transfer import fetch_many, parquet_keys, scratch_dir
from customer360.steps.clean import read_clean
from customer360_generator import generate_demo_data
from customer360_tests.production_home import PRODUCTION_INSTANCE, image_command, write_home

START = date(2024, 1, 1)
DAYS = 3
MAX_CONCURRENT_RUNS = 4
QUIET_SECONDS = 20  # no run in progress and none created for this long: the automation has nothing left to do
SETTLE_TIMEOUT_SECONDS = 900
BIN = Path(sys.executable).parent
FAST_DAEMON = Path(__file__).with_name("fast_daemon.py")

IN_PROGRESS = {
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
}
RUNNING = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED}
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Deployment:
    """The processes of a deployment on this machine, each in its own process group, logs in ``home``."""

    home: Path
    env: dict[str, str]
    store: S3LakeStore
    instance: dg.DagsterInstance
    code_port: int
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    daemon_starts: int = 0
    held_in_queue: set[str] = field(default_factory=set)  # gate tag values seen queued behind a running run

    def _start(self, name: str, command: list[str]) -> None:
        log = (self.home / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            command, cwd=self.home, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def start_code_server(self) -> None:
        from dagster._grpc.client import DagsterGrpcClient

        self._start("code-server", image_command(host="127.0.0.1", port=self.code_port))
        client = DagsterGrpcClient(port=self.code_port, host="127.0.0.1")
        self.wait_for("the code server to serve", lambda: _serving(client), timeout=180)

    def start_daemon(self) -> None:
        self.daemon_starts += 1
        # dagster-daemon itself, its backfill loop sleeping 2 s instead of 30 between iterations (fast_daemon.py).
        self._start(
            f"daemon-{self.daemon_starts}",
            [sys.executable, str(FAST_DAEMON), "run", "-w", str(self.home / "workspace.yaml")],
        )

    def kill_daemon(self) -> None:
        daemon = self.processes.pop(f"daemon-{self.daemon_starts}")
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=30)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        self.processes.clear()

    def logs(self) -> str:
        """What a failure message shows: the runs, the materialized days per asset, and each process's log tail."""
        runs = Counter(
            (r.job_name, str(r.tags.get("dagster/partition")), r.status.value) for r in self.instance.get_runs()
        )
        materialized = {
            key.to_user_string(): sorted(self.instance.get_materialized_partitions(key))
            for key in defs.resolve_asset_graph().get_all_asset_keys()
        }
        tails = [
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in sorted(self.home.glob("*.log"))
        ]
        return "\n".join([f"runs: {sorted(runs.items())}", f"materialized: {materialized}", *tails])

    def observe_queue(self) -> None:
        """Remember every gate tag value that has one run running and another queued right now."""
        by_tag: dict[str, set[dg.DagsterRunStatus]] = {}
        for run in self.instance.get_runs(filters=dg.RunsFilter(statuses=list(IN_PROGRESS))):
            if GATE_TAG in run.tags:
                by_tag.setdefault(run.tags[GATE_TAG], set()).add(run.status)
        self.held_in_queue |= {tag for tag, s in by_tag.items() if s & RUNNING and dg.DagsterRunStatus.QUEUED in s}

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout: float) -> T:
        deadline = time.monotonic() + timeout
        while True:
            self.observe_queue()
            value = probe()
            if value:
                return value
            dead = [name for name, p in self.processes.items() if p.poll() is not None]
            assert not dead, f"{dead} exited while waiting for {what}\n{self.logs()}"
            assert time.monotonic() < deadline, f"no {what} within {timeout} s\n{self.logs()}"
            time.sleep(0.5)

    def gate_runs(self, tag: str) -> list[RunRecord]:
        records = self.instance.get_run_records(filters=dg.RunsFilter(tags={GATE_TAG: tag}))
        return sorted(records, key=lambda r: r.create_timestamp)


def _serving(client: object) -> bool:
    try:  # a plain connect first: the gRPC client prints every refused attempt
        socket.create_connection(("127.0.0.1", client.port), timeout=1).close()  # type: ignore[attr-defined]
        return client.health_check_query() == "SERVING"  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - not listening yet
        return False


@pytest.fixture
def deployment(
    tmp_path: Path, postgres_env: dict[str, str], moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deployment]:
    home = write_home(tmp_path / "home", local_runs=True, max_concurrent_runs=MAX_CONCURRENT_RUNS)
    shutil.copy(PRODUCTION_INSTANCE.with_name("workspace.yaml"), home / "workspace.yaml")
    suffix = uuid.uuid4().hex[:8]
    store = open_lake(f"s3://telco-c360-prod-{suffix}", endpoint_url=moto_server)
    assert isinstance(store, S3LakeStore)
    store.client.create_bucket(Bucket=store.bucket)
    store.client.create_bucket(Bucket=f"telco-c360-logs-{suffix}")
    code_port = _free_port()
    settings = {
        **postgres_env,
        "DAGSTER_HOME": str(home),
        "CUSTOMER360_CODE_SERVER_HOST": "127.0.0.1",
        "CUSTOMER360_CODE_SERVER_PORT": str(code_port),
        "CUSTOMER360_LOG_BUCKET": f"telco-c360-logs-{suffix}",
        "AWS_ENDPOINT_URL": moto_server,  # the compute log manager's boto3 client (production: AWS itself)
        "CUSTOMER360_LAKE": store.uri,
        "CUSTOMER360_S3_ENDPOINT_URL": moto_server,
        "CUSTOMER360_WAREHOUSE": "duckdb",
        "CUSTOMER360_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "CUSTOMER360_SENSOR_INTERVAL_SECONDS": "1",
        "CUSTOMER360_SENSOR_RECONCILE_MINUTES": "0",  # the days are in 2024: list all of raw/ on every tick
        "CUSTOMER360_AUTOMATION_INTERVAL_SECONDS": "5",
        "PYTHONWARNINGS": "ignore",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    instance = dg.DagsterInstance.from_config(str(home))
    deployment = Deployment(home, dict(os.environ), store, instance, code_port)
    try:
        yield deployment
    finally:
        deployment.stop()
        instance.dispose()


def _clean_event_ids(store: S3LakeStore, day: date) -> list[str]:
    return read_clean(store, DATASETS["activity_logs"], day).column("event_id").to_pylist()


def _staged_rows(store: S3LakeStore, dataset: str, day: date) -> int:
    keys = parquet_keys(store, layout.staging_prefix(dataset, day))
    with scratch_dir() as folder:
        return sum(pq.ParquetFile(p).metadata.num_rows for p in fetch_many(store, keys, folder))


def _max_overlap(records: list[RunRecord]) -> int:
    edges = sorted(
        [(r.start_time, 1) for r in records if r.start_time] + [(r.end_time, -1) for r in records if r.end_time]
    )
    running = peak = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


def test_daemon_on_postgres_runs_a_week_concurrently_holds_same_day_gates_and_survives_kill_9(
    deployment: Deployment,
) -> None:
    d, store, instance = deployment, deployment.store, deployment.instance
    days = [START + timedelta(days=i) for i in range(DAYS)]
    sent: dict[str, bytes] = {}
    generate_demo_data(sent.__setitem__, START, DAYS, seed=13, customers=120, events_per_day=300, hours_per_day=2)
    last_day_tag = f"activity_logs/{days[-1]}"
    second = max(k for k in sent if k.startswith(layout.raw_prefix("activity_logs", days[-1])))
    late = max(k for k in sent if k.startswith(layout.raw_prefix("activity_logs", days[0])))
    held = {second, late}

    d.start_code_server()
    d.start_daemon()
    # The earlier days first, then (once their gate runs fill the queue) the last day: its first gate run is
    # then queued behind all of them, which leaves the sensor ticks to request the second one before it ends.
    earlier = [key for key in sent if key not in held and not key.startswith(f"raw/activity_logs/{days[-1]}/")]
    for key in earlier:
        store.put_bytes(key, sent[key])
    d.wait_for("gate runs for the earlier days", lambda: len(instance.get_runs()) > MAX_CONCURRENT_RUNS, timeout=300)
    for key in sent:
        if key not in held and key not in earlier:
            store.put_bytes(key, sent[key])

    # 2. The last day's first gate run exists (and waits behind the earlier days'): its second file lands.
    d.wait_for(f"a gate run for {last_day_tag}", lambda: d.gate_runs(last_day_tag), timeout=300)
    store.put_bytes(second, sent[second])
    d.wait_for(f"a second gate run for {last_day_tag}", lambda: len(d.gate_runs(last_day_tag)) >= 2, timeout=300)

    # 3. kill -9 mid-flow, once day 1 has reached the warehouse.
    warehouse_activity = dg.AssetKey(["warehouse", "activity"])
    d.wait_for(
        "day 1 in the warehouse",
        lambda: (
            instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=warehouse_activity, asset_partitions=[days[0].isoformat()]), limit=1
            ).records
        ),
        timeout=600,
    )
    # ...and not while it launches a run: a run the daemon marked STARTING and was killed before handing to the
    # code server never starts; run monitoring fails it after start_timeout_seconds (600 s in dagster.yaml).
    launching = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING]
    d.wait_for(
        "a moment with no launch in progress",
        lambda: not instance.get_runs(filters=dg.RunsFilter(statuses=launching)),
        timeout=300,
    )
    in_flight_at_kill = len(instance.get_runs(filters=dg.RunsFilter(statuses=list(IN_PROGRESS))))
    d.kill_daemon()
    store.put_bytes(late, sent[late])
    graph = defs.resolve_asset_graph()
    backfill_id = submit_backfill(instance, graph, plan_backfill(graph, days[0], days[0], "group:warehouse"))
    d.start_daemon()

    def settled() -> bool:
        records = instance.get_run_records()
        if any(r.dagster_run.status in IN_PROGRESS for r in records) or list(store.list("raw/")):
            return False
        backfill = instance.get_backfill(backfill_id)
        if backfill is None or backfill.status != BulkActionStatus.COMPLETED_SUCCESS:
            return False
        # The automation submits a multi-day request of a self-dependent snapshot as a backfill of its own,
        # whose next hop waits for the backfill loop (30 s): no run in progress is not yet quiet.
        if any(b.status not in BULK_ACTION_TERMINAL_STATUSES for b in instance.get_backfills()):
            return False
        last_change = max([r.create_timestamp.timestamp() for r in records] + [r.end_time or 0 for r in records])
        return time.time() - last_change >= QUIET_SECONDS

    d.wait_for("the lake to settle", settled, timeout=SETTLE_TIMEOUT_SECONDS)
    records = instance.get_run_records()
    print(f"\n{len(records)} runs; {in_flight_at_kill} queued or running when the daemon was killed")

    # Runs: all succeeded; at most MAX_CONCURRENT_RUNS at once, and more than one.
    failed = [
        (r.dagster_run.run_id, r.dagster_run.job_name, r.dagster_run.tags)
        for r in records
        if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS
    ]
    assert not failed, f"{failed}\n{d.logs()}"
    assert in_flight_at_kill > 0, "the daemon was killed mid-flow"
    assert 1 < _max_overlap(records) <= MAX_CONCURRENT_RUNS

    # No duplicate run: no run key twice, one gate run per batch of files (the two held files made two more).
    run_keys = Counter(
        r.dagster_run.tags["dagster/run_key"] for r in records if "dagster/run_key" in r.dagster_run.tags
    )
    assert run_keys and max(run_keys.values()) == 1
    batches = Counter(
        f"{dataset.name}/{day}" for dataset, day, reason in map(route, sent) if reason is None and dataset and day
    )
    expected = {tag: 1 for tag in batches} | {last_day_tag: 2, f"activity_logs/{days[0]}": 2}
    gate_runs = Counter(r.dagster_run.tags[GATE_TAG] for r in records if GATE_TAG in r.dagster_run.tags)
    assert dict(gate_runs) == expected

    # The queue held the second gate run of the last day while the first ran; same-tag runs never overlapped.
    assert last_day_tag in d.held_in_queue
    first, second_run = d.gate_runs(last_day_tag)
    assert second_run.create_timestamp.timestamp() < first.end_time <= second_run.start_time
    for tag in gate_runs:
        runs = d.gate_runs(tag)
        assert all(a.end_time <= b.start_time for a, b in zip(runs, runs[1:], strict=False)), tag

    # Every file in exactly one place, byte for byte, with exactly one ledger entry; raw/ is empty.
    assert not list(store.list("raw/"))
    entries = list(query(Ledger(store)))
    assert sorted(e.raw_key for e in entries) == sorted(sent), "one ledger entry per file sent"
    for entry in entries:
        assert entry.destination_key and store.read_bytes(entry.destination_key) == sent[entry.raw_key], entry
    archived = {o.key for o in store.list("archive/")}
    rejected = {o.key for o in store.list("rejected/") if "/rows/" not in o.key and not o.key.endswith(".report.json")}
    assert archived | rejected == {e.destination_key for e in entries}

    # Every row counted once in the warehouse; every snapshot and mart day loaded.
    warehouse = WarehouseResource(backend="duckdb", duckdb_path=d.env["CUSTOMER360_DUCKDB_PATH"]).open(store)
    wrong: list[str] = []
    for day in days:
        clean_ids = set(_clean_event_ids(store, day))
        loaded = [row[0] for row in warehouse.query("SELECT event_id FROM activity WHERE partition_date = ?", [day])]
        if len(loaded) != len(set(loaded)) or set(loaded) != clean_ids:
            wrong.append(f"{day} activity: {len(loaded)} rows loaded ({len(set(loaded))} ids), {len(clean_ids)} clean")
        for name in ("customers", "plans"):
            rows = warehouse.query(f"SELECT count(*) FROM {name} WHERE partition_date = ?", [day])[0][0]
            staged = _staged_rows(store, name, day)
            if not rows == staged > 0:
                wrong.append(f"{day} {name}: {rows} rows loaded, {staged} staged")
        if not warehouse.query("SELECT count(*) FROM customer_360 WHERE mart_date = ?", [day])[0][0]:
            wrong.append(f"{day} customer_360: empty")
    assert not wrong, "\n".join([*wrong, d.logs()])
    late_name = late.rsplit("/", 1)[1]
    late_rows = read_clean(store, DATASETS["activity_logs"], days[0]).column("_source_file").to_pylist()
    assert any(late_name in source for source in late_rows), "the late file's rows reached clean and the warehouse"

    # The backfill (a replay of day 3's warehouse loads) ran through the daemon and completed.
    backfill_runs = [r for r in records if r.dagster_run.tags.get("dagster/backfill") == backfill_id]
    assert backfill_runs and instance.get_backfill(backfill_id).status == BulkActionStatus.COMPLETED_SUCCESS
