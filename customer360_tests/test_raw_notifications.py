"""The raw sensor with S3 event notifications: a real SQS queue on moto's server, fed by the bucket's own
notification configuration (ObjectCreated under raw/), and a real Dagster instance.

The harness plays the daemon the way Dagster's does (``dagster._daemon.sensor``): it evaluates the sensor,
then records a run for each run request whose run key the sensor has not used yet (tags
``dagster/run_key`` and ``dagster/sensor_name``, as the daemon writes them), and only then commits the
cursor. The gate itself runs later, for real, when a test says so (``execute``), moving files out of raw/.

What a user would notice: a file keyed to a date 400 days ago is requested on the next tick; each file is
gated exactly once however its messages arrive (duplicated, out of order, lost, or after the gate moved the
file); a message is deleted only once its run is recorded; poison messages are logged and dropped.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import boto3
import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from customer360.contracts import DATASETS
from customer360.defs.definitions import gate_job, unroutable_job
from customer360.defs.keys import GATE_JOB_NAME, RAW_SENSOR_NAME, UNROUTABLE_JOB_NAME
from customer360.defs.resources.lake import LakeResource
from customer360.defs.sensors.notifications import DISCOVERY_ENV, QUEUE_URL_ENV, QueueSettings
from customer360.defs.sensors.raw_sensor import (
    RawCursor,
    RawSensorSettings,
    build_raw_sensor,
)
from customer360.lake.ledger import Ledger
from customer360.lake.s3 import S3LakeStore
from customer360.steps.gate import run_gate
from customer360.steps.unroutable import reject_unroutable

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
TODAY = NOW.date()
OLD_DAY = TODAY - timedelta(days=400)
SETTINGS = RawSensorSettings(lookback_days=7, max_runs_per_tick=50, reconcile_minutes=360, listing_minutes=15)


@dataclass
class Queue:
    url: str
    client: object

    def counts(self) -> tuple[int, int]:
        """(visible, in flight) messages."""
        attributes = self.client.get_queue_attributes(  # type: ignore[attr-defined]
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def take_all(self) -> list[dict]:
        """Take every visible message out of the queue (what a lost or re-sent message needs)."""
        taken: list[dict] = []
        while batch := self.client.receive_message(  # type: ignore[attr-defined]
            QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30
        ).get("Messages", []):
            taken += batch
        for message in taken:
            self.client.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])  # type: ignore[attr-defined]
        return taken

    def send(self, body: str) -> None:
        self.client.send_message(QueueUrl=self.url, MessageBody=body)  # type: ignore[attr-defined]


@pytest.fixture
def queue(s3_lake: S3LakeStore, moto_server: str) -> Queue:
    """An SQS queue the lake's bucket notifies of every object created under raw/ (moto sends s3:TestEvent)."""
    sqs = boto3.client("sqs", endpoint_url=moto_server, region_name="us-east-1")
    url = sqs.create_queue(QueueName=f"raw-arrivals-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3_lake.client.put_bucket_notification_configuration(
        Bucket=s3_lake.bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "raw-object-created",
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "raw/"}]}},
                }
            ]
        },
    )
    return Queue(url, sqs)


@dataclass
class Daemon:
    """Evaluates the raw sensor and records its runs as Dagster's daemon does; executes them on request."""

    store: S3LakeStore
    sensor: dg.SensorDefinition
    resource: LakeResource
    instance: dg.DagsterInstance = field(default_factory=dg.DagsterInstance.ephemeral)
    now: datetime = NOW
    cursor: str | None = None
    recorded: list[dg.RunRequest] = field(default_factory=list)
    waiting: list[dg.RunRequest] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def tick(self, *, record: bool = True, seconds: int = 30) -> tuple[list[dg.RunRequest], dict]:
        self.now += timedelta(seconds=seconds)
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor, resources={"lake": self.resource})
        context.log.warning = self.warnings.append  # type: ignore[method-assign]  # keep what the tick warned
        result = self.sensor(context)
        assert isinstance(result, dg.SensorResult)
        requests = list(result.run_requests or [])
        if not record:
            return requests, RawCursor.load(result.cursor).last  # the tick died before the daemon recorded it
        for request in requests:
            tags = {RUN_KEY_TAG: str(request.run_key), SENSOR_NAME_TAG: RAW_SENSOR_NAME}
            if self.instance.get_run_ids(filters=dg.RunsFilter(tags=tags), limit=1):
                continue  # the daemon skips a run key it already used
            job = str(request.job_name)
            self.instance.add_run(DagsterRun(job_name=job, run_id=str(uuid.uuid4()), tags={**request.tags, **tags}))
            self.recorded.append(request)
            self.waiting.append(request)
        self.cursor = result.cursor
        return requests, RawCursor.load(self.cursor).last

    def execute(self) -> None:
        """The recorded runs execute: the real gate moves their day's files out of raw/."""
        for request in self.waiting:
            if request.job_name == UNROUTABLE_JOB_NAME:
                reject_unroutable(self.store)
            else:
                dataset = request.tags["customer360/gate"].split("/")[0]
                run_gate(self.store, DATASETS[dataset], date.fromisoformat(str(request.partition_key)))
        self.waiting = []

    def gate_days(self) -> list[str]:
        return [str(r.partition_key) for r in self.recorded if r.job_name == GATE_JOB_NAME]


@pytest.fixture
def daemon(s3_lake: S3LakeStore, moto_server: str, queue: Queue) -> Daemon:
    settings = QueueSettings(
        queue.url, endpoint_url=moto_server, region_name="us-east-1", wait_seconds=0, max_receives=3
    )
    clock: list[Daemon] = []
    sensor = build_raw_sensor(gate_job, unroutable_job, settings=SETTINGS, queue=settings, clock=lambda: clock[0].now)
    clock.append(Daemon(s3_lake, sensor, LakeResource(location=s3_lake.uri, endpoint_url=moto_server)))
    return clock[0]


def csv_of(n: int) -> bytes:
    return f"customerID,gender\n{n:04d}-ABCDE,Female\n".encode()


def ledger_counts(store: S3LakeStore, dataset: str, *days: date) -> Counter[str]:
    ledger = Ledger(store)
    return Counter(e.raw_key for day in days for e in ledger.entries(dataset, day))


def test_a_file_keyed_to_any_date_is_requested_on_the_next_tick_and_its_message_deleted_once_recorded(
    daemon: Daemon, queue: Queue, s3_lake: S3LakeStore
) -> None:
    # Turned on: the first tick scans raw/ (the safety net) and drops the bucket's s3:TestEvent.
    requests, summary = daemon.tick()
    assert requests == [] and summary["mode"] == "full_scan"
    assert summary["queue"]["dropped"] == {"test_event": 1}

    key = f"raw/customers/{OLD_DAY}/crm_delta.csv"
    s3_lake.put_bytes(key, csv_of(1))
    requests, summary = daemon.tick()
    assert [r.partition_key for r in requests] == [str(OLD_DAY)]
    # Only the folder the message named was listed: not the window, not raw/.
    assert (summary["mode"], summary["prefixes_listed"], summary["objects_listed"]) == ("queue", 1, 1)
    # Not deleted yet: the daemon records the run after the evaluation returns.
    assert queue.counts() == (0, 1) and summary["queue"]["awaiting_run"] == 1

    _, summary = daemon.tick()
    assert summary["queue"]["deleted_after_run_recorded"] == 1
    assert queue.counts() == (0, 0)

    daemon.execute()
    assert ledger_counts(s3_lake, "customers", OLD_DAY) == {key: 1}
    assert daemon.gate_days() == [str(OLD_DAY)]


def test_a_message_whose_run_was_never_recorded_is_planned_again_not_deleted(
    daemon: Daemon, queue: Queue, s3_lake: S3LakeStore
) -> None:
    daemon.tick()
    s3_lake.put_bytes(f"raw/customers/{OLD_DAY}/crm.csv", csv_of(1))
    # The tick evaluates, but the daemon dies before recording anything: cursor and runs are both lost.
    requests, _ = daemon.tick(record=False)
    assert len(requests) == 1
    # The message stays in flight until its visibility timeout; let the queue give it back now.
    _release_in_flight(queue)
    requests, _ = daemon.tick()
    assert [r.partition_key for r in requests] == [str(OLD_DAY)]
    daemon.tick()
    assert queue.counts() == (0, 0)

    # A committed cursor whose run is missing from the instance (deleted): the day is planned afresh.
    s3_lake.put_bytes(f"raw/customers/{OLD_DAY + timedelta(days=1)}/crm.csv", csv_of(2))
    requests, _ = daemon.tick()
    [request] = requests
    for run_id in daemon.instance.get_run_ids(filters=dg.RunsFilter(tags={RUN_KEY_TAG: str(request.run_key)})):
        daemon.instance.delete_run(run_id)
    daemon.recorded.remove(request)
    daemon.waiting.remove(request)
    again, summary = daemon.tick()  # finds no run: releases the message and forgets the day
    assert summary["queue"]["released"] == 1
    assert any("no run with run key" in w for w in daemon.warnings)
    # The message comes back (in this tick's receive or the next one's) and plans the day again.
    again += daemon.tick()[0]
    assert [r.run_key for r in again] == [request.run_key]
    daemon.tick()
    assert queue.counts() == (0, 0)
    daemon.execute()
    assert sorted(daemon.gate_days()) == [str(OLD_DAY), str(OLD_DAY + timedelta(days=1))]


def _release_in_flight(queue: Queue) -> None:
    """What the visibility timeout does after 10 minutes: in-flight messages become visible again."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    fake = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_queue(queue.url.rsplit("/", 1)[1])
    for message in fake._messages:
        message.change_visibility(-1)
        fake.pending_messages.discard(message)


def test_duplicate_out_of_order_late_and_lost_messages_still_gate_each_file_once(
    daemon: Daemon, queue: Queue, s3_lake: S3LakeStore
) -> None:
    daemon.tick()
    yesterday = TODAY - timedelta(days=1)

    # Duplicate: S3 delivers at least once; the same event twice, in one tick and across ticks.
    s3_lake.put_bytes(f"raw/activity_logs/{yesterday}/usage-T01.csv", b"a\n")
    [original] = queue.take_all()
    for _ in range(2):
        queue.send(original["Body"])
    requests, _ = daemon.tick()
    assert [r.partition_key for r in requests] == [str(yesterday)]
    queue.send(original["Body"])
    assert daemon.tick()[0] == []  # requested already by a committed tick: deleted without a run

    # Out of order: a correction's event before the original's; the folder shows the newest content.
    key = f"raw/customers/{OLD_DAY}/crm.csv"
    s3_lake.put_bytes(key, csv_of(1))
    s3_lake.put_bytes(key, csv_of(2))
    first, second = queue.take_all()
    queue.send(second["Body"])
    queue.send(first["Body"])
    requests, _ = daemon.tick()
    assert [r.partition_key for r in requests] == [str(OLD_DAY)]
    daemon.tick()
    daemon.execute()

    # Seen by the queue and by the window listing in the same tick, then by the listing again: one run.
    both = f"raw/activity_logs/{yesterday}/usage-T02.csv"
    s3_lake.put_bytes(both, b"c\n")
    requests, summary = daemon.tick(seconds=15 * 60)
    assert summary["mode"] == "window" and [r.partition_key for r in requests] == [str(yesterday)]
    assert daemon.tick(seconds=15 * 60)[0] == []

    # Late: a message for a file the gate already moved plans nothing.
    queue.send(original["Body"])
    assert daemon.tick()[0] == []

    # Lost: a message deleted before the sensor read it. The window listing (every 15 minutes) catches a
    # recent day; the full scan (every 6 hours) catches any other.
    s3_lake.put_bytes(f"raw/activity_logs/{TODAY}/usage-T08.csv", b"b\n")
    s3_lake.put_bytes(f"raw/customers/{OLD_DAY - timedelta(days=3)}/crm.csv", csv_of(3))
    assert len(queue.take_all()) == 2
    assert daemon.tick()[0] == []
    requests, summary = daemon.tick(seconds=15 * 60)
    assert summary["mode"] == "window" and [r.partition_key for r in requests] == [str(TODAY)]
    requests, summary = daemon.tick(seconds=6 * 3600)
    assert summary["mode"] == "full_scan"
    assert [r.partition_key for r in requests] == [str(OLD_DAY - timedelta(days=3))]
    for _ in range(2):
        daemon.tick()
    daemon.execute()

    # Each file ended once in the ledger, each day was gated by one run, and the queue is empty.
    days = [yesterday, TODAY, OLD_DAY, OLD_DAY - timedelta(days=3)]
    assert sorted(ledger_counts(s3_lake, "activity_logs", *days).values()) == [1, 1, 1]
    assert ledger_counts(s3_lake, "customers", *days) == {
        key: 1,
        f"raw/customers/{OLD_DAY - timedelta(days=3)}/crm.csv": 1,
    }
    # Yesterday's two files arrived 15 minutes apart: a run each; every other day one run.
    assert Counter(daemon.gate_days()) == {str(d): 2 if d == yesterday else 1 for d in days}
    assert queue.counts() == (0, 0)
    assert list(s3_lake.list("raw/")) == []


def test_poison_messages_are_logged_and_dropped_never_retried_forever(
    daemon: Daemon, queue: Queue, s3_lake: S3LakeStore
) -> None:
    daemon.tick()
    record = {
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": s3_lake.bucket}, "object": {"key": "raw/customers/2025-01-01/x.csv"}},
    }
    poison = [
        "this is not JSON",
        json.dumps({"hello": "world"}),
        json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": s3_lake.bucket}),
        json.dumps({"Records": [{**record, "s3": {**record["s3"], "object": {"key": "archive/customers/x.csv"}}}]}),
        json.dumps({"Records": [{**record, "s3": {**record["s3"], "bucket": {"name": "someone-elses-bucket"}}}]}),
        json.dumps({"Records": [{**record, "eventName": "ObjectRemoved:Delete"}]}),
        json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}),
    ]
    for body in poison:
        queue.send(body)
    # A key under raw/ that routes nowhere is not poison: the landing contract rejects it with a reason.
    s3_lake.put_bytes("raw/billing/2025-01-01/invoices.csv", b"i\n")
    requests, summary = daemon.tick()
    assert [r.job_name for r in requests] == [UNROUTABLE_JOB_NAME]
    assert summary["queue"]["dropped"] == {"ignored": 1, "poison": 5, "test_event": 1}
    assert len([w for w in daemon.warnings if "dropped: poison" in w]) == 5
    daemon.tick()
    assert queue.counts() == (0, 0)
    daemon.execute()
    assert [e.outcome for e in Ledger(s3_lake).entries_of("_unroutable", None)] == ["rejected"]

    # A message that keeps coming back (its run is never recorded) is dropped after max_receives (3).
    s3_lake.put_bytes(f"raw/customers/{OLD_DAY}/crm.csv", csv_of(1))
    for _ in range(3):
        requests, _ = daemon.tick(record=False)
        assert len(requests) == 1
        _release_in_flight(queue)
    _, summary = daemon.tick(record=False)
    assert any("redelivered: received 4 times" in w for w in daemon.warnings)
    assert queue.counts() == (0, 0)


def test_one_environment_variable_switches_listing_only_to_notifications(
    monkeypatch: pytest.MonkeyPatch, local_lake
) -> None:
    monkeypatch.delenv(DISCOVERY_ENV, raising=False)
    assert QueueSettings.from_env() is None  # the embedded default: listing only
    monkeypatch.setenv(DISCOVERY_ENV, "notifications")
    with pytest.raises(ValueError, match=QUEUE_URL_ENV):
        QueueSettings.from_env()
    monkeypatch.setenv(QUEUE_URL_ENV, "https://sqs.eu-west-1.amazonaws.com/123456789012/raw-arrivals")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    settings = QueueSettings.from_env()
    assert settings is not None and settings.region_name == "eu-west-1"
    listing = RawSensorSettings.from_env(notifications=True)
    assert (listing.listing_minutes, listing.reconcile_minutes) == (15, 360)  # the safety net, less often
    monkeypatch.setenv(DISCOVERY_ENV, "sometimes")
    with pytest.raises(ValueError, match="listing"):
        QueueSettings.from_env()

    # Notifications need a bucket: a folder lake fails the tick with the reason.
    sensor = build_raw_sensor(gate_job, unroutable_job, settings=SETTINGS, queue=settings, clock=lambda: NOW)
    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), resources={"lake": LakeResource(location=local_lake.uri)}
    )
    with pytest.raises(Exception, match="needs an S3 lake"):
        sensor(context)
