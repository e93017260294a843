"""A throwaway PostgreSQL cluster for the tests of the production instance (``deploy/production/dagster.yaml``).

Why a real cluster: the production instance keeps runs, the event log, sensor cursors, run keys, the run queue
and concurrency slots in Postgres through ``dagster-postgres``; SQLite standing in would prove none of it.
Debian's ``postgresql`` package provides the binaries (``dev.py test`` installs it with apt when missing) under
``/usr/lib/postgresql/<version>/bin``, off PATH. ``initdb`` refuses to run as root, so as root the cluster
belongs to the ``postgres`` system user the package creates (``runuser``), in a temp dir of its own (pytest's
temp dirs are private to root). It listens on a free loopback port only, with password authentication for TCP,
so the instance's password setting is really used. Durability is switched off (``fsync``,
``synchronous_commit``, ``full_page_writes``): the cluster lives for one test session, and Dagster commits
every event.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2

SUPERUSER = "customer360"
CLUSTER_OWNER = "postgres"  # the system user Debian's postgresql package creates
START_ATTEMPTS = 3  # a free port can be taken between probing it and the server binding it


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here, or no non-root user to run them as; the message says how to fix it."""


@dataclass(frozen=True)
class PostgresCluster:
    """A running cluster: connect with ``host``/``port``/``user``/``password``; ``new_database()`` per test."""

    host: str
    port: int
    user: str
    password: str

    def new_database(self) -> str:
        """A fresh, empty database, so every test starts from an empty Dagster instance."""
        name = f"dagster_{uuid.uuid4().hex[:12]}"
        connection = psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname="postgres"
        )
        try:
            connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return name

    def dagster_env(self, database: str) -> dict[str, str]:
        """The environment ``deploy/production/dagster.yaml`` reads its Postgres settings from."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": database,
        }


def server_bin_dir() -> Path:
    """Where initdb and pg_ctl are: ``CUSTOMER360_PG_BIN``, else PATH, else Debian's newest version."""
    configured = os.environ.get("CUSTOMER360_PG_BIN")
    if configured:
        return Path(configured)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if debian:
        return Path(debian[-1]).parent
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl): `python3.11 dev.py test` installs Debian's postgresql "
        "package with apt; elsewhere install PostgreSQL 15 or set CUSTOMER360_PG_BIN to its bin directory"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_as(owner: pwd.struct_passwd | None) -> list[str]:
    return ["runuser", "-u", owner.pw_name, "--"] if owner else []


@contextmanager
def running_cluster() -> Iterator[PostgresCluster]:
    """Create a cluster in a temp dir, start it on a free loopback port; stop it and delete it on exit."""
    bin_dir = server_bin_dir()
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(CLUSTER_OWNER)
        except KeyError as error:
            raise PostgresUnavailable(
                f"running as root and there is no {CLUSTER_OWNER!r} user to own the test cluster (initdb refuses "
                "root): install Debian's postgresql package, which creates it"
            ) from error
    base = Path(tempfile.mkdtemp(prefix="customer360-pg-"))
    data, log, password_file = base / "data", base / "server.log", base / "password"
    password = secrets.token_hex(16)
    password_file.write_text(password)
    if owner:
        for path in (base, password_file):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    as_owner = _run_as(owner)

    def run(*command: str | Path) -> None:
        result = subprocess.run([*as_owner, *map(str, command)], cwd=base, capture_output=True, text=True)
        if result.returncode != 0:
            server_log = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{command[0]} failed ({result.returncode}): {result.stderr[-3000:]}\n{server_log}")

    try:
        run(
            bin_dir / "initdb",
            "-D",
            data,
            "-U",
            SUPERUSER,
            f"--pwfile={password_file}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        for attempt in range(1, START_ATTEMPTS + 1):
            port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            try:
                run(bin_dir / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "-t", "60", "start")
                break
            except RuntimeError:
                if attempt == START_ATTEMPTS:
                    raise
        try:
            yield PostgresCluster(host="127.0.0.1", port=port, user=SUPERUSER, password=password)
        finally:
            run(bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)
