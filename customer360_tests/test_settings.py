"""The environment is read in one place (``customer360.settings``), the same way for every setting.

Why: it used to be read in eleven modules through three private copies of one helper that disagreed: an
exported-but-empty ``CUSTOMER360_START_DATE=`` stopped the code location from loading (``Invalid isoformat
string: ''``) while an empty ``CUSTOMER360_OWNER=`` meant the default. Now every setting strips its value and
takes an empty one for unset, and no other module of the package reads ``os.environ``.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from customer360 import settings
from customer360.defs.partitions import start_date
from customer360.defs.resources.warehouse import warehouse_resource_from_env

PACKAGE = Path(__file__).resolve().parents[1] / "customer360"
READS_ENVIRONMENT = re.compile(r"os\.environ|os\.getenv|getenv\(")


@pytest.mark.parametrize("blank", ["", "   "])
def test_an_exported_but_empty_variable_means_the_default(blank: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        settings.START_DATE_ENV,
        settings.OWNER_ENV,
        settings.AUTOMATION_INTERVAL_ENV,
        settings.WAREHOUSE_ENV,
        settings.DUCKDB_PATH_ENV,
        settings.PARSED_DIR_ENV,
        settings.LAKE_ENV,
        settings.S3_READ_TIMEOUT_ENV,
    ):
        monkeypatch.setenv(name, blank)

    assert start_date() == date.fromisoformat(settings.DEFAULT_START_DATE) == date(2024, 1, 1)
    assert settings.asset_owner() == "team:data-platform"
    assert settings.automation_interval_seconds() == 30
    assert settings.lake_location() is None
    assert settings.env_number(settings.S3_READ_TIMEOUT_ENV, 30.0) == 30.0
    assert settings.parsed_dir().name == "customer360-parsed"
    warehouse = warehouse_resource_from_env()
    assert warehouse.backend == "duckdb" and warehouse.duckdb_path == str(Path(".lake/warehouse.duckdb").absolute())


def test_values_are_stripped_and_the_first_of_several_names_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUSTOMER360_S3_ENDPOINT_URL", "")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", " http://127.0.0.1:9000 \n")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://elsewhere:1")
    monkeypatch.setenv(settings.OWNER_ENV, "  team:finance ")
    assert settings.s3_endpoint_url() == "http://127.0.0.1:9000"
    assert settings.asset_owner() == "team:finance"


def test_only_the_settings_module_reads_the_environment() -> None:
    readers: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        # The CLI sets and names DAGSTER_HOME, Dagster's own variable (where the instance lives), not one of ours.
        lines = [line.strip() for line in path.read_text().splitlines() if READS_ENVIRONMENT.search(line)]
        lines = [line for line in lines if "DAGSTER_HOME" not in line]
        if lines and path.name != "settings.py":
            readers[str(path.relative_to(PACKAGE))] = lines
    assert readers == {}
