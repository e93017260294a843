"""Raw file formats: which encodings the landing contract accepts and how to stream each one.

Every reader yields Arrow record batches whose columns are all strings, exactly as the file spelled
them: typing is the contract's job (``processing.standardize``), never a reader's guess. Memory is
bounded by the batch size, whatever the file size: CSV goes through Arrow's streaming reader, JSON
Lines through a line loop that emits a batch every ``batch_rows`` lines, gzip is decompressed as a
stream.

Before any parser sees a file, ``scan_bytes`` reads it once as bytes (decompressing as a stream) and
finds what the parsers cannot report well: Arrow's CSV reader says "invalid UTF8 data" without a line,
accepts NUL bytes as data, and only fails on a giant line when it outgrows a whole read block; Python's
``gzip`` notices a truncated stream only at its end. The scan names the first line of each defect.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

SUPPORTED_EXTENSIONS = (".csv.gz", ".jsonl.gz", ".csv", ".jsonl")
CSV_BLOCK_BYTES = 4 << 20  # measured: 4 MiB blocks parse fastest here (1 MiB and 16 MiB are slower)
JSONL_BATCH_ROWS = 50_000
# No record of any contract comes near this; a longer physical line is a broken export, not data.
MAX_LINE_BYTES = 1 << 20
SCAN_CHUNK_BYTES = 1 << 20
MAX_SAMPLES = 20
SAMPLE_CHARS = 200
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


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


def scan_bytes(path: Path, file_format: FileFormat) -> ByteScan:
    """One streaming pass: compression intact, UTF-8 (a leading BOM tolerated), no NUL byte, no giant line.

    Memory stays bounded by ``SCAN_CHUNK_BYTES + MAX_LINE_BYTES`` whatever the file: lines are checked
    a block of complete lines at a time (UTF-8 never puts a newline byte inside a character, so cutting
    at newlines never splits one), and a line that outgrows ``MAX_LINE_BYTES`` is reported, then skipped.
    Clean blocks take a fast path (one decode of the whole block); only a block holding a defect is
    examined line by line, to name the lines.
    """
    scan = ByteScan()
    carry = b""  # the start of a line that has not ended yet
    carry_line = 1  # its line number
    in_giant_line = False
    first = True
    opener = gzip.open if file_format.compressed else open
    try:
        with opener(path, "rb") as stream:
            while chunk := stream.read(SCAN_CHUNK_BYTES):
                scan.decompressed_bytes += len(chunk)
                if first:
                    first = False
                    if chunk.startswith(UTF16_BOMS):
                        # Every other byte is NUL: naming each line would only repeat this.
                        scan.defect("not_utf8", "the file is UTF-16 (byte order mark FF FE / FE FF), not UTF-8").add(
                            {"line": 1, "column": 1, "bytes": chunk[:2].hex()}
                        )
                        return scan
                    chunk = chunk.removeprefix(UTF8_BOM)
                if in_giant_line:
                    cut = chunk.find(b"\n")
                    if cut < 0:
                        continue
                    chunk, carry_line, in_giant_line = chunk[cut + 1 :], carry_line + 1, False
                data = carry + chunk
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    if len(carry) > MAX_LINE_BYTES:
                        _giant(scan, carry_line, carry)
                        carry, in_giant_line = b"", True
                    continue
                complete, carry = data[: cut + 1], data[cut + 1 :]
                _check_lines(scan, complete, carry_line)
                carry_line += complete.count(b"\n")
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        scan.defect("corrupt_compression", f"cannot decompress: {error}").add(
            {"after_decompressed_bytes": scan.decompressed_bytes, "error": str(error)[:SAMPLE_CHARS]}
        )
        return scan
    if carry and not in_giant_line:
        _check_lines(scan, carry + b"\n", carry_line)
    scan.lines = carry_line - (0 if carry else 1)
    return scan


def _check_lines(scan: ByteScan, block: bytes, first_line: int) -> None:
    """Check a block of complete lines (ending in a newline) starting at ``first_line``."""
    if b"\0" not in block:
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            # Every line but the first lies within one scan chunk, so only the first can be giant.
            first_end = block.find(b"\n")
            if first_end > MAX_LINE_BYTES:
                _giant(scan, first_line, block[:first_end])
            return
    for offset, line in enumerate(block.split(b"\n")[:-1]):
        number = first_line + offset
        if len(line) > MAX_LINE_BYTES:
            _giant(scan, number, line)
            continue
        if b"\0" in line:
            scan.defect("nul_bytes", "the file contains NUL bytes (binary data, or UTF-16 text)").add(
                {"line": number, "column": line.index(b"\0") + 1, "text": _show(line)}
            )
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as error:
            scan.defect("not_utf8", "bytes that are not UTF-8 (latin-1/cp1252 or binary data?)").add(
                {
                    "line": number,
                    "column": error.start + 1,
                    "bytes": line[error.start : error.end].hex(),
                    "text": _show(line),
                }
            )


def _giant(scan: ByteScan, line: int, start: bytes) -> None:
    scan.defect("line_too_long", f"a line is longer than {MAX_LINE_BYTES} bytes").add(
        {"line": line, "text": _show(start[:SAMPLE_CHARS])}
    )


def _show(line: bytes) -> str:
    """A bounded, printable rendering of a line's start: invalid bytes as \\xNN, never the whole line."""
    return line[: SAMPLE_CHARS * 4].decode("utf-8", "backslashreplace")[:SAMPLE_CHARS]


def csv_ragged_rows(path: Path, file_format: FileFormat, expected: int) -> tuple[list[RaggedRow], FormatError | None]:
    """Records whose field count differs from the header's, with the line each starts on.

    Arrow's streaming reader reports a ragged row's text but not its line (``InvalidRow.number`` is
    unknown when reading in blocks), so a rejected file is read once more with Python's csv module,
    which counts physical lines even across quoted newlines. Only files already known to be ragged pay
    for this pass. Also returns the csv module's strict-mode error (an unterminated quote) if any.
    """
    found: list[RaggedRow] = []
    opener = gzip.open if file_format.compressed else open
    with opener(path, "rb") as binary, io.TextIOWrapper(binary, encoding="utf-8-sig", newline="") as text:
        reader = csv.reader(text, strict=True)
        start = 1
        try:
            for record in reader:
                if reader.line_num > 1 and len(record) != expected and len(found) < MAX_SAMPLES:
                    found.append(RaggedRow(start, expected, len(record), ",".join(record)[:SAMPLE_CHARS]))
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
    """Streams one file as all-string record batches, remembering the header and any ragged rows.

    ``first_line_of_batch`` lists, per yielded batch, the source line number of its first row (1-based;
    the CSV header is line 1), so that every row can be traced back to its place in the file.
    """

    def __init__(self, path: Path, file_format: FileFormat, *, csv_block_bytes: int = CSV_BLOCK_BYTES) -> None:
        self.path = path
        self.format = file_format
        self.csv_block_bytes = csv_block_bytes
        self.header: list[str] = []
        self.ragged_rows: list[RaggedRow] = []
        self.ragged_count = 0
        self.rows = 0

    def _binary(self) -> pa.NativeFile:
        return pa.input_stream(str(self.path), compression="gzip" if self.format.compressed else None)

    def read_header(self) -> list[str]:
        """The header names (CSV header row, or the first JSON object's keys)."""
        with self._binary() as stream:
            text = io.TextIOWrapper(_NativeReader(stream), encoding="utf-8-sig", newline="")
            try:
                if self.format.is_csv:
                    first = next(csv.reader(text), None)
                    self.header = [name for name in first] if first else []
                else:
                    line = text.readline()
                    record = _json_object(line, 1) if line.strip() else {}
                    self.header = list(record)
            except UnicodeDecodeError as error:
                raise FormatError("not_utf8", f"header is not UTF-8: {error}", line=1) from error
            except (OSError, EOFError, gzip.BadGzipFile) as error:
                raise FormatError("corrupt_compression", f"cannot decompress: {error}") from error
            except csv.Error as error:
                raise FormatError("unparseable_csv", f"header does not parse as CSV: {error}", line=1) from error
        return self.header

    def __iter__(self) -> Iterator[tuple[pa.RecordBatch, int]]:
        """Yield (batch, source line of the batch's first row)."""
        if not self.header:
            self.read_header()
        if self.format.is_csv:
            yield from self._csv_batches()
        else:
            yield from self._jsonl_batches()

    def _csv_batches(self) -> Iterator[tuple[pa.RecordBatch, int]]:
        expected = len(self.header)

        def on_invalid_row(row: pacsv.InvalidRow) -> str:
            self.ragged_count += 1
            if len(self.ragged_rows) < 20:
                line = row.number if row.number and row.number > 0 else None
                self.ragged_rows.append(RaggedRow(line, row.expected_columns, row.actual_columns, row.text[:200]))
            return "skip"

        read_options = pacsv.ReadOptions(
            column_names=[f"c{i}" for i in range(expected)], skip_rows=1, block_size=self.csv_block_bytes
        )
        parse_options = pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid_row)
        convert_options = pacsv.ConvertOptions(
            column_types={f"c{i}": pa.string() for i in range(expected)},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        try:
            try:
                reader = pacsv.open_csv(
                    self._binary(),
                    read_options=read_options,
                    parse_options=parse_options,
                    convert_options=convert_options,
                )
            except pa.ArrowInvalid as error:
                # Arrow cannot skip the header of a file that is nothing but a header without a final
                # newline; the header line is bounded by scan_bytes, far below the block size.
                if "Could not skip initial" in str(error):
                    return
                raise
            for batch in reader:
                first_line = 2 + self.rows
                self.rows += batch.num_rows
                yield pa.RecordBatch.from_arrays(batch.columns, names=self.header), first_line
        except pa.ArrowInvalid as error:
            raise _csv_error(error, self.rows) from error
        except (OSError, EOFError) as error:
            raise FormatError("corrupt_compression", f"cannot decompress: {error}") from error

    def _jsonl_batches(self) -> Iterator[tuple[pa.RecordBatch, int]]:
        columns: dict[str, list[str | None]] = {name: [] for name in self.header}
        first_line = 1
        line_number = 0
        with self._binary() as stream:
            text = io.TextIOWrapper(_NativeReader(stream), encoding="utf-8-sig")
            try:
                for line_number, line in enumerate(text, start=1):  # noqa: B007 (used after the loop)
                    if not line.strip():
                        continue
                    record = _json_object(line, line_number)
                    unexpected = record.keys() - columns.keys()
                    if unexpected:
                        # A key absent from the first object is a layout change inside the file.
                        for name in sorted(unexpected):
                            self.header.append(name)
                            columns[name] = [None] * len(next(iter(columns.values()), []))
                    for name, values in columns.items():
                        values.append(_json_text(record.get(name)))
                    if len(columns[self.header[0]]) >= JSONL_BATCH_ROWS:
                        yield self._flush(columns), first_line
                        first_line = line_number + 1
            except UnicodeDecodeError as error:
                raise FormatError(
                    "not_utf8", f"not UTF-8 after line {line_number}: {error}", line=line_number + 1
                ) from error
            except (OSError, EOFError, gzip.BadGzipFile) as error:
                raise FormatError("corrupt_compression", f"cannot decompress: {error}") from error
        if self.header and columns[self.header[0]]:
            yield self._flush(columns), first_line

    def _flush(self, columns: dict[str, list[str | None]]) -> pa.RecordBatch:
        batch = pa.RecordBatch.from_arrays([pa.array(columns[n], pa.string()) for n in self.header], names=self.header)
        self.rows += batch.num_rows
        for values in columns.values():
            values.clear()
        return batch


def _json_object(line: str, line_number: int) -> dict[str, object]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise FormatError(
            "invalid_json", f"line {line_number} is not JSON: {error.msg}", line=line_number, sample=line[:200]
        ) from error
    if not isinstance(record, dict):
        raise FormatError(
            "not_json_object",
            f"line {line_number} is a JSON {type(record).__name__}, not an object",
            line=line_number,
            sample=line[:200],
        )
    return record


def _json_text(value: object) -> str | None:
    """JSON values as the text a CSV would carry, so one contract serves both encodings."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value, separators=(",", ":"))


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
