"""Vectorized text rendering for the generator: numbers, timestamps, CSV and JSON Lines.

Why not ``csv.writer`` or ``pyarrow.csv.write_csv``: the benchmark writes 10M activity rows, so a
Python call per row is out of the question, and pyarrow's writer quotes every string value
(``"voice"``), which no real feed of ours does and which hides quoting bugs in the readers.
Instead every column is built as a pyarrow string array with compute kernels (casts, lookups in
small prebuilt tables, element-wise joins) and a whole chunk of rows is joined into lines in C.
The line array's contiguous data buffer *is* the CSV body, so it is handed out without copying
row by row.

Fields are quoted only when RFC 4180 needs it (a comma, a double quote or a line break inside),
like the IBM sample and the CRM exports do.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_NEEDS_QUOTING = r'[",\r\n]'


@lru_cache(maxsize=1)
def _hms_table() -> pa.Array:
    """``THH:MM:SS`` for every second of a day, so one ``take`` renders a time of day."""
    return pa.array([f"T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)])


@lru_cache(maxsize=4)
def _fraction_table(places: int, trim: bool) -> pa.Array:
    """The decimal part for every fraction value, e.g. places=2: ".05"; trimmed "0.50" -> ".5"."""
    out = []
    for i in range(10**places):
        digits = f"{i:0{places}d}"
        if trim:
            digits = digits.rstrip("0")
        out.append(f".{digits}" if digits else "")
    return pa.array(out)


def _as_int_array(values: np.ndarray) -> pa.Array:
    return pa.array(np.ascontiguousarray(values, dtype=np.int64))


def int_strings(values: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    """Integers as decimal strings; ``null_mask`` marks blanks."""
    arr = pa.array(np.ascontiguousarray(values, dtype=np.int64), mask=null_mask)
    return pc.cast(arr, pa.string())


def fixed_point_strings(
    scaled: np.ndarray, places: int, *, trim: bool = False, null_mask: np.ndarray | None = None
) -> pa.Array:
    """Render integers scaled by 10**places as decimals without going through floats.

    ``trim`` drops trailing zeros the way the IBM sample prints charges (``42.3``, ``20``);
    untrimmed keeps a fixed number of places (``0.50``), the way billing systems print money.
    Negative values get a leading minus on the absolute value, so -5 cents is ``-0.05``.
    """
    scaled = np.ascontiguousarray(scaled, dtype=np.int64)
    magnitude = np.abs(scaled)
    factor = 10**places
    whole = pc.cast(pa.array(magnitude // factor, mask=null_mask), pa.string())
    frac = _fraction_table(places, trim).take(_as_int_array(magnitude % factor))
    sign = pa.array(["", "-"]).take(_as_int_array(scaled < 0))
    return pc.binary_join_element_wise(sign, whole, frac, "")


def timestamp_strings(
    day: date, seconds: np.ndarray, offset_minutes: np.ndarray, suffixes: np.ndarray, labels: Sequence[str]
) -> pa.Array:
    """ISO-8601 local timestamps for instants given as UTC seconds into ``day``.

    ``suffixes`` indexes ``labels`` (e.g. ``"Z"``, ``"+02:00"``, or ``""`` for a deliberately
    offset-less value) and ``offset_minutes`` is the matching UTC offset. The instant stays inside
    the UTC day while the local date may be the day before or after, as real switches print it.
    """
    local = np.asarray(seconds, dtype=np.int64) + np.asarray(offset_minutes, dtype=np.int64) * 60
    shift = np.floor_divide(local, 86_400)
    dates = pa.array([(day + timedelta(days=d)).isoformat() for d in (-1, 0, 1)])
    date_part = dates.take(_as_int_array(shift + 1))
    time_part = _hms_table().take(_as_int_array(local - shift * 86_400))
    suffix_part = pa.array(list(labels)).take(_as_int_array(suffixes))
    return pc.binary_join_element_wise(date_part, time_part, suffix_part, "")


def lookup(labels: Sequence[str], index: np.ndarray) -> pa.Array:
    """Categorical codes to their labels (a C-level gather, not a Python loop)."""
    return pa.array(list(labels)).take(_as_int_array(index))


def _csv_field(column: pa.Array) -> pa.Array:
    column = column.cast(pa.string()) if column.type != pa.string() else column
    needs = pc.match_substring_regex(column, _NEEDS_QUOTING)
    if not pc.any(needs).as_py():
        return column
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(column, '"', '""'), '"', "")
    return pc.if_else(needs, quoted, column)


def _buffer_bytes(lines: pa.Array) -> bytes:
    """The concatenated values of a string array, straight from its data buffer."""
    if lines.null_count:
        raise ValueError("rendered lines must not be null")
    if len(lines) == 0:
        return b""
    offsets_type = np.int64 if pa.types.is_large_string(lines.type) else np.int32
    _, offsets_buf, data_buf = lines.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=offsets_type)[lines.offset : lines.offset + len(lines) + 1]
    return data_buf[int(offsets[0]) : int(offsets[-1])].to_pybytes()


def csv_header(fields: Sequence[str]) -> bytes:
    return (",".join(fields) + "\n").encode()


def csv_rows(columns: Sequence[pa.Array]) -> bytes:
    """CSV data lines (LF-terminated, nulls as empty fields) for equally long string columns."""
    if not columns or len(columns[0]) == 0:
        return b""
    body = _join_lines(list(columns))
    # Fast path: almost every value comes from a closed alphabet, so join unquoted and prove it
    # was safe by counting separators (a value with a comma or line break adds some). Counting
    # bytes in C is several times cheaper than a regex over every column.
    rows = len(columns[0])
    if (
        body.count(b",") == rows * (len(columns) - 1)
        and body.count(b"\n") == rows
        and b'"' not in body
        and b"\r" not in body
    ):
        return body
    return _join_lines([_csv_field(c) for c in columns])


def _join_lines(fields: list[pa.Array]) -> bytes:
    # The newline rides on the last field so the whole line needs a single join pass.
    fields[-1] = pc.binary_join_element_wise(fields[-1], "\n", "", null_handling="replace", null_replacement="")
    lines = pc.binary_join_element_wise(*fields, ",", null_handling="replace", null_replacement="")
    return _buffer_bytes(lines)


def csv_bytes(fields: Sequence[str], columns: Sequence[pa.Array]) -> bytes:
    """A complete CSV document: header plus rows."""
    return csv_header(fields) + csv_rows(columns)


def json_string(column: pa.Array) -> pa.Array:
    """JSON string literals (nulls stay null); escapes the two characters our values could hold."""
    escaped = pc.replace_substring(pc.replace_substring(column, "\\", "\\\\"), '"', '\\"')
    return pc.binary_join_element_wise('"', escaped, '"', "")


def jsonl_bytes(fields: Sequence[str], literals: Sequence[pa.Array]) -> bytes:
    """JSON Lines from columns that already hold JSON literals (``"x"``, ``12.5``, ``true``); null -> null."""
    parts: list[pa.Array | str] = []
    for i, (name, column) in enumerate(zip(fields, literals, strict=True)):
        parts.append(("{" if i == 0 else ",") + f'"{name}":')
        parts.append(pc.fill_null(column, "null"))
    parts.append("}\n")
    if not literals or len(literals[0]) == 0:
        return b""
    return _buffer_bytes(pc.binary_join_element_wise(*parts, ""))
