"""Raw file formats: which encodings the landing contract accepts and how to stream each one.

Every reader yields Arrow record batches whose columns are all strings, exactly as the file spelled
them (a JSON number as its written digits), with the physical line of the file each row starts on:
typing is the contract's job (``processing.standardize``), never a reader's guess. Memory is bounded by
the block size, whatever the file size: CSV goes through Arrow's streaming reader, JSON Lines through
blocks of whole lines parsed vectorized (Arrow's JSON reader after a numpy rewrite that keeps every value
as text), gzip is decompressed as a stream.

Before any parser sees a file, ``scan_bytes`` reads it once as bytes (decompressing as a stream) and
finds what the parsers cannot report well: bytes of another format altogether (gzip under a plain name,
a ZIP/xlsx, Parquet), Arrow's CSV reader says "invalid UTF8 data" without a line, accepts NUL bytes as
data, and only fails on a giant line when it outgrows a whole read block; Python's ``gzip`` notices a
truncated stream only at its end. The scan names the first line of each defect.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import threading
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from customer360.processing.memory import keep_freed_memory

SUPPORTED_EXTENSIONS = (".csv.gz", ".jsonl.gz", ".csv", ".jsonl")
# Reasons a reader raises for bytes that are not text of the declared encoding (scan_bytes names each one).
BYTE_LEVEL_REASONS = frozenset({"nul_bytes", "not_utf8", "line_too_long", "corrupt_compression"})
CSV_BLOCK_BYTES = 4 << 20  # measured: 4 MiB blocks parse fastest here (1 MiB and 16 MiB are slower)
# ~35,000 activity events per block. Measured on a 10M-row day (gate + clean, 2 cores): 8 MiB blocks take
# 7% less time than 4 MiB (half the per-block calls, half the thread hand-offs) for ~110 MB more peak RSS;
# 16 MiB blocks outgrow what glibc's malloc keeps in its heaps and fault ten times as many pages.
JSONL_BLOCK_BYTES = 8 << 20
JSONL_PARSE_THREADS = 2
# No record of any contract comes near this; a longer physical line is a broken export, not data.
MAX_LINE_BYTES = 1 << 20
SCAN_CHUNK_BYTES = 1 << 20
MAX_SAMPLES = 20
SAMPLE_CHARS = 200
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
GZIP_MAGIC = b"\x1f\x8b"
# Well-known starts of binary formats someone may drop under a text name: (magic bytes, what it is).
BINARY_SIGNATURES = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook is one)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"PAR1", "a Parquet file"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel .xls (or other Office) document"),
    (b"%PDF-", "a PDF document"),
    (b"BZh", "bzip2-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"ARROW1", "an Arrow IPC file"),
    (b"ORC", "an ORC file"),
)
NUL_CONTEXT_BYTES = 24  # bytes shown either side of a NUL or an invalid byte in a report sample
_LF, _CR, _QUOTE, _BACKSLASH, _SPACE, _TAB = 10, 13, 34, 92, 32, 9
_LBRACE, _RBRACE, _LBRACKET, _COLON, _COMMA = 123, 125, 91, 58, 44
_JSON_SPACE = " \t\r\n"
_JSON_SPACE_BYTES = b" \t\r"


class FormatError(Exception):
    """The file does not parse as its extension says. ``reason`` is a stable machine-readable code."""

    def __init__(self, reason: str, message: str, *, line: int | None = None, sample: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.line = line
        self.sample = sample


@dataclass(frozen=True)
class FileFormat:
    extension: str  # one of SUPPORTED_EXTENSIONS

    @property
    def compressed(self) -> bool:
        return self.extension.endswith(".gz")

    @property
    def is_csv(self) -> bool:
        return self.extension.startswith(".csv")


def detect_format(file_name: str) -> FileFormat | None:
    """The accepted encoding a file name declares, or None (the gate rejects it)."""
    lowered = file_name.lower()
    for extension in SUPPORTED_EXTENSIONS:
        if lowered.endswith(extension) and len(lowered) > len(extension):
            return FileFormat(extension)
    return None


@dataclass
class ByteDefect:
    """One kind of byte-level defect: how often it occurs and where, first occurrences first."""

    reason: str
    message: str
    count: int = 0
    samples: list[dict[str, object]] = field(default_factory=list)

    def add(self, sample: dict[str, object]) -> None:
        self.count += 1
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(sample)


@dataclass
class ByteScan:
    """What one pass over a file's (decompressed) bytes found."""

    decompressed_bytes: int = 0
    lines: int = 0
    defects: dict[str, ByteDefect] = field(default_factory=dict)

    def defect(self, reason: str, message: str) -> ByteDefect:
        return self.defects.setdefault(reason, ByteDefect(reason, message))


def binary_signature(start: bytes) -> str | None:
    """What binary format ``start`` (a file's first bytes) belongs to, if it is a well-known one."""
    if start.startswith(GZIP_MAGIC):
        return "gzip-compressed data"
    return next((kind for magic, kind in BINARY_SIGNATURES if start.startswith(magic)), None)


def scan_signature(path: Path, file_format: FileFormat) -> ByteScan:
    """The first bytes only: a file whose bytes are another format than its name says (gzip named .csv)."""
    scan = ByteScan()
    _signature_defect(scan, path, file_format)
    return scan


def _signature_defect(scan: ByteScan, path: Path, file_format: FileFormat) -> bool:
    """Name a file whose bytes are another format than its name says; True when found (nothing else to scan)."""
    with open(path, "rb") as raw:
        start = raw.read(16)
    text_kind = "CSV" if file_format.is_csv else "JSON Lines"
    plain = file_format.extension.removesuffix(".gz")
    if not file_format.compressed and start.startswith(GZIP_MAGIC):
        scan.defect(
            "undeclared_gzip",
            f"this is gzip: the bytes are gzip-compressed {text_kind}, but the name ends {plain}; name it {plain}.gz",
        ).add({"offset": 0, "bytes": start[:2].hex(), "expected_extension": f"{plain}.gz"})
        return True
    if file_format.compressed and not start.startswith(GZIP_MAGIC):
        kind = binary_signature(start)
        what = kind if kind else "not gzip-compressed (plain bytes)"
        hint = "" if kind else f"; if it is plain {text_kind}, name it {plain}"
        scan.defect("corrupt_compression", f"the name ends .gz but the file is {what}{hint}").add(
            {"offset": 0, "bytes": start[:4].hex(), "text": _escaped(start)}
        )
        return True
    return False


def scan_bytes(path: Path, file_format: FileFormat) -> ByteScan:
    """One streaming pass: the format the name says, compression intact, UTF-8 (BOM tolerated), no NUL, no giant line.

    Memory stays bounded by ``SCAN_CHUNK_BYTES + MAX_LINE_BYTES`` whatever the file: lines are checked
    a block of complete lines at a time (UTF-8 never puts a newline byte inside a character, so cutting
    at newlines never splits one), and a line that outgrows ``MAX_LINE_BYTES`` is reported, then skipped.
    Clean blocks take a fast path (Arrow's UTF-8 validation of the whole block, no Python string built);
    only a block holding a defect is examined line by line, to name the lines.
    """
    scan = ByteScan()
    if _signature_defect(scan, path, file_format):
        return scan
    carry = b""  # the start of a line that has not ended yet
    carry_line = 1  # its line number
    carry_offset = 0  # its byte offset in the (decompressed) file
    in_giant_line = False
    first = True
    opener = gzip.open if file_format.compressed else open
    try:
        with opener(path, "rb") as stream:
            while chunk := stream.read(SCAN_CHUNK_BYTES):
                chunk_offset = scan.decompressed_bytes
                scan.decompressed_bytes += len(chunk)
                if first:
                    first = False
                    if chunk.startswith(UTF16_BOMS):
                        # Every other byte is NUL: naming each line would only repeat this.
                        scan.defect("not_utf8", "the file is UTF-16 (byte order mark FF FE / FE FF), not UTF-8").add(
                            {"line": 1, "column": 1, "offset": 0, "bytes": chunk[:2].hex()}
                        )
                        return scan
                    kind = binary_signature(chunk)
                    if kind is not None:
                        text_kind = "CSV" if file_format.is_csv else "JSON Lines"
                        scan.defect("binary_file", f"the file is {kind}, not {text_kind} text").add(
                            {"offset": 0, "bytes": chunk[:8].hex(), "text": _escaped(chunk[:16])}
                        )
                        return scan
                    if chunk.startswith(UTF8_BOM):
                        chunk, chunk_offset = chunk[len(UTF8_BOM) :], chunk_offset + len(UTF8_BOM)
                        carry_offset = chunk_offset
                if in_giant_line:
                    cut = chunk.find(b"\n")
                    if cut < 0:
                        continue
                    chunk, carry_line, in_giant_line = chunk[cut + 1 :], carry_line + 1, False
                    chunk_offset += cut + 1
                    carry_offset = chunk_offset
                data = carry + chunk
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    if len(carry) > MAX_LINE_BYTES:
                        _giant(scan, carry_line, carry)
                        carry, in_giant_line = b"", True
                    continue
                complete, carry = data[: cut + 1], data[cut + 1 :]
                _check_lines(scan, complete, carry_line, carry_offset)
                carry_line += complete.count(b"\n")
                carry_offset += len(complete)
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        scan.defect("corrupt_compression", f"cannot decompress: {error}").add(
            {"after_decompressed_bytes": scan.decompressed_bytes, "error": str(error)[:SAMPLE_CHARS]}
        )
        return scan
    if carry and not in_giant_line:
        _check_lines(scan, carry + b"\n", carry_line, carry_offset)
    scan.lines = carry_line - (0 if carry else 1)
    return scan


def _valid_utf8(block: bytes) -> bool:
    """Arrow's UTF-8 validation: far faster than ``bytes.decode`` on non-ASCII text, and builds no string."""
    if block.isascii():
        return True
    text = pa.StringArray.from_buffers(1, pa.py_buffer(np.array([0, len(block)], np.int32)), pa.py_buffer(block))
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _check_lines(scan: ByteScan, block: bytes, first_line: int, offset: int) -> None:
    """Check a block of complete lines (ending in a newline) starting at ``first_line``, byte ``offset``."""
    if b"\0" not in block and _valid_utf8(block):
        # Every line but the first lies within one scan chunk, so only the first can be giant.
        first_end = block.find(b"\n")
        if first_end > MAX_LINE_BYTES:
            _giant(scan, first_line, block[:first_end])
        return
    line_offset = offset
    for number, line in enumerate(block.split(b"\n")[:-1], start=first_line):
        start, line_offset = line_offset, line_offset + len(line) + 1
        if len(line) > MAX_LINE_BYTES:
            _giant(scan, number, line)
            continue
        nul = line.find(b"\0")
        if nul >= 0:
            scan.defect("nul_bytes", "the file contains NUL bytes (binary data, or UTF-16 text)").add(
                {
                    "line": number,
                    "column": nul + 1,
                    "offset": start + nul,
                    "nul_bytes_in_line": line.count(b"\0"),
                    "text": _window(line, nul),
                }
            )
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as error:
            scan.defect("not_utf8", "bytes that are not UTF-8 (latin-1/cp1252 or binary data?)").add(
                {
                    "line": number,
                    "column": error.start + 1,
                    "offset": start + error.start,
                    "bytes": line[error.start : error.end].hex(),
                    "text": _window(line, error.start),
                }
            )


def _giant(scan: ByteScan, line: int, start: bytes) -> None:
    scan.defect("line_too_long", f"a line is longer than {MAX_LINE_BYTES} bytes").add(
        {"line": line, "text": _escaped(start[:SAMPLE_CHARS])}
    )


def _window(line: bytes, at: int) -> str:
    """A short escaped excerpt of ``line`` around byte ``at``: enough to find the spot, never the whole line."""
    begin = max(0, at - NUL_CONTEXT_BYTES)
    prefix = "..." if begin else ""
    suffix = "..." if at + NUL_CONTEXT_BYTES < len(line) else ""
    return prefix + _escaped(line[begin : at + NUL_CONTEXT_BYTES]) + suffix


def _escaped(data: bytes) -> str:
    """Bytes as readable text: invalid UTF-8 and control characters (NUL included) as \\xNN."""
    text = data.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" for c in text)


def _show(line: bytes) -> str:
    """A bounded, printable rendering of a line's start: invalid bytes and controls escaped, never the whole line."""
    return _escaped(line[: SAMPLE_CHARS * 4])[:SAMPLE_CHARS]


def csv_ragged_rows(path: Path, file_format: FileFormat, expected: int) -> tuple[list[RaggedRow], FormatError | None]:
    """Records whose field count differs from the header's, with the physical line each starts on.

    Arrow's streaming reader reports a ragged row's text but not its line (``InvalidRow.number`` is
    unknown when reading in blocks), so a rejected file is read once more with Python's csv module,
    which counts physical lines even across quoted newlines. Only files already known to be ragged pay
    for this pass. Blank lines are not records (Arrow skips them too). Also returns the csv module's
    strict-mode error (an unterminated quote) if any.
    """
    found: list[RaggedRow] = []
    opener = gzip.open if file_format.compressed else open
    with opener(path, "rb") as binary, io.TextIOWrapper(binary, encoding="utf-8-sig", newline="") as text:
        reader = csv.reader(text, strict=True)
        start = 1
        header_seen = False
        try:
            for record in reader:
                if record and header_seen and len(record) != expected and len(found) < MAX_SAMPLES:
                    found.append(RaggedRow(start, expected, len(record), ",".join(record)[:SAMPLE_CHARS]))
                header_seen = header_seen or bool(record)
                start = reader.line_num + 1
        except csv.Error as error:
            return found, FormatError("unparseable_csv", f"line {start}: {error}", line=start)
    return found, None


@dataclass
class RaggedRow:
    line: int | None
    expected: int
    actual: int
    text: str


class StringBatches:
    """Streams one file as all-string record batches, with the physical line of every row.

    Iterating yields ``(batch, lines)``: ``lines`` holds, per row, the physical line of the file where
    the row starts (1-based, counting the CSV header, blank lines and the lines a quoted value spans),
    so that every row can be traced back to its place in the file.

    ``header`` is the CSV header row. For JSON Lines it is the union of the keys of every object read so
    far, in the order they first appear (an object may omit a key another one has: that row's value is
    empty); it is complete once the file has been iterated.
    """

    def __init__(self, path: Path, file_format: FileFormat, *, csv_block_bytes: int = CSV_BLOCK_BYTES) -> None:
        self.path = path
        self.format = file_format
        self.csv_block_bytes = csv_block_bytes
        self.header: list[str] = []
        self.ragged_rows: list[RaggedRow] = []
        self.ragged_count = 0
        self.rows = 0
        self._header_lines = 1  # physical lines up to the end of the CSV header (blank lines before it included)
        keep_freed_memory()  # block-sized buffers come and go many times per block (processing.memory)

    def _binary(self) -> pa.NativeFile:
        return pa.input_stream(str(self.path), compression="gzip" if self.format.compressed else None)

    def read_header(self) -> list[str]:
        """The CSV header row (after any blank lines), or the keys of the first JSON object.

        An empty list when there is none: a CSV of blank lines, or a JSON Lines file with no object.
        """
        with self._binary() as stream:
            text = io.TextIOWrapper(_NativeReader(stream), encoding="utf-8-sig", newline="")
            try:
                if self.format.is_csv:
                    reader = csv.reader(text)
                    self.header = next((record for record in reader if record), [])
                    self._header_lines = reader.line_num
                else:
                    for number, line in enumerate(text, start=1):
                        if line.strip(_JSON_SPACE):
                            self.header = list(_json_object(line.encode(), number))
                            break
            except UnicodeDecodeError as error:
                raise FormatError("not_utf8", f"header is not UTF-8: {error}", line=1) from error
            except (OSError, EOFError, gzip.BadGzipFile) as error:
                raise FormatError("corrupt_compression", f"cannot decompress: {error}") from error
            except csv.Error as error:
                raise FormatError("unparseable_csv", f"header does not parse as CSV: {error}", line=1) from error
        return self.header

    def __iter__(self) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
        """Yield (batch, physical line of each of its rows)."""
        if self.format.is_csv:
            if not self.header:
                self.read_header()
            yield from self._csv_batches()
        else:
            yield from self._jsonl_batches()

    # -- CSV ------------------------------------------------------------------------------------------

    def _csv_batches(self) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
        expected = len(self.header)

        def on_invalid_row(row: pacsv.InvalidRow) -> str:
            self.ragged_count += 1
            if len(self.ragged_rows) < 20:
                line = row.number if row.number and row.number > 0 else None
                self.ragged_rows.append(RaggedRow(line, row.expected_columns, row.actual_columns, row.text[:200]))
            return "skip"

        read_options = pacsv.ReadOptions(
            column_names=[f"c{i}" for i in range(expected)],
            skip_rows=self._header_lines,
            block_size=self.csv_block_bytes,
        )
        parse_options = pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid_row)
        convert_options = pacsv.ConvertOptions(
            column_types={f"c{i}": pa.string() for i in range(expected)},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        tracker = _LineTracker(self._binary())
        try:
            try:
                reader = pacsv.open_csv(
                    tracker, read_options=read_options, parse_options=parse_options, convert_options=convert_options
                )
            except pa.ArrowInvalid as error:
                # Arrow cannot skip the header of a file that is nothing but a header without a final
                # newline; the header line is bounded by scan_bytes, far below the block size.
                if "Could not skip initial" in str(error):
                    return
                raise
            next_line = self._header_lines + 1
            for batch in reader:
                if not batch.num_rows:
                    continue
                lines, next_line = tracker.row_lines(batch, next_line)
                self.rows += batch.num_rows
                yield pa.RecordBatch.from_arrays(batch.columns, names=self.header), pa.array(lines)
        except pa.ArrowInvalid as error:
            raise _csv_error(error, self.rows) from error
        except (OSError, EOFError) as error:
            raise FormatError("corrupt_compression", f"cannot decompress: {error}") from error
        finally:
            tracker.close()

    # -- JSON Lines -----------------------------------------------------------------------------------

    def _jsonl_batches(self) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
        """One batch per block of complete lines, blocks parsed ``JSONL_PARSE_THREADS`` at a time, in order.

        The parsing is numpy and Arrow work that releases the GIL, so a second block parses while the
        first one's rows are typed; at most ``JSONL_PARSE_THREADS + 1`` blocks are in flight.
        """
        seen: dict[str, None] = {}
        known = _KnownKeys()
        with ThreadPoolExecutor(max_workers=JSONL_PARSE_THREADS, thread_name_prefix="jsonl") as pool:
            pending: deque[Future[tuple[pa.RecordBatch, np.ndarray]]] = deque()
            first_line: Future[int] = Future()
            first_line.set_result(1)
            for block in self._jsonl_blocks():
                next_first_line: Future[int] = Future()
                pending.append(pool.submit(_parse_numbered_jsonl_block, block, first_line, next_first_line, known))
                first_line = next_first_line
                while len(pending) > JSONL_PARSE_THREADS or (pending and pending[0].done()):
                    yield from self._jsonl_batch(pending.popleft().result(), seen)
            while pending:
                yield from self._jsonl_batch(pending.popleft().result(), seen)

    def _jsonl_batch(
        self, parsed: tuple[pa.RecordBatch, np.ndarray], seen: dict[str, None]
    ) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
        batch, lines = parsed
        if not len(lines):
            return
        for name in batch.schema.names:
            if name not in seen:
                seen[name] = None
                self.header.append(name)
        self.rows += len(lines)
        yield batch, pa.array(lines)

    def _jsonl_blocks(self) -> Iterator[bytes]:
        """The decompressed file as blocks of whole lines ending in a newline; memory bounded by the block size.

        Each block is checked to be UTF-8 without NUL bytes, so that a file the gate did not scan first
        stops at its first byte defect (the gate then scans it to name every defect).
        """
        carry = b""
        first = True
        with self._binary() as stream:
            while True:
                try:
                    chunk = stream.read(JSONL_BLOCK_BYTES)
                except (OSError, EOFError, pa.ArrowInvalid) as error:
                    raise FormatError("corrupt_compression", f"cannot decompress: {error}") from error
                if first:
                    chunk, first = chunk.removeprefix(UTF8_BOM), False
                if not chunk:
                    break
                cut = chunk.rfind(b"\n")
                if cut < 0:
                    carry += chunk
                    if len(carry) > MAX_LINE_BYTES:
                        raise FormatError("line_too_long", f"a line is longer than {MAX_LINE_BYTES} bytes")
                    continue
                # One copy of the block's bytes: the carried start of its first line and the chunk up to its last LF.
                block = b"".join((carry, memoryview(chunk)[: cut + 1]))
                carry = chunk[cut + 1 :]
                yield _checked(block)
        if carry:
            yield _checked(carry + b"\n")


def _checked(block: bytes) -> bytes:
    """A block of lines, once known to be UTF-8 text without NUL bytes (the gate's scan then names each defect)."""
    if b"\0" in block:
        raise FormatError("nul_bytes", "the file contains NUL bytes")
    if not _valid_utf8(block):
        raise FormatError("not_utf8", "the file holds bytes that are not UTF-8")
    return block


class _KnownKeys:
    """The keys met so far in a file, shared by the threads parsing its blocks."""

    def __init__(self) -> None:
        self._names: list[str] = []
        self._lock = threading.Lock()

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self._names)

    def add(self, names: list[str]) -> None:
        with self._lock:
            self._names.extend(name for name in names if name not in self._names)


def _parse_numbered_jsonl_block(
    block: bytes, first_line: Future[int], next_first_line: Future[int], known: _KnownKeys
) -> tuple[pa.RecordBatch, np.ndarray]:
    """``_parse_jsonl_block`` once the previous block has said where this one starts; says where the next starts.

    Counting a block's lines is a pass over its bytes: done here, on the parsing threads, rather than by the
    reader between two reads. Blocks are taken in file order, so the previous block is already counting.
    """
    lines = block.count(b"\n")
    start = first_line.result()
    next_first_line.set_result(start + lines)
    return _parse_jsonl_block(block, start, known)


def _parse_jsonl_block(block: bytes, first_line: int, known: _KnownKeys) -> tuple[pa.RecordBatch, np.ndarray]:
    """One block's rows as a string batch holding the keys its objects hold, and their physical lines."""
    uniform = _jsonl_block_uniform(block, first_line)
    if uniform is not None:
        known.add(uniform[0].column_names)
        return _record_batch(uniform[0], len(uniform[1])), uniform[1]
    names = known.snapshot()
    parsed = _jsonl_block_vectorized(block, first_line, names)
    if parsed is None:
        table, lines = _jsonl_block_by_line(block, first_line)
        return _record_batch(table, len(lines)), lines
    known.add(names)
    table, lines = parsed
    # Arrow gives every known key a column: keep only the keys this block's objects hold, in the order
    # they first appear in the block. Arrow's order follows ``known``, which depends on how far the
    # other thread had got: the same bytes must give the same columns (records, header) on every read.
    at = {name: _key_position(block, name) for name in table.column_names}
    present = [name for name, column in zip(table.column_names, table.columns, strict=True)
               if at[name] >= 0 or column.null_count < len(column)]  # fmt: skip
    present.sort(key=lambda name: at[name])
    return _record_batch(table.select(present), len(lines)), lines


def _record_batch(table: pa.Table, rows: int) -> pa.RecordBatch:
    """One batch of ``rows`` rows (a block of ``{}`` objects has rows but no columns)."""
    if not table.num_columns:
        return pa.RecordBatch.from_arrays([pa.nulls(rows)], names=["_"]).select([])
    return pa.RecordBatch.from_arrays([c.combine_chunks() for c in table.columns], names=table.column_names)


_TRACK_PIECE_BYTES = 256 << 10


# -- CSV physical lines -------------------------------------------------------------------------------


class _LineTracker(io.RawIOBase):
    """The byte stream Arrow's CSV reader reads, noting where the file's blank lines are on the way.

    Arrow's streaming reader says neither where a record starts nor that it skipped a blank line, so the
    bytes are looked at as Arrow pulls them: line breaks (``\\n``, ``\\r\\n``, a lone ``\\r``, as Arrow
    and Python's csv module count them) are counted, and blank lines are kept as runs (first line,
    count). A batch's rows then get their lines from the breaks inside their values (counted with Arrow
    compute, only for a batch that holds any) and the blank runs before them. Runs behind the rows
    already numbered are dropped, so memory follows Arrow's read-ahead, not the file: a million blank
    lines in a row are one run.
    """

    def __init__(self, stream: pa.NativeFile) -> None:
        self._stream = stream
        self._breaks = 0  # line breaks seen so far
        self._last_end = -1  # absolute offset of the last break's final byte (-1: the file starts a line)
        self._offset = 0
        self._carriage_returns = False  # whether any \r was seen (files without one take the short path)
        self._pending_cr = False  # the last byte read was \r: a lone break or the first half of \r\n
        self._run_starts: list[np.ndarray] = []
        self._run_lengths: list[np.ndarray] = []

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        data = self._stream.read(size) if size >= 0 else self._stream.read()
        self._note(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream.close()
        super().close()

    def _note(self, data: bytes) -> None:
        # Pieces bound the working arrays (one int64 per line break) whatever Arrow's block size.
        for start in range(0, max(len(data), 1), _TRACK_PIECE_BYTES):
            self._note_piece(data[start : start + _TRACK_PIECE_BYTES])

    def _note_piece(self, data: bytes) -> None:
        base = self._offset
        self._offset += len(data)
        if not data:
            if self._pending_cr:  # the file ends with a lone \r
                self._add_breaks(np.array([base - 1]), np.array([base - 1]))
                self._pending_cr = False
            return
        array = np.frombuffer(data, np.uint8)
        line_feeds = np.flatnonzero(array == _LF)
        if not self._carriage_returns and b"\r" not in data:
            self._add_breaks(line_feeds + base, line_feeds + base)
            return
        self._carriage_returns = True
        after_cr = np.empty(len(line_feeds), np.bool_)
        after_cr[line_feeds > 0] = array[line_feeds[line_feeds > 0] - 1] == _CR
        after_cr[line_feeds == 0] = self._pending_cr
        starts = [line_feeds - after_cr]
        ends = [line_feeds]
        if self._pending_cr and array[0] != _LF:
            starts.insert(0, np.array([-1]))
            ends.insert(0, np.array([-1]))
        carriage_returns = np.flatnonzero(array == _CR)
        inside = carriage_returns[carriage_returns < len(array) - 1]
        lone = inside[array[inside + 1] != _LF]
        self._pending_cr = bool(array[-1] == _CR)
        starts.append(lone)
        ends.append(lone)
        break_starts, break_ends = np.concatenate(starts), np.concatenate(ends)
        order = np.argsort(break_ends, kind="stable")
        self._add_breaks(break_starts[order] + base, break_ends[order] + base)

    def _add_breaks(self, starts: np.ndarray, ends: np.ndarray) -> None:
        if not len(ends):
            return
        previous_ends = np.empty_like(ends)
        previous_ends[0] = self._last_end
        previous_ends[1:] = ends[:-1]
        blank = np.flatnonzero(starts == previous_ends + 1)  # nothing between the previous break and this one
        if len(blank):
            numbers = self._breaks + 1 + blank
            run_begins = np.flatnonzero(np.diff(numbers, prepend=numbers[0] - 2) != 1)
            self._run_starts.append(numbers[run_begins])
            self._run_lengths.append(np.diff(np.append(run_begins, len(numbers))))
        self._breaks += len(ends)
        self._last_end = int(ends[-1])

    def row_lines(self, batch: pa.RecordBatch, next_line: int) -> tuple[np.ndarray, int]:
        """The physical line each row of ``batch`` starts on, and the line after the batch's last row."""
        rows = batch.num_rows
        extra = _breaks_in_values(batch)
        run_starts, run_lengths = self._runs_from(next_line)
        if extra is None and not len(run_starts):
            return np.arange(next_line, next_line + rows, dtype=np.int64), next_line + rows
        spans = np.ones(rows, np.int64) if extra is None else extra + 1
        if extra is not None and len(run_starts) and _consecutive_breaks_in_values(batch):
            # A quoted value holding an empty line looks like a blank line to the byte scan; walk the rows.
            starts = _walk_rows(next_line, spans, run_starts, run_lengths)
        else:
            consumed = np.cumsum(spans) - spans  # lines the batch's earlier rows take, blank lines aside
            blank_before_run = np.cumsum(run_lengths) - run_lengths
            # run j lies before row i when the non-blank lines between next_line and the run are <= consumed[i]
            position = (run_starts - next_line) - blank_before_run
            runs_before = np.searchsorted(position, consumed, side="right")
            blank_lines_before = np.concatenate([[0], np.cumsum(run_lengths)])[runs_before]
            starts = next_line + consumed + blank_lines_before
        after = int(starts[-1] + spans[-1])
        self._drop_runs_before(after)
        return starts, after

    def _runs_from(self, line: int) -> tuple[np.ndarray, np.ndarray]:
        self._drop_runs_before(line)
        if not self._run_starts:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        if len(self._run_starts) > 1:
            self._run_starts = [np.concatenate(self._run_starts)]
            self._run_lengths = [np.concatenate(self._run_lengths)]
        return self._run_starts[0], self._run_lengths[0]

    def _drop_runs_before(self, line: int) -> None:
        while self._run_starts:
            keep = self._run_starts[0] >= line
            if keep.all():
                return
            self._run_starts[0], self._run_lengths[0] = self._run_starts[0][keep], self._run_lengths[0][keep]
            if len(self._run_starts[0]):
                return
            del self._run_starts[0], self._run_lengths[0]


def _breaks_in_values(batch: pa.RecordBatch) -> np.ndarray | None:
    """Per row, the line breaks inside its quoted values; None (the usual case) when the batch has none.

    The check is a byte search over each column's data buffer; only a batch that holds a break pays for
    counting them value by value.
    """
    columns = []
    for column in batch.columns:
        data = column.buffers()[2]
        if data is not None and data.size:
            raw = data.to_pybytes()
            if b"\n" in raw or b"\r" in raw:
                columns.append(column)
    if not columns:
        return None
    extra = np.zeros(batch.num_rows, np.int64)
    for column in columns:
        for pattern, sign in (("\n", 1), ("\r", 1), ("\r\n", -1)):  # \r\n is one break, not two
            counts = pc.fill_null(pc.count_substring(column, pattern), 0)
            extra += sign * counts.to_numpy(zero_copy_only=False).astype(np.int64)
    return extra


def _consecutive_breaks_in_values(batch: pa.RecordBatch) -> bool:
    """Whether a value holds an empty line (two breaks in a row), which the byte scan counts as blank."""
    return any(pc.any(pc.match_substring_regex(column, r"\n[\r\n]|\r\r")).as_py() for column in batch.columns)


def _walk_rows(next_line: int, spans: np.ndarray, run_starts: np.ndarray, run_lengths: np.ndarray) -> np.ndarray:
    """Row start lines one row at a time: blank runs inside a row (a quoted empty line) are stepped over."""
    starts = np.empty(len(spans), np.int64)
    line, run = next_line, 0
    for i, span in enumerate(spans.tolist()):
        while run < len(run_starts) and run_starts[run] < line:
            run += 1
        while run < len(run_starts) and run_starts[run] == line:
            line += int(run_lengths[run])
            run += 1
        starts[i] = line
        line += span
    return starts


# -- JSON Lines blocks --------------------------------------------------------------------------------

# A bare JSON value: a number as JSON writes it, or a literal.
_BARE_VALUE = r"^(?:-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null)$"
_MAX_BARE_VALUE_BYTES = 64
_MAX_SPACE_LINES = 1000  # lines of only spaces checked one by one in a block; more go line by line


def _block_lines(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per line of a block of whole lines: where its LF is, where it starts, where its content ends (before a CR)."""
    line_ends = np.flatnonzero(a == _LF)
    line_starts = np.zeros_like(line_ends)
    line_starts[1:] = line_ends[:-1] + 1
    has_cr = (line_ends > line_starts) & (a[line_ends - 1] == _CR)
    return line_ends, line_starts, line_ends - has_cr


def _jsonl_block_vectorized(
    block: bytes, first_line: int, known: list[str] | None = None
) -> tuple[pa.Table, np.ndarray] | None:
    """Parse a block of flat JSON objects, one per line, into string columns; None when it needs the line-by-line path.

    Arrow's JSON reader is fast but types every value it reads, so ``12.50`` would become 12.5 and a
    field holding numbers on some lines and strings on others fails the whole block. So the block is
    first rewritten, vectorized with numpy, with every bare value (number, true, false) wrapped in
    quotes: Arrow then reads each value as the exact text the file spells, as a CSV would carry it.
    The rewrite finds strings by their quotes (escaped quotes excluded) and the values after the colons
    outside them, and checks each bare value against JSON's grammar, so that a valid value only becomes
    a valid string (Arrow still judges everything else). Anything this does not cover (an array or a
    nested object, a line that is not exactly one object, a malformed line, duplicate keys) returns
    None, and the block is read line by line, which handles and names every case.

    ``known`` lists the keys met so far (extended in place): a key the block brings that is not in it
    makes Arrow infer a type for it, so the block is read again with the key as text.
    """
    a = np.frombuffer(block, np.uint8)
    line_ends, line_starts, content_ends = _block_lines(a)
    object_lines = np.flatnonzero(content_ends > line_starts)
    other = object_lines[a[line_starts[object_lines]] != _LBRACE]
    if len(other):
        # Lines of spaces and tabs are blank too; anything else is read line by line.
        if len(other) > _MAX_SPACE_LINES:
            return None
        if any(block[line_starts[i] : content_ends[i]].strip(_JSON_SPACE_BYTES) for i in other.tolist()):
            return None
        object_lines = np.setdiff1d(object_lines, other, assume_unique=True)
    lines = first_line + object_lines
    if not len(object_lines):
        return pa.table({}), lines
    if not (a[content_ends[object_lines] - 1] == _RBRACE).all():
        return None
    quotes = np.flatnonzero(a == _QUOTE)
    if b"\\" in block:
        quotes = _unescaped(a, quotes)
    if len(quotes) % 2:
        return None  # a quote left open: the line-by-line path names the line
    delta = np.zeros(len(a) + 1, np.int8)
    delta[quotes[0::2]] = 1
    delta[quotes[1::2] + 1] = -1
    in_string = np.cumsum(delta[:-1], dtype=np.int8).view(np.bool_)
    if in_string[line_ends].any():
        return None  # quotes do not pair up within each line
    # A colon outside strings ends a key. Nested values are not looked for: Arrow refuses them as text,
    # and reads two objects on a line (or one across lines) as a row count that differs from the lines.
    colons = np.flatnonzero(a == _COLON)
    value_starts = _skip_space(a, colons[~in_string[colons]] + 1, 1)
    bare_starts = value_starts[a[value_starts] != _QUOTE]
    bare_ends = _bare_value_ends(a, bare_starts)
    if bare_ends is None:
        return None
    bare = _slices(block, bare_starts, bare_ends)
    if len(bare) and not pc.all(pc.match_substring_regex(bare, _BARE_VALUE)).as_py():
        return None
    # Every bare value is now a number or a literal: the only one starting with 'n' is null (left as is).
    quoted = a[bare_starts] != ord("n")
    text = pa.py_buffer(_insert_quotes(a, bare_starts[quoted], bare_ends[quoted]))
    known = [] if known is None else known
    table = _read_json_text(text, known)
    if table is not None and len(table.column_names) > len(known):
        known.extend(name for name in table.column_names[len(known) :])
        table = _read_json_text(text, known)
    if table is None or table.num_rows != len(object_lines):
        return None
    return table, lines


def _jsonl_block_uniform(block: bytes, first_line: int) -> tuple[pa.Table, np.ndarray] | None:
    """A block whose objects all spell the same keys in the same order, cut into columns by byte position; else None.

    What most writers produce (one record type, serialized field by field) is read without a JSON parser:
    every token's place is found with numpy over the whole block, the structure is checked byte for byte
    (``{``, keys, ``:``, values, ``,``, ``}``, one optional space after ``:`` and ``,`` as ``json.dumps``
    writes them), and each column is gathered from the value spans. A string value is its bytes (the block
    holds no backslash, so no escape; raw control characters, which JSON forbids in strings, are refused);
    a bare value must be a JSON number or literal (``_BARE_VALUE``) and keeps its exact text; ``null`` is
    empty. Anything else (another key set or order on some line, escapes, nesting, other spacing, blank
    lines of spaces) returns None and the block takes ``_jsonl_block_vectorized``, which reads any flat JSON.
    """
    if b"\\" in block:
        return None
    a = np.frombuffer(block, np.uint8)
    line_ends, line_starts, content_ends = _block_lines(a)
    objects = np.flatnonzero(content_ends > line_starts)
    if not len(objects):
        return None
    starts, ends = line_starts[objects], content_ends[objects]
    if not ((a[starts] == _LBRACE).all() and (a[ends - 1] == _RBRACE).all()):
        return None
    try:
        keys = list(_json_object(block[starts[0] : ends[0]], first_line + int(objects[0])))
    except (FormatError, ValueError):
        return None
    width, rows = len(keys), len(objects)
    if not width:
        return None
    # JSON allows no raw control character in a string, and the structure below none outside one: the
    # only ones are the line breaks (LF, and CR before it).
    if np.count_nonzero(a < _SPACE) != len(line_ends) + int((line_ends - content_ends).sum()):
        return None
    # Without backslashes no string holds a quote, so a quote followed by a colon closes a key.
    quotes = np.flatnonzero(a == _QUOTE)
    closes_key = a[np.minimum(quotes + 1, len(a) - 1)] == _COLON
    closes_key[0] = False  # a quote that opens nothing cannot close a key
    key_index = np.flatnonzero(closes_key)
    if len(key_index) != rows * width:
        return None
    key_close = quotes[key_index].reshape(rows, width)
    key_open = quotes[key_index - 1].reshape(rows, width)
    if not ((key_open[:, 0] > starts) & (key_close[:, -1] < ends)).all() or (
        rows > 1 and not (key_open[1:, 0] > ends[:-1]).all()
    ):
        return None  # the keys are not width per line
    # Values: from after the colon (and one space) to the comma before the next key (after one space),
    # or to the line's closing brace.
    colons = key_close + 1
    value_start = colons + 1
    value_start += a[value_start] == _SPACE
    value_end = np.empty_like(value_start)
    value_end[:, -1] = ends - 1
    if width > 1:
        next_key = key_open[:, 1:]
        value_end[:, :-1] = next_key - 1 - (a[next_key - 1] == _SPACE)
        if not (a[value_end[:, :-1]] == _COMMA).all():
            return None
    after_open = key_open[:, 0] - starts
    if not ((after_open == 1) | ((after_open == 2) & (a[starts + 1] == _SPACE))).all():
        return None
    is_string = a[value_start] == _QUOTE
    string_close = value_end - 1
    if not ((a[string_close] == _QUOTE) & (string_close > value_start))[is_string].all():
        return None
    # Every quote is a key's or a string value's: no stray quote hides inside a value.
    if len(quotes) != 2 * (rows * width + int(is_string.sum())):
        return None
    text_start = np.where(is_string, value_start + 1, value_start)
    text_end = np.where(is_string, string_close, value_end)
    bounds = np.empty((rows, width, 4), np.int32)
    bounds[..., 0], bounds[..., 1], bounds[..., 2], bounds[..., 3] = key_open + 1, key_close, text_start, text_end
    flat = bounds.reshape(-1)
    if flat[0] < 0 or flat[-1] > len(a) or (flat[1:] < flat[:-1]).any():
        return None  # Arrow reads these as offsets: they must never run backwards or out of the block
    tokens = _spans(block, bounds)
    cells = 4 * np.arange(rows * width, dtype=np.int64).reshape(rows, width)
    if not _keys_spelled(a, key_open + 1, key_close, keys):
        return None
    # A bare value starting with 'n' can only be null (empty); every other bare value is checked against
    # JSON's grammar in its column, once the column is cut.
    null = ~is_string & (a[value_start] == ord("n"))
    if null.any() and not _spell_null(a, value_start[null], text_end[null]):
        return None
    columns = []
    for j in range(width):
        column = _as_text(tokens.take(pa.array(cells[:, j] + 2)), null[:, j])
        bare = ~is_string[:, j] & ~null[:, j]
        if bare.any() and not _bare_values_valid(column if bare.all() else column.filter(pa.array(bare))):
            return None
        columns.append(column)
    return pa.table(columns, names=keys), first_line + objects


def _spell_null(a: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> bool:
    """Whether every span is exactly ``null``."""
    if not (ends - starts == 4).all():
        return False
    return all((a[starts + k] == byte).all() for k, byte in enumerate(b"null"))


def _bare_values_valid(values: pa.StringArray) -> bool:
    """Whether every value is a JSON number or literal, spelled exactly as JSON allows."""
    return bool(pc.all(pc.match_substring_regex(values, _BARE_VALUE)).as_py())


def _keys_spelled(a: np.ndarray, key_start: np.ndarray, key_end: np.ndarray, keys: list[str]) -> bool:
    """Whether column j of every row spans exactly the bytes of ``keys[j]``: compared 8 bytes at a time."""
    # words[i]: the 8 bytes from byte i. Only the last key of the last line can be near enough to the block's
    # end for a word to run past it: then the block is copied with 8 bytes of padding.
    if int(key_start[-1, -1]) + len(keys[-1].encode()) + 8 > len(a):
        a = np.concatenate([a, np.zeros(8, np.uint8)])
    words = np.ndarray((len(a) - 7,), "<u8", a.data, 0, (1,))
    for j, key in enumerate(keys):
        spelled = key.encode()
        if not (key_end[:, j] - key_start[:, j] == len(spelled)).all():
            return False
        for at in range(0, len(spelled), 8):
            chunk = spelled[at : at + 8]
            expected = int.from_bytes(chunk.ljust(8, b"\0"), "little")
            mask = (1 << (8 * len(chunk))) - 1
            if not ((words[key_start[:, j] + at] & np.uint64(mask)) == np.uint64(expected)).all():
                return False
    return True


def _as_text(spans: pa.BinaryArray, null: np.ndarray | None = None) -> pa.StringArray:
    """Spans of a block already checked to be UTF-8, cut at ASCII bytes, as strings (no second UTF-8 check);
    null where ``null`` says (a validity bitmap laid over the spans: Arrow's take with null indices is ten
    times slower than the take itself)."""
    validity, offsets, data = spans.buffers()
    null_count = spans.null_count
    if null is not None and null.any():
        assert null_count == 0 and spans.offset == 0, "spans cut from a block are never null"
        validity, null_count = pa.py_buffer(np.packbits(~null, bitorder="little")), int(null.sum())
    return pa.StringArray.from_buffers(len(spans), offsets, data, validity, null_count, spans.offset)


def _spans(block: bytes, bounds: np.ndarray) -> pa.BinaryArray:
    """The block cut at ``bounds`` (non-decreasing byte positions) as one binary array, without copying a byte.

    Element ``2k`` is ``block[bounds[2k]:bounds[2k+1]]``; odd elements are what lies between spans.
    """
    offsets = bounds.reshape(-1).astype(np.int32, copy=False)
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(block)]
    return pa.BinaryArray.from_buffers(pa.binary(), len(offsets) - 1, buffers)


def _has_key(block: bytes, name: str) -> bool:
    """Whether some object of the block holds key ``name`` (a column Arrow filled with nulls may be absent or null)."""
    return _key_position(block, name) >= 0


def _key_position(block: bytes, name: str) -> int:
    """Where key ``name`` first appears in the block as a key, or -1.

    In valid JSON a string followed by a colon is a key, and a quote preceded by a backslash is inside
    a string; the key may be written with or without escapes for its non-ASCII characters. A byte
    search, not a regex: this runs over whole blocks.
    """
    first = -1
    for spelling in {json.dumps(name, ensure_ascii=False).encode(), json.dumps(name).encode()}:
        at = block.find(spelling)
        while at >= 0 and (first < 0 or at < first):
            after = at + len(spelling)
            while after < len(block) and block[after] in _JSON_SPACE_BYTES:
                after += 1
            if (at == 0 or block[at - 1] != _BACKSLASH) and block[after : after + 1] == b":":
                first = at
                break
            at = block.find(spelling, at + 1)
    return first


def _read_json_text(text: pa.Buffer, names: list[str]) -> pa.Table | None:
    """Arrow's JSON reader over a rewritten block: ``names`` as text, any other key inferred (read again)."""
    try:
        return pajson.read_json(
            pa.BufferReader(text),
            read_options=pajson.ReadOptions(use_threads=False, block_size=text.size + 1),
            parse_options=pajson.ParseOptions(
                explicit_schema=pa.schema([(name, pa.string()) for name in names]), unexpected_field_behavior="infer"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # duplicate keys, a malformed line: the line-by-line path names it


def _unescaped(a: np.ndarray, quotes: np.ndarray) -> np.ndarray:
    """The quotes that are not escaped: an escaped quote follows an odd run of backslashes."""
    candidates = quotes[(quotes > 0) & (a[np.maximum(quotes - 1, 0)] == _BACKSLASH)]
    if not len(candidates):
        return quotes
    run = np.zeros(len(candidates), np.int64)
    position = candidates - 1
    active = np.ones(len(candidates), np.bool_)
    while active.any():
        active &= (position >= 0) & (a[np.maximum(position, 0)] == _BACKSLASH)
        run += active
        position -= 1
    return np.setdiff1d(quotes, candidates[run % 2 == 1], assume_unique=True)


def _skip_space(a: np.ndarray, positions: np.ndarray, step: int) -> np.ndarray:
    """Move each position over JSON whitespace (space, tab, \\r) in the direction of ``step``."""
    positions = positions.copy()
    for _ in range(_MAX_BARE_VALUE_BYTES):
        clipped = np.clip(positions, 0, len(a) - 1)
        space = (a[clipped] == _SPACE) | (a[clipped] == _TAB) | (a[clipped] == _CR)
        if not space.any():
            break
        positions[space] += step
    return np.clip(positions, 0, len(a) - 1)


def _bare_value_ends(a: np.ndarray, starts: np.ndarray) -> np.ndarray | None:
    """Where each bare value ends: the first byte that cannot belong to a number or literal."""
    ends = starts.copy()
    active = np.arange(len(starts))
    for _ in range(_MAX_BARE_VALUE_BYTES + 1):
        if not len(active):
            return ends
        byte = a[ends[active]]
        lower = byte | 0x20
        part = ((byte >= 48) & (byte <= 57)) | ((lower >= 97) & (lower <= 122)) | (byte == 45) | (byte == 43)
        part |= byte == 46
        active = active[part]
        ends[active] += 1
    return None  # a value this long is no number a contract holds: read the block line by line


def _slices(block: bytes, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """``block[starts[i]:ends[i]]`` for every i, as one Arrow string array: the bytes gathered by numpy, no Python loop.

    Only for spans of ASCII bytes (the bare values ``_bare_value_ends`` delimits), which are valid UTF-8.
    """
    if not len(starts):
        return pa.array([], pa.string())
    lengths = ends - starts
    offsets = np.zeros(len(starts) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    source = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1] - starts, lengths)
    data = np.frombuffer(block, np.uint8)[source]
    return pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(offsets), pa.py_buffer(data)).cast(pa.string())


def _insert_quotes(a: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A copy of ``a`` with a quote inserted before every ``starts[i]`` and before every ``ends[i]``."""
    if not len(starts):
        return a
    at = np.empty(2 * len(starts), np.int64)
    at[0::2], at[1::2] = starts, ends
    at += np.arange(len(at))  # where each quote lands once the earlier ones are in
    out = np.empty(len(a) + len(at), np.uint8)
    original = np.ones(len(out), np.bool_)
    original[at] = False
    out[original] = a
    out[at] = _QUOTE
    return out


def _jsonl_block_by_line(block: bytes, first_line: int) -> tuple[pa.Table, np.ndarray]:
    """Parse a block line by line with Python's json module: exact text for every value, every error named."""
    columns: dict[str, list[str | None]] = {}
    lines: list[int] = []
    for offset, raw in enumerate(block.split(b"\n")[:-1]):
        text = raw.strip(_JSON_SPACE_BYTES)
        if not text:
            continue
        number = first_line + offset
        record = _json_object(text, number)
        row = len(lines)
        nested: dict[str, object] | None = None
        for key, value in record.items():
            column = columns.get(key)
            if column is None:
                column = columns[key] = [None] * row
            if isinstance(value, dict | list):
                # Nested values are kept as compact JSON text; their numbers as Python reads them.
                nested = nested if nested is not None else json.loads(text)
                column.append(json.dumps(nested[key], separators=(",", ":"), ensure_ascii=False))
            else:
                column.append(_json_text(value))
        lines.append(number)
        for column in columns.values():
            if len(column) == row:
                column.append(None)
    table = pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
    return table, np.array(lines, np.int64)  # the table may have no column (objects ``{}``): lines counts the rows


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        raise _DuplicateKeyError(next(k for k, _ in pairs if k in seen or seen.add(k)))  # type: ignore[func-returns-value]
    return record


def _not_json_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


def _json_object(text: bytes, line_number: int) -> dict[str, object]:
    """One line as a JSON object, numbers kept as the text they are written in."""
    sample = _show(text)
    try:
        record = json.loads(
            text,
            parse_float=str,
            parse_int=str,
            parse_constant=_not_json_constant,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as error:
        raise FormatError(
            "invalid_json",
            f"line {line_number} is not JSON: {error.msg} (column {error.colno})",
            line=line_number,
            sample=sample,
        ) from error
    except _DuplicateKeyError as error:
        raise FormatError(
            "duplicate_key", f"line {line_number} repeats the key {error.key!r}", line=line_number, sample=sample
        ) from error
    except ValueError as error:  # NaN, Infinity, or bytes that are not UTF-8
        raise FormatError(
            "invalid_json", f"line {line_number} is not JSON: {error}", line=line_number, sample=sample
        ) from error
    if not isinstance(record, dict):
        kind = _JSON_KINDS.get(text[:1], "number")
        raise FormatError(
            "not_json_object",
            f"line {line_number} is not a JSON object: it is a JSON {kind}",
            line=line_number,
            sample=sample,
        )
    return record


_JSON_KINDS = {b"[": "array", b'"': "string", b"t": "boolean", b"f": "boolean", b"n": "null"}


def _json_text(value: object) -> str | None:
    """A JSON scalar as the text a CSV would carry (numbers arrive as their written text)."""
    if value is None:
        return None
    if value is True:
        return "true"
    if value is False:
        return "false"
    return value  # type: ignore[return-value]  # str: a string, or a number's written digits


def _csv_error(error: pa.ArrowInvalid, rows_before: int) -> FormatError:
    message = str(error)
    if "UTF8" in message or "utf8" in message.lower():
        return FormatError("not_utf8", f"invalid UTF-8 after data row {rows_before}: {message}")
    if "gzip" in message.lower() or "compress" in message.lower():
        return FormatError("corrupt_compression", f"cannot decompress: {message}")
    if "straddling" in message.lower() or "maximum" in message.lower():
        return FormatError("line_too_long", f"a row exceeds the reader's block size: {message}")
    return FormatError("unparseable_csv", f"does not parse as CSV after data row {rows_before}: {message}")


class _NativeReader(io.RawIOBase):
    """Adapts an Arrow input stream to Python's io so text wrappers can read it."""

    def __init__(self, stream: pa.NativeFile) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        size = len(data)
        memoryview(buffer)[:size] = data
        return size
