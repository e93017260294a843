"""S3 event notifications for the raw sensor: ObjectCreated events under raw/, read from an SQS queue.

Why: listing finds a file keyed to an old date only at the next full scan of raw/ (hourly by default, and
~17 s at 50,000 objects). With the bucket sending ``s3:ObjectCreated:*`` for ``raw/`` to an SQS queue, the
raw sensor reads the queue on every tick (long poll, batches of 10, at most ``max_messages`` a tick) and
picks any file up on the next tick, whatever its date. Listing stays as the safety net for lost or
never-configured notifications (``customer360.defs.sensors.raw_sensor``), on a longer interval.

A message is a *hint*, not a run: it names ``raw/<dataset>/<day>/``, which the tick then lists (one LIST
of one small prefix) and plans exactly as a listing tick would. So the run requests, their run keys and
the cursor's memory of requested files are the listing's own: a file seen by the queue and by a listing,
or by two duplicate messages, is requested once; out-of-order messages do not matter (the listing shows
what is in raw/ now); a message for a file the gate already moved finds nothing to do.

When is a message deleted? Only once the run it led to is recorded. A Dagster sensor returns its run
requests and cursor, and the daemon creates the runs *after* the evaluation function returns, committing the
cursor only when the tick completes (a tick that dies after reserving its runs is resumed and its runs
submitted before its cursor is written). So deleting inside the evaluation would be too early. Instead:

* messages whose files this tick requests are kept, as (run key, receipt handles), in the cursor;
* on the next tick, with that cursor committed, each such run key is looked up in the instance (the
  ``dagster/run_key`` tag of the raw sensor's runs) and its messages are deleted;
* a run key that is missing (a run deleted from the instance) forgets its day in the cursor and makes
  its messages visible again, so the day is planned afresh;
* messages that need no run (the file was requested by an earlier, committed tick, or is gone, or the day
  is outside the partitions) are deleted at once; messages whose day waits for the per-tick run cap are
  made visible again at once (ChangeMessageVisibility 0) and come back on the next tick;
* a poison message (not JSON, not an S3 event, ``s3:TestEvent``, a key outside this lake's raw/, another
  bucket) is logged and deleted, never retried; a message received more than ``max_receives`` times is
  dropped the same way (the listing still covers its file). A dead-letter queue on the SQS side is the
  recommended second net (``deploy/s3-notifications/``).

Configuration (environment, read when the definitions load): ``CUSTOMER360_RAW_DISCOVERY=notifications``
turns it on (default ``listing``); ``CUSTOMER360_RAW_QUEUE_URL`` names the queue;
``CUSTOMER360_SQS_ENDPOINT_URL`` (else ``AWS_ENDPOINT_URL_SQS`` / ``AWS_ENDPOINT_URL``) points at a
non-AWS endpoint (moto in tests). Notifications need an S3 lake.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

import boto3

from customer360.lake.routing import route
from customer360.lake.s3 import S3LakeStore
from customer360.lake.store import LakeStore, ObjectInfo
from customer360.settings import (
    DEFAULT_DISCOVERY,
    DISCOVERY_ENV,
    QUEUE_MAX_MESSAGES_ENV,
    QUEUE_MAX_RECEIVES_ENV,
    QUEUE_URL_ENV,
    QUEUE_VISIBILITY_SECONDS_ENV,
    QUEUE_WAIT_SECONDS_ENV,
    aws_region,
    env,
    env_int,
    raw_discovery,
    sqs_endpoint_url,
)

LISTING = DEFAULT_DISCOVERY
NOTIFICATIONS = "notifications"
SQS_BATCH = 10  # SQS's maximum for ReceiveMessage, DeleteMessageBatch and ChangeMessageVisibilityBatch

# SQS (ObjectCreated) is the only source of hints; ObjectRemoved and others are dropped quietly.
_CREATED = re.compile(r"^(s3:)?ObjectCreated:")

log = logging.getLogger(__name__)

SqsClient = Any  # boto3 clients are generated at runtime


def discovery_mode() -> str:
    """``listing`` (the embedded default) or ``notifications``; anything else is a configuration error."""
    mode = raw_discovery()
    if mode not in (LISTING, NOTIFICATIONS):
        raise ValueError(f"{DISCOVERY_ENV}={mode!r}: expected {LISTING!r} or {NOTIFICATIONS!r}")
    return mode


@dataclass(frozen=True)
class QueueSettings:
    """Where the raw/ notifications queue is and how much of it one tick reads."""

    queue_url: str
    endpoint_url: str | None = None
    region_name: str | None = None
    max_messages: int = 300  # per tick; more waits for the next tick (messages are cheap, runs are capped anyway)
    wait_seconds: int = 1  # long poll of the first receive (SQS allows 20; the sensor thread waits that long)
    visibility_seconds: int = 600  # how long a received, unacknowledged message stays hidden
    max_receives: int = 10  # a message received this often is dropped (the listing still covers its file)

    @classmethod
    def from_env(cls) -> QueueSettings | None:
        """The queue the environment configures, or None in listing-only mode."""
        if discovery_mode() != NOTIFICATIONS:
            return None
        url = env(QUEUE_URL_ENV)
        if not url:
            raise ValueError(f"{DISCOVERY_ENV}={NOTIFICATIONS} needs {QUEUE_URL_ENV} (the SQS queue URL)")
        return cls(
            queue_url=url,
            endpoint_url=sqs_endpoint_url(),
            region_name=aws_region() or _region_of(url),
            max_messages=env_int(QUEUE_MAX_MESSAGES_ENV, cls.max_messages),
            wait_seconds=env_int(QUEUE_WAIT_SECONDS_ENV, cls.wait_seconds),
            visibility_seconds=env_int(QUEUE_VISIBILITY_SECONDS_ENV, cls.visibility_seconds),
            max_receives=env_int(QUEUE_MAX_RECEIVES_ENV, cls.max_receives),
        )


def _region_of(queue_url: str) -> str | None:
    match = re.match(r"^https://sqs[.-]([a-z0-9-]+)\.amazonaws\.com", queue_url)
    return match.group(1) if match else None


@lru_cache(maxsize=8)
def _client(endpoint_url: str | None, region_name: str | None) -> SqsClient:
    # One client per process and endpoint: building one costs more than a receive.
    return boto3.client("sqs", endpoint_url=endpoint_url, region_name=region_name)


# -- what a message says ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedObject:
    """One ObjectCreated record: a lake key (relative to the lake's prefix)."""

    key: str


@dataclass
class Message:
    """One SQS message: its handle, the raw/ keys it names, and why it is dropped if it is."""

    message_id: str
    receipt_handle: str
    receive_count: int
    objects: list[CreatedObject] = field(default_factory=list)
    dropped: str | None = None  # "<kind>: <detail>" when the message is not acted on (poison, test_event, ...)


def _records(body: object) -> tuple[list[dict[str, Any]], str | None]:
    """The S3 event records of a message body, unwrapping an SNS envelope and EventBridge's shape."""
    if not isinstance(body, dict):
        return [], "poison: not a JSON object"
    if body.get("Type") == "Notification" and isinstance(body.get("Message"), str):
        try:  # S3 -> SNS -> SQS fan-out without raw message delivery
            return _records(json.loads(body["Message"]))
        except ValueError:
            return [], "poison: SNS message is not JSON"
    if body.get("Event") == "s3:TestEvent":
        return [], "test_event: s3:TestEvent (S3 sends one when the notification is configured)"
    if body.get("source") == "aws.s3" and isinstance(body.get("detail"), dict):
        detail = body["detail"]  # EventBridge -> SQS: the key is not URL-encoded there
        name = str(body.get("detail-type", ""))
        if name != "Object Created":
            return [], f"ignored: {name or 'EventBridge event'}"
        record = {
            "eventName": "ObjectCreated:EventBridge",
            "s3": {"bucket": detail.get("bucket", {}), "object": {**detail.get("object", {}), "plain": True}},
        }
        return [record], None
    records = body.get("Records")
    if not isinstance(records, list) or not records:
        return [], "poison: not an S3 event notification (no Records)"
    return [r for r in records if isinstance(r, dict)], None


def parse(body_text: str, store: S3LakeStore) -> tuple[list[CreatedObject], list[str]]:
    """The lake keys a message body announces, and why each other part of it is dropped."""
    try:
        body = json.loads(body_text)
    except ValueError:
        return [], [f"poison: not JSON ({body_text[:80]!r})"]
    records, reason = _records(body)
    if reason:
        return [], [reason]
    base = f"{store.prefix}/" if store.prefix else ""
    found: list[CreatedObject] = []
    dropped: list[str] = []
    for record in records:
        name = str(record.get("eventName", ""))
        s3 = record.get("s3") if isinstance(record.get("s3"), dict) else None
        obj = s3.get("object") if s3 and isinstance(s3.get("object"), dict) else None
        if not _CREATED.match(name):
            dropped.append(f"ignored: {name or 'a record without eventName'}")
            continue
        if s3 is None or obj is None or not isinstance(obj.get("key"), str):
            dropped.append("poison: an S3 record without s3.object.key")
            continue
        bucket = (s3.get("bucket") or {}).get("name") if isinstance(s3.get("bucket"), dict) else None
        if bucket is not None and bucket != store.bucket:
            dropped.append(f"poison: bucket {bucket!r} is not the lake's {store.bucket!r}")
            continue
        # S3 URL-encodes keys in event records (a space is '+'); EventBridge does not.
        key = obj["key"] if obj.get("plain") else unquote_plus(obj["key"])
        if not key.startswith(base + "raw/"):
            dropped.append(f"poison: {key!r} is not under {base}raw/ of this lake")
            continue
        found.append(CreatedObject(key[len(base) :]))
    return found, dropped


# -- what a tick asks of the lake -------------------------------------------------------------------


@dataclass
class Hints:
    """What the queue says a tick should look at besides its own listing."""

    days: set[tuple[str, date]] = field(default_factory=set)  # (dataset, day) folders to list
    unroutable: list[ObjectInfo] = field(default_factory=list)  # raw/ objects that route to no day


def hints_of(messages: Iterable[Message], store: LakeStore) -> Hints:
    """The day folders the messages name, and their unroutable objects that are still in raw/.

    An unroutable key is looked up by listing it as a prefix, not by HEAD: the listing's ETag, size and
    time are what the sensor's identities are made of, and HEAD's time has coarser precision.
    """
    hints = Hints()
    seen_unroutable: set[str] = set()
    for message in messages:
        for obj in message.objects:
            dataset, day, reason = route(obj.key)
            if reason is None and dataset is not None and day is not None:
                hints.days.add((dataset.name, day))
            elif obj.key not in seen_unroutable:
                seen_unroutable.add(obj.key)
                hints.unroutable.extend(o for o in store.list(obj.key) if o.key == obj.key)
    return hints


# -- the queue --------------------------------------------------------------------------------------


class RawQueue:
    """The SQS queue that receives the bucket's ObjectCreated notifications for raw/."""

    def __init__(self, settings: QueueSettings, client: SqsClient | None = None) -> None:
        self.settings = settings
        self.client = client or _client(settings.endpoint_url, settings.region_name)

    def receive(self, store: S3LakeStore) -> list[Message]:
        """Up to ``max_messages`` messages: a long poll first, then short long-polls while batches are full."""
        messages: list[Message] = []
        wait = self.settings.wait_seconds
        while len(messages) < self.settings.max_messages:
            response = self.client.receive_message(
                QueueUrl=self.settings.queue_url,
                MaxNumberOfMessages=min(SQS_BATCH, self.settings.max_messages - len(messages)),
                WaitTimeSeconds=wait,
                VisibilityTimeout=self.settings.visibility_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
            batch = response.get("Messages") or []
            for raw in batch:
                count = int((raw.get("Attributes") or {}).get("ApproximateReceiveCount", 1))
                message = Message(raw["MessageId"], raw["ReceiptHandle"], count)
                if count > self.settings.max_receives:
                    message.dropped = f"redelivered: received {count} times (over {self.settings.max_receives})"
                else:
                    message.objects, reasons = parse(raw.get("Body", ""), store)
                    if not message.objects:
                        message.dropped = "; ".join(reasons) or "poison: no records"
                    elif reasons:
                        log.warning("message %s: dropped part of it: %s", message.message_id, "; ".join(reasons))
                messages.append(message)
            if len(batch) < SQS_BATCH:
                break
            wait = 1  # the queue had a full batch: keep draining, without waiting long for more
        return messages

    def delete(self, handles: Iterable[str]) -> int:
        """Delete messages by receipt handle; returns how many SQS confirmed."""
        return self._batched("delete_message_batch", handles, {})

    def release(self, handles: Iterable[str]) -> int:
        """Make messages visible again now (the next tick receives them)."""
        return self._batched("change_message_visibility_batch", handles, {"VisibilityTimeout": 0})

    def _batched(self, operation: str, handles: Iterable[str], extra: dict[str, Any]) -> int:
        done = 0
        for batch in _chunks(list(dict.fromkeys(handles)), SQS_BATCH):
            response = getattr(self.client, operation)(
                QueueUrl=self.settings.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": h, **extra} for i, h in enumerate(batch)],
            )
            done += len(response.get("Successful") or [])
            for failure in response.get("Failed") or []:
                # An expired handle (the message became visible and was received again) fails here; the
                # newer copy is handled by whichever tick holds it, and duplicates plan nothing new.
                log.warning("%s failed for a message: %s", operation, failure.get("Message") or failure.get("Code"))
        return done


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def require_s3(store: LakeStore) -> S3LakeStore:
    if not isinstance(store, S3LakeStore):
        raise ValueError(
            f"{DISCOVERY_ENV}={NOTIFICATIONS} needs an S3 lake (CUSTOMER360_LAKE=s3://...); this lake is {store.uri}"
        )
    return store
