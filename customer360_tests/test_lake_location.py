"""A mistyped CUSTOMER360_LAKE is refused, never turned into an empty lake (issue 12, item 4).

What a user noticed: a path typo, ``s3:/bucket`` or ``S3://bucket`` each silently created an empty local
folder (the ``s3:`` forms in the working directory), ``customer360 replay`` reported ok and the
warehouse's customers and mart dropped to 0 rows. Now a malformed location is refused saying what was
expected, a lake folder must already exist (``customer360 init`` or the demo creates it), the code
location itself fails to load with that message, and the warehouse is never emptied by an empty staging
prefix that no staging run wrote (``test_snapshot_predecessors`` covers the load and the mart directly).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from customer360.cli import main
from customer360.defs.resources.lake import LakeConfigError, LakeResource, lake_resource_from_env
from customer360.lake.s3 import S3LakeStore
from customer360.lake.store import LakeStore
from customer360_tests.test_contracts import customers_csv

ROOT = Path(__file__).resolve().parents[1]
DAY = date(2024, 1, 1)


@pytest.mark.parametrize(
    ("location", "says"),
    [
        ("s3:/telco-customer360-pipeline", "lower-case 's3' followed by '://'"),
        ("S3://telco-customer360-pipeline", "lower-case 's3' followed by '://'"),
        ("s3:telco-customer360-pipeline", "lower-case 's3' followed by '://'"),
        ("gs://telco-customer360-pipeline", "'gs' is not a supported scheme"),
        ("s3://", "names no valid bucket"),
        ("s3://Telco_Customer360", "names no valid bucket"),
        ("s3://telco-customer360-pipeline//lake", "empty or relative segment"),
    ],
)
def test_malformed_lake_uris_are_refused_saying_what_was_expected(
    location: str, says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CUSTOMER360_LAKE", location)

    with pytest.raises(LakeConfigError) as refused:
        lake_resource_from_env()
    with pytest.raises(LakeConfigError):
        LakeResource(location=location).store()  # the run-time path too

    assert says in str(refused.value)
    assert "expected an existing local folder or s3://<bucket>[/<prefix>]" in str(refused.value)
    assert list(tmp_path.iterdir()) == [], "nothing is created in the working directory"


def test_a_lake_folder_that_does_not_exist_is_refused_until_init_creates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "telco-customer360-pipeilne"
    monkeypatch.setenv("CUSTOMER360_LAKE", str(typo))

    with pytest.raises(LakeConfigError, match="does not exist.*customer360 init"):
        lake_resource_from_env()
    with pytest.raises(LakeConfigError, match="does not exist"):
        LakeResource(location=str(typo)).store()
    assert main(["ledger"]) == 1
    assert not typo.exists()
    assert f"lake folder {typo} does not exist" in capsys.readouterr().err

    assert main(["init"]) == 0
    assert f"lake folder {typo} created" in capsys.readouterr().out
    assert typo.is_dir() and lake_resource_from_env().store().uri == str(typo)
    assert main(["init"]) == 0 and "already exists" in capsys.readouterr().out

    # Unset, the embedded default must exist too (the demo or `customer360 init` creates it).
    monkeypatch.delenv("CUSTOMER360_LAKE")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LakeConfigError, match="CUSTOMER360_LAKE is not set.*customer360 init"):
        lake_resource_from_env()


@pytest.fixture
def replayed_home(lake: LakeStore, cli_home: Path) -> Iterator[Path]:
    """A DAGSTER_HOME where day 1 has been replayed into a DuckDB warehouse from the test lake."""
    lake.put_bytes(f"raw/customers/{DAY}/crm.csv", customers_csv([f"{i:04d}-ABCDE" for i in range(25)]))
    assert main(["replay", "--start", str(DAY), "--end", str(DAY)]) == 0
    yield cli_home


def _warehouse_counts(tmp_path: Path) -> tuple[int, int]:
    import duckdb

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as connection:
        customers = connection.execute("SELECT count(*) FROM customers").fetchone()
        mart = connection.execute("SELECT count(*) FROM customer_360").fetchone()
    assert customers is not None and mart is not None
    return customers[0], mart[0]


def _typos(lake: LakeStore) -> list[str]:
    """The issue's three: one slash, an upper-case scheme, and a name typo (a folder, or a bucket)."""
    if isinstance(lake, S3LakeStore):
        return [f"s3:/{lake.bucket}", f"S3://{lake.bucket}", f"s3://{lake.bucket}-typo"]
    return ["s3:/telco-customer360-pipeline", "S3://telco-customer360-pipeline", f"{lake.uri}-typo"]


def test_replay_over_a_mistyped_lake_fails_and_leaves_the_warehouse_alone(
    lake: LakeStore,
    replayed_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _warehouse_counts(tmp_path) == (25, 25)
    capsys.readouterr()
    for typo in _typos(lake):
        monkeypatch.setenv("CUSTOMER360_LAKE", typo)

        assert main(["replay", "--start", str(DAY), "--end", str(DAY)]) == 1, typo

        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert err.startswith("customer360 replay: ") and typo in err
        assert _warehouse_counts(tmp_path) == (25, 25), typo
    assert not any(p.name.lower().startswith("s3:") for p in replayed_home.iterdir()), "no folder in the cwd"
    assert not Path(f"{lake.uri}-typo").exists()


@pytest.mark.parametrize(
    ("location", "says"),
    [("S3://telco-customer360-pipeline", "lower-case 's3'"), ("missing-folder", "customer360 init")],
)
def test_the_code_location_fails_to_load_with_the_reason(location: str, says: str, tmp_path: Path) -> None:
    """What `dagster dev` loads (workspace.yaml's module): a bad lake is a load error saying why, not a location."""
    env = {**os.environ, "CUSTOMER360_LAKE": location, "DAGSTER_HOME": str(tmp_path), "PYTHONWARNINGS": "ignore"}
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    dagster = Path(sys.executable).parent / "dagster"

    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(ROOT / "workspace.yaml")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "LakeConfigError" in output and says in output, output[-3000:]
    assert not (tmp_path / "missing-folder").exists()
