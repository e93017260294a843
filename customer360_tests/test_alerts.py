"""The rejection alert sensor against real gate runs and a real HTTP server on 127.0.0.1.

One message per rejected file, never two: across ticks (cursor), across a lost cursor (a restarted or
redeployed sensor: the lake's claim markers), and after a failed delivery (retried once it works).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import dagster as dg
import pytest
from dagster._serdes import serialize_value

from customer360.defs.resources.alerts import (
    LogDestination,
    SlackDestination,
    WebhookDestination,
    alerts_resource_from_env,
)
from customer360.defs.sensors.alerts import SENT_PREFIX, build_alert_sensor
from customer360.lake.s3 import S3LakeStore
from customer360_tests.corpus import CASES, DAY, customers_csv
from customer360_tests.pipeline_harness import Pipeline, make_pipeline

GATE_CUSTOMERS = ["raw/customers", "archive/customers", "rejected/customers"]


class Webhook:
    """A tiny webhook receiver: records every POSTed JSON body; can be told to fail."""

    def __init__(self) -> None:
        self.received: list[dict[str, object]] = []
        self.fail_next = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if owner.fail_next:
                    owner.fail_next -= 1
                    self.send_response(503)
                else:
                    owner.received.append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/customer360"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    hook = Webhook()
    hook.thread.start()
    monkeypatch.delenv("SLACK_TOKEN", raising=False)
    monkeypatch.setenv("CUSTOMER360_ALERT_WEBHOOK_URL", hook.url)
    try:
        yield hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()


@pytest.fixture
def pipeline(lake, tmp_path: Path, request: pytest.FixtureRequest) -> Pipeline:
    endpoint = request.getfixturevalue("moto_server") if isinstance(lake, S3LakeStore) else None
    return make_pipeline(lake, tmp_path, endpoint)


def sensor_resources(pipeline: Pipeline) -> dict[str, object]:
    """The code location's resources for the sensor: the lake, and the alert destination the environment sets."""
    return {"lake": pipeline.lake, "alerts": alerts_resource_from_env()}


def tick(pipeline: Pipeline, cursor: str | None) -> str | None:
    sensor = build_alert_sensor()
    context = dg.build_sensor_context(instance=pipeline.instance, cursor=cursor, resources=sensor_resources(pipeline))
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result.cursor


def land(pipeline: Pipeline, *names: str) -> None:
    for name in names:
        case = next(c for c in CASES if c.name == name)
        pipeline.store.put_bytes(case.key, case.data)


def test_one_webhook_message_per_rejected_file_never_two(pipeline: Pipeline, webhook: Webhook) -> None:
    land(pipeline, "latin1_value", "short_row", "utf8_bom")
    assert pipeline.run_day(DAY, selection=GATE_CUSTOMERS).success

    cursor = tick(pipeline, None)

    assert sorted(m["raw_key"] for m in webhook.received) == [
        f"raw/customers/{DAY}/latin1-value.csv",
        f"raw/customers/{DAY}/short-row.csv",
    ]
    latin1 = next(m for m in webhook.received if "latin1" in str(m["raw_key"]))
    assert latin1["dataset"] == "customers"
    assert latin1["day"] == DAY.isoformat()
    assert latin1["reasons"] == ["not_utf8"]
    entry_id = latin1["ledger_entry_id"]
    assert latin1["report_key"] == f"rejected/customers/{DAY}/{entry_id}/latin1-value.csv.report.json"
    assert pipeline.store.head(str(latin1["report_key"])) is not None

    # The next tick, and a sensor that lost its cursor (reset, redeployed), send nothing again.
    cursor = tick(pipeline, cursor)
    assert tick(pipeline, None) is not None
    assert len(webhook.received) == 2

    # A replay of the day (nothing left in raw/) and a new bad file: exactly one new message.
    assert pipeline.run_day(DAY, selection=GATE_CUSTOMERS).success
    land(pipeline, "nul_bytes")
    assert pipeline.run_day(DAY, selection=GATE_CUSTOMERS).success
    tick(pipeline, cursor)
    assert [m["reasons"] for m in webhook.received[2:]] == [["nul_bytes"]]


def test_a_failed_delivery_is_retried_once_and_only_once(pipeline: Pipeline, webhook: Webhook) -> None:
    land(pipeline, "short_row", "long_row")
    assert pipeline.run_day(DAY, selection=GATE_CUSTOMERS).success
    webhook.fail_next = 1

    cursor = tick(pipeline, None)
    assert webhook.received == []
    assert not list(pipeline.store.list(SENT_PREFIX)), "a failed send releases its claim"

    cursor = tick(pipeline, cursor)
    tick(pipeline, cursor)
    assert sorted(str(m["raw_key"]).rsplit("/", 1)[-1] for m in webhook.received) == ["long-row.csv", "short-row.csv"]


def test_unroutable_objects_are_alerted_too(pipeline: Pipeline, webhook: Webhook) -> None:
    land(pipeline, "unknown_dataset")
    assert pipeline.reject_unroutable().success
    tick(pipeline, None)
    ((message),) = webhook.received
    assert (message["dataset"], message["day"], message["reasons"]) == ("_unroutable", None, ["unknown_dataset"])


def test_destination_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []

    def destination_from_env() -> object:
        return alerts_resource_from_env().destination(warnings.append)

    for name in ("SLACK_TOKEN", "CUSTOMER360_SLACK_CHANNEL", "CUSTOMER360_ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(destination_from_env(), LogDestination)
    monkeypatch.setenv("CUSTOMER360_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    assert isinstance(destination_from_env(), WebhookDestination)
    monkeypatch.setenv("SLACK_TOKEN", "xoxb-test")
    assert isinstance(destination_from_env(), WebhookDestination), "Slack needs a channel too"
    monkeypatch.setenv("CUSTOMER360_SLACK_CHANNEL", "#data-alerts")
    slack = destination_from_env()
    assert isinstance(slack, SlackDestination) and slack.channel == "#data-alerts"


def test_slack_messages_go_through_dagster_slack(
    pipeline: Pipeline, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dagster-slack's client, pointed at the local server standing in for slack.com's Web API."""
    slack_calls: list[dict[str, object]] = []

    class SlackApi(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            slack_calls.append({"path": self.path, "body": raw.decode()})
            body = json.dumps({"ok": True, "channel": "C1", "ts": "1.0"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), SlackApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("CUSTOMER360_SLACK_API_URL", f"http://127.0.0.1:{server.server_port}/api/")
    monkeypatch.setenv("SLACK_TOKEN", "xoxb-test")
    monkeypatch.setenv("CUSTOMER360_SLACK_CHANNEL", "#data-alerts")
    try:
        pipeline.store.put_bytes(f"raw/customers/{DAY}/crm.csv", customers_csv().replace(",", ";").encode())
        assert pipeline.run_day(DAY, selection=GATE_CUSTOMERS).success
        tick(pipeline, None)
    finally:
        server.shutdown()
        server.server_close()
    ((call),) = slack_calls
    assert call["path"] == "/api/chat.postMessage"
    assert "wrong_delimiter" in str(call["body"]) and "data-alerts" in str(call["body"])
    assert webhook.received == [], "Slack wins over the webhook when both are configured"


def test_why_a_file_was_rejected_is_on_its_asset_page_and_each_tick_says_what_it_did(
    pipeline: Pipeline, webhook: Webhook
) -> None:
    """The report's reasons, messages, what to do, sample lines and schema diff, as Markdown in the UI."""
    from customer360.defs.keys import REJECTION_CHECK, REJECTIONS_METADATA
    from customer360_tests.test_ui_pages import HTML_TAG, _outside_code

    land(pipeline, "short_row", "missing_required_column")
    assert pipeline.run_day(DAY, selection=GATE_CUSTOMERS).success

    rejected = dg.AssetKey(["rejected", "customers"])
    [record] = pipeline.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=rejected, asset_partitions=[DAY.isoformat()]), limit=1
    ).records
    page = record.asset_materialization.metadata[REJECTIONS_METADATA]
    assert isinstance(page, dg.MarkdownMetadataValue)
    text = page.value
    for expected in (
        "short-row.csv",
        "wrong\\_field\\_count",
        "missing-required-column.csv",
        "missing\\_required\\_fields",
        "**What to do:**",
        "| check | line | sample |",
        "**Schema diff:**",
        f"Report: `rejected/customers/{DAY}/",
        "short-row.csv.report.json`",
    ):
        assert expected in text, (expected, text)
    assert "0009-ABCDE" in text, "the failing line is quoted"
    assert not HTML_TAG.search(_outside_code(text))
    [execution] = pipeline.instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(rejected, REJECTION_CHECK), limit=1
    )
    evaluation = execution.event.dagster_event.event_specific_data
    assert evaluation.partition == DAY.isoformat() and not evaluation.passed
    assert evaluation.metadata[REJECTIONS_METADATA].value == text

    sensor = build_alert_sensor()
    first = sensor(dg.build_sensor_context(instance=pipeline.instance, resources=sensor_resources(pipeline)))
    assert first.skip_reason.skip_message == "sent 2 alert(s) for 2 rejected file(s) to webhook"
    again = sensor(
        dg.build_sensor_context(instance=pipeline.instance, cursor=first.cursor, resources=sensor_resources(pipeline))
    )
    assert again.skip_reason.skip_message == "no new rejected file"
    lost_cursor = sensor(dg.build_sensor_context(instance=pipeline.instance, resources=sensor_resources(pipeline)))
    assert lost_cursor.skip_reason.skip_message == "no new rejected file; 2 already alerted before"


def test_a_reports_quoted_content_cannot_turn_into_markup() -> None:
    from customer360.defs.assets.rejections import rejections_markdown
    from customer360_tests.test_ui_pages import HTML_TAG, _outside_code

    report = {
        "source_key": "raw/customers/2024-01-02/<img src=x onerror=alert(1)>.csv",
        "report_key": "rejected/customers/2024-01-02/x.csv.report.json",
        "failed_checks": [
            {
                "check": "wrong_field_count",
                "message": "line 3 has *2* fields <b>not</b> 21",
                "count": 2,
                "samples": [{"line": 3, "text": "a|b`c<script>x</script>\nnext"}],
            }
        ],
        "action": "fix <the file> and resend",
        "schema_diff": {"missing": ["<email>"], "unknown": []},
    }
    text = rejections_markdown([report]).value
    assert not HTML_TAG.search(_outside_code(text)), text
    assert "\\*2\\*" in text and "a\\|b`c<script>" in text  # literal, pipes escaped inside the table's code span
    assert "⏎next" in text


def test_the_alert_destination_is_a_resource_of_the_code_location_showing_secret_names_not_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both alerting sensors require the ``alerts`` resource; the UI's resource page names the secrets' variables."""
    from dagster._core.remote_representation.external_data import RepositorySnap, ResourceConfigEnvVarSnap

    from customer360.defs.definitions import build_definitions
    from customer360.defs.resources.lake import LakeResource
    from customer360.defs.resources.warehouse import WarehouseResource
    from customer360.defs.sensors.alerts import ALERT_SENSOR_NAME
    from customer360.defs.sensors.deliveries import DELIVERY_SENSOR_NAME

    monkeypatch.setenv("SLACK_TOKEN", "xoxb-secret-token")
    monkeypatch.setenv("CUSTOMER360_SLACK_CHANNEL", "#data-alerts")
    monkeypatch.setenv("CUSTOMER360_ALERT_WEBHOOK_URL", "https://hooks.example/secret-path")
    defs = build_definitions(
        LakeResource(location=str(tmp_path)), WarehouseResource(duckdb_path=str(tmp_path / "w.duckdb"))
    )

    snap = RepositorySnap.from_def(defs.get_repository_def())
    (alerts,) = [resource for resource in snap.resources or () if resource.name == "alerts"]
    assert set(alerts.sensors_using) == {ALERT_SENSOR_NAME, DELIVERY_SENSOR_NAME}
    assert alerts.configured_values["slack_token"] == ResourceConfigEnvVarSnap(name="SLACK_TOKEN")
    assert alerts.configured_values["webhook_url"] == ResourceConfigEnvVarSnap(name="CUSTOMER360_ALERT_WEBHOOK_URL")
    assert json.loads(alerts.configured_values["slack_channel"]) == "#data-alerts"  # type: ignore[arg-type]
    shown = serialize_value(snap)
    assert "xoxb-secret-token" not in shown and "secret-path" not in shown
    # Resolved where it is used: the destination the sensors get is Slack, with the token's value.
    slack = defs.resources["alerts"].destination(print)
    assert isinstance(slack, SlackDestination) and slack.client.token == "xoxb-secret-token"
