"""The Dagster stack a person runs (webserver, and the daemon when asked), started for a test in a temp home.

What ``dagster dev`` starts, as two processes: ``dagster-webserver`` serving the project's workspace.yaml
on a free local port, and the daemon (``customer360_tests.fast_daemon``: the real ``dagster-daemon run``
whose backfill loop sleeps seconds instead of 30 s between iterations). DAGSTER_HOME is a temp folder
holding the project's dagster.yaml with its storage paths made absolute (they are relative to the working
directory in the project), so the test process opens the very instance the servers use. The lake and the
DuckDB warehouse are temp paths too. Each server runs in its own session; on exit both get SIGTERM and
then every process they started (code servers, run workers) is killed, so nothing outlives the test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_SECONDS = 180
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_json(url: str, payload: dict | None = None, timeout: float = 60) -> dict:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 1.0) -> T:
    """``probe()`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
  }
}
"""


@dataclass
class Stack:
    home: Path
    base_url: str
    env: dict[str, str]
    processes: list[subprocess.Popen] = field(default_factory=list)
    _logs: list = field(default_factory=list)

    @property
    def lake(self) -> Path:
        return Path(self.env["CUSTOMER360_LAKE"])

    @property
    def duckdb_path(self) -> Path:
        return Path(self.env["CUSTOMER360_DUCKDB_PATH"])

    def start(self, name: str, command: list[str]) -> None:
        log = (self.home / f"{name}.log").open("wb")
        self._logs.append(log)
        self.processes.append(
            subprocess.Popen(
                command, cwd=self.home, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )

    def start_daemon(self) -> None:
        """The daemon: backfills, sensors, automation and the run queue start moving."""
        workspace = str(ROOT / "workspace.yaml")
        self.start("daemon", [sys.executable, str(Path(__file__).with_name("fast_daemon.py")), "run", "-w", workspace])

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = http_json(f"{self.base_url}/graphql", {"query": query, "variables": variables or {}})
        assert "errors" not in body, body["errors"]
        return body["data"]

    def launch_backfill(self, params: dict) -> str:
        """Submit a partition backfill as the UI's launch dialog does (GraphQL ``launchPartitionBackfill``); its id."""
        launched = self.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        return launched["backfillId"]

    def instance(self) -> dg.DagsterInstance:
        """The instance the servers use (the caller disposes of it)."""
        return dg.DagsterInstance.from_config(str(self.home))

    def logs(self) -> str:
        tails = [(path.name, path.read_text(errors="replace")[-6000:]) for path in sorted(self.home.glob("*.log"))]
        return "\n".join(f"--- {name} ---\n{tail}" for name, tail in tails)

    def assert_running(self) -> None:
        for process in self.processes:
            assert process.poll() is None, f"{process.args[0]} exited with {process.returncode}\n{self.logs()}"

    def stop(self) -> None:
        for process in self.processes:
            _stop(process)
        for log in self._logs:
            log.close()


def _descendants(pid: int) -> list[int]:
    """Every living process started (directly or not) by ``pid`` (Linux /proc), children first."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _stop(process: subprocess.Popen) -> None:
    tree = _descendants(process.pid)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    for pid in tree:  # code servers and run workers (a run worker may run in a session of its own)
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def write_home(home: Path) -> None:
    """The project's dagster.yaml in ``home``, storage paths absolute, runs dequeued every second; its lake folder."""
    config = (ROOT / "dagster.yaml").read_text().replace("base_dir: .dagster", f"base_dir: {home}/.dagster")
    config = config.replace(
        "  class: QueuedRunCoordinator\n",
        "  class: QueuedRunCoordinator\n  config:\n    dequeue_interval_seconds: 1\n",
    )
    assert "dequeue_interval_seconds" in config, "dagster.yaml's run coordinator changed: update write_home"
    (home / "dagster.yaml").write_text(config)
    (home / "lake").mkdir(exist_ok=True)  # stack_env's lake, created as `customer360 init` would


def stack_env(home: Path, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CUSTOMER360_LAKE": str(home / "lake"),
        "CUSTOMER360_DUCKDB_PATH": str(home / "warehouse.duckdb"),
        "PYTHONWARNINGS": "ignore",
        **(extra_env or {}),
    }


@contextmanager
def dagster_stack(home: Path, *, daemon: bool, extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """Start the webserver (and the daemon) over ``home``; yield once the UI answers.

    ``home`` may already hold the instance (``write_home``) and a lake a test prepared.
    """
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        write_home(home)
    stack = Stack(home, f"http://127.0.0.1:{free_port()}", stack_env(home, extra_env))
    port = stack.base_url.rsplit(":", 1)[1]
    try:
        workspace = str(ROOT / "workspace.yaml")
        stack.start("webserver", [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", port])
        if daemon:
            stack.start_daemon()

        def answers() -> bool:
            stack.assert_running()
            try:
                http_json(f"{stack.base_url}/server_info", timeout=5)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return False
            return True

        wait_for("the webserver's /server_info", answers, STARTUP_TIMEOUT_SECONDS, interval=0.25)
        yield stack
    finally:
        stack.stop()
