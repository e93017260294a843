"""Raw file formats: which encodings the landing contract accepts and how to stream each one.

Every reader yields Arrow record batches whose columns are all strings, exactly as the file spelled
them: typing is the contract's job (``processing.standardize``), never a reader's guess. Memory is
bounded by the batch size, whatever the file size: CSV goes through Arrow's streaming reader, JSON
Lines through a line loop that emits a batch every ``batch_rows`` lines, gzip is decompressed as a
stream.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

SUPPORTED_EXTENSIONS = (".csv.gz", ".jsonl.gz", ".csv", ".jsonl")
CSV_BLOCK_BYTES = 16 << 20
JSONL_BATCH_ROWS = 50_000


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
            reader = pacsv.open_csv(
                self._binary(),
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
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
