"""Fixtures shared by the whole customer360 test suite.

Why these live here: every zone, sensor and CLI test needs a lake, and the suite's promise is that
each such test passes on both backends: the local folder and S3 (a moto server standing in for
AWS). Add new fixtures under the section they belong to, each with a docstring saying what it
provides and why it has its scope.

Sections:
  * The code location's lake while the suite runs (set before any test module imports the definitions)
  * AWS isolation and the moto S3 server (session scope: one server per xdist worker)
  * Lakes (function scope: every test starts from an empty lake; kept parses in the test's own folder)
  * PostgreSQL (session scope: one throwaway cluster per xdist worker, a fresh database per test)
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from customer360.defs.resources.lake import init_lake, open_lake
from customer360.lake.local import LocalLakeStore
from customer360.lake.s3 import S3LakeStore
from customer360.lake.store import LakeStore
from customer360_tests.postgres_cluster import PostgresCluster, running_cluster

# ---------------------------------------------------------------------------------------------------
# The code location's lake while the suite runs
# ---------------------------------------------------------------------------------------------------

_SUITE_LAKE = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Point CUSTOMER360_LAKE at an empty folder of the suite's own before any test module is imported.

    ``customer360.defs.definitions`` builds the code location at import and refuses a lake folder that does not
    exist (a fresh checkout has no ``.lake/``); and a developer's own CUSTOMER360_LAKE (a real bucket) must
    never reach a test. Tests that need a lake of their own set it themselves.
    """
    folder = tempfile.mkdtemp(prefix="customer360-suite-lake-")
    config.stash[_SUITE_LAKE] = folder
    os.environ["CUSTOMER360_LAKE"] = folder


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_SUITE_LAKE, None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# AWS isolation and the moto S3 server
# ---------------------------------------------------------------------------------------------------

_FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # A developer's ~/.aws profile must not leak in (a missing AWS_PROFILE would even fail startup).
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
_AWS_ENV_TO_CLEAR = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


@pytest.fixture(scope="session", autouse=True)
def fake_aws_credentials() -> Iterator[None]:
    """Fake AWS credentials and region for the whole session, for every test.

    Autouse so that no test, even one that forgets to point boto3 at moto, can ever sign a request
    with real credentials or pick up a developer's endpoint or profile.
    """
    with pytest.MonkeyPatch.context() as mp:
        for name in _AWS_ENV_TO_CLEAR:
            mp.delenv(name, raising=False)
        for name, value in _FAKE_AWS_ENV.items():
            mp.setenv(name, value)
        # A corporate HTTP(S)_PROXY would otherwise swallow requests to the local moto server.
        for name in ("NO_PROXY", "no_proxy"):
            mp.setenv(name, ",".join(filter(None, [os.environ.get(name), "127.0.0.1", "localhost"])))
        yield


@pytest.fixture(scope="session")
def moto_server(fake_aws_credentials: None) -> Iterator[str]:
    """The endpoint URL (``http://127.0.0.1:<port>``) of an in-process moto S3 server.

    Session-scoped because starting it costs more than most tests; tests stay independent by each
    using a bucket of its own (see ``s3_lake``). Under xdist every worker starts its own server.
    Port 0 lets the kernel pick a free port at bind time, so parallel workers cannot race for one.
    """
    # werkzeug logs every request at INFO to stderr; a 1,000-object test would bury real failures.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------------
# Lakes
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def s3_lake(moto_server: str) -> S3LakeStore:
    """An empty S3 lake in a fresh, uniquely named bucket on the moto server.

    Built through ``open_lake`` (the same path as the Dagster resource and the CLIs), so the
    construction code is under test too, not just the store.
    """
    bucket = f"telco-c360-test-{uuid.uuid4().hex[:8]}"
    store = open_lake(f"s3://{bucket}", endpoint_url=moto_server)
    assert isinstance(store, S3LakeStore)
    store.client.create_bucket(Bucket=bucket)
    return store


@pytest.fixture
def local_lake(tmp_path: Path) -> LocalLakeStore:
    """An empty local-folder lake under the test's tmp_path, named like the production bucket.

    Created as ``customer360 init`` creates one (``open_lake`` refuses a folder that does not exist).
    """
    store = init_lake(str(tmp_path / "telco-customer360-pipeline"))
    assert isinstance(store, LocalLakeStore)
    return store


@pytest.fixture(autouse=True)
def parsed_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the gate keeps its parses for clean (``processing.parsed``): the test's own folder.

    Autouse: the default is one folder per machine, shared by every process; tests would otherwise
    hand parses to one another (harmless, they are content-addressed) and leave them behind.
    """
    folder = tmp_path / "parsed"
    monkeypatch.setenv("CUSTOMER360_PARSED_DIR", str(folder))
    return folder


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest) -> LakeStore:
    """An empty lake, once per backend: a test using it runs against both and must pass on both."""
    return request.getfixturevalue(f"{request.param}_lake")


@pytest.fixture
def cli_home(
    lake: LakeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Path]:
    """The working directory of a person running the CLI: DAGSTER_HOME with the project's dagster.yaml,
    CUSTOMER360_LAKE pointing at the test lake, the DuckDB warehouse at ``tmp_path / "warehouse.duckdb"``."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("CUSTOMER360_LAKE", lake.uri)
    monkeypatch.setenv("CUSTOMER360_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    if isinstance(lake, S3LakeStore):
        monkeypatch.setenv("CUSTOMER360_S3_ENDPOINT_URL", request.getfixturevalue("moto_server"))
    monkeypatch.chdir(home)
    yield home


# ---------------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A real PostgreSQL server (initdb + pg_ctl in a temp dir, free loopback port), stopped at the end.

    Session-scoped: creating a cluster costs seconds, a database in it a few milliseconds (see
    ``postgres_env``). Only the workers that run a Postgres test start one.
    """
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def postgres_env(postgres_cluster: PostgresCluster) -> dict[str, str]:
    """``DAGSTER_PG_*`` for a fresh, empty database: what ``deploy/production/dagster.yaml`` reads."""
    return postgres_cluster.dagster_env(postgres_cluster.new_database())
