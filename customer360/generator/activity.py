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
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from customer360.generator import text
from customer360.generator.customers import customer_ids as draw_customer_ids

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

EVENT_TYPES: tuple[str, ...] = ("voice", "sms", "data")
_EVENT_TYPE_P = (0.25, 0.20, 0.55)
_VOICE, _SMS, _DATA, _UNKNOWN_TYPE = 0, 1, 2, 3
_EVENT_TYPE_LABELS = (*EVENT_TYPES, "mms")  # "mms" is the unknown type of the bad rows

BAD_ROW_KINDS: tuple[str, ...] = (
    "negative_charge",
    "unknown_event_type",
    "malformed_customer_id",
    "timestamp_without_offset",
)
_NEGATIVE_CHARGE, _UNKNOWN_EVENT_TYPE, _MALFORMED_CUSTOMER_ID, _NO_OFFSET = range(4)

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
) -> pa.Table:
    """One event per entry of ``seconds`` (UTC seconds into ``day``), as a table of strings.

    ``bad_kind`` holds, per event, -1 for a valid row or an index into ``BAD_ROW_KINDS``.
    Event IDs are ``ev-YYYYMMDD-<9-digit sequence>`` starting at ``first_seq``: unique across days.
    """
    n = len(seconds)
    bad = np.full(n, -1, dtype=np.int64) if bad_kind is None else np.asarray(bad_kind, dtype=np.int64)

    etype = rng.choice(3, size=n, p=_EVENT_TYPE_P)
    outgoing = rng.random(n) < np.array([0.5, 0.55, 0.92])[etype]
    roaming = rng.random(n) < 0.05
    voice, sms, data = etype == _VOICE, etype == _SMS, etype == _DATA

    # Calls: log-normal around a minute and a half; a few unanswered ones last 0 s.
    duration = np.clip(np.rint(rng.lognormal(np.log(90.0), 1.0, n)), 1, 7200).astype(np.int64)
    duration[rng.random(n) < 0.03] = 0
    # Data sessions in thousandths of a MB (3 decimals): median ~4 MB, capped at 2 GB.
    data_milli = np.clip(np.rint(rng.lognormal(np.log(4000.0), 1.5, n)), 1, 2_000_000).astype(np.int64)

    # Charges in cents: most usage is inside the bundle (0.00); roaming is always billed.
    billable = rng.random(n) < np.array([0.35, 0.30, 0.15])[etype]
    minutes = -(-duration // 60)
    megabytes = -(-data_milli // 1000)
    cents = np.select(
        [voice & roaming, voice & outgoing & billable, sms & roaming & outgoing, sms & outgoing & billable,
         data & roaming, data & billable],
        [minutes * 25, minutes * 5, np.full(n, 25), np.full(n, 10), megabytes * 10, megabytes],
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

    # The bad rows: each breaks exactly one rule of the contract.
    cents = np.where(bad == _NEGATIVE_CHARGE, -np.maximum(cents, 50), cents)
    etype = np.where(bad == _UNKNOWN_EVENT_TYPE, _UNKNOWN_TYPE, etype)
    ts_label = np.where(bad == _NO_OFFSET, _TS_NO_OFFSET, ts_label)
    customer = customer_ids.take(pa.array(who))
    customer = pc.if_else(pa.array(bad == _MALFORMED_CUSTOMER_ID), pc.replace_substring(customer, "-", ""), customer)

    seq = text.int_strings(np.arange(first_seq, first_seq + n))
    event_id = pc.binary_join_element_wise(f"ev-{day:%Y%m%d}-", pc.utf8_lpad(seq, 9, "0"), "")
    columns = {
        "event_id": event_id,
        "customer_id": customer,
        "event_ts": text.timestamp_strings(day, seconds, _TS_OFFSET_MINUTES[ts_label], ts_label, _TS_LABELS),
        "event_type": text.lookup(_EVENT_TYPE_LABELS, etype),
        "direction": text.lookup(("in", "out"), outgoing),
        # Masks from the final type, so an unknown-type row breaks one rule only (blank measures).
        "duration_sec": text.int_strings(duration, null_mask=etype != _VOICE),
        "data_mb": text.fixed_point_strings(data_milli, 3, trim=True, null_mask=etype != _DATA),
        "cell_id": cell,
        "roaming": text.lookup(("false", "true"), roaming),
        "charge_amount": text.fixed_point_strings(cents, 2),
    }
    return pa.table([columns[f] for f in ACTIVITY_FIELDS], names=list(ACTIVITY_FIELDS))


def events_csv(events: pa.Table, fields: tuple[str, ...] = ACTIVITY_FIELDS) -> bytes:
    """Events as CSV with the given header (pass fewer fields to drop a column)."""
    return text.csv_bytes(fields, [events.column(f).combine_chunks() for f in fields])


def events_jsonl(events: pa.Table) -> bytes:
    """Events as JSON Lines: numbers and booleans bare, blanks as null, everything else a string."""
    literals = []
    for f in ACTIVITY_FIELDS:
        column = events.column(f).combine_chunks()
        literals.append(column if f in _JSON_LITERAL_FIELDS else text.json_string(column))
    return text.jsonl_bytes(ACTIVITY_FIELDS, literals)


def sorted_seconds(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    """``n`` event times, uniform in [lo, hi) seconds, in time order like an exporter writes them."""
    return np.sort(rng.integers(lo, hi, size=n))


def diurnal_seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` event times over a whole UTC day following the daily traffic curve, sorted."""
    hours = rng.choice(24, size=n, p=DIURNAL / DIURNAL.sum())
    return np.sort(hours * 3600 + rng.integers(0, 3600, size=n))


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
    """CSV data lines (no header) for ``rows`` events of ``day``, as (bytes, row count) per chunk.

    Chunk k covers the k-th equal slice of the day, so the file stays roughly in time order
    without ever holding the whole day. Within a chunk, ``duplicate_share`` of the rows are
    re-deliveries of earlier rows of the same chunk (appended at its end) and ``bad_share`` of the
    first deliveries break one contract rule each.
    """
    if rows < 0 or chunk_rows <= 0:
        raise ValueError("rows must be >= 0 and chunk_rows > 0")
    if not (0.0 <= duplicate_share < 1.0 and 0.0 <= bad_share < 1.0):
        raise ValueError("duplicate_share and bad_share must be in [0, 1)")
    rng = np.random.default_rng([seed, 31, day.toordinal()])
    if customer_ids is None:
        customer_ids = draw_customer_ids(rng, 100_000)
    ids = pa.array(np.asarray(customer_ids, dtype=str))
    weights = rng.lognormal(0.0, 1.0, size=len(ids))
    weights /= weights.sum()

    chunks = max(1, -(-rows // chunk_rows))
    bounds = np.linspace(0, 86_400, chunks + 1).astype(np.int64)
    sizes = np.full(chunks, rows // chunks) + (np.arange(chunks) < rows % chunks)
    seq = 0
    for k in range(chunks):
        n = int(sizes[k])
        dups = min(int(round(n * duplicate_share)), n - 1) if n else 0
        unique = n - dups
        bad = np.where(rng.random(unique) < bad_share, rng.integers(0, len(BAD_ROW_KINDS), unique), -1)
        events = make_events(
            rng, day, sorted_seconds(rng, unique, int(bounds[k]), int(bounds[k + 1])), seq, ids, weights, bad
        )
        seq += unique
        if dups:
            # Re-deliver only valid rows: a duplicate of a bad row would double-count the fault.
            good = np.flatnonzero(bad < 0)
            pool = good if len(good) else np.arange(unique)
            again = rng.choice(pool, size=dups, replace=dups > len(pool))
            events = pa.concat_tables([events, events.take(pa.array(np.sort(again)))])
        yield text.csv_rows([events.column(f).combine_chunks() for f in ACTIVITY_FIELDS]), n


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
    """Stream one (large) activity-log CSV for ``day`` to ``path``; returns the data rows written.

    Memory is bounded by ``chunk_rows``; output is byte-identical for the same arguments (the gzip
    header carries no timestamp or file name). Compression level 1 because the benchmark cares
    about producing a realistic 1 GB input quickly, not about its size on disk.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(path, "wb") as raw:
        out = _gzip_writer(raw) if gzip else raw
        try:
            out.write(text.csv_header(ACTIVITY_FIELDS))
            for data, n in iter_activity_csv_chunks(
                day,
                rows,
                seed=seed,
                customer_ids=customer_ids,
                duplicate_share=duplicate_share,
                bad_share=bad_share,
                chunk_rows=chunk_rows,
            ):
                out.write(data)
                written += n
        finally:
            if out is not raw:
                out.close()
    return written


def _gzip_writer(raw: BinaryIO) -> gzip.GzipFile:
    return gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0)
