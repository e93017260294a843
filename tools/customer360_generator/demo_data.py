"""A week of raw landing files for the demo and the tests, faults included.

Why a generator and not a folder of fixtures: the pipeline has to be shown (and tested) against
what real feeds do over several days: a CRM snapshot followed by deltas and a layout change,
hourly usage files in mixed encodings, re-delivered events, rule-breaking rows, files that must
be rejected and files that arrive days late. Fixtures would freeze one small example; this
writes any number of days at realistic volume, byte-identical for the same seed.

Everything goes through the caller's ``put(key, data)`` (a lake store's ``put_bytes``), so the
generator knows nothing about where the lake lives. Keys follow the raw landing contract:
``raw/<dataset>/<YYYY-MM-DD>/<file name>`` with the business date of the contents.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pyarrow as pa

from customer360_generator import activity, faults, plans, text
from customer360_generator.customers import CustomerBook, customers_csv

# Independent random streams per concern and day, so e.g. more customers do not reshuffle the
# activity of every day and one day can be reasoned about (and regenerated) on its own.
_STREAM_BOOK, _STREAM_CRM_DAY, _STREAM_ACTIVITY_DAY, _STREAM_SCHEDULE, _STREAM_FAULT = range(5)

# The CRM's newer release goes live on this day of the run (0-based, clamped to the last day).
NEW_LAYOUT_DAY = 3
PLAN_CHANGE_DAY = 2
DUPLICATE_SHARE = 0.01
GZIP_SHARE = 0.3


@dataclass(frozen=True)
class GeneratedFile:
    key: str  # bucket-relative, e.g. "raw/activity_logs/2024-01-03/usage-2024-01-03T05.csv.gz"
    dataset: str  # "customers" | "plans" | "activity_logs" (or a bogus one for fault files)
    day: date  # partition (business) date in the key
    rows: int  # data rows written (0 for garbage files)
    fault: str | None  # None for a healthy file; else a tag from faults.FAULT_TAGS
    detail: str | None = None  # what exactly is wrong, for people reading the report


@dataclass(frozen=True)
class GenerationReport:
    files: list[GeneratedFile]  # in the order they were put (late files after their delivery day)
    customers: int  # distinct customer IDs generated (snapshot plus later sign-ups)
    events: int  # distinct usage events generated, each counted once however often delivered
    duplicate_events: int = 0  # extra rows that re-deliver an event already sent in an earlier file
    bad_rows: int = 0  # rule-breaking rows inside files that are otherwise loadable

    @property
    def healthy_files(self) -> list[GeneratedFile]:
        return [f for f in self.files if f.fault is None]

    def with_fault(self, fault: str) -> list[GeneratedFile]:
        return [f for f in self.files if f.fault == fault]


@dataclass
class _ActivityFile:
    """The schedule entry of one activity file, decided before any content is drawn."""

    day_index: int
    slot: int
    ext: str  # "csv", "csv.gz", "jsonl" or "jsonl.gz"
    fault: str | None = None
    detail: str | None = None
    emit_day: int = -1

    def __post_init__(self) -> None:
        if self.emit_day < 0:
            self.emit_day = self.day_index


@dataclass
class _Output:
    """Holds each file until its delivery day, so a late file is put after the days it skipped."""

    put: Callable[[str, bytes], None]
    files: list[GeneratedFile] = field(default_factory=list)
    pending: dict[int, list[tuple[GeneratedFile, bytes]]] = field(default_factory=dict)

    def emit(self, emit_day: int, meta: GeneratedFile, data: bytes) -> None:
        self.pending.setdefault(emit_day, []).append((meta, data))

    def flush(self, day_index: int, day: date) -> None:
        """Put one delivery day's files; files of earlier business days arrive after the day's own."""
        batch = sorted(self.pending.pop(day_index, []), key=lambda item: item[0].day < day)
        for meta, data in batch:
            self.put(meta.key, data)
            self.files.append(meta)


def demo_customer_book(seed: int, customers: int) -> CustomerBook:
    """The customers ``generate_demo_data`` writes for ``seed``: other generators reuse their ids."""
    return CustomerBook.create(np.random.default_rng([seed, _STREAM_BOOK]), customers)


def generate_demo_data(
    put: Callable[[str, bytes], None],
    start: date,
    days: int = 7,
    *,
    seed: int = 7,
    customers: int = 2_000,
    events_per_day: int = 20_000,
    hours_per_day: int = 24,
) -> GenerationReport:
    """Write ``days`` days of raw customers, plans and activity files through ``put``.

    Day 1 has the CRM snapshot and the plan catalog; later days have CRM deltas (in the newer
    layout from ``NEW_LAYOUT_DAY`` on), a plan change, and every day has ``hours_per_day`` activity
    files with about ``events_per_day`` events between them. Faults are described in ``faults``.
    """
    if days < 1 or customers < 1 or events_per_day < 0 or not 1 <= hours_per_day <= 24:
        raise ValueError("need days >= 1, customers >= 1, events_per_day >= 0, 1 <= hours_per_day <= 24")
    schedule = _schedule(np.random.default_rng([seed, _STREAM_SCHEDULE]), days, hours_per_day)
    fault_rng = np.random.default_rng([seed, _STREAM_FAULT])
    book = demo_customer_book(seed, customers)
    out = _Output(put)
    duplicates = bad_rows = 0

    for i in range(days):
        day = start + timedelta(days=i)
        _customers_file(out, book, np.random.default_rng([seed, _STREAM_CRM_DAY, i]), i, day, days)
        if i == 0 or i == min(PLAN_CHANGE_DAY, days - 1):
            _plans_file(out, i, day)
        day_dups, day_bad = _activity_files(
            out,
            [schedule[(i, s)] for s in range(hours_per_day)],
            np.random.default_rng([seed, _STREAM_ACTIVITY_DAY, i]),
            fault_rng,
            book,
            day,
            events_per_day,
            hours_per_day,
            start,
        )
        duplicates += day_dups
        bad_rows += day_bad
        if i == min(faults.UNKNOWN_DATASET_DAY, days - 1):
            _unknown_dataset_file(out, fault_rng, book, i, day)
        out.flush(i, day)

    return GenerationReport(
        files=out.files,
        customers=len(book),
        events=events_per_day * days,
        duplicate_events=duplicates,
        bad_rows=bad_rows,
    )


def _meta(
    dataset: str, day: date, name: str, rows: int, fault: str | None = None, detail: str | None = None
) -> GeneratedFile:
    return GeneratedFile(f"raw/{dataset}/{day.isoformat()}/{name}", dataset, day, rows, fault, detail)


def _plans_file(out: _Output, i: int, day: date) -> None:
    """The full catalog on the first day, a change file on ``PLAN_CHANGE_DAY``."""
    rows, name = (plans.catalog(day), "plans_catalog") if i == 0 else (plans.changes(day), "plans_changes")
    out.emit(i, _meta("plans", day, f"{name}_{day}.csv", len(rows)), plans.plans_csv(rows))


def _customers_file(out: _Output, book: CustomerBook, rng: np.random.Generator, i: int, day: date, days: int) -> None:
    if i == 0:
        rows = np.arange(len(book))
        data = customers_csv(book, rows, new_layout=False, day=day, rng=rng)
        out.emit(i, _meta("customers", day, f"crm_customers_snapshot_{day}.csv", len(rows)), data)
        return
    signups = book.sign_up(rng, int(rng.poisson(max(0.5, len(book) * 0.0015))), i)
    rows = np.union1d(book.apply_daily_changes(rng, i), signups)
    new_layout = i >= min(NEW_LAYOUT_DAY, days - 1)
    fault = faults.NEW_LAYOUT if new_layout else None
    detail = "CRM release adds plan_id, email, msisdn, updated_at" if new_layout else None
    data = customers_csv(book, rows, new_layout=new_layout, day=day, rng=rng)
    out.emit(i, _meta("customers", day, f"crm_customers_delta_{day}.csv", len(rows), fault, detail), data)


def _schedule(rng: np.random.Generator, days: int, hours: int) -> dict[tuple[int, int], _ActivityFile]:
    """Decide every activity file's encoding and fault before drawing any content."""
    files: dict[tuple[int, int], _ActivityFile] = {}
    for i in range(days):
        gz = rng.random(hours) < GZIP_SHARE
        # One hour a day comes from the exporter that writes JSON Lines (one run has a .jsonl.gz).
        json_slot = int(rng.integers(hours)) if hours >= 2 or i == 0 else -1
        for s in range(hours):
            ext = "jsonl" if s == json_slot else "csv"
            files[(i, s)] = _ActivityFile(i, s, ext + (".gz" if gz[s] else ""))

    def pick_free(i: int, *, csv_only: bool = True) -> _ActivityFile | None:
        # Malformed files must be CSV (a garbage ".csv", a truncated ".csv.gz"); a late file may be either.
        free = [
            f for s in range(hours) if (f := files[(i, s)]).fault is None and (f.ext.startswith("csv") or not csv_only)
        ]
        return free[int(rng.integers(len(free)))] if free else None

    for detail, preferred_day in faults.MALFORMED_ACTIVITY_DAYS.items():
        target = pick_free(min(preferred_day, days - 1))
        if target is not None:
            target.fault, target.detail = faults.MALFORMED_FILE, detail
            target.ext = "csv.gz" if detail == faults.TRUNCATED_GZIP else "csv"
    if days >= 2:
        business_day = faults.LATE_BUSINESS_DAY if days >= 3 else 0
        target = pick_free(business_day, csv_only=False)
        if target is not None:
            target.fault = faults.LATE_FILE
            target.emit_day = min(business_day + faults.LATE_DELAY_DAYS, days - 1)
    healthy = [f for f in files.values() if f.fault is None]
    bad_count = int(round(len(healthy) * faults.BAD_ROW_FILE_SHARE))
    for index in rng.choice(len(healthy), size=bad_count, replace=False):
        healthy[index].fault = faults.BAD_ROWS
    return files


def _activity_files(
    out: _Output,
    schedule: list[_ActivityFile],
    rng: np.random.Generator,
    fault_rng: np.random.Generator,
    book: CustomerBook,
    day: date,
    events_per_day: int,
    hours: int,
    start: date,
) -> tuple[int, int]:
    """Draw one day of events, cut it into the scheduled files and emit them; returns (dups, bad)."""
    seconds = activity.diurnal_seconds(rng, events_per_day)
    bounds = np.searchsorted(seconds * hours // 86_400, np.arange(hours + 1))

    bad = np.full(events_per_day, -1, dtype=np.int64)
    bad_total = 0
    for entry in schedule:
        lo, hi = int(bounds[entry.slot]), int(bounds[entry.slot + 1])
        if entry.fault != faults.BAD_ROWS:
            continue
        # Small (night-time) files get none rather than one bad row making up a large share.
        count = int(round((hi - lo) * faults.BAD_ROW_SHARE_IN_FILE))
        if count == 0:
            continue
        where = lo + rng.choice(hi - lo, size=count, replace=False)
        # Cycle through the kinds so every kind shows up in any run with a handful of bad rows.
        bad[where] = (entry.day_index + entry.slot + np.arange(count)) % len(activity.BAD_ROW_KINDS)
        bad_total += count

    ids = pa.array(book.active_ids(schedule[0].day_index))
    events = activity.make_events(rng, day, seconds, 0, ids, book.activity_weights(schedule[0].day_index), bad)

    dup_total = 0
    for entry in schedule:
        s = entry.slot
        rows = np.arange(bounds[s], bounds[s + 1])
        if s > 0:
            # At-least-once delivery: part of the previous hour is sent again with this one.
            previous = np.arange(bounds[s - 1], bounds[s])
            previous = previous[bad[previous] < 0]
            again = np.sort(rng.choice(previous, size=rng.binomial(len(previous), DUPLICATE_SHARE), replace=False))
            rows = np.concatenate([rows, again])
            # Only a second delivery that can actually be loaded, of a first one that could, is a duplicate.
            if faults.MALFORMED_FILE not in (entry.fault, schedule[s - 1].fault):
                dup_total += len(again)
        table = events.take(pa.array(rows, type=pa.int64()))
        data, n = _render_activity(entry, table, fault_rng)
        name = f"usage-{day.isoformat()}T{s * 24 // hours:02d}.{entry.ext}"
        fault, detail = entry.fault, entry.detail
        if fault == faults.LATE_FILE:
            detail = f"delivered on {start + timedelta(days=entry.emit_day)}"
        elif fault == faults.BAD_ROWS:
            bad_here = int(np.count_nonzero(bad[rows] >= 0))
            fault, detail = (faults.BAD_ROWS, f"{bad_here} rule-breaking rows") if bad_here else (None, None)
        out.emit(entry.emit_day, _meta("activity_logs", day, name, n, fault, detail), data)
    return dup_total, bad_total


def _render_activity(entry: _ActivityFile, table: pa.Table, fault_rng: np.random.Generator) -> tuple[bytes, int]:
    """File bytes and data-row count for one scheduled activity file."""
    if entry.detail == faults.BINARY_GARBAGE:
        return faults.binary_garbage(fault_rng), 0
    if entry.detail == faults.TRUNCATED_GZIP:
        # Rows cannot be counted in a stream that ends mid-way: the whole object is lost.
        return faults.truncated_gzip(activity.events_csv(table)), 0
    if entry.detail == faults.MISSING_COLUMN:
        fields = tuple(f for f in activity.ACTIVITY_FIELDS if f != faults.DROPPED_COLUMN)
        return activity.events_csv(table, fields), table.num_rows
    data = activity.events_jsonl(table) if entry.ext.startswith("jsonl") else activity.events_csv(table)
    if entry.ext.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    return data, table.num_rows


def _unknown_dataset_file(out: _Output, rng: np.random.Generator, book: CustomerBook, i: int, day: date) -> None:
    """A billing export dropped into raw/ by mistake: valid CSV, but no such dataset."""
    ids = book.active_ids(i)
    n = min(50, len(ids))
    who = np.sort(rng.choice(len(ids), size=n, replace=False))
    columns = [
        pa.array([f"INV-{day:%Y%m}-{k:05d}" for k in range(1, n + 1)]),
        pa.array(ids[who]),
        text.fixed_point_strings(rng.integers(1825, 11875, size=n), 2),
        pa.array([day.isoformat()] * n),
    ]
    data = text.csv_bytes(("invoice_id", "customer_id", "amount", "issued_on"), columns)
    out.emit(i, _meta("billing", day, f"invoices-{day}.csv", n, faults.MALFORMED_FILE, faults.UNKNOWN_DATASET), data)
