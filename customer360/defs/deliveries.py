"""Expected deliveries: did all of a day's files arrive, on time, and about as big as usual?

Each dataset's contract says what a normal day looks like (``Dataset.delivery``: files per day, when they
are due, hourly or not). Per dataset and day this module judges the day from the ledger (files accepted
into archive/, the newest version of each file name, and their rows), the files still waiting in raw/,
and the same ledger for the trailing baseline days:

* ``complete`` - every expected file is in (for hourly datasets: every UTC hour has its file);
* ``pending`` - not complete yet, but not due yet either (passes; the metadata names what is missing);
* ``late`` - due, and files are missing; an hourly dataset names the missing hours;
* ``suspicious`` - complete, but its file count or its rows are under ``suspicious_below`` (50%) of the
  median of the baseline days (the same weekday in the trailing 14 days, days that had files).

Which hour a file holds: upstream names files as it likes, so no single pattern is assumed. In order:
the contract's own ``hour_pattern`` if it declares one; else an hour written next to the day's date in
the name (``usage-2024-01-03T13.csv``, ``cdr_20240103_1300.jsonl.gz``, ``2024010313.csv``) or marked as an
hour (``hour=13``, ``h13``, ``13h00``); else the file's own records: the UTC hour of the contract's
``hour_field`` (``event_ts``) that most of its first 2,000 records fall in (read as a stream, a few hundred
KB at most). A file whose records spread over many hours (a whole-day dump) holds no single hour: the day
is then judged by its file count, and the hours not seen are listed as "not identified".

The check ``expected_deliveries`` (severity WARN) is attached to ``archive/<dataset>`` for datasets that
declare an expectation (plans delivers only on change: none). It runs inside every gate run (the day just
moved), and the ``delivery_expectations`` sensor (``customer360.defs.sensors.deliveries``) records it again when
a day falls due with nothing more arriving, which is how a day with no file at all goes late.

Without ``from __future__ import annotations``: Dagster rejects a string annotation on ``context``.

Why not Dagster's freshness checks (``build_time_partition_freshness_checks``, ``FreshnessPolicy``): they ask
whether the newest partition was materialized by a deadline, per asset; they cannot count a day's files, name
missing hours, judge an older day that got a late file, or compare volumes.
"""

import csv
import gzip
import io
import json
import re
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import PurePosixPath

import dagster as dg

from customer360.contracts import Dataset, ExpectedDelivery
from customer360.defs.assets.days import DayEvent, DayRecord, days_of, record_days
from customer360.defs.checks import Verdict, ZoneCheck
from customer360.defs.keys import ARCHIVE, DELIVERY_CHECK, zone_key
from customer360.defs.partitions import daily_partitions, start_date
from customer360.defs.resources.lake import LakeResource
from customer360.lake import layout
from customer360.lake.ledger import Ledger, current_archive_versions, outstanding_rejections
from customer360.lake.store import LakeStore

COMPLETE, PENDING, LATE, SUSPICIOUS = "complete", "pending", "late", "suspicious"
HOURS = range(24)
SAMPLE_ROWS = 2_000
SAMPLE_BYTES = 4 << 20  # never read more than this of a file to find its hour
MAJORITY = 0.5  # a file "holds" an hour when at least this share of its sampled records fall in it

_HOUR = r"(?P<hour>2[0-3]|[01]\d)"
_AFTER_DATE = re.compile(rf"^[T_\-\s.]?{_HOUR}(?:[-:_.]?[0-5]\d){{0,2}}(?!\d)|^[T_\-\s.](?P<short>\d)(?![\d:])")
_MARKED = (
    re.compile(r"(?i)(?:^|[^a-z0-9])(?:hour|hr|h)[=_\-]?(?P<hour>2[0-3]|[01]?\d)(?!\d)"),
    re.compile(r"(?i)(?<![\d])(?P<hour>2[0-3]|[01]?\d)h(?:[0-5]\d)?(?![a-z])"),
)


def hour_from_name(name: str, day: date, pattern: str | None = None) -> int | None:
    """The UTC hour a file name says it holds, or None when the name does not say it unambiguously."""
    if pattern:
        match = re.search(pattern, name)
        return int(match["hour"]) if match else None
    found: set[int] = set()
    for form in (day.isoformat(), day.strftime("%Y%m%d"), day.strftime("%Y_%m_%d"), day.strftime("%Y.%m.%d")):
        at = name.find(form)
        if at >= 0:
            match = _AFTER_DATE.match(name[at + len(form) :])
            if match:
                found.add(int(match["hour"] or match["short"]))
            name = name[:at] + " " + name[at + len(form) :]  # a date is not an hour marker below
    if not found:
        for marked in _MARKED:
            found |= {int(m["hour"]) for m in marked.finditer(PurePosixPath(name).name)}
    return found.pop() if len(found) == 1 else None


def _records(store: LakeStore, key: str) -> Iterator[dict[str, object]]:
    """The first records of a raw-format file (CSV or JSON Lines, gzip or not), as a bounded stream."""
    with store.open_read(key) as raw:
        binary = gzip.GzipFile(fileobj=raw) if key.lower().endswith(".gz") else raw
        text = io.TextIOWrapper(_Bounded(binary, SAMPLE_BYTES), encoding="utf-8-sig", errors="replace", newline="")
        if ".csv" in key.lower():
            yield from csv.DictReader(text)
        else:
            for line in text:
                if line.strip():
                    record = json.loads(line)
                    if isinstance(record, dict):
                        yield record


class _Bounded(io.RawIOBase):
    """Reads at most ``limit`` bytes of a binary stream (a sample, not the file)."""

    def __init__(self, stream: io.IOBase, limit: int) -> None:
        self.stream, self.left = stream, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.left <= 0:
            return 0
        data = self.stream.read(min(len(buffer), self.left))
        self.left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def hour_from_records(store: LakeStore, key: str, hour_field: str) -> int | None:
    """The UTC hour most of a file's first records fall in (by ``hour_field``), or None if none dominates."""
    hours: Counter[int] = Counter()
    try:
        for n, record in enumerate(_records(store, key)):
            if n >= SAMPLE_ROWS:
                break
            value = record.get(hour_field)
            if isinstance(value, str) and value.strip():
                try:
                    stamp = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
                except ValueError:
                    continue
                hours[(stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).astimezone(UTC).hour] += 1
    except (OSError, EOFError, ValueError, csv.Error, UnicodeError):
        return None  # an unreadable sample says nothing about the hour; the day falls back to counting
    if not hours:
        return None
    hour, count = hours.most_common(1)[0]
    return hour if count >= MAJORITY * sum(hours.values()) else None


@dataclass(frozen=True)
class DeliveredFile:
    name: str  # the upstream file name (corrections share it)
    key: str  # where its bytes are now: archive/ (accepted) or raw/ (waiting for the gate)
    rows: int | None  # None while it waits in raw/
    hour: int | None = None


@dataclass
class DayDelivery:
    """One dataset's deliveries for one day, judged against its expectation at ``now``."""

    dataset: str
    day: date
    state: str
    expected_files: int
    due_at: datetime
    files: list[DeliveredFile]
    missing: int
    missing_hours: list[int] = field(default_factory=list)
    hours_not_identified: list[int] = field(default_factory=list)
    rejected_files: int = 0
    rows: int = 0
    baseline_days: list[str] = field(default_factory=list)
    baseline_files: float | None = None
    baseline_rows: float | None = None
    thin: list[str] = field(default_factory=list)  # what is under the baseline share: "files", "rows"

    @property
    def passed(self) -> bool:
        return self.state in (COMPLETE, PENDING)

    @property
    def waiting_in_raw(self) -> int:
        return len([f for f in self.files if f.rows is None])

    @property
    def description(self) -> str:
        count = f"{len(self.files)} of {self.expected_files} file(s)"
        due = self.due_at.strftime("%Y-%m-%d %H:%M UTC")
        if self.state == LATE:
            hours = f"; missing hour(s) {_hours(self.missing_hours)}" if self.missing_hours else ""
            unsure = f"; hours not identified: {_hours(self.hours_not_identified)}" if self.hours_not_identified else ""
            return f"late: {count} by {due}{hours}{unsure}"
        if self.state == PENDING:
            hours = f"; so far missing hour(s) {_hours(self.missing_hours)}" if self.missing_hours else ""
            return f"pending: {count} so far, due {due}{hours}"
        if self.state == SUSPICIOUS:
            return f"suspicious: {' and '.join(self._thin_text())} (same weekday, trailing days: {self.baseline_days})"
        return f"complete: {count}, {self.rows:,} rows"

    def _thin_text(self) -> list[str]:
        parts = []
        if "files" in self.thin:
            parts.append(f"{len(self.files)} file(s) vs a median of {self.baseline_files:g}")
        if "rows" in self.thin:
            parts.append(f"{self.rows:,} rows vs a median of {self.baseline_rows:,.0f}")
        return parts

    def metadata(self) -> dict[str, object]:
        return {
            "state": self.state,
            "files": len(self.files),
            "expected_files": self.expected_files,
            "missing_files": self.missing,
            "missing_hours": dg.MetadataValue.json(self.missing_hours),
            "hours_not_identified": dg.MetadataValue.json(self.hours_not_identified),
            "due_at": self.due_at.isoformat(),
            "rows": self.rows,
            "waiting_in_raw": self.waiting_in_raw,
            "rejected_files": self.rejected_files,
            "baseline_days": dg.MetadataValue.json(self.baseline_days),
            "baseline_median_files": self.baseline_files if self.baseline_files is not None else "no baseline",
            "baseline_median_rows": self.baseline_rows if self.baseline_rows is not None else "no baseline",
            "file_hours": dg.MetadataValue.json({f.name: f.hour for f in self.files}),
        }

    def verdict(self) -> Verdict:
        return Verdict(self.passed, self.description, self.metadata())


def _hours(hours: list[int]) -> str:
    return ", ".join(f"{h:02d}" for h in hours)


def _delivered(store: LakeStore, ledger: Ledger, dataset: Dataset, day: date) -> tuple[list[DeliveredFile], int]:
    """The day's accepted files (newest version of each name) plus those waiting in raw/; rejected count."""
    entries = ledger.entries(dataset.name, day)
    files = {
        e.source_name: DeliveredFile(e.source_name, str(e.destination_key), e.rows or 0)
        for e in current_archive_versions(entries)
    }
    for info in store.list(layout.raw_prefix(dataset.name, day)):
        name = info.key.removeprefix(layout.raw_prefix(dataset.name, day))
        files.setdefault(name, DeliveredFile(name, info.key, None))
    return sorted(files.values(), key=lambda f: f.name), len(outstanding_rejections(entries))


def _with_hours(
    store: LakeStore, expectation: ExpectedDelivery, day: date, files: list[DeliveredFile]
) -> list[DeliveredFile]:
    located = []
    for f in files:
        hour = hour_from_name(f.name, day, expectation.hour_pattern)
        if hour is None and expectation.hour_field:
            hour = hour_from_records(store, f.key, expectation.hour_field)
        located.append(DeliveredFile(f.name, f.key, f.rows, hour))
    return located


def baseline(ledger: Ledger, dataset: Dataset, day: date) -> tuple[list[str], float | None, float | None]:
    """The trailing days a day is compared with (those that had files), and their median files and rows."""
    expectation = dataset.delivery
    assert expectation is not None
    days = [
        day - timedelta(days=k)
        for k in range(1, expectation.baseline_days + 1)
        if (not expectation.same_weekday or k % 7 == 0) and day - timedelta(days=k) >= start_date()
    ]
    counted = []
    for other in days:
        current = current_archive_versions(ledger.entries(dataset.name, other))
        if current:  # a day without files is an outage, not a normal day
            counted.append((other, len(current), sum(e.rows or 0 for e in current)))
    if not counted:
        return [], None, None
    return (
        [d.isoformat() for d, _, _ in counted],
        float(statistics.median(n for _, n, _ in counted)),
        float(statistics.median(r for _, _, r in counted)),
    )


def evaluate(store: LakeStore, dataset: Dataset, day: date, now: datetime) -> DayDelivery:
    """Judge one dataset's day against its contract's expectation, as of ``now``."""
    expectation = dataset.delivery
    if expectation is None:
        raise ValueError(f"{dataset.name} declares no expected deliveries")
    ledger = Ledger(store)
    files, rejected = _delivered(store, ledger, dataset, day)
    missing_hours: list[int] = []
    unsure: list[int] = []
    if expectation.hourly:
        files = _with_hours(store, expectation, day, files)
        uncovered = sorted(set(HOURS) - {f.hour for f in files if f.hour is not None})
        unknown = len([f for f in files if f.hour is None])
        # Files whose hour is not known may fill uncovered hours: count them, but do not name hours then.
        missing = max(0, len(uncovered) - unknown)
        missing_hours, unsure = (uncovered, []) if unknown == 0 else ([], uncovered if missing else [])
    else:
        missing = max(0, expectation.files - len(files))
    due_at = expectation.due_at(day)
    result = DayDelivery(
        dataset=dataset.name,
        day=day,
        state=PENDING,
        expected_files=expectation.files,
        due_at=due_at,
        files=files,
        missing=missing,
        missing_hours=missing_hours,
        hours_not_identified=unsure,
        rejected_files=rejected,
        rows=sum(f.rows or 0 for f in files),
    )
    if missing:
        result.state = LATE if now >= due_at else PENDING
        return result
    result.baseline_days, result.baseline_files, result.baseline_rows = baseline(ledger, dataset, day)
    share = expectation.suspicious_below
    if result.baseline_files is not None and len(files) < share * result.baseline_files:
        result.thin.append("files")
    # Rows are known only once the gate has counted them: not while files wait in raw/.
    if result.baseline_rows and not result.waiting_in_raw and result.rows < share * result.baseline_rows:
        result.thin.append("rows")
    result.state = SUSPICIOUS if result.thin else COMPLETE
    return result


def delivery_check(dataset: Dataset) -> ZoneCheck[DayDelivery]:
    """``expected_deliveries`` of a dataset whose contract declares them (advisory: WARN)."""
    expectation = dataset.delivery
    assert expectation is not None
    return ZoneCheck(
        DELIVERY_CHECK,
        f"Warns when the day's files are late ({expectation.files} expected, due {expectation.due_after_day} after "
        "the day ends, UTC) or far below the usual volume; the metadata names the missing hours.",
        False,
        DayDelivery.verdict,
    )


def build_delivery_check(dataset: Dataset) -> dg.AssetChecksDefinition:
    """``expected_deliveries`` on ``archive/<dataset>``, per day; it runs in every gate run of the dataset."""
    check = delivery_check(dataset)
    archive_key = zone_key(ARCHIVE, dataset)

    @dg.asset_check(
        asset=archive_key,
        name=check.name,
        partitions_def=daily_partitions,
        blocking=check.blocking,
        description=check.description,
    )
    def expected_deliveries(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> Iterator[DayEvent]:
        # Every day of the run (a backfill runs a range), each result recorded for its own day.
        store, now = lake.store(), datetime.now(UTC)
        days = days_of(context)
        records = [DayRecord(day, checks=[check.result(evaluate(store, dataset, day, now))]) for day in days]
        yield from record_days(context, archive_key, records)

    return expected_deliveries


def delivery_checks(datasets: list[Dataset]) -> list[dg.AssetChecksDefinition]:
    return [build_delivery_check(d) for d in datasets if d.delivery is not None]
