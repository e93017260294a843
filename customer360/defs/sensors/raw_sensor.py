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

With S3 event notifications on (``CUSTOMER360_RAW_DISCOVERY=notifications``), each tick also reads the
SQS queue the bucket notifies (``customer360.defs.sensors.notifications``): every message names a
``raw/<dataset>/<day>/`` folder that the tick lists and plans like any other, so a file of any date is
requested on the next tick with the listing's own run key, and the listing (window every
``listing_minutes``, full scan every ``reconcile_minutes``, both longer in that mode) is the safety net.

What waits is visible: each (dataset, day) the tick lists is reported as an observation of
``raw/<dataset>`` for that day (files waiting, bytes, the oldest file's age) when what waits changes, and on
every full scan while files still wait (``waiting_observations``).

Each run materializes ``raw/<dataset>``, ``archive/<dataset>`` and ``rejected/<dataset>`` for the day and
carries the tag ``customer360/gate: <dataset>/<day>``, which dagster.yaml limits to one run at a time per
value, so two gate runs for the same dataset and day never move the same files at once. Objects under
raw/ that route nowhere request the ``reject_unroutable_raw_files`` job, once per identity.

Without ``from __future__ import annotations``: Dagster rejects a string annotation on ``context``.
"""

import hashlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from customer360.contracts import DATASETS
from customer360.defs.assets.rejections import code
from customer360.defs.keys import GATE_JOB_NAME, GATE_TAG, RAW, RAW_FILES_TAG, RAW_SENSOR_NAME, gate_keys, zone_key
from customer360.defs.partitions import start_date
from customer360.defs.resources.lake import LakeResource
from customer360.defs.sensors.notifications import Hints, QueueSettings, RawQueue, hints_of, require_s3
from customer360.lake import layout
from customer360.lake.routing import route
from customer360.lake.store import LakeStore, ObjectInfo
from customer360.settings import (
    SENSOR_INTERVAL_ENV,
    SENSOR_LISTING_MINUTES_ENV,
    SENSOR_LOOKBACK_DAYS_ENV,
    SENSOR_MAX_RUNS_PER_TICK_ENV,
    SENSOR_RECONCILE_MINUTES_ENV,
    env_int,
)

if TYPE_CHECKING:  # what define_asset_job returns; not exported at dagster's top level
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

CURSOR_VERSION = 1

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class RawSensorSettings:
    """How the sensor looks at raw/; each field has an environment variable (see README)."""

    lookback_days: int = 7
    max_runs_per_tick: int = 50
    reconcile_minutes: float = 60.0
    minimum_interval_seconds: int = 30
    listing_minutes: float = 0.0  # how often the look-back window is listed; 0 = every tick

    @classmethod
    def from_env(cls, *, notifications: bool = False) -> "RawSensorSettings":
        """With notifications on, listing is only the safety net: window every 15 min, full scan every 6 h."""
        reconcile, listing = (360, 15) if notifications else (int(cls.reconcile_minutes), int(cls.listing_minutes))
        return cls(
            lookback_days=env_int(SENSOR_LOOKBACK_DAYS_ENV, cls.lookback_days),
            max_runs_per_tick=env_int(SENSOR_MAX_RUNS_PER_TICK_ENV, cls.max_runs_per_tick),
            reconcile_minutes=float(env_int(SENSOR_RECONCILE_MINUTES_ENV, reconcile)),
            minimum_interval_seconds=env_int(SENSOR_INTERVAL_ENV, cls.minimum_interval_seconds),
            listing_minutes=float(env_int(SENSOR_LISTING_MINUTES_ENV, listing)),
        )


def identity(info: ObjectInfo) -> str:
    """A short, stable digest of what makes an arrival distinct: key, ETag, size and modification time.

    The time matters for an identical resend under the same key after the gate moved the first copy:
    without it the resend would get the first arrival's run key, which Dagster skips as already run.
    """
    stamp = info.last_modified.isoformat() if info.last_modified else ""
    return hashlib.sha256(f"{info.key}\n{info.etag}\n{info.size}\n{stamp}".encode()).hexdigest()[:16]


def _digest(identities: Iterable[str], retired: dict[str, list[float]] | None = None) -> str:
    """The run key's digest of the files a run moves; a resend of a moved file counts which arrival it is."""
    retired = retired or {}
    marked = (f"{i}#{int(retired[i][0])}" if i in retired else i for i in identities)
    return hashlib.sha256("\n".join(sorted(marked)).encode()).hexdigest()[:20]


RETIRED_KEEP_SECONDS = 24 * 3600  # far beyond the one second in which an identical resend could collide


@dataclass
class RawCursor:
    """The sensor's memory between ticks, serialized as compact JSON.

    ``seen`` maps ``<dataset>/<day>`` to the identities already requested for that day; ``unroutable``
    holds the identities already sent to the unroutable job. Both only ever hold objects that were still
    in raw/ the last time their prefix was listed. ``pending`` holds, with notifications on, the queue
    messages whose runs this tick requested: ``{"k": run key, "g": group, "h": [receipt handles]}``,
    deleted by the next tick once those runs exist.
    """

    seen: dict[str, set[str]] = field(default_factory=dict)
    unroutable: set[str] = field(default_factory=set)
    full_scan_at: float | None = None
    window_at: float | None = None
    backlog: bool = False
    ticks: int = 0
    last: dict[str, Any] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)
    observed: dict[str, str] = field(default_factory=dict)  # group -> files last reported waiting (digest)
    # identity -> [times it left raw/, when it last left (epoch s)]: an identical resend in the same second
    # (S3 lists modification times in whole seconds) must not reuse the run key of the copy the gate moved.
    retired: dict[str, list[float]] = field(default_factory=dict)

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
            window_at=data.get("window_at"),
            backlog=bool(data.get("backlog", False)),
            ticks=int(data.get("ticks", 0)),
            last=dict(data.get("last", {})),
            pending=list(data.get("pending", [])),
            observed=dict(data.get("observed", {})),
            retired={i: [float(v) for v in entry] for i, entry in data.get("retired", {}).items()},
        )

    def dump(self) -> str:
        data = {
            "v": CURSOR_VERSION,
            "seen": {group: sorted(ids) for group, ids in sorted(self.seen.items()) if ids},
            "unroutable": sorted(self.unroutable),
            "full_scan_at": self.full_scan_at,
            "window_at": self.window_at,
            "backlog": self.backlog,
            "ticks": self.ticks,
            "last": self.last,
        }
        if self.pending:
            data["pending"] = self.pending
        if self.observed:
            data["observed"] = dict(sorted(self.observed.items()))
        if self.retired:
            data["retired"] = dict(sorted(self.retired.items()))
        return json.dumps(data, separators=(",", ":"))


@dataclass
class TickPlan:
    """What one tick saw and decided; ``summary`` is what the tick reports."""

    run_requests: list[dg.RunRequest]
    cursor: RawCursor
    summary: dict[str, Any]
    run_keys: dict[str, str] = field(default_factory=dict)  # group (or UNROUTABLE_GROUP) -> run key requested
    deferred: set[str] = field(default_factory=set)  # groups with new files left for the next tick by the cap
    observations: list[dg.AssetObservation] = field(default_factory=list)  # what waits in raw/, per day


UNROUTABLE_GROUP = "_unroutable"


def _group(dataset: str, day: date) -> str:
    return f"{dataset}/{day.isoformat()}"


def _window(today: date, lookback_days: int) -> list[date]:
    return [today - timedelta(days=offset) for offset in range(lookback_days, -1, -1)]


def gate_run_request(
    dataset: str, day: date, identities: Iterable[str], files: int, retired: dict[str, list[float]] | None = None
) -> dg.RunRequest:
    """The one run that moves a (dataset, day)'s raw files; its run_key names exactly those files."""
    partition = day.isoformat()
    return dg.RunRequest(
        run_key=f"gate:{dataset}/{partition}:{_digest(identities, retired)}",
        job_name=GATE_JOB_NAME,
        asset_selection=gate_keys(dataset),
        partition_key=partition,
        tags={GATE_TAG: f"{dataset}/{partition}", RAW_FILES_TAG: str(files)},
    )


@dataclass(frozen=True)
class TickScope:
    """What a tick lists: all of raw/ (a full scan), the look-back window, or only what notifications name."""

    today: date
    first_day: date
    full: bool
    list_window: bool
    window: frozenset[date]

    @classmethod
    def of(cls, cursor: RawCursor, now: datetime, settings: RawSensorSettings) -> "TickScope":
        """A full scan on the first tick, while a backlog is left, and every ``reconcile_minutes``; the window
        every ``listing_minutes`` (every tick when 0) and with every full scan."""
        today = now.astimezone(UTC).date()
        full = _due(cursor.full_scan_at, now, settings.reconcile_minutes) or cursor.backlog
        list_window = full or settings.listing_minutes <= 0 or _due(cursor.window_at, now, settings.listing_minutes)
        return cls(today, start_date(), full, list_window, frozenset(_window(today, settings.lookback_days)))

    def has_partition(self, day: date) -> bool:
        return self.first_day <= day <= self.today


def _due(last: float | None, now: datetime, every_minutes: float) -> bool:
    return last is None or now.timestamp() - last >= every_minutes * 60


@dataclass
class Listing:
    """What a tick listed under raw/, and which (dataset, day) groups that listing covers."""

    scope: TickScope
    objects: list[ObjectInfo] = field(default_factory=list)
    prefixes_listed: int = 0
    hinted: set[str] = field(default_factory=set)  # groups listed because a notification named them

    def add(self, objects: Iterable[ObjectInfo]) -> None:
        """The objects of one more listed prefix."""
        self.objects.extend(objects)
        self.prefixes_listed += 1

    def covered(self, group: str) -> bool:
        """Whether this tick's listing would have shown the group's files had they still been there."""
        day = date.fromisoformat(group.split("/", 1)[1])
        return self.scope.full or group in self.hinted or (self.scope.list_window and day in self.scope.window)


def list_raw(store: LakeStore, scope: TickScope, hints: Hints | None) -> Listing:
    """List what ``scope`` says, plus the day folders and unroutable objects ``hints`` name."""
    listing = Listing(scope)
    if scope.full:
        listing.add(store.list("raw/"))
    elif scope.list_window:
        _list_window(store, listing)
    if hints is not None and not scope.full:
        _list_hinted(store, hints, listing)
    return listing


def _list_window(store: LakeStore, listing: Listing) -> None:
    """The window's day folders of every dataset, and all of any dataset folder no contract declares."""
    dataset_folders = store.list_prefixes("raw/")
    listing.prefixes_listed += 1
    for folder in dataset_folders:
        if folder.removeprefix("raw/").rstrip("/") not in DATASETS:
            listing.add(store.list(folder))
    for name in DATASETS:
        for day in sorted(listing.scope.window):
            listing.add(store.list(layout.raw_prefix(name, day)))


def _list_hinted(store: LakeStore, hints: Hints, listing: Listing) -> None:
    scope = listing.scope
    for name, day in sorted(hints.days, key=lambda d: (d[1], d[0])):
        if (scope.list_window and day in scope.window) or not scope.has_partition(day):
            continue  # listed above already, or routed below to its skip reason by the listing that sees it
        listing.add(store.list(layout.raw_prefix(name, day)))
        listing.hinted.add(_group(name, day))
    listing.objects.extend(hints.unroutable)


@dataclass
class Routed:
    """The listed objects by where they go: a gate run of their (day, dataset), the unroutable job, or nowhere yet."""

    groups: dict[tuple[date, str], dict[str, ObjectInfo]] = field(default_factory=lambda: defaultdict(dict))
    unroutable: dict[str, ObjectInfo] = field(default_factory=dict)  # by identity
    skipped: Counter[str] = field(default_factory=Counter)


def route_listing(objects: Iterable[ObjectInfo], scope: TickScope) -> Routed:
    routed = Routed()
    for info in objects:
        dataset, day, reason = route(info.key)
        if reason is not None or dataset is None or day is None:
            routed.unroutable[identity(info)] = info
        elif day < scope.first_day:
            # A valid key but no partition to run: reported every tick until someone moves it.
            routed.skipped["before_first_partition"] += 1
        elif day > scope.today:
            routed.skipped["future_day_waits"] += 1  # its partition appears when the day begins (UTC)
        else:
            routed.groups[(day, dataset.name)][identity(info)] = info
    return routed


def prune_cursor(
    cursor: RawCursor, routed: Routed, listing: Listing, now: datetime
) -> tuple[dict[str, set[str]], dict[str, list[float]]]:
    """The identities still seen (those this listing covers are kept only while still listed), and the retired ones.

    An identity that left raw/ is retired with a count of its departures, so an identical resend gets a new
    run key (``_digest``); retirements are forgotten after ``RETIRED_KEEP_SECONDS``.
    """
    seen = {g: ids for g, ids in cursor.seen.items() if not listing.covered(g)}
    for (day, name), files in routed.groups.items():
        still_listed = cursor.seen.get(_group(name, day), set()) & files.keys()
        if still_listed:
            seen[_group(name, day)] = still_listed
    retired = {i: entry for i, entry in cursor.retired.items() if now.timestamp() - entry[1] < RETIRED_KEEP_SECONDS}
    gone = {i for g, ids in cursor.seen.items() if listing.covered(g) for i in ids - seen.get(g, set())}
    if listing.scope.full:
        gone |= cursor.unroutable - routed.unroutable.keys()
    for gone_identity in gone:
        retired[gone_identity] = [retired.get(gone_identity, [0.0])[0] + 1, now.timestamp()]
    return seen, retired


@dataclass
class RunRequests:
    """The runs a tick requests, at most ``cap``; groups with new files beyond the cap wait (``deferred``)."""

    cap: int
    runs: list[dg.RunRequest] = field(default_factory=list)
    run_keys: dict[str, str] = field(default_factory=dict)  # group (or UNROUTABLE_GROUP) -> run key requested
    deferred: set[str] = field(default_factory=set)
    new_files: int = 0

    @property
    def full(self) -> bool:
        return len(self.runs) >= self.cap

    def add(self, group: str, request: dg.RunRequest, new_files: int) -> None:
        self.runs.append(request)
        self.run_keys[group] = str(request.run_key)
        self.new_files += new_files


def request_unroutable(
    requests: RunRequests,
    routed: Routed,
    cursor: RawCursor,
    full: bool,
    retired: dict[str, list[float]],
    unroutable_job_name: str,
) -> set[str]:
    """One unroutable-job run when new unroutable objects were listed; returns the unroutable identities seen."""
    unroutable = routed.unroutable
    seen_unroutable = (cursor.unroutable & unroutable.keys()) if full else set(cursor.unroutable)
    fresh = unroutable.keys() - cursor.unroutable
    if fresh and requests.cap > 0:
        request = dg.RunRequest(
            run_key=f"unroutable:{_digest(unroutable, retired)}",
            job_name=unroutable_job_name,
            tags={RAW_FILES_TAG: str(len(unroutable))},
        )
        requests.add(UNROUTABLE_GROUP, request, len(fresh))
        seen_unroutable |= unroutable.keys()
    routed.skipped["already_requested"] += len(unroutable.keys() & cursor.unroutable)
    return seen_unroutable


def request_gates(
    requests: RunRequests,
    routed: Routed,
    cursor: RawCursor,
    seen: dict[str, set[str]],
    retired: dict[str, list[float]],
) -> None:
    """One gate run per (dataset, day) with files not requested before, oldest day first, up to the cap."""
    for day, name in sorted(routed.groups):
        files = routed.groups[(day, name)]
        group = _group(name, day)
        fresh = files.keys() - cursor.seen.get(group, set())
        routed.skipped["already_requested"] += len(files) - len(fresh)
        if not fresh:
            continue
        if requests.full:
            requests.deferred.add(group)
            routed.skipped["deferred_to_next_tick"] += len(fresh)
            continue
        requests.add(group, gate_run_request(name, day, files.keys(), len(files), retired), len(fresh))
        seen[group] = set(files)


def plan_tick(
    store: LakeStore,
    cursor: RawCursor,
    now: datetime,
    settings: RawSensorSettings,
    unroutable_job_name: str,
    hints: Hints | None = None,
) -> TickPlan:
    """List what this tick must, and turn what is new into bounded, deduplicated run requests.

    ``hints`` (from the notifications queue) name day folders to list besides the window, and unroutable
    objects; they are planned exactly like listed ones.
    """
    started = time.perf_counter()
    scope = TickScope.of(cursor, now, settings)
    listing = list_raw(store, scope, hints)
    routed = route_listing(listing.objects, scope)
    seen, retired = prune_cursor(cursor, routed, listing, now)
    requests = RunRequests(settings.max_runs_per_tick)
    seen_unroutable = request_unroutable(requests, routed, cursor, scope.full, retired, unroutable_job_name)
    request_gates(requests, routed, cursor, seen, retired)
    observations, observed = waiting_observations(
        routed.groups, cursor.observed, listing.covered, scope.full, now, requests.deferred
    )
    next_cursor = RawCursor(
        observed=observed,
        seen=seen,
        unroutable=seen_unroutable,
        full_scan_at=now.timestamp() if scope.full else cursor.full_scan_at,
        window_at=now.timestamp() if scope.list_window else cursor.window_at,
        # A full scan cut short by the cap may have left days outside the window: scan fully again.
        backlog=scope.full and bool(requests.deferred),
        ticks=cursor.ticks + 1,
        retired=retired,
    )
    next_cursor.last = tick_summary(scope, listing, routed, requests, observations, started)
    return TickPlan(requests.runs, next_cursor, next_cursor.last, requests.run_keys, requests.deferred, observations)


def tick_summary(
    scope: TickScope,
    listing: Listing,
    routed: Routed,
    requests: RunRequests,
    observations: list[dg.AssetObservation],
    started: float,
) -> dict[str, Any]:
    """What the tick reports (its log line, its skip reason, and the cursor's ``last``)."""
    return {
        "mode": "full_scan" if scope.full else "window" if scope.list_window else "queue",
        "prefixes_listed": listing.prefixes_listed,
        "objects_listed": len(listing.objects),
        "new_files": requests.new_files,
        "runs_requested": len(requests.runs),
        "days_deferred": len(requests.deferred),
        "days_observed": len(observations),
        "skipped": dict(sorted(routed.skipped.items())),
        "seconds": round(time.perf_counter() - started, 3),
    }


def waiting_observations(
    groups: dict[tuple[date, str], dict[str, ObjectInfo]],
    observed: dict[str, str],
    covered: Callable[[str], bool],
    full: bool,
    now: datetime,
    deferred: set[str],
) -> tuple[list[dg.AssetObservation], dict[str, str]]:
    """What waits in ``raw/<dataset>/<day>/``, as observations of the raw asset's day.

    So nobody wonders why nothing runs: the raw asset's page shows, per day, how many files wait, how many
    bytes, and since when. A day is observed when what waits changes (new files, or the gate moved them:
    then once more with 0 waiting), and on every full scan while files still wait, so the age stays
    current without an event per tick.
    """
    events: list[dg.AssetObservation] = []
    still: dict[str, str] = {group: digest for group, digest in observed.items() if not covered(group)}
    waiting = {_group(name, day): (name, day, files) for (day, name), files in groups.items() if files}
    for group, (name, day, files) in sorted(waiting.items()):
        digest = _digest(files)
        still[group] = digest
        if observed.get(group) == digest and not full:
            continue
        infos = sorted(files.values(), key=lambda info: (info.last_modified or now, info.key))
        oldest = infos[0]
        # Clamped: the store's clock (S3) and this host's may disagree by a little.
        age = max(0.0, (now - oldest.last_modified).total_seconds() / 60) if oldest.last_modified else None
        events.append(
            dg.AssetObservation(
                asset_key=zone_key(RAW, name),
                partition=day.isoformat(),
                description=f"{len(infos)} file(s) waiting in raw/",
                metadata={
                    "files_waiting": len(infos),
                    "bytes_waiting": sum(info.size for info in infos),
                    "oldest_waiting_minutes": round(age, 1) if age is not None else "unknown",
                    "oldest_file": dg.MetadataValue.path(oldest.key),
                    "gate_run": "waits for the next tick (run cap)" if group in deferred else "requested",
                    "files": dg.MetadataValue.md(
                        "\n".join(f"- {code(info.key)} ({info.size:,} bytes)" for info in infos[:20])
                        + (f"\n- … and {len(infos) - 20} more" if len(infos) > 20 else "")
                    ),
                },
            )
        )
    for group in sorted(set(observed) - set(waiting)):
        if covered(group):  # listed, and nothing waits any more: say so once
            name, day = group.split("/", 1)
            events.append(
                dg.AssetObservation(
                    asset_key=zone_key(RAW, name),
                    partition=day,
                    description="nothing waiting in raw/",
                    metadata={"files_waiting": 0, "bytes_waiting": 0},
                )
            )
    return events, still


def _group_of(key: str) -> str:
    """The group whose run a message's key joins: ``<dataset>/<day>``, or the unroutable sweep."""
    dataset, day, reason = route(key)
    if reason is None and dataset is not None and day is not None:
        return _group(dataset.name, day)
    return UNROUTABLE_GROUP


def _recorded(instance: dg.DagsterInstance, run_key: str) -> bool:
    """Whether the raw sensor's run with this run key exists (the daemon created it)."""
    tags = {RUN_KEY_TAG: run_key, SENSOR_NAME_TAG: RAW_SENSOR_NAME}
    return bool(instance.get_run_ids(filters=dg.RunsFilter(tags=tags), limit=1))


def plan_queue_tick(
    queue: RawQueue,
    instance: dg.DagsterInstance,
    store: LakeStore,
    cursor: RawCursor,
    now: datetime,
    settings: RawSensorSettings,
    unroutable_job_name: str,
    warn: Callable[[str], object] = print,
) -> TickPlan:
    """A tick with notifications on: acknowledge what is recorded, read the queue, plan, settle each message.

    See ``customer360.defs.sensors.notifications`` for why a message is deleted only on the tick after the one
    that requested its run.
    """
    s3 = require_s3(store)
    acknowledged: list[str] = []
    lost: list[str] = []
    for entry in cursor.pending:
        if _recorded(instance, entry["k"]):
            acknowledged.extend(entry["h"])
        else:
            # No run was recorded under that key: forget the day, so the released messages plan it afresh.
            warn(f"no run with run key {entry['k']} for {entry['g']}: its {len(entry['h'])} message(s) are retried")
            if entry["g"] == UNROUTABLE_GROUP:
                cursor.unroutable.clear()
            else:
                cursor.seen.pop(entry["g"], None)
            lost.extend(entry["h"])
    deleted_after_run = queue.delete(acknowledged)
    queue.release(lost)
    cursor.pending = []

    messages = queue.receive(s3)
    actionable = [m for m in messages if m.dropped is None]
    plan = plan_tick(store, cursor, now, settings, unroutable_job_name, hints_of(actionable, store))

    delete_now: list[str] = []
    release_now: list[str] = []
    pending: dict[str, dict[str, Any]] = {}
    dropped: Counter[str] = Counter()
    for message in messages:
        if message.dropped is not None:
            kind = message.dropped.split(":", 1)[0]
            dropped[kind] += 1
            if kind in ("poison", "redelivered"):  # a test event or an ObjectRemoved is expected traffic
                warn(f"queue message {message.message_id} dropped: {message.dropped}")
            delete_now.append(message.receipt_handle)
            continue
        groups = {_group_of(obj.key) for obj in message.objects}
        if groups & plan.deferred:
            release_now.append(message.receipt_handle)  # its day waits for the run cap: back next tick
        elif requested := [g for g in groups if g in plan.run_keys]:
            for group in requested:
                entry = pending.setdefault(group, {"k": plan.run_keys[group], "g": group, "h": []})
                entry["h"].append(message.receipt_handle)
        else:
            # Already requested by a committed tick, gone from raw/ (moved by the gate), or a day without a
            # partition (a future day is picked up by the window listing once it begins).
            delete_now.append(message.receipt_handle)
    deleted_now = queue.delete(delete_now)
    queue.release(release_now)
    plan.cursor.pending = sorted(pending.values(), key=lambda e: e["g"])
    plan.summary["queue"] = {
        "messages": len(messages),
        "dropped": dict(sorted(dropped.items())),
        "deleted_without_run": deleted_now,
        "deleted_after_run_recorded": deleted_after_run,
        "released": len(release_now) + len(lost),
        "awaiting_run": sum(len(e["h"]) for e in pending.values()),
    }
    plan.cursor.last = plan.summary
    return plan


def build_raw_sensor(
    gate_job: "UnresolvedAssetJobDefinition",
    unroutable_job: "UnresolvedAssetJobDefinition",
    *,
    settings: RawSensorSettings | None = None,
    queue: QueueSettings | None = None,
    clock: Clock | None = None,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """The raw/ sensor over whichever lake the ``lake`` resource points at (folder or S3).

    ``queue`` set: notifications + listing (the queue every tick, the listing as the safety net).
    """
    settings = settings or RawSensorSettings.from_env(notifications=queue is not None)
    now = clock or (lambda: datetime.now(UTC))
    unroutable_job_name = unroutable_job.name
    listing = (
        f"lists the last {settings.lookback_days} days "
        + (f"every {settings.listing_minutes:g} minutes" if settings.listing_minutes > 0 else "each tick")
        + f" and all of raw/ every {settings.reconcile_minutes:g} minutes"
    )
    how = f"reads the S3 notifications queue each tick and {listing} as a safety net" if queue else listing

    @dg.sensor(
        name=RAW_SENSOR_NAME,
        jobs=[gate_job, unroutable_job],
        minimum_interval_seconds=settings.minimum_interval_seconds,
        default_status=default_status,
        description=f"Turns new objects in raw/ into one gate run per (dataset, day); {how}; "
        f"at most {settings.max_runs_per_tick} runs per tick.",
    )
    def raw_files_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
        cursor = RawCursor.load(context.cursor)
        if queue is None:
            plan = plan_tick(lake.store(), cursor, now(), settings, unroutable_job_name)
        else:
            plan = plan_queue_tick(
                RawQueue(queue),
                context.instance,
                lake.store(),
                cursor,
                now(),
                settings,
                unroutable_job_name,
                warn=context.log.warning,
            )
        context.log.info("raw/ tick: %s", json.dumps(plan.summary))
        if not plan.run_requests:
            return dg.SensorResult(
                skip_reason=dg.SkipReason(
                    f"no new files in raw/ ({plan.summary['mode']}: {plan.summary['objects_listed']} objects "
                    f"listed under {plan.summary['prefixes_listed']} prefixes; skipped {plan.summary['skipped']})"
                ),
                cursor=plan.cursor.dump(),
                asset_events=plan.observations,
            )
        return dg.SensorResult(
            run_requests=plan.run_requests, cursor=plan.cursor.dump(), asset_events=plan.observations
        )

    return raw_files_sensor
