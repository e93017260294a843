"""Expected deliveries, on both lake backends, through real gate runs (the gate job of the code location, with
its ``expected_deliveries`` check) and the ``delivery_expectations`` sensor over a real instance, alerting to a
real HTTP webhook on 127.0.0.1.

What a user would notice: a day missing hour 13 goes late naming hour 13, alerts once, and turns complete (with
a resolution message) when the late file arrives; a day with 30% of the usual rows is suspicious; a day with no
file at all still goes late; plans (no expectation) never alert. File names vary on purpose: the hour of a file
is read from names we did not pick, or from its records.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.event_api import PartitionKeyFilter

from customer360.contracts import DATASETS
from customer360.defs.definitions import build_definitions
from customer360.defs.deliveries import hour_from_name, hour_from_records
from customer360.defs.keys import DELIVERY_CHECK
from customer360.defs.resources.alerts import alerts_resource_from_env
from customer360.defs.sensors.deliveries import build_delivery_sensor, marker_key
from customer360.lake.s3 import S3LakeStore
from customer360.lake.store import LakeStore
from customer360.steps.gate import run_gate
from customer360_tests.corpus import customer_row, customers_csv, plans_csv
from customer360_tests.pipeline_harness import Pipeline, make_pipeline
from customer360_tests.test_alerts import Webhook

DAY = date(2024, 1, 10)  # a Wednesday
ACTIVITY_HEADER = ",".join(DATASETS["activity_logs"].source_names)
# Names from several exporters: the hour next to the date, an hour marker, or no hour at all (read from records).
NAME_STYLES = (
    "usage-{d}T{h:02d}.csv",
    "cdr_{c}_{h:02d}00.csv.gz",
    "events-hour={h:02d}.jsonl",
    "export_{c}{h:02d}.csv",
    "batch-{n:05d}.csv",
)


def activity_rows(day: date, hour: int, rows: int, *, seed: int = 0) -> list[dict[str, object]]:
    return [
        {
            "event_id": f"e-{day:%Y%m%d}-{hour:02d}-{seed}-{i:05d}",
            "customer_id": "7590-VHVEG",
            "event_ts": f"{day.isoformat()}T{hour:02d}:{i % 60:02d}:00Z",
            "event_type": "sms",
            "direction": "out",
            "duration_sec": "",
            "data_mb": "",
            "cell_id": "C-1",
            "roaming": "false",
            "charge_amount": "0.05",
        }
        for i in range(rows)
    ]


def activity_file(day: date, hour: int, rows: int = 5, *, style: int | None = None, n: int = 0) -> tuple[str, bytes]:
    """A valid activity file for one hour, named in one of several styles (by hour unless told)."""
    template = NAME_STYLES[hour % len(NAME_STYLES) if style is None else style]
    name = template.format(d=day.isoformat(), c=day.strftime("%Y%m%d"), h=hour, n=n or hour + 1)
    records = activity_rows(day, hour, rows)
    if ".jsonl" in name:
        data = "".join(json.dumps({k: v if v != "" else None for k, v in r.items()}) + "\n" for r in records).encode()
    else:
        lines = [ACTIVITY_HEADER, *(",".join(str(r[k]) for k in ACTIVITY_HEADER.split(",")) for r in records)]
        data = ("\n".join(lines) + "\n").encode()
    if name.endswith(".gz"):
        data = gzip.compress(data)
    return f"raw/activity_logs/{day.isoformat()}/{name}", data


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    """The alert tests' webhook receiver on 127.0.0.1, configured as the alert destination."""
    receiver = Webhook()
    receiver.thread.start()
    monkeypatch.delenv("SLACK_TOKEN", raising=False)
    monkeypatch.setenv("CUSTOMER360_ALERT_WEBHOOK_URL", receiver.url)
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.fixture
def pipeline(lake: LakeStore, tmp_path: Path, request: pytest.FixtureRequest) -> Pipeline:
    endpoint = request.getfixturevalue("moto_server") if isinstance(lake, S3LakeStore) else None
    return make_pipeline(lake, tmp_path, endpoint)


def gate(pipeline: Pipeline, dataset: str, day: date) -> dg.AssetCheckEvaluation | None:
    """One gate run of the code location's gate job for a day; its expected_deliveries result, if any."""
    job = build_definitions(pipeline.lake, pipeline.warehouse).resolve_job_def("ingest_raw_files")
    result = job.execute_in_process(
        partition_key=day.isoformat(),
        instance=pipeline.instance,
        asset_selection=[dg.AssetKey([zone, dataset]) for zone in ("raw", "archive", "rejected")],
    )
    assert result.success
    found = [e for e in result.get_asset_check_evaluations() if e.check_name == DELIVERY_CHECK]
    return found[0] if found else None


class Sensor:
    def __init__(self, pipeline: Pipeline, now: datetime) -> None:
        self.pipeline, self.now, self.cursor = pipeline, now, None
        self.said = ""  # the tick's skip reason: what the UI's tick history shows
        self.definition = build_delivery_sensor(clock=lambda: self.now)

    def tick(self) -> None:
        context = dg.build_sensor_context(
            instance=self.pipeline.instance,
            cursor=self.cursor,
            resources={"lake": self.pipeline.lake, "alerts": alerts_resource_from_env()},
        )
        result = self.definition(context)
        assert isinstance(result, dg.SensorResult) and result.skip_reason is not None
        self.cursor, self.said = result.cursor, result.skip_reason.skip_message


def latest(pipeline: Pipeline, dataset: str, day: date) -> dg.AssetCheckEvaluation | None:
    """The day's latest expected_deliveries result in the instance: what the UI shows for that partition."""
    key = dg.AssetCheckKey(dg.AssetKey(["archive", dataset]), DELIVERY_CHECK)
    records = pipeline.instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [key], partition_filter=PartitionKeyFilter(key=day.isoformat())
    )
    record = records.get(key)
    if record is None or record.event is None or record.event.dagster_event is None:
        return None
    return record.event.dagster_event.event_specific_data  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("name", "hour"),
    [
        ("usage-2024-01-10T13.csv", 13),
        ("cdr_20240110_1300.jsonl.gz", 13),
        ("activity_logs-2024-01-10-13-00-00.csv", 13),
        ("2024011013.csv", 13),
        ("export 2024-01-10 13:00.csv", 13),
        ("usage_2024_01_10_7.csv", 7),
        ("events-hour=05.jsonl", 5),
        ("usage_h07.csv", 7),
        ("dump_13h00.csv.gz", 13),
        ("part-00013.csv", None),  # a sequence number, not an hour
        ("usage-2024-01-10.csv", None),
        ("usage-2024-01-10_v2.csv", None),
        ("crm_customers_delta_2024-01-10.csv", None),
    ],
)
def test_a_file_hour_is_read_from_names_we_did_not_pick(name: str, hour: int | None) -> None:
    assert hour_from_name(name, DAY) == hour


def test_a_file_hour_is_read_from_its_records_when_the_name_does_not_say(lake: LakeStore) -> None:
    key, data = activity_file(DAY, 13, rows=50, style=4)
    lake.put_bytes(key, data)
    assert hour_from_records(lake, key, "event_ts") == 13
    key, data = activity_file(DAY, 22, rows=50, style=1)  # gzip: read as a stream
    lake.put_bytes(key, data)
    assert hour_from_records(lake, key, "event_ts") == 22
    # A whole-day dump holds no single hour: the day is then judged by its file count.
    rows = [r for h in range(24) for r in activity_rows(DAY, h, 3)]
    lines = [ACTIVITY_HEADER, *(",".join(str(r[k]) for k in ACTIVITY_HEADER.split(",")) for r in rows)]
    lake.put_bytes(f"raw/activity_logs/{DAY}/daily.csv", ("\n".join(lines) + "\n").encode())
    assert hour_from_records(lake, f"raw/activity_logs/{DAY}/daily.csv", "event_ts") is None


def test_hour_13_missing_goes_late_alerts_once_and_the_late_file_completes_the_day(
    pipeline: Pipeline,
    hook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUSTOMER360_START_DATE", DAY.isoformat())  # no earlier day to judge
    for hour in range(24):
        if hour != 13:
            pipeline.store.put_bytes(*activity_file(DAY, hour))
    # The gate run judges the day (it is long past 03:00 UTC of the next day): late, naming hour 13.
    result = gate(pipeline, "activity_logs", DAY)
    assert result is not None and not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["state"].value == "late"
    assert result.metadata["missing_hours"].value == [13]
    assert "missing hour(s) 13" in str(result.description)

    sensor = Sensor(pipeline, datetime.combine(DAY + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=4))
    sensor.tick()
    [alert] = hook.received
    assert (alert["event"], alert["dataset"], alert["day"], alert["missing_hours"]) == (
        "customer360.delivery_late",
        "activity_logs",
        DAY.isoformat(),
        [13],
    )
    shown = latest(pipeline, "activity_logs", DAY)
    assert shown is not None and not shown.passed and shown.metadata["missing_hours"].value == [13]
    sensor.tick()
    assert len(hook.received) == 1  # once per (dataset, day, state)

    # The missing hour arrives late, named without an hour: its records say 13. The run completes the day.
    key, data = activity_file(DAY, 13, style=4, n=99)
    pipeline.store.put_bytes(key, data)
    result = gate(pipeline, "activity_logs", DAY)
    assert result is not None and result.passed and result.metadata["state"].value == "complete"
    sensor.now += timedelta(minutes=5)
    sensor.tick()
    shown = latest(pipeline, "activity_logs", DAY)
    assert shown is not None and shown.passed and shown.metadata["state"].value == "complete"
    assert [m["event"] for m in hook.received] == ["customer360.delivery_late", "customer360.delivery_complete"]
    sensor.tick()
    assert len(hook.received) == 2
    # A sensor that lost its cursor (redeployed) judges again but sends nothing twice.
    sensor.cursor = None
    sensor.tick()
    assert len(hook.received) == 2
    assert pipeline.store.head(marker_key("activity_logs", DAY, "late")) is not None


def test_a_day_with_30_percent_of_the_usual_rows_is_suspicious(
    pipeline: Pipeline,
    hook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUSTOMER360_START_DATE", (DAY - timedelta(days=14)).isoformat())
    for weeks_back in (1, 2):  # the same weekday of the two previous weeks: 100 rows each
        day = DAY - timedelta(days=7 * weeks_back)
        pipeline.store.put_bytes(f"raw/customers/{day}/crm_delta_{day}.csv", customers_csv(100).encode())
        run_gate(pipeline.store, DATASETS["customers"], day)
    pipeline.store.put_bytes(f"raw/customers/{DAY}/crm_delta_{DAY}.csv", customers_csv(30).encode())

    result = gate(pipeline, "customers", DAY)
    assert result is not None and not result.passed
    assert result.metadata["state"].value == "suspicious"
    assert (result.metadata["rows"].value, result.metadata["baseline_median_rows"].value) == (30, 100.0)
    assert "30 rows vs a median of 100" in str(result.description)

    sensor = Sensor(pipeline, datetime.combine(DAY + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=7))
    sensor.tick()
    sensor.tick()
    suspicious = [m for m in hook.received if (m["dataset"], m["day"]) == ("customers", DAY.isoformat())]
    assert [(m["event"], m["rows"]) for m in suspicious] == [("customer360.delivery_suspicious", 30)]

    # The rest of the day's customers arrive in a second file: the day is normal again.
    extra = "\n".join([customers_csv(0).strip(), *(customer_row(i) for i in range(200, 270))]) + "\n"
    pipeline.store.put_bytes(f"raw/customers/{DAY}/crm_delta_{DAY}_b.csv", extra.encode())
    result = gate(pipeline, "customers", DAY)
    assert result is not None and result.passed and result.metadata["rows"].value == 100


def test_a_day_without_any_file_goes_late_and_plans_never_alert(
    pipeline: Pipeline,
    hook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUSTOMER360_START_DATE", DAY.isoformat())
    # Plans deliver only on change: a file some day, none on others, never judged.
    pipeline.store.put_bytes(f"raw/plans/{DAY}/plans.csv", plans_csv().encode())
    assert gate(pipeline, "plans", DAY) is None
    keys = build_definitions(pipeline.lake, pipeline.warehouse).resolve_asset_graph().asset_check_keys
    assert dg.AssetCheckKey(dg.AssetKey(["archive", "plans"]), DELIVERY_CHECK) not in keys

    # 05:00 the next day: activity (due 03:00) is late with all 24 hours missing; customers (06:00) not yet due.
    sensor = Sensor(pipeline, datetime.combine(DAY + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=5))
    sensor.tick()
    assert [(m["dataset"], m["event"]) for m in hook.received] == [("activity_logs", "customer360.delivery_late")]
    assert sensor.said == (
        f"judged 1 day(s): 1 late (activity_logs/{DAY} late); recorded 1 check result(s) for days that fell due "
        f"without a gate run; sent 1 alert(s) to webhook (activity_logs/{DAY}: late)"
    )
    sensor.tick()
    assert sensor.said == "nothing to judge: no gate run since the last tick and no day fell due; no new alert"
    # No run judged that day: the sensor recorded the result, which the UI shows for the partition.
    shown = latest(pipeline, "activity_logs", DAY)
    assert shown is not None and not shown.passed and shown.metadata["missing_hours"].value == list(range(24))
    assert latest(pipeline, "customers", DAY) is None  # not due yet

    sensor.now += timedelta(hours=2)  # 07:00: customers fell due with nothing either
    sensor.tick()
    assert [(m["dataset"], m["event"]) for m in hook.received] == [
        ("activity_logs", "customer360.delivery_late"),
        ("customers", "customer360.delivery_late"),
    ]
    sensor.now += timedelta(days=1)
    sensor.tick()
    assert all(m["dataset"] != "plans" for m in hook.received)
    assert {m["day"] for m in hook.received[2:]} == {(DAY + timedelta(days=1)).isoformat()}
