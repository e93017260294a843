"""Synthetic usage events (``activity_logs``): the high-volume feed, built a chunk at a time.

Why everything here is vectorized: the same code feeds the 7-day demo (a few hundred thousand
events) and the ingestion benchmark (10M events in one file). Each batch of events is drawn as
numpy arrays and rendered to text with pyarrow kernels (see ``text``), so cost grows with bytes,
not with Python calls, and memory is bounded by the chunk size.

What real feeds do and the pipeline must cope with, reproduced on purpose:
- ``event_ts`` is one UTC instant inside the business day, printed with whatever offset the
  network element uses (``Z``, ``+00:00``, ``+02:00``, ``-05:00``, ...), so the printed local date
  can be the day before or after.
- Duplicate deliveries: the same event (same ``event_id`` and values) arrives again in a later
  file (the demo) or later in the same file (the benchmark). The contract allows this.
- A small share of rule-breaking rows (see ``BAD_ROW_KINDS``) inside otherwise healthy files.

The fault mix of one large day is a knob (``write_activity_file``): the share of re-delivered events,
the share of rule-breaking rows spread uniformly through the file, and which of ``ROW_FAULTS`` (every
way a row can break the contract: impossible dates and times of the right shape, too many decimal
places, integers beyond 64 bits, negative measures, unknown states, missing required values, pattern
mismatches, row rules, values of the wrong shape) in equal parts. Each injected row breaks exactly one
rule, and the report says how many rows of each fault, rule and column were written, so a benchmark can
assert that the quarantine holds exactly those rows.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from customer360_generator import text
from customer360_generator.customers import customer_ids as draw_customer_ids

ACTIVITY_FIELDS: tuple[str, ...] = (
    "event_id",
    "customer_id",
    "event_ts",
    "event_type",
    "direction",
    "duration_sec",
    "data_mb",
    "cell_id",
    "roaming",
    "charge_amount",
)
# Fields written as JSON numbers/booleans in JSON Lines files; the rest are JSON strings.
_JSON_LITERAL_FIELDS = frozenset({"duration_sec", "data_mb", "roaming", "charge_amount"})
_JSON_NUMBER = r"^-?[0-9]+(\.[0-9]+)?$"
FILE_FORMATS = ("csv", "csv.gz", "jsonl", "jsonl.gz")

EVENT_TYPES: tuple[str, ...] = ("voice", "sms", "data")
_EVENT_TYPE_P = (0.25, 0.20, 0.55)
_VOICE, _SMS, _DATA, _UNKNOWN_TYPE = 0, 1, 2, 3
_EVENT_TYPE_LABELS = (*EVENT_TYPES, "mms")  # "mms" is the unknown type of the bad rows


@dataclass(frozen=True)
class RowFault:
    """One way a row breaks the activity contract: the (rule, column) the gate reports for it, and how.

    ``event_type`` makes the row that type first (a duration fault needs a voice event); ``render``
    rewrites the text of ``field`` on the faulty rows (None leaves it to ``make_events``' numbers).
    """

    name: str
    rule: str
    column: str
    field: str
    render: Callable[[pa.Array], pa.Array] | None = None
    event_type: int | None = None


def _blank(values: pa.Array) -> pa.Array:
    return pa.nulls(len(values), pa.string())


def _constant(text_value: str) -> Callable[[pa.Array], pa.Array]:
    return lambda values: pa.repeat(pa.scalar(text_value), len(values))


def _regex(pattern: str, replacement: str) -> Callable[[pa.Array], pa.Array]:
    return lambda values: pc.replace_substring_regex(values, pattern, replacement)


def _suffix(tail: str) -> Callable[[pa.Array], pa.Array]:
    return lambda values: pc.binary_join_element_wise(values, tail, "")


def _beyond_int64(values: pa.Array) -> pa.Array:
    """``1`` + the value + 19 zeros: at least 10^20, past 2^63 whatever the value (even ``0``)."""
    return pc.binary_join_element_wise("1", values, "0" * 19, "")


_TIMESTAMP_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
_HOUR = r"^([0-9-]{10}T[0-9]{2}"
# Every way one row can break the activity_logs contract, each breaking exactly one rule (the measures
# of a row are those of its final event type, so a type fault never also breaks a row rule).
ROW_FAULTS: dict[str, RowFault] = {
    fault.name: fault
    for fault in (
        RowFault("missing_event_id", "required", "event_id", "event_id", _blank),
        RowFault("missing_customer_id", "required", "customer_id", "customer_id", _blank),
        RowFault("malformed_customer_id", "pattern", "customer_id", "customer_id", _regex("-", "")),
        RowFault("missing_event_ts", "required", "event_ts", "event_ts", _blank),
        RowFault("timestamp_month_13", "type", "event_ts", "event_ts", _regex(r"^([0-9]{4})-[0-9]{2}", r"\1-13")),
        RowFault("timestamp_february_30", "type", "event_ts", "event_ts", _regex(_TIMESTAMP_DATE, "2024-02-30")),
        RowFault("timestamp_hour_25", "type", "event_ts", "event_ts", _regex(r"^([0-9-]{10}T)[0-9]{2}", r"\125")),
        RowFault("timestamp_minute_61", "type", "event_ts", "event_ts", _regex(_HOUR + ":)[0-9]{2}", r"\161")),
        RowFault("timestamp_without_offset", "type", "event_ts", "event_ts", _regex(r"(Z|[+-][0-9]{2}:[0-9]{2})$", "")),
        RowFault("missing_event_type", "required", "event_type", "event_type", _blank, _SMS),
        RowFault("unknown_event_type", "allowed_values", "event_type", "event_type", None, _UNKNOWN_TYPE),
        RowFault("missing_direction", "required", "direction", "direction", _blank),
        RowFault("unknown_direction", "allowed_values", "direction", "direction", _constant("both")),
        RowFault("duration_beyond_int64", "type", "duration_sec", "duration_sec", _beyond_int64, _VOICE),
        RowFault("duration_not_an_integer", "type", "duration_sec", "duration_sec", _suffix(".5"), _VOICE),
        RowFault("negative_duration", "minimum", "duration_sec", "duration_sec", None, _VOICE),
        RowFault("duration_on_sms", "duration_only_for_voice", "duration_sec", "duration_sec", _constant("30"), _SMS),
        RowFault("data_mb_too_many_places", "type", "data_mb", "data_mb", None, _DATA),
        RowFault("negative_data_mb", "minimum", "data_mb", "data_mb", None, _DATA),
        RowFault("data_mb_on_voice", "data_mb_only_for_data", "data_mb", "data_mb", _constant("1.5"), _VOICE),
        RowFault("missing_roaming", "required", "roaming", "roaming", _blank),
        RowFault("unknown_roaming", "allowed_values", "roaming", "roaming", _constant("yes")),
        RowFault("missing_charge", "required", "charge_amount", "charge_amount", _blank),
        RowFault("charge_too_many_places", "type", "charge_amount", "charge_amount"),
        RowFault("charge_not_a_number", "type", "charge_amount", "charge_amount", _suffix("e2")),
        RowFault("negative_charge", "minimum", "charge_amount", "charge_amount"),
    )
}
# The demo's bad rows: four common kinds (``make_events`` indexes this tuple unless given another).
BAD_ROW_KINDS: tuple[str, ...] = (
    "negative_charge",
    "unknown_event_type",
    "malformed_customer_id",
    "timestamp_without_offset",
)
# The issue-11 example of a feed written by another system: 4 kinds in equal parts.
FOREIGN_EXAMPLE_KINDS: tuple[str, ...] = (
    "timestamp_month_13",
    "negative_duration",
    "unknown_event_type",
    "missing_customer_id",
)

# Offsets the network elements print; the last label is the bad rows' offset-less timestamp.
_TS_LABELS = ("Z", "+00:00", "+02:00", "-05:00", "-08:00", "+05:30", "")
_TS_OFFSET_MINUTES = np.array([0, 0, 120, -300, -480, 330, 0])
_TS_P = (0.30, 0.20, 0.15, 0.15, 0.15, 0.05)
_TS_NO_OFFSET = len(_TS_LABELS) - 1

# Relative traffic per UTC hour: quiet nights, busy evenings.
DIURNAL = np.array([0.4, 0.3, 0.25, 0.2, 0.2, 0.3, 0.6, 1.0, 1.3, 1.4, 1.4, 1.4,
                    1.5, 1.4, 1.4, 1.4, 1.5, 1.6, 1.7, 1.7, 1.5, 1.2, 0.9, 0.6])  # fmt: skip

DEFAULT_CHUNK_ROWS = 500_000
# Defaults of iter_activity_csv_chunks, which write_activity_day forwards: one definition for both.
DEFAULT_DUPLICATE_SHARE = 0.01
DEFAULT_BAD_SHARE = 0.002


@lru_cache(maxsize=1)
def _cells() -> tuple[pa.Array, pa.Array]:
    """Home-network cell IDs and a smaller pool of partner-network cells for roaming events.

    Fixed (not seeded) on purpose: the radio network does not change between demo runs.
    """
    rng = np.random.default_rng(4242)

    def pool(networks: tuple[str, ...], size: int) -> pa.Array:
        # <MCC>-<MNC>-<area code>-<cell>: the shape of a cell global identity.
        net = rng.integers(0, len(networks), size)
        lac, cell = rng.integers(1, 65_535, size), rng.integers(1, 256, size)
        return pa.array([f"{networks[n]}-{a:05d}-{c:03d}" for n, a, c in zip(net, lac, cell, strict=True)])

    home = pool(("310-410",), 2048)
    foreign = pool(("208-01", "234-15", "262-02", "334-020", "440-10", "302-720"), 256)
    return home, foreign


def make_events(
    rng: np.random.Generator,
    day: date,
    seconds: np.ndarray,
    first_seq: int,
    customer_ids: pa.Array,
    weights: np.ndarray | None,
    bad_kind: np.ndarray | None = None,
    kinds: Sequence[str] = BAD_ROW_KINDS,
) -> pa.Table:
    """One event per entry of ``seconds`` (UTC seconds into ``day``), as a table of strings.

    ``bad_kind`` holds, per event, -1 for a valid row or an index into ``kinds`` (names of ``ROW_FAULTS``).
    Event IDs are ``ev-YYYYMMDD-<9-digit sequence>`` starting at ``first_seq``: unique across days.
    """
    n = len(seconds)
    bad = np.full(n, -1, dtype=np.int64) if bad_kind is None else np.asarray(bad_kind, dtype=np.int64)
    faults = [ROW_FAULTS[name] for name in kinds]

    def rows_of(name: str) -> np.ndarray:
        return bad == kinds.index(name) if name in kinds else np.zeros(n, dtype=bool)

    etype = rng.choice(3, size=n, p=_EVENT_TYPE_P)
    outgoing = rng.random(n) < np.array([0.5, 0.55, 0.92])[etype]
    roaming = rng.random(n) < 0.05
    for index, fault in enumerate(faults):
        if fault.event_type is not None:
            etype = np.where(bad == index, fault.event_type, etype)
    voice, sms, data = etype == _VOICE, etype == _SMS, etype == _DATA

    # Calls: log-normal around a minute and a half; a few unanswered ones last 0 s.
    duration = np.clip(np.rint(rng.lognormal(np.log(90.0), 1.0, n)), 1, 7200).astype(np.int64)
    duration[rng.random(n) < 0.03] = 0
    # Data sessions in thousandths of a MB (3 decimals): median ~4 MB, capped at 2 GB.
    data_milli = np.clip(np.rint(rng.lognormal(np.log(4000.0), 1.5, n)), 1, 2_000_000).astype(np.int64)

    # Charges in ten-thousandths (4 places: rated per second and per MB); most usage is inside the
    # bundle (0.0000); roaming is always billed.
    billable = rng.random(n) < np.array([0.35, 0.30, 0.15, 0.0])[etype]  # an unknown type is never billed
    units = np.select(
        [voice & roaming, voice & outgoing & billable, sms & roaming & outgoing, sms & outgoing & billable,
         data & roaming, data & billable],
        [duration * 42, duration * 8, np.full(n, 2500), np.full(n, 1000), data_milli, data_milli * 125 // 1000],
        default=0,
    )  # fmt: skip

    if weights is None:
        who = rng.integers(0, len(customer_ids), size=n)
    else:
        who = rng.choice(len(customer_ids), size=n, p=weights)
    home, foreign = _cells()
    cell = pc.if_else(
        pa.array(roaming),
        foreign.take(pa.array(rng.integers(0, len(foreign), size=n))),
        home.take(pa.array(rng.integers(0, len(home), size=n))),
    )
    # Some data sessions come from a gateway that does not report the cell.
    cell = pc.if_else(pa.array(data & (rng.random(n) < 0.005)), pa.scalar(None, pa.string()), cell)
    ts_label = rng.choice(len(_TS_P), size=n, p=_TS_P)

    # The faults that are numbers: strictly negative, so "-0" never passes for one.
    units = np.where(rows_of("negative_charge"), -np.maximum(units, 5000), units)
    duration = np.where(rows_of("negative_duration"), -np.maximum(duration, 1), duration)
    data_milli = np.where(rows_of("negative_data_mb"), -data_milli, data_milli)

    seq = text.int_strings(np.arange(first_seq, first_seq + n))
    event_id = pc.binary_join_element_wise(f"ev-{day:%Y%m%d}-", pc.utf8_lpad(seq, 9, "0"), "")
    columns = {
        "event_id": event_id,
        "customer_id": customer_ids.take(pa.array(who)),
        "event_ts": text.timestamp_strings(day, seconds, _TS_OFFSET_MINUTES[ts_label], ts_label, _TS_LABELS),
        "event_type": text.lookup(_EVENT_TYPE_LABELS, etype),
        "direction": text.lookup(("in", "out"), outgoing),
        # Masks from the final type, so an unknown-type row breaks one rule only (blank measures).
        "duration_sec": text.int_strings(duration, null_mask=etype != _VOICE),
        "data_mb": text.fixed_point_strings(data_milli, 3, trim=True, null_mask=etype != _DATA),
        "cell_id": cell,
        "roaming": text.lookup(("false", "true"), roaming),
        "charge_amount": text.fixed_point_strings(units, 4),
    }
    # One place too many, the last one non-zero (4.5 MB -> 4.5007; 0.0125 -> 0.01253): never a rounding.
    for name, column, scaled, places in (
        ("data_mb_too_many_places", "data_mb", data_milli, 3),
        ("charge_too_many_places", "charge_amount", units, 4),
    ):
        mask = rows_of(name)
        if mask.any():
            longer = text.fixed_point_strings(scaled[mask] * 10 + 7, places + 1)
            columns[column] = pc.replace_with_mask(columns[column], pa.array(mask), longer)
    # The faults that are text: each rewrites its field on its own rows only.
    for index, fault in enumerate(faults):
        mask = bad == index
        if fault.render is None or not mask.any():
            continue
        where = pa.array(mask)
        values = columns[fault.field]
        if fault.field in ("duration_sec", "data_mb") and values.null_count:
            values = pc.fill_null(values, "0")  # a measure the row's type does not carry: rendered anew
        rendered = fault.render(values.filter(where))
        columns[fault.field] = pc.replace_with_mask(columns[fault.field], where, rendered.cast(pa.string()))
    return pa.table([columns[f] for f in ACTIVITY_FIELDS], names=list(ACTIVITY_FIELDS))


def events_csv(events: pa.Table, fields: tuple[str, ...] = ACTIVITY_FIELDS) -> bytes:
    """Events as CSV with the given header (pass fewer fields to drop a column)."""
    return text.csv_bytes(fields, [events.column(f).combine_chunks() for f in fields])


def events_jsonl(events: pa.Table) -> bytes:
    """Events as JSON Lines: numbers and booleans bare, blanks as null, everything else a string.

    A faulty value that is not a plain number (``12.5`` for a duration is one; ``1e2``, ``yes`` are
    not) stays a JSON string, so a reader sees the same text a CSV would carry.
    """
    literals = []
    for f in ACTIVITY_FIELDS:
        column = events.column(f).combine_chunks()
        if f in _JSON_LITERAL_FIELDS:
            bare = pc.match_substring_regex(column, "^(true|false)$" if f == "roaming" else _JSON_NUMBER)
            literals.append(pc.if_else(pc.fill_null(bare, True), column, text.json_string(column)))
        else:
            literals.append(text.json_string(column))
    return text.jsonl_bytes(ACTIVITY_FIELDS, literals)


def sorted_seconds(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    """``n`` event times, uniform in [lo, hi) seconds, in time order like an exporter writes them."""
    return np.sort(rng.integers(lo, hi, size=n))


def diurnal_seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` event times over a whole UTC day following the daily traffic curve, sorted."""
    hours = rng.choice(24, size=n, p=DIURNAL / DIURNAL.sum())
    return np.sort(hours * 3600 + rng.integers(0, 3600, size=n))


@dataclass
class ActivityDayReport:
    """What one generated activity day holds: rows, re-deliveries, and every injected fault, counted."""

    rows: int = 0
    duplicates: int = 0  # rows re-delivering an event already in the file (valid rows only)
    injected: dict[str, int] = field(default_factory=dict)  # fault name (ROW_FAULTS) -> rows

    @property
    def bad_rows(self) -> int:
        return sum(self.injected.values())

    def by_rule(self) -> dict[str, int]:
        """Rows per rule, as the gate's report and clean's ``rule_counts`` count them."""
        out: dict[str, int] = {}
        for name, count in self.injected.items():
            rule = ROW_FAULTS[name].rule
            out[rule] = out.get(rule, 0) + count
        return out

    def by_rule_and_column(self) -> dict[tuple[str, str], int]:
        """Rows per (rule, column), as the quarantine's ``rule`` and ``column`` say."""
        out: dict[tuple[str, str], int] = {}
        for name, count in self.injected.items():
            key = (ROW_FAULTS[name].rule, ROW_FAULTS[name].column)
            out[key] = out.get(key, 0) + count
        return out

    def as_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "duplicates": self.duplicates,
            "bad_rows": self.bad_rows,
            "injected": dict(sorted(self.injected.items())),
            "by_rule": dict(sorted(self.by_rule().items())),
            "by_rule_and_column": {f"{r}:{c}": n for (r, c), n in sorted(self.by_rule_and_column().items())},
        }


def iter_activity_chunks(
    day: date,
    rows: int,
    *,
    seed: int,
    customer_ids: np.ndarray | None = None,
    duplicate_share: float = DEFAULT_DUPLICATE_SHARE,
    bad_share: float = DEFAULT_BAD_SHARE,
    kinds: Sequence[str] = BAD_ROW_KINDS,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    jsonl: bool = False,
    report: ActivityDayReport | None = None,
) -> Iterator[tuple[bytes, int]]:
    """Data lines (CSV without header, or JSON Lines) for ``rows`` events of ``day``: (bytes, rows) per chunk.

    See ``_activity_event_chunks`` for what the chunks hold.
    """
    for events in _activity_event_chunks(
        day,
        rows,
        seed=seed,
        customer_ids=customer_ids,
        duplicate_share=duplicate_share,
        bad_share=bad_share,
        kinds=kinds,
        chunk_rows=chunk_rows,
        report=report,
    ):
        yield _render(events, jsonl=jsonl), events.num_rows


def _render(events: pa.Table, *, jsonl: bool) -> bytes:
    if jsonl:
        return events_jsonl(events)
    return text.csv_rows([events.column(f).combine_chunks() for f in ACTIVITY_FIELDS])


def _activity_event_chunks(
    day: date,
    rows: int,
    *,
    seed: int,
    customer_ids: np.ndarray | None,
    duplicate_share: float,
    bad_share: float,
    kinds: Sequence[str],
    chunk_rows: int,
    report: ActivityDayReport | None,
) -> Iterator[pa.Table]:
    """``rows`` events of ``day`` as tables of strings, a chunk at a time.

    Chunk k covers the k-th equal slice of the day, so the file stays roughly in time order without
    ever holding the whole day. Within a chunk, ``duplicate_share`` of the rows are re-deliveries of
    earlier valid rows of the same chunk (appended at its end). Exactly ``round(rows * bad_share)``
    first deliveries break one rule each: spread uniformly (each chunk gets its share of the running
    total, at random positions) and cycling through ``kinds`` so every kind gets an equal part.
    ``report``, when given, is filled with what was written.
    """
    if rows < 0 or chunk_rows <= 0:
        raise ValueError("rows must be >= 0 and chunk_rows > 0")
    if not (0.0 <= duplicate_share < 1.0 and 0.0 <= bad_share < 1.0):
        raise ValueError("duplicate_share and bad_share must be in [0, 1)")
    unknown = [k for k in kinds if k not in ROW_FAULTS]
    if unknown or not kinds:
        raise ValueError(f"unknown fault kinds {unknown}; known: {sorted(ROW_FAULTS)}")
    kinds = tuple(kinds)
    report = report if report is not None else ActivityDayReport()
    rng = np.random.default_rng([seed, 31, day.toordinal()])
    if customer_ids is None:
        customer_ids = draw_customer_ids(rng, 100_000)
    ids = pa.array(np.asarray(customer_ids, dtype=str))
    weights = rng.lognormal(0.0, 1.0, size=len(ids))
    weights /= weights.sum()

    chunks = max(1, -(-rows // chunk_rows))
    bounds = np.linspace(0, 86_400, chunks + 1).astype(np.int64)
    sizes = np.full(chunks, rows // chunks) + (np.arange(chunks) < rows % chunks)
    seq = written = bad_so_far = 0
    for k in range(chunks):
        n = int(sizes[k])
        dups = min(int(round(n * duplicate_share)), n - 1) if n else 0
        unique = n - dups
        written += n
        count = min(int(round(written * bad_share)) - bad_so_far, unique)
        bad = np.full(unique, -1, dtype=np.int64)
        if count > 0:
            where = rng.choice(unique, size=count, replace=False)
            bad[where] = rng.permutation((bad_so_far + np.arange(count)) % len(kinds))
            bad_so_far += count
        events = make_events(
            rng, day, sorted_seconds(rng, unique, int(bounds[k]), int(bounds[k + 1])), seq, ids, weights, bad, kinds
        )
        seq += unique
        if dups:
            # Re-deliver only valid rows: a duplicate of a bad row would double-count the fault.
            good = np.flatnonzero(bad < 0)
            pool = good if len(good) else np.arange(unique)
            again = rng.choice(pool, size=dups, replace=dups > len(pool))
            events = pa.concat_tables([events, events.take(pa.array(np.sort(again)))])
        for index, kind_count in zip(*np.unique(bad[bad >= 0], return_counts=True), strict=True):
            report.injected[kinds[index]] = report.injected.get(kinds[index], 0) + int(kind_count)
        report.rows += n
        report.duplicates += dups
        yield events


def iter_activity_csv_chunks(
    day: date,
    rows: int,
    *,
    seed: int,
    customer_ids: np.ndarray | None = None,
    duplicate_share: float = DEFAULT_DUPLICATE_SHARE,
    bad_share: float = DEFAULT_BAD_SHARE,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[tuple[bytes, int]]:
    """CSV data lines (no header) of ``iter_activity_chunks`` with the demo's bad-row kinds."""
    yield from iter_activity_chunks(
        day,
        rows,
        seed=seed,
        customer_ids=customer_ids,
        duplicate_share=duplicate_share,
        bad_share=bad_share,
        chunk_rows=chunk_rows,
    )


def file_format_of(path: Path) -> str:
    """``csv``, ``csv.gz``, ``jsonl`` or ``jsonl.gz`` from a file name."""
    for file_format in sorted(FILE_FORMATS, key=len, reverse=True):
        if path.name.endswith("." + file_format):
            return file_format
    raise ValueError(f"{path.name}: name it .csv, .csv.gz, .jsonl or .jsonl.gz")


def write_activity_file(
    path: Path,
    day: date,
    rows: int,
    *,
    seed: int,
    customer_ids: np.ndarray | None = None,
    duplicate_share: float = DEFAULT_DUPLICATE_SHARE,
    bad_share: float = DEFAULT_BAD_SHARE,
    kinds: Sequence[str] = BAD_ROW_KINDS,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> ActivityDayReport:
    """Stream one (large) activity day to ``path`` in the format its name says; returns what it holds.

    Memory is bounded by ``chunk_rows``; output is byte-identical for the same arguments (the gzip
    header carries no timestamp or file name). Compression level 1 because a benchmark cares about
    producing a realistic 1 GB input quickly, not about its size on disk.
    """
    return write_activity_files(
        [path],
        day,
        rows,
        seed=seed,
        customer_ids=customer_ids,
        duplicate_share=duplicate_share,
        bad_share=bad_share,
        kinds=kinds,
        chunk_rows=chunk_rows,
    )


def write_activity_files(
    paths: Sequence[Path],
    day: date,
    rows: int,
    *,
    seed: int,
    customer_ids: np.ndarray | None = None,
    duplicate_share: float = DEFAULT_DUPLICATE_SHARE,
    bad_share: float = DEFAULT_BAD_SHARE,
    kinds: Sequence[str] = BAD_ROW_KINDS,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> ActivityDayReport:
    """The same events written once into several files, each in the format its name says (one pass)."""
    paths = [Path(p) for p in paths]
    formats = [file_format_of(p) for p in paths]
    report = ActivityDayReport()
    with ExitStack() as stack:
        outputs: list[BinaryIO] = []
        for path, file_format in zip(paths, formats, strict=True):
            path.parent.mkdir(parents=True, exist_ok=True)
            raw = stack.enter_context(open(path, "wb"))
            out = stack.enter_context(_gzip_writer(raw)) if file_format.endswith(".gz") else raw
            if file_format.startswith("csv"):
                out.write(text.csv_header(ACTIVITY_FIELDS))
            outputs.append(out)
        for events in _activity_event_chunks(
            day,
            rows,
            seed=seed,
            customer_ids=customer_ids,
            duplicate_share=duplicate_share,
            bad_share=bad_share,
            kinds=kinds,
            chunk_rows=chunk_rows,
            report=report,
        ):
            rendered: dict[bool, bytes] = {}
            for out, file_format in zip(outputs, formats, strict=True):
                jsonl = file_format.startswith("jsonl")
                if jsonl not in rendered:
                    rendered[jsonl] = _render(events, jsonl=jsonl)
                out.write(rendered[jsonl])
    return report


def write_activity_day(
    path: Path,
    day: date,
    rows: int,
    *,
    seed: int,
    customer_ids: np.ndarray | None = None,
    duplicate_share: float = DEFAULT_DUPLICATE_SHARE,
    bad_share: float = DEFAULT_BAD_SHARE,
    gzip: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> int:
    """One activity-log CSV (``gzip``: compressed) with the demo's bad-row kinds; returns the rows written."""
    path = Path(path)
    if file_format_of(path) not in ("csv.gz" if gzip else "csv",):
        raise ValueError(f"{path.name}: write_activity_day writes {'.csv.gz' if gzip else '.csv'}")
    report = write_activity_file(
        path,
        day,
        rows,
        seed=seed,
        customer_ids=customer_ids,
        duplicate_share=duplicate_share,
        bad_share=bad_share,
        chunk_rows=chunk_rows,
    )
    return report.rows


def _gzip_writer(raw: BinaryIO) -> gzip.GzipFile:
    return gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0)
