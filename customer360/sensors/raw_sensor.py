"""The raw/ sensor: every new object in raw/ becomes exactly one gate run for its (dataset, day).

Why not Dagster's ``dagster_aws.s3.sensor.get_objects``: it lists the whole bucket on every tick and its
"last key" cursor breaks once objects are deleted, and the gate deletes every raw object it moves. This
sensor instead:

* lists, on ordinary ticks, only ``raw/<dataset>/<YYYY-MM-DD>/`` for the last ``lookback_days`` days and
  today, plus the dataset folders of raw/ (one delimiter listing) so an unknown dataset is noticed at once;
* every ``reconcile_minutes`` (and on the first tick, and while a backlog is left) lists all of raw/ to
  catch anything older: files landed late beyond the window, keys with impossible dates;
* remembers in its cursor the *identities* (key + ETag + size) it has requested, per (dataset, day),
  pruned to what is still listed. Deleted objects therefore drop out of the cursor, and a resend of the
  same key with new content is a new identity, hence a new run;
* requests one run per (dataset, day), keyed by a hash of the sorted identities of that day's files, so
  two files of one day in one tick are one run and a tick that sees the same files launches nothing;
* caps the runs per tick (oldest day first); what is left is not marked as seen and waits for the next.

Each run materializes ``raw/<dataset>``, ``archive/<dataset>`` and ``rejected/<dataset>`` for the day and
carries the tag ``customer360/gate: <dataset>/<day>``, which dagster.yaml limits to one run at a time per
value, so two gate runs for the same dataset and day never move the same files at once. Objects under
raw/ that route nowhere request the ``reject_unroutable_raw_files`` job, once per identity.

Without ``from __future__ import annotations``: Dagster rejects a string annotation on ``context``.
"""

import hashlib
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import dagster as dg

from customer360.contracts import DATASETS
from customer360.ingest.gate import route
from customer360.lake import layout
from customer360.lake.resource import LakeResource
from customer360.lake.store import LakeStore, ObjectInfo
from customer360.partitions import start_date

if TYPE_CHECKING:  # what define_asset_job returns; not exported at dagster's top level
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

RAW_SENSOR_NAME = "raw_files_sensor"
GATE_JOB_NAME = "ingest_raw_files"
GATE_TAG = "customer360/gate"
CURSOR_VERSION = 1

Clock = Callable[[], datetime]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


@dataclass(frozen=True)
class RawSensorSettings:
    """How the sensor looks at raw/; each field has an environment variable (see README)."""

    lookback_days: int = 7
    max_runs_per_tick: int = 50
    reconcile_minutes: float = 60.0
    minimum_interval_seconds: int = 30

    @classmethod
    def from_env(cls) -> "RawSensorSettings":
        return cls(
            lookback_days=_env_int("CUSTOMER360_SENSOR_LOOKBACK_DAYS", cls.lookback_days),
            max_runs_per_tick=_env_int("CUSTOMER360_SENSOR_MAX_RUNS_PER_TICK", cls.max_runs_per_tick),
            reconcile_minutes=float(_env_int("CUSTOMER360_SENSOR_RECONCILE_MINUTES", int(cls.reconcile_minutes))),
            minimum_interval_seconds=_env_int("CUSTOMER360_SENSOR_INTERVAL_SECONDS", cls.minimum_interval_seconds),
        )


def identity(info: ObjectInfo) -> str:
    """A short, stable digest of what makes an arrival distinct: key, ETag and size."""
    return hashlib.sha256(f"{info.key}\n{info.etag}\n{info.size}".encode()).hexdigest()[:16]


def _digest(identities: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(identities)).encode()).hexdigest()[:20]


@dataclass
class RawCursor:
    """The sensor's memory between ticks, serialized as compact JSON.

    ``seen`` maps ``<dataset>/<day>`` to the identities already requested for that day; ``unroutable``
    holds the identities already sent to the unroutable job. Both only ever hold objects that were still
    in raw/ the last time their prefix was listed.
    """

    seen: dict[str, set[str]] = field(default_factory=dict)
    unroutable: set[str] = field(default_factory=set)
    full_scan_at: float | None = None
    backlog: bool = False
    ticks: int = 0
    last: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, text: str | None) -> "RawCursor":
        if not text:
            return cls()
        data = json.loads(text)
        if data.get("v") != CURSOR_VERSION:
            return cls()  # an unknown layout: start over with a full scan (run keys still dedupe)
        return cls(
            seen={group: set(ids) for group, ids in data.get("seen", {}).items()},
            unroutable=set(data.get("unroutable", [])),
            full_scan_at=data.get("full_scan_at"),
            backlog=bool(data.get("backlog", False)),
            ticks=int(data.get("ticks", 0)),
            last=dict(data.get("last", {})),
        )

    def dump(self) -> str:
        data = {
            "v": CURSOR_VERSION,
            "seen": {group: sorted(ids) for group, ids in sorted(self.seen.items()) if ids},
            "unroutable": sorted(self.unroutable),
            "full_scan_at": self.full_scan_at,
            "backlog": self.backlog,
            "ticks": self.ticks,
            "last": self.last,
        }
        return json.dumps(data, separators=(",", ":"))


@dataclass
class TickPlan:
    """What one tick saw and decided; ``summary`` is what the tick reports."""

    run_requests: list[dg.RunRequest]
    cursor: RawCursor
    summary: dict[str, Any]


def _group(dataset: str, day: date) -> str:
    return f"{dataset}/{day.isoformat()}"


def _window(today: date, lookback_days: int) -> list[date]:
    return [today - timedelta(days=offset) for offset in range(lookback_days, -1, -1)]


def gate_run_request(dataset: str, day: date, identities: Iterable[str], files: int) -> dg.RunRequest:
    """The one run that moves a (dataset, day)'s raw files; its run_key names exactly those files."""
    partition = day.isoformat()
    return dg.RunRequest(
        run_key=f"gate:{dataset}/{partition}:{_digest(identities)}",
        job_name=GATE_JOB_NAME,
        asset_selection=[dg.AssetKey([zone, dataset]) for zone in ("raw", "archive", "rejected")],
        partition_key=partition,
        tags={GATE_TAG: f"{dataset}/{partition}", "customer360/raw_files": str(files)},
    )


def plan_tick(
    store: LakeStore,
    cursor: RawCursor,
    now: datetime,
    settings: RawSensorSettings,
    unroutable_job_name: str,
) -> TickPlan:
    """List what this tick must, and turn what is new into bounded, deduplicated run requests."""
    started = time.perf_counter()
    today = now.astimezone(UTC).date()
    first_day = start_date()
    full = (
        cursor.full_scan_at is None
        or cursor.backlog
        or now.timestamp() - cursor.full_scan_at >= settings.reconcile_minutes * 60
    )
    window = set(_window(today, settings.lookback_days))

    listing: list[ObjectInfo] = []
    prefixes_listed = 0
    if full:
        listing.extend(store.list("raw/"))
        prefixes_listed = 1
    else:
        dataset_folders = store.list_prefixes("raw/")
        prefixes_listed += 1
        for folder in dataset_folders:
            if folder.removeprefix("raw/").rstrip("/") not in DATASETS:
                listing.extend(store.list(folder))
                prefixes_listed += 1
        for name in DATASETS:
            for day in sorted(window):
                listing.extend(store.list(layout.raw_prefix(name, day)))
                prefixes_listed += 1

    groups: dict[tuple[date, str], dict[str, ObjectInfo]] = defaultdict(dict)
    unroutable: dict[str, ObjectInfo] = {}
    skipped: Counter[str] = Counter()
    for info in listing:
        dataset, day, reason = route(info.key)
        if reason is not None or dataset is None or day is None:
            unroutable[identity(info)] = info
        elif day < first_day:
            # A valid key but no partition to run: reported every tick until someone moves it.
            skipped["before_first_partition"] += 1
        elif day > today:
            skipped["future_day_waits"] += 1  # its partition appears when the day begins (UTC)
        else:
            groups[(day, dataset.name)][identity(info)] = info

    def covered(group: str) -> bool:
        """Whether this tick's listing would have shown the group's files had they still been there."""
        return full or date.fromisoformat(group.split("/", 1)[1]) in window

    seen = {g: ids for g, ids in cursor.seen.items() if not covered(g)}
    for (day, name), files in groups.items():
        still_listed = cursor.seen.get(_group(name, day), set()) & files.keys()
        if still_listed:
            seen[_group(name, day)] = still_listed

    runs: list[dg.RunRequest] = []
    new_files = 0
    seen_unroutable = (cursor.unroutable & unroutable.keys()) if full else set(cursor.unroutable)
    fresh_unroutable = unroutable.keys() - cursor.unroutable
    if fresh_unroutable and settings.max_runs_per_tick > 0:
        runs.append(
            dg.RunRequest(
                run_key=f"unroutable:{_digest(unroutable)}",
                job_name=unroutable_job_name,
                tags={"customer360/raw_files": str(len(unroutable))},
            )
        )
        seen_unroutable |= unroutable.keys()
        new_files += len(fresh_unroutable)
    skipped["already_requested"] += len(unroutable.keys() & cursor.unroutable)

    deferred = 0
    for day, name in sorted(groups):
        files = groups[(day, name)]
        group = _group(name, day)
        fresh = files.keys() - cursor.seen.get(group, set())
        skipped["already_requested"] += len(files) - len(fresh)
        if not fresh:
            continue
        if len(runs) >= settings.max_runs_per_tick:
            deferred += 1
            skipped["deferred_to_next_tick"] += len(fresh)
            continue
        runs.append(gate_run_request(name, day, files.keys(), len(files)))
        seen[group] = set(files)
        new_files += len(fresh)

    next_cursor = RawCursor(
        seen=seen,
        unroutable=seen_unroutable,
        full_scan_at=now.timestamp() if full else cursor.full_scan_at,
        # A full scan cut short by the cap may have left days outside the window: scan fully again.
        backlog=full and deferred > 0,
        ticks=cursor.ticks + 1,
    )
    summary: dict[str, Any] = {
        "mode": "full_scan" if full else "window",
        "prefixes_listed": prefixes_listed,
        "objects_listed": len(listing),
        "new_files": new_files,
        "runs_requested": len(runs),
        "days_deferred": deferred,
        "skipped": dict(sorted(skipped.items())),
        "seconds": round(time.perf_counter() - started, 3),
    }
    next_cursor.last = summary
    return TickPlan(runs, next_cursor, summary)


def build_gate_job() -> "UnresolvedAssetJobDefinition":
    """The job the sensor's runs belong to: the gate (raw, archive, rejected) of every dataset."""
    keys = [dg.AssetKey([zone, name]) for name in DATASETS for zone in ("raw", "archive", "rejected")]
    return dg.define_asset_job(
        GATE_JOB_NAME,
        selection=dg.AssetSelection.assets(*keys),
        description="Move one dataset's raw files of one day to archive/ or rejected/ (what the raw sensor runs).",
    )


def build_raw_sensor(
    gate_job: "UnresolvedAssetJobDefinition",
    unroutable_job: "UnresolvedAssetJobDefinition",
    *,
    settings: RawSensorSettings | None = None,
    clock: Clock | None = None,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """The raw/ sensor over whichever lake the ``lake`` resource points at (folder or S3)."""
    settings = settings or RawSensorSettings.from_env()
    now = clock or (lambda: datetime.now(UTC))
    unroutable_job_name = unroutable_job.name

    @dg.sensor(
        name=RAW_SENSOR_NAME,
        jobs=[gate_job, unroutable_job],
        minimum_interval_seconds=settings.minimum_interval_seconds,
        default_status=default_status,
        description=f"Turns new objects in raw/ into one gate run per (dataset, day); lists the last "
        f"{settings.lookback_days} days each tick and all of raw/ every {settings.reconcile_minutes:g} minutes; "
        f"at most {settings.max_runs_per_tick} runs per tick.",
    )
    def raw_files_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
        plan = plan_tick(lake.store(), RawCursor.load(context.cursor), now(), settings, unroutable_job_name)
        context.log.info("raw/ tick: %s", json.dumps(plan.summary))
        if not plan.run_requests:
            return dg.SensorResult(
                skip_reason=dg.SkipReason(
                    f"no new files in raw/ ({plan.summary['mode']}: {plan.summary['objects_listed']} objects "
                    f"listed under {plan.summary['prefixes_listed']} prefixes; skipped {plan.summary['skipped']})"
                ),
                cursor=plan.cursor.dump(),
            )
        return dg.SensorResult(run_requests=plan.run_requests, cursor=plan.cursor.dump())

    return raw_files_sensor
