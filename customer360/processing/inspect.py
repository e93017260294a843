"""Format validation of one raw file against its dataset's contract: the gate's verdict.

Two levels, as the design asks. File-level defects (not UTF-8, broken compression, not CSV or JSON
Lines, missing or duplicated header fields, ragged rows, no data rows) reject the whole file. Row-level
defects (a value that breaks a rule) are tolerated below the dataset's threshold: the file is archived
and those rows are quarantined in clean; above it the whole file is rejected. Every check that fails is
reported with its count and a bounded sample of lines, never just the first error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from customer360.contracts.model import Dataset
from customer360.processing.formats import (
    BYTE_LEVEL_REASONS,
    MAX_SAMPLES,
    SAMPLE_CHARS,
    ByteScan,
    FormatError,
    StringBatches,
    csv_ragged_rows,
    detect_format,
    scan_bytes,
    scan_signature,
)
from customer360.processing.parsed import ParseTee
from customer360.processing.standardize import ContractEvaluator, FileStats, evaluate_stream

FILE_LEVEL = "file"
ROW_LEVEL = "row"
# Delimiters other systems export with; a header holding one of them and no comma was split wrongly.
FOREIGN_DELIMITERS = (";", "\t", "|")

# What a person should do about each reason.
ACTIONS = {
    "empty_object": "resend: the object has no bytes",
    "unsupported_extension": "resend as .csv, .csv.gz, .jsonl or .jsonl.gz",
    "unknown_dataset": "resend under raw/customers/, raw/plans/ or raw/activity_logs/",
    "invalid_partition_date": "resend under raw/<dataset>/<YYYY-MM-DD>/ with the business date of the contents",
    "missing_partition_date": "resend under raw/<dataset>/<YYYY-MM-DD>/ with the business date of the contents",
    "unroutable_key": "resend under raw/<dataset>/<YYYY-MM-DD>/<file name> (no sub-folders)",
    "unsafe_key": "resend under a plain key: no '.', '..' or empty path segments, no backslash, no control characters",
    "undeclared_gzip": "rename the file to end in .gz (.csv.gz or .jsonl.gz): its bytes are gzip-compressed",
    "binary_file": "export the data as UTF-8 CSV or JSON Lines (.csv, .csv.gz, .jsonl, .jsonl.gz) and resend",
    "nul_bytes": "resend as UTF-8 text: NUL bytes mean binary data or UTF-16",
    "not_utf8": "resend the file encoded as UTF-8",
    "corrupt_compression": "resend: the compressed file is truncated or corrupt",
    "unparseable_csv": "resend as RFC 4180 CSV (comma-separated, one header row)",
    "invalid_json": "resend as JSON Lines: one JSON object per line",
    "not_json_object": "resend as JSON Lines: one JSON object per line",
    "duplicate_key": "resend with each key at most once per JSON object",
    "line_too_long": "resend: a row is larger than any legitimate record",
    "no_header": "resend with a header row naming the contract's fields",
    "wrong_delimiter": "resend comma-separated (RFC 4180); the file uses another delimiter",
    "duplicate_header": "fix the header: each field name once",
    "too_many_columns": "resend without the extra fields, or propose a contract change (max_columns) if they are real",
    "missing_required_fields": "fix the file, or propose a contract change if the source's layout changed",
    "wrong_field_count": "fix the rows whose field count differs from the header and resend",
    "header_only": "resend with its data rows: the file has a header and nothing else",
    "too_many_bad_rows": "fix the rows listed and resend, or propose a contract change if the rules are wrong",
    "name_too_long": "resend under a file name of at most 255 bytes (UTF-8)",
    "not_a_regular_file": "land plain files only: no symlinks, FIFOs, sockets, devices or folders named like files",
}


DEFAULT_ACTION = "inspect the report and resend"


@dataclass
class FailedCheck:
    check: str
    message: str
    count: int = 1
    samples: list[dict[str, object]] = field(default_factory=list)

    @property
    def level(self) -> str:
        return ROW_LEVEL if self.check == "too_many_bad_rows" else FILE_LEVEL

    def as_dict(self) -> dict[str, object]:
        return {
            "check": self.check,
            "level": self.level,
            "message": _bounded(self.message),
            "count": self.count,
            "samples": [_bounded(sample) for sample in self.samples[:MAX_SAMPLES]],
            "action": ACTIONS.get(self.check, DEFAULT_ACTION),
        }


def _bounded(value: object) -> object:
    """Samples quote the file; bounded so a report never grows with it (a giant line, a giant field)."""
    if isinstance(value, str):
        return value if len(value) <= SAMPLE_CHARS else value[:SAMPLE_CHARS] + "..."
    if isinstance(value, dict):
        return {key: _bounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_bounded(item) for item in value[:MAX_SAMPLES]]
    return value


@dataclass
class Verdict:
    """What the gate decided about one file, and everything the rejection report needs."""

    accepted: bool
    failed: list[FailedCheck] = field(default_factory=list)
    rows: int = 0
    bad_rows: int = 0
    rule_counts: dict[str, int] = field(default_factory=dict)
    header: list[str] = field(default_factory=list)
    schema_diff: dict[str, list[str]] = field(default_factory=dict)
    max_bad_row_share: float = 0.0

    @property
    def reasons(self) -> list[str]:
        return [f.check for f in self.failed]

    @property
    def bad_row_share(self) -> float:
        return self.bad_rows / self.rows if self.rows else 0.0

    @property
    def level(self) -> str | None:
        """Which level of the two-level policy decided: a file-level defect, the row threshold, or none."""
        if any(f.level == FILE_LEVEL for f in self.failed):
            return FILE_LEVEL
        return ROW_LEVEL if self.failed else None

    def policy(self, dataset: Dataset | None) -> dict[str, object]:
        """The threshold that applied, for the report and the ledger."""
        return {
            "level": self.level,
            "max_bad_row_share": self.max_bad_row_share,
            "bad_row_share": round(self.bad_row_share, 6),
            "rows": self.rows,
            "bad_rows": self.bad_rows,
            "rows_checked": self.level != FILE_LEVEL,
            "threshold_from": f"contract {dataset.name} {dataset.version}: max_bad_row_share" if dataset else None,
        }


def reject(check: str, message: str, **extra: object) -> Verdict:
    return Verdict(accepted=False, failed=[FailedCheck(check, message, **extra)])  # type: ignore[arg-type]


def inspect_file(
    dataset: Dataset, path: Path, file_name: str, day: date, size: int, *, keep: ParseTee | None = None
) -> Verdict:
    """Validate one local copy of a raw file; never raises for bad content, never holds the whole file.

    ``keep`` receives the clean and quarantined rows of each batch as they are evaluated, and writes them to
    the arrival's clean files (``processing.parsed``: clean moves them in instead of typing the archive again).
    """
    if size == 0:
        return reject("empty_object", "the object is empty (0 bytes)")
    file_format = detect_format(file_name)
    if file_format is None:
        return reject("unsupported_extension", f"{file_name!r} is not .csv, .csv.gz, .jsonl or .jsonl.gz")
    # Parsers would misreport bytes that are not text (or not all there): those are decided first. A CSV
    # is scanned whole before Arrow parses it; the JSON Lines reader checks each block's bytes itself,
    # so only its first bytes are looked at here (and the whole file when the reader meets a defect).
    scan = scan_bytes(path, file_format) if file_format.is_csv else scan_signature(path, file_format)
    if scan.defects:
        return _byte_defects(dataset, scan)
    batches = StringBatches(path, file_format)
    header: list[str] = []
    if file_format.is_csv:
        try:
            header = batches.read_header()
        except FormatError as error:
            return reject(error.reason, error.message, samples=_sample(error))
    verdict = Verdict(accepted=True, header=header, max_bad_row_share=dataset.max_bad_row_share)
    if file_format.is_csv:
        if not header or all(not name.strip() for name in header):
            return _fail(verdict, FailedCheck("no_header", "the file has no header row"))
        _check_header(dataset, header, verdict)
        if verdict.failed:
            return _fail(verdict)
    stats = FileStats()
    # Rows kept for clean carry the archive key they will be read from (``_source_file``), as clean's own do.
    evaluator = ContractEvaluator(dataset, header, keep.source_file if keep is not None else file_name, day)
    try:
        # The gate decides on the rule-breaking share; the rows it types are kept for clean while ``keep`` wants them.
        collect = (lambda: keep.active) if keep is not None else False
        for result in evaluate_stream(evaluator, batches, collect=collect):
            stats.add(result, MAX_SAMPLES)
            if keep is not None:
                keep.keep(result)
        if keep is not None:
            keep.rescued_columns = evaluator.rescued_columns
    except FormatError as error:
        if error.reason in BYTE_LEVEL_REASONS:
            scan = scan_bytes(path, file_format)
            if scan.defects:
                return _byte_defects(dataset, scan)
        return _fail(verdict, FailedCheck(error.reason, error.message, samples=_sample(error)))
    if not file_format.is_csv:
        # A JSON Lines file's fields are the keys of all its objects: an object may omit a key that
        # others hold (its value is empty, judged row by row); a field no object holds is missing.
        if not batches.rows:
            return _fail(verdict, FailedCheck("no_header", "the file holds no JSON object (only blank lines)"))
        verdict.header = batches.header
        _check_header(dataset, batches.header, verdict)
        if verdict.failed:
            return _fail(verdict)
    verdict.rows, verdict.bad_rows, verdict.rule_counts = stats.rows, stats.quarantined_rows, stats.rule_counts
    if batches.ragged_count:
        ragged, csv_error = csv_ragged_rows(path, file_format, len(header))
        samples = [
            {"line": r.line, "expected_fields": r.expected, "actual_fields": r.actual, "text": r.text} for r in ragged
        ]
        verdict.failed.append(
            FailedCheck(
                "wrong_field_count",
                f"{batches.ragged_count} rows have a field count other than the header's {len(header)}",
                batches.ragged_count,
                samples,
            )
        )
        if csv_error is not None:
            verdict.failed.append(FailedCheck(csv_error.reason, csv_error.message, samples=_sample(csv_error)))
    if stats.rows == 0 and not batches.ragged_count:
        verdict.failed.append(FailedCheck("header_only", "the file has a header and no data rows", 0))
    if verdict.rows and verdict.bad_row_share > dataset.max_bad_row_share:
        verdict.failed.append(
            FailedCheck(
                "too_many_bad_rows",
                f"{stats.quarantined_rows} of {stats.rows} rows ({verdict.bad_row_share:.1%}) break a rule; "
                f"the {dataset.name} contract tolerates at most {dataset.max_bad_row_share:.1%}",
                stats.quarantined_rows,
                stats.samples,
            )
        )
    verdict.accepted = not verdict.failed
    return verdict


def _byte_defects(dataset: Dataset, scan: ByteScan) -> Verdict:
    return Verdict(
        accepted=False,
        failed=[FailedCheck(d.reason, d.message, d.count, d.samples) for d in scan.defects.values()],
        max_bad_row_share=dataset.max_bad_row_share,
    )


def _fail(verdict: Verdict, *failed: FailedCheck) -> Verdict:
    verdict.failed.extend(failed)
    verdict.accepted = False
    return verdict


def _check_header(dataset: Dataset, header: list[str], verdict: Verdict) -> None:
    """Header-level checks: too wide, names repeated, contract fields missing, a foreign delimiter."""
    if len(header) > dataset.max_columns:
        unknown = [name for name in header if name not in dataset.source_names]
        verdict.failed.append(too_many_columns(dataset, len(header), unknown))
    duplicated = sorted(name for name, n in Counter(header).items() if n > 1)
    if duplicated:
        verdict.failed.append(
            FailedCheck(
                "duplicate_header",
                f"header names repeated: {duplicated}",
                len(duplicated),
                [{"line": 1, "names": duplicated}],
            )
        )
    missing = [f.source_name for f in dataset.header_fields if f.source_name not in header]
    verdict.schema_diff = {
        "missing": missing,
        "unexpected": [name for name in header if name not in dataset.source_names][:MAX_SAMPLES],
        "optional_absent": [f.source_name for f in dataset.fields if f.optional and f.source_name not in header],
    }
    if missing:
        verdict.failed.append(
            FailedCheck(
                "missing_required_fields",
                f"header lacks contract fields {missing}",
                len(missing),
                [{"line": 1, "missing": missing, "header": header[:MAX_SAMPLES]}],
            )
        )
    if missing and len(header) == 1:
        # A semicolon (or tab, pipe) export reads as one column whose name is the whole header line.
        for delimiter in FOREIGN_DELIMITERS:
            names = header[0].split(delimiter)
            if len(names) > 1 and set(names) & set(dataset.source_names):
                verdict.failed.append(
                    FailedCheck(
                        "wrong_delimiter",
                        f"the header is separated by {delimiter!r}, not ','",
                        samples=[{"line": 1, "delimiter": delimiter, "text": header[0]}],
                    )
                )
                break


def too_many_columns(dataset: Dataset, width: int, unknown: list[str]) -> FailedCheck:
    known = width - len(unknown)
    return FailedCheck(
        "too_many_columns",
        f"the file has {width:,} fields ({known} of the contract, {len(unknown):,} unknown); the {dataset.name} "
        f"contract accepts at most {dataset.max_columns} (unknown fields are kept per row in _rescued_data)",
        width,
        [{"line": 1, "fields": width, "max_columns": dataset.max_columns, "unknown": unknown[:MAX_SAMPLES]}],
    )


def _sample(error: FormatError) -> list[dict[str, object]]:
    if error.line is None and error.sample is None:
        return []
    return [{"line": error.line, "text": error.sample}]
