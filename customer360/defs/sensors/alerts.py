"""The rejection alert sensor: one message per rejected file, to Slack, a webhook, or the Dagster log.

Where rejections come from: every gate run records its rejected files in the ``rejected_files`` metadata
of the ``rejected/<dataset>`` (and ``rejected/unroutable``) materialization. The sensor reads those
materializations from Dagster's event log after a per-asset storage-id cursor, so a tick costs one
indexed query per asset, however old the lake; listing the ledger instead would grow with it forever.

Why a marker in the lake as well as the cursor: Dagster persists a sensor's cursor only when a tick
completes, so a tick that sent some alerts and then died (deploy, OOM) would send them again. Before
sending, the sensor claims the file with a create-only marker ``alerts/sent/<ledger entry id>.json``;
an existing marker means the alert went out already (or is going out), whatever the cursor says, and
it survives restarts, a reset cursor, and a second deployment of the sensor. A send that fails releases
its claim and stops the tick, leaving the cursor before that materialization, so the next tick retries
exactly the unsent files. The one remaining gap is a process killed between claim and send: that alert
is lost rather than sent twice, and the file still fails its day's ``no_rejected_files`` check.

Destination: the ``alerts`` resource (``customer360.defs.resources.alerts``): Slack through dagster-slack when
``SLACK_TOKEN`` and ``CUSTOMER360_SLACK_CHANNEL`` are set (``CUSTOMER360_SLACK_API_URL`` optionally replaces
``https://slack.com/api/``), else ``CUSTOMER360_ALERT_WEBHOOK_URL`` (POST of one JSON object),
else the sensor's Dagster log.

Without ``from __future__ import annotations``: Dagster rejects a string annotation on ``context``.
"""

import json
from dataclasses import dataclass

import dagster as dg

from customer360.defs.keys import ALERT_SENSOR_NAME, REJECTED_FILES_METADATA, REJECTED_KEYS
from customer360.defs.resources.alerts import AlertsResource
from customer360.defs.resources.lake import LakeResource
from customer360.lake.store import LakeStore, ObjectExistsError

SENT_PREFIX = "alerts/sent/"
RECORDS_PER_TICK = 100


@dataclass(frozen=True)
class Rejection:
    """One rejected file, as an alert tells it."""

    entry_id: str
    dataset: str
    day: str | None
    raw_key: str
    reasons: tuple[str, ...]
    report_key: str | None

    @classmethod
    def from_metadata(cls, item: dict[str, object]) -> "Rejection":
        return cls(
            entry_id=str(item["entry_id"]),
            dataset=str(item.get("dataset") or "_unroutable"),
            day=str(item["partition"]) if item.get("partition") else None,
            raw_key=str(item["raw_key"]),
            reasons=tuple(str(r) for r in item.get("reasons") or ()),  # type: ignore[attr-defined]
            report_key=str(item["report_key"]) if item.get("report_key") else None,
        )

    @property
    def text(self) -> str:
        return (
            f":warning: customer360 rejected `{self.raw_key}` ({self.dataset}, day {self.day or 'none'}): "
            f"{', '.join(self.reasons)}. Report: `{self.report_key}`"
        )

    def payload(self) -> dict[str, object]:
        return {
            "event": "customer360.file_rejected",
            "dataset": self.dataset,
            "day": self.day,
            "raw_key": self.raw_key,
            "reasons": list(self.reasons),
            "report_key": self.report_key,
            "ledger_entry_id": self.entry_id,
            "text": self.text,
        }


def watched_assets() -> list[dg.AssetKey]:
    return list(REJECTED_KEYS)


def claim(store: LakeStore, rejection: Rejection) -> bool:
    """Claim the right to alert on this file; False when it was claimed (alerted) before."""
    try:
        store.put_bytes(
            f"{SENT_PREFIX}{rejection.entry_id}.json", json.dumps(rejection.payload()).encode(), create_only=True
        )
    except ObjectExistsError:
        return False
    return True


def tick_summary(sent: int, already_sent: int, destination: str, failure: str | None = None) -> str:
    """What a tick did, in the words the sensor's tick history shows."""
    parts = [f"sent {sent} alert(s) for {sent} rejected file(s) to {destination}" if sent else "no new rejected file"]
    if already_sent:
        parts.append(f"{already_sent} already alerted before")
    if failure:
        parts.append(f"stopped: {failure}; retried next tick")
    return "; ".join(parts)


def build_alert_sensor(minimum_interval_seconds: int = 60) -> dg.SensorDefinition:
    @dg.sensor(
        name=ALERT_SENSOR_NAME,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="One alert per rejected file (dataset, day, reason, report key) to Slack, a webhook or the "
        "Dagster log; never two for the same file.",
    )
    def rejection_alerts(
        context: dg.SensorEvaluationContext, lake: LakeResource, alerts: AlertsResource
    ) -> dg.SensorResult:
        cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        destination = alerts.destination(context.log.warning)
        store = lake.store()
        sent = skipped = 0
        failure: str | None = None
        for asset_key in watched_assets():
            name = asset_key.to_user_string()
            records = context.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset_key, after_storage_id=cursor.get(name)),
                limit=RECORDS_PER_TICK,
                ascending=True,
            ).records
            for record in records:
                materialization = record.asset_materialization
                listed = materialization.metadata.get(REJECTED_FILES_METADATA) if materialization else None
                for item in listed.value if isinstance(listed, dg.JsonMetadataValue) else []:  # type: ignore[union-attr]
                    rejection = Rejection.from_metadata(item)
                    if not claim(store, rejection):
                        skipped += 1
                        continue
                    try:
                        destination.send(rejection)
                    except Exception as error:  # noqa: BLE001 - retried next tick, from this materialization
                        store.delete(f"{SENT_PREFIX}{rejection.entry_id}.json")
                        failure = f"{destination.name} refused the alert for {rejection.raw_key}: {error}"
                        break
                    sent += 1
                if failure:
                    break
                cursor[name] = record.storage_id
            if failure:
                break
        summary = tick_summary(sent, skipped, destination.name, failure)
        (context.log.error if failure else context.log.info)(summary)
        # A tick requests no run; its skip reason is what the UI's tick history shows, instead of "0 runs".
        return dg.SensorResult(cursor=json.dumps(cursor, sort_keys=True), skip_reason=dg.SkipReason(summary))

    return rejection_alerts
