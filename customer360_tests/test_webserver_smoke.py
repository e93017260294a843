"""Smoke test: the real ``dagster-webserver`` serves the project's workspace.yaml, and its GraphQL API shows the
``customer360`` code location loaded, its sensors and every asset.

What a user opening the UI would see first, checked the way the UI itself asks for it (``/graphql``). The
server runs as a subprocess with a temp DAGSTER_HOME holding a copy of the project's dagster.yaml (whose
storage paths are relative, so the server's working directory is that temp home, never the project's own
``.dagster/``) and a temp lake and warehouse. It is stopped with SIGTERM, and its process group killed if
the test fails, so no server outlives the test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from customer360.contracts import DATASETS
from customer360.defs.keys import ALERT_SENSOR_NAME, AUTOMATION_SENSOR_NAME, RAW_SENSOR_NAME

ROOT = Path(__file__).resolve().parents[1]
WEBSERVER = Path(sys.executable).parent / "dagster-webserver"
STARTUP_TIMEOUT_SECONDS = 120

WORKSPACE_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation {
            repositories { name sensors { name sensorState { status } } }
          }
        }
      }
    }
  }
  assetNodes { assetKey { path } }
}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _graphql(base: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{base}/graphql", data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body["errors"]
    return body["data"]


@pytest.fixture
def webserver(tmp_path: Path) -> Iterator[str]:
    """A running dagster-webserver on a free local port; yields its base URL."""
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    (tmp_path / "lake").mkdir()  # what `customer360 init` does; the code location refuses a missing lake folder
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path),
        "CUSTOMER360_LAKE": str(tmp_path / "lake"),
        "CUSTOMER360_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "PYTHONWARNINGS": "ignore",
    }
    port = _free_port()
    log = (tmp_path / "webserver.log").open("wb")
    server = subprocess.Popen(
        [str(WEBSERVER), "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the code server it spawns goes down with it
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            assert server.poll() is None, (tmp_path / "webserver.log").read_text(errors="replace")[-4000:]
            try:
                _get(f"{base}/server_info")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, f"no /server_info within {STARTUP_TIMEOUT_SECONDS} s"
                time.sleep(0.25)
        yield base
        server.terminate()
        assert server.wait(timeout=30) is not None
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()


def test_webserver_serves_the_code_location_its_sensors_and_every_asset(webserver: str) -> None:
    info = _get(f"{webserver}/server_info")
    assert info["dagster_webserver_version"] and info["dagster_version"]

    data = _graphql(webserver, WORKSPACE_QUERY)
    assert data["workspaceOrError"]["__typename"] == "Workspace"
    [entry] = data["workspaceOrError"]["locationEntries"]
    assert entry["name"] == "customer360"
    assert entry["loadStatus"] == "LOADED"
    location = entry["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location

    sensors = {s["name"]: s["sensorState"]["status"] for repo in location["repositories"] for s in repo["sensors"]}
    # The raw sensor and the automation move the lake by themselves once the daemon runs: on by default.
    assert sensors[RAW_SENSOR_NAME] == "RUNNING"
    assert sensors[AUTOMATION_SENSOR_NAME] == "RUNNING"
    assert ALERT_SENSOR_NAME in sensors

    keys = {"/".join(node["assetKey"]["path"]) for node in data["assetNodes"]}
    expected = {"mart/customer_360", "rejected/unroutable"}
    for name, dataset in DATASETS.items():
        expected |= {f"{zone}/{name}" for zone in ("raw", "archive", "rejected", "clean")}
        expected |= {f"staging/{dataset.staging_name}", f"warehouse/{dataset.staging_name}"}
    assert keys == expected
