"""Every ``customer360`` subcommand ends an S3 failure with one clear line and a non-zero exit (issue 12, item 17).

What a user noticed: a missing bucket, a refused connection or missing credentials printed a 36-line
botocore traceback. Now each subcommand prints one line on stderr naming what failed, the bucket or the
endpoint, and what to check; ``--debug`` (before or after the subcommand) shows the traceback instead.
The failures are real: moto's S3 server without the bucket, a port nothing listens on, no credentials.
"""

from __future__ import annotations

import shutil
import socket
import sys
import uuid
from pathlib import Path

import botocore.exceptions
import pytest

from customer360.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]

SMALL = ["--days", "1", "--customers", "10", "--events-per-day", "10"]
DAY_RANGE = ["--start", "2024-01-01", "--end", "2024-01-01"]
COMMANDS = {
    "init": [],
    "generate": SMALL,
    "demo": ["--keep", *SMALL],
    "ledger": [],
    "quarantine": ["--dataset", "customers", "--day", "2024-01-01"],
    "backfill": [*DAY_RANGE, "--dry-run"],
    "replay": DAY_RANGE,
}


def test_every_subcommand_is_covered() -> None:
    parser = build_parser()
    (subcommands,) = [a for a in parser._actions if a.dest == "command"]  # noqa: SLF001 - argparse has no public list
    assert set(subcommands.choices) == set(COMMANDS)  # type: ignore[arg-type]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("CUSTOMER360_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("CUSTOMER360_S3_MAX_ATTEMPTS", "1")  # a refused connection is retried; keep the test short
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _missing_bucket(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> tuple[str, ...]:
    bucket = f"telco-c360-missing-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CUSTOMER360_LAKE", f"s3://{bucket}")
    monkeypatch.setenv("CUSTOMER360_S3_ENDPOINT_URL", endpoint)
    return (f"s3://{bucket}", "does not exist", endpoint, "CUSTOMER360_LAKE")


def _refused_connection(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> tuple[str, ...]:
    closed = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("CUSTOMER360_LAKE", "s3://telco-customer360-pipeline")
    monkeypatch.setenv("CUSTOMER360_S3_ENDPOINT_URL", closed)
    return ("cannot connect", closed, "CUSTOMER360_S3_ENDPOINT_URL")


def _no_credentials(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> tuple[str, ...]:
    monkeypatch.setenv("CUSTOMER360_LAKE", "s3://telco-customer360-pipeline")
    monkeypatch.setenv("CUSTOMER360_S3_ENDPOINT_URL", endpoint)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role lookup on a test machine
    return ("no usable AWS credentials", "s3://telco-customer360-pipeline", "AWS_ACCESS_KEY_ID")


FAILURES = {
    "missing_bucket": _missing_bucket,
    "refused_connection": _refused_connection,
    "no_credentials": _no_credentials,
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_s3_failure_is_one_line_naming_what_to_check(
    command: str,
    failure: str,
    home: Path,
    moto_server: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    expected = FAILURES[failure](monkeypatch, moto_server)

    code = main([command, *COMMANDS[command]])

    out, err = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"customer360 {command}: ") and lines[0].endswith("(--debug shows the traceback)")
    for part in expected:
        assert part in lines[0], (part, lines[0])


@pytest.mark.parametrize("argv", [["--debug", "ledger"], ["ledger", "--debug"]])
def test_debug_shows_the_traceback(
    argv: list[str], home: Path, moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _missing_bucket(monkeypatch, moto_server)

    # The lake store's own error (naming the request) or botocore's: either way the raw exception, not a line.
    with pytest.raises((OSError, botocore.exceptions.ClientError), match="NoSuchBucket"):
        main(argv)


@pytest.mark.parametrize("command", ["generate", "demo"])
def test_without_the_generator_generate_and_demo_say_what_to_install(
    command: str, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A runtime-only install (the production image) has no demo data generator (tools/): one line, not a crash."""
    lake = home / "lake"
    lake.mkdir()
    monkeypatch.setenv("CUSTOMER360_LAKE", str(lake))
    monkeypatch.setitem(sys.modules, "customer360_generator", None)  # what Python does for a package not installed

    code = main([command, *COMMANDS[command]])

    out, err = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in out + err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"customer360 {command}: the demo data generator (customer360_generator) is not installed")
    assert "pip install ./tools" in line and line.endswith("(--debug shows the traceback)")
    assert not list(lake.iterdir()), "nothing was written to the lake"
