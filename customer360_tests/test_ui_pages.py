"""What a newcomer sees in the Dagster UI: dates that meet the data, and pages that render and explain themselves.

The webserver renders asset, check, job and sensor descriptions as Markdown (HTML passes through), so text
such as ``dt=<day>/`` vanished as an unknown tag ("clean/activity_logs/dt=/"). The demo's days end yesterday,
so the UI's default views (the launch dialog's "last 90 days", the partitions tab) and the raw sensor's
look-back window meet the data, while the partitions still start in 2024 for history.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from customer360.cli import main
from customer360.contracts import DATASETS
from customer360.defs.definitions import defs
from customer360.defs.partitions import DEFAULT_START_DATE, daily_partitions
from customer360.defs.sensors.raw_sensor import RawSensorSettings, _window

CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
HTML_TAG = re.compile(r"</?[A-Za-z][^>\s]*[^>]*>")


def _outside_code(text: str) -> str:
    return CODE_SPAN.sub("", text)


def _descriptions() -> dict[str, str]:
    graph = defs.resolve_asset_graph()
    found = {f"asset {key.to_user_string()}": graph.get(key).description or "" for key in graph.get_all_asset_keys()}
    found |= {f"check {key.to_user_string()}": graph.get(key).description or "" for key in graph.asset_check_keys}
    found |= {f"sensor {s.name}": s.description or "" for s in defs.sensors or []}
    found |= {f"job {j.name}": j.description or "" for j in defs.jobs or []}
    return found


def test_descriptions_hold_no_text_the_ui_would_take_for_html() -> None:
    descriptions = _descriptions()
    assert len(descriptions) > 60
    offending = {name: text for name, text in descriptions.items() if HTML_TAG.search(_outside_code(text))}
    assert not offending, offending
    # The day placeholder of the lake paths is still there, readable, inside code spans.
    for name in DATASETS:
        assert f"`clean/{name}/dt=YYYY-MM-DD/`" in descriptions[f"asset clean/{name}"]


def test_the_html_check_catches_what_the_ui_swallowed() -> None:
    assert HTML_TAG.search(_outside_code("as Parquet under clean/activity_logs/dt=<day>/; rows"))
    assert not HTML_TAG.search(_outside_code("as Parquet under `clean/activity_logs/dt=<day>/`; a < b"))


def test_the_demo_days_end_yesterday_inside_the_partitions_and_the_raw_sensors_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CUSTOMER360_LAKE", str(tmp_path / "lake"))
    assert main(["init"]) == 0
    assert main(["generate", "--days", "3", "--customers", "40", "--events-per-day", "60"]) == 0
    capsys.readouterr()

    today = datetime.now(UTC).date()
    days = {path.name for dataset in DATASETS for path in (tmp_path / "lake" / "raw" / dataset).glob("*")}
    assert days == {(today - timedelta(days=offset)).isoformat() for offset in (3, 2, 1)}
    partitions = set(daily_partitions.get_partition_keys())
    assert days <= partitions, "every demo day is a partition"
    assert min(partitions) == DEFAULT_START_DATE, "history still starts in 2024"
    window = {day.isoformat() for day in _window(today, RawSensorSettings().lookback_days)}
    assert days <= window, "the raw sensor's ordinary ticks list the demo's days"


def test_an_explicit_start_still_generates_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUSTOMER360_LAKE", str(tmp_path / "lake"))
    assert main(["init"]) == 0
    assert (
        main(["generate", "--start", "2024-01-02", "--days", "1", "--customers", "30", "--events-per-day", "30"]) == 0
    )
    assert {p.name for p in (tmp_path / "lake" / "raw" / "customers").glob("*")} == {"2024-01-02"}


def test_every_partitioned_asset_is_daily_from_the_2024_start() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        partitions_def = graph.get(key).partitions_def
        if partitions_def is not None:
            assert partitions_def == daily_partitions, key
    assert isinstance(daily_partitions, dg.DailyPartitionsDefinition)


def test_every_asset_names_its_zone_owner_and_the_backends_in_use() -> None:
    from customer360.defs.definitions import build_assets
    from customer360.defs.resources.lake import LakeResource
    from customer360.defs.resources.warehouse import WarehouseResource

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert key.path[0] == node.group_name, f"{key.to_user_string()}: key and group agree"
        assert node.group_name in node.kinds, f"{key.to_user_string()}: the zone is on the graph node"
        assert node.owners == ["team:data-platform"], key
        assert node.tags["customer360/zone"] == node.group_name
        assert node.tags["customer360/personal_data"] in ("yes", "no", "hashed", "unknown")
        assert not {"s3", "snowflake"} & node.kinds, "the embedded default: a local folder and DuckDB"
    assert graph.get(dg.AssetKey(["mart", "customer_360"])).tags["customer360/personal_data"] == "hashed"
    assert graph.get(dg.AssetKey(["clean", "customers"])).tags["customer360/personal_data"] == "yes"

    on_s3 = build_assets(
        LakeResource(location="s3://bucket/lake"),
        WarehouseResource(backend="snowflake", account="a", user="u", database="d", schema="s"),
    )
    kinds = {key.to_user_string(): spec.kinds for a in on_s3 for key, spec in a.specs_by_key.items()}
    assert kinds["clean/customers"] == {"clean", "parquet", "s3"}
    assert kinds["raw/plans"] == {"raw", "s3"}
    assert kinds["warehouse/activity"] == {"warehouse", "snowflake"}
    assert kinds["mart/customer_360"] == {"mart", "snowflake"}


def test_the_clean_column_schema_describes_every_column_from_the_contract() -> None:
    graph = defs.resolve_asset_graph()
    for name in DATASETS:
        schema = graph.get(dg.AssetKey(["clean", name])).metadata["dagster/column_schema"]
        undescribed = [c.name for c in schema.columns if not c.description]
        assert not undescribed, (name, undescribed)
    customers = graph.get(dg.AssetKey(["clean", "customers"])).metadata["dagster/column_schema"]
    by_name = {c.name: c.description for c in customers.columns}
    assert "source field `customerID`" in by_name["customer_id"] and "required" in by_name["customer_id"]
    assert "personal data" in by_name["email"]


def test_loading_the_code_location_prints_no_known_beta_or_preview_warning() -> None:
    """Every process that loads the code location (code servers, each run) printed these again."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONWARNINGS"}
    loaded = subprocess.run(
        [
            sys.executable,
            "-W",
            "default",
            "-c",
            "from customer360.defs.definitions import defs; defs.get_repository_def()",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "BetaWarning" not in loaded.stderr and "PreviewWarning" not in loaded.stderr, loaded.stderr
