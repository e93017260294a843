"""The delivery expectations sensor: records a day's ``expected_deliveries`` check when it changes without a
run, and alerts once per (dataset, day, state) through the rejection alerts' channels (Slack, webhook, log).

Who evaluates the check, and when:

* every gate run evaluates its day (``customer360.defs.deliveries``, attached to ``archive/<dataset>``),
  so a late file that completes a day turns its check green in the very run that archived it;
* this sensor (every 5 minutes) evaluates a day when a gate run touched it since its last tick (read from
  the ``archive/<dataset>`` materializations after a storage-id cursor, like the rejection alerts), and when
  the day falls due (its due time passed since the last tick, or it is in the look-back window and was
  never judged). A day that got no file at all has no gate run: this is where it goes ``late``. For a day
  that fell due, when the state differs from the one it last knew, the sensor records the check result as a
  runless ``AssetCheckEvaluation`` for that day's partition, so the UI shows it (days a gate run touched
  have that run's own result).

Dagster 1.13 keeps at most one runless check result per (check, partition): the runless row has an empty
run id and the index table is unique on (asset key, check, run id, partition), so a second report fails
with an integrity error (returned as ``SensorResult.asset_events`` it would fail the whole tick in the
daemon). The sensor therefore records its results itself and logs such a refusal instead of failing. In
practice one is enough: a day falls due once, and every later change of the day comes with a gate run
that records its own result.

Alerts: ``late`` and ``suspicious`` are sent once per (dataset, day, state); ``complete`` is sent only for a
day that had one of those alerts (it resolves them). As with rejections, a create-only marker in the lake
(``alerts/deliveries/<dataset>/<day>/<state>.json``) claims each alert before it is sent, so a lost cursor,
a restart or a second deployment never repeats one; a failed send releases its claim and is retried on the
next tick. ``pending`` (not due yet) never alerts.

Without ``from __future__ import annotations``: Dagster rejects a string annotation on ``context``.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from customer360.contracts import DATASETS, Dataset
from customer360.defs.deliveries import COMPLETE, LATE, PENDING, SUSPICIOUS, DayDelivery, delivery_check, evaluate
from customer360.defs.keys import ARCHIVE, DELIVERY_SENSOR_NAME, zone_key
from customer360.defs.partitions import start_date
from customer360.defs.resources.alerts import AlertsResource
from customer360.defs.resources.lake import LakeResource
from customer360.lake.store import LakeStore, ObjectExistsError

MARKER_PREFIX = "alerts/deliveries/"
LOOKBACK_DAYS = 7
KEEP_STATES_DAYS = 60  # the cursor remembers states this long after a day; older days are re-judged if touched
RECORDS_PER_TICK = 1000

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class DeliveryAlert:
    """One alert about a day's deliveries, in the shape the alert destinations send."""

    day: DayDelivery

    @property
    def text(self) -> str:
        d = self.day
        icon = {LATE: ":hourglass:", SUSPICIOUS: ":mag:", COMPLETE: ":white_check_mark:"}.get(d.state, "")
        return f"{icon} customer360 {d.dataset} {d.day.isoformat()} deliveries: {d.description}"

    def payload(self) -> dict[str, object]:
        d = self.day
        return {
            "event": f"customer360.delivery_{d.state}",
            "dataset": d.dataset,
            "day": d.day.isoformat(),
            "state": d.state,
            "files": len(d.files),
            "expected_files": d.expected_files,
            "missing_hours": d.missing_hours,
            "hours_not_identified": d.hours_not_identified,
            "rows": d.rows,
            "baseline_median_rows": d.baseline_rows,
            "baseline_median_files": d.baseline_files,
            "due_at": d.due_at.isoformat(),
            "text": self.text,
        }


def marker_key(dataset: str, day: date, state: str) -> str:
    return f"{MARKER_PREFIX}{dataset}/{day.isoformat()}/{state}.json"


def _claim(store: LakeStore, alert: DeliveryAlert) -> bool:
    try:
        store.put_bytes(
            marker_key(alert.day.dataset, alert.day.day, alert.day.state),
            json.dumps(alert.payload()).encode(),
            create_only=True,
        )
    except ObjectExistsError:
        return False
    return True


def _worth_alerting(store: LakeStore, day: DayDelivery) -> bool:
    if day.state in (LATE, SUSPICIOUS):
        return True
    if day.state == COMPLETE:  # only as the resolution of an alert that went out
        return any(store.head(marker_key(day.dataset, day.day, s)) is not None for s in (LATE, SUSPICIOUS))
    return False


def days_to_judge(
    instance: dg.DagsterInstance,
    dataset: Dataset,
    states: dict[str, str],
    storage_ids: dict[str, int],
    last_tick: float | None,
    now: datetime,
    touched: dict[str, set[date]],
) -> set[date]:
    """Days a gate run touched since the last tick (also put in ``touched``), and days that fell due."""
    assert dataset.delivery is not None
    days: set[date] = set()
    touched[dataset.name] = set()
    if dataset.name not in storage_ids:
        # First tick: start after the newest gate run instead of re-judging the whole history (the look-back
        # window below is judged anyway); older days are judged again when a gate run touches them.
        newest = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=zone_key(ARCHIVE, dataset)), limit=1, ascending=False
        ).records
        storage_ids[dataset.name] = newest[0].storage_id if newest else 0
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=zone_key(ARCHIVE, dataset), after_storage_id=storage_ids.get(dataset.name)),
        limit=RECORDS_PER_TICK,
        ascending=True,
    ).records
    for record in records:
        if record.partition_key:
            days.add(date.fromisoformat(record.partition_key))
            touched[dataset.name].add(date.fromisoformat(record.partition_key))
        storage_ids[dataset.name] = record.storage_id
    today = now.astimezone(UTC).date()
    for offset in range(LOOKBACK_DAYS, -1, -1):
        day = today - timedelta(days=offset)
        due = dataset.delivery.due_at(day).timestamp()
        if day < start_date() or due > now.timestamp():
            continue
        if f"{dataset.name}/{day}" not in states or last_tick is None or due > last_tick:
            days.add(day)
    return days


def _record(instance: dg.DagsterInstance, evaluation: dg.AssetCheckEvaluation, warn: Callable[[str], object]) -> bool:
    """Record a runless check result; False (logged) when Dagster refuses a second one for the partition."""
    try:
        instance.report_runless_asset_event(evaluation)
    except Exception as error:  # noqa: BLE001 - see the module docstring: one runless result per partition
        warn(f"Dagster kept its earlier result for {evaluation.partition} ({type(error).__name__}); alerting anyway")
        return False
    return True


def tick_summary(judged: dict[str, str], recorded: int, sent: list[str], destination: str, failure: str | None) -> str:
    """What a tick did, in the words the sensor's tick history shows (it requests no run: "0 runs" said nothing).

    ``judged`` maps ``<dataset>/<day>`` to the state found; ``sent`` lists ``<dataset>/<day>: <state>``.
    """
    if not judged:
        parts = ["nothing to judge: no gate run since the last tick and no day fell due"]
    else:
        counts: dict[str, int] = {}
        for state in judged.values():
            counts[state] = counts.get(state, 0) + 1
        states = ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
        failing = [f"{group} {state}" for group, state in sorted(judged.items()) if state in (LATE, SUSPICIOUS)]
        parts = [f"judged {len(judged)} day(s): {states}" + (f" ({'; '.join(failing)})" if failing else "")]
    if recorded:
        parts.append(f"recorded {recorded} check result(s) for days that fell due without a gate run")
    parts.append(f"sent {len(sent)} alert(s) to {destination} ({'; '.join(sent)})" if sent else "no new alert")
    if failure:
        parts.append(f"stopped: {failure}; retried next tick")
    return "; ".join(parts)


def build_delivery_sensor(*, clock: Clock | None = None, minimum_interval_seconds: int = 300) -> dg.SensorDefinition:
    now_of = clock or (lambda: datetime.now(UTC))
    judged = [d for d in DATASETS.values() if d.delivery is not None]
    checks = {d.name: delivery_check(d) for d in judged}

    @dg.sensor(
        name=DELIVERY_SENSOR_NAME,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Judges each day of "
        + ", ".join(d.name for d in judged)
        + " against its contract's expected deliveries when it falls due or a gate run touches it: records the "
        "expected_deliveries check and alerts once per (dataset, day, state) when late or suspicious.",
    )
    def delivery_expectations(
        context: dg.SensorEvaluationContext, lake: LakeResource, alerts: AlertsResource
    ) -> dg.SensorResult:
        now = now_of()
        cursor = json.loads(context.cursor) if context.cursor else {}
        states: dict[str, str] = cursor.get("states", {})
        storage_ids: dict[str, int] = cursor.get("storage_ids", {})
        store = lake.store()
        destination = alerts.destination(context.log.warning)
        recorded = 0
        touched: dict[str, set[date]] = {}
        sent: list[str] = []
        judged_states: dict[str, str] = {}
        failure: str | None = None
        for dataset in judged:
            days = days_to_judge(context.instance, dataset, states, storage_ids, cursor.get("at"), now, touched)
            for day in sorted(days):
                result = evaluate(store, dataset, day, now)
                group = f"{dataset.name}/{day.isoformat()}"
                judged_states[group] = result.state
                fell_due = states.get(group) != result.state and day not in touched[dataset.name]
                if fell_due and _record(
                    context.instance,
                    checks[dataset.name].evaluation(zone_key(ARCHIVE, dataset), result, day),
                    context.log.warning,
                ):
                    recorded += 1
                alert = DeliveryAlert(result)
                if failure is None and _worth_alerting(store, result) and _claim(store, alert):
                    try:
                        destination.send(alert)
                        sent.append(f"{group}: {result.state}")
                    except Exception as error:  # noqa: BLE001 - retried on the next tick
                        store.delete(marker_key(dataset.name, day, result.state))
                        failure = f"{destination.name} refused the alert for {group} ({result.state}): {error}"
                        continue  # not recorded as that state: the next tick judges and alerts again
                states[group] = result.state
        oldest = (now - timedelta(days=KEEP_STATES_DAYS)).date().isoformat()
        states = {g: s for g, s in states.items() if g.split("/", 1)[1] >= oldest or s not in (COMPLETE, PENDING)}
        summary = tick_summary(judged_states, recorded, sent, destination.name, failure)
        (context.log.error if failure else context.log.info)(summary)
        return dg.SensorResult(
            cursor=json.dumps({"states": states, "storage_ids": storage_ids, "at": now.timestamp()}, sort_keys=True),
            skip_reason=dg.SkipReason(summary),
        )

    return delivery_expectations
