"""The asset checks of the clean and staging zones, generated per dataset from its contract.

Each zone asset declares its checks as ``AssetCheckSpec``s (so Dagster's UI lists them on the asset,
and automation conditions such as ``all_deps_blocking_checks_passed`` see the blocking ones) and yields
their results from the same step, right after writing the partition. Why in the step and not as a
separate check op: a blocking check then fails the step that wrote the defect, so nothing downstream in
the run (staging after clean, the warehouse after staging) ever starts from it.

Severity is the contract's judgement of who must act:

- blocking (ERROR): the zone's schema and types, required fields, allowed values, ranges, row rules,
  uniqueness, and clean's row accounting. Downstream must never see these defects.
- advisory (WARN): freshness, unknown source fields kept in ``_rescued_data`` (someone decides whether
  to adopt them into the contract), and references between datasets (an event of a customer the CRM
  has not sent yet is a late-arriving dimension, not a broken event; the row is kept and loaded).

Every check spec is partitioned like its asset, so results are recorded per partition: the steps yield
each day's results as evaluations of that day (``customer360.defs.assets.days``), in single-day runs and in
runs over a range of days alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path, PurePosixPath

import dagster as dg
import pyarrow.parquet as pq

from customer360.checks.models import (
    ALLOWED,
    RANGES,
    RECORD_DATE,
    REQUIRED,
    ROW_RULES,
    SCHEMA,
    UNIQUE,
    clean_model,
    staging_model,
)
from customer360.checks.validate import (
    Failures,
    PartitionValidation,
    duplicate_keys,
    missing_references,
    parquet_rows,
    validate_files,
)
from customer360.contracts import DATASETS, Dataset
from customer360.defs.partitions import daily_partitions
from customer360.lake import layout
from customer360.lake.ledger import Ledger, current_archive_versions
from customer360.lake.store import LakeStore
from customer360.lake.transfer import fetch_many, parquet_keys, scratch_dir

# The footer key clean writes the arrival's ledger entry under (customer360.steps.clean.LEDGER_ENTRY_KEY);
# spelled here so the checks read the lake without importing the step they check.
LEDGER_ENTRY_KEY = b"customer360.ledger_entry"

ROW_ACCOUNTING = "row_accounting"
FRESHNESS = "freshness"
UNKNOWN_COLUMNS = "unknown_columns"


@dataclass(frozen=True)
class CheckDef:
    """One check of a zone asset: its name, what it guards and whether a failure blocks downstream."""

    name: str
    description: str
    blocking: bool


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    description: str
    metadata: dict[str, object] = field(default_factory=dict)


def references_check_name(dataset_name: str) -> str:
    return f"references_{dataset_name}"


def _pandera_defs(dataset: Dataset, zone: str) -> list[CheckDef]:
    defs = [
        CheckDef(SCHEMA, f"{zone} columns, Arrow types and lineage match contract v{dataset.version}", True),
        CheckDef(REQUIRED, f"required fields are non-null: {', '.join(_required(dataset)) or 'none'}", True),
        CheckDef(ALLOWED, "closed sets hold canonical states; patterns, E.164 and lowercase emails hold", True),
        CheckDef(RANGES, "numeric minimums: " + ", ".join(_minimums(dataset)), True),
    ]
    if dataset.row_rules:
        defs.append(CheckDef(ROW_RULES, "; ".join(r.description for r in dataset.row_rules), True))
    return defs


def clean_check_defs(dataset: Dataset) -> list[CheckDef]:
    defs = _pandera_defs(dataset, "clean")
    unique = [f.name for f in dataset.fields if f.unique_in_file]
    if unique:
        defs.append(CheckDef(UNIQUE, f"{', '.join(unique)} unique within each source file", True))
    defs += [
        CheckDef(
            ROW_ACCOUNTING,
            "rows archived (current file versions, per the ledger) = rows in clean + rows quarantined",
            True,
        ),
        CheckDef(FRESHNESS, _freshness_text(dataset), False),
        CheckDef(UNKNOWN_COLUMNS, "no source field outside the contract (kept in _rescued_data when present)", False),
    ]
    return defs


def staging_check_defs(dataset: Dataset) -> list[CheckDef]:
    defs = _pandera_defs(dataset, "staging")
    if dataset.dedup_key:
        scope = "the snapshot" if dataset.snapshot else "the day"
        defs.append(CheckDef(UNIQUE, f"one row per {', '.join(dataset.dedup_key)} in {scope}", True))
    for join in dataset.staging_joins:
        other = DATASETS[join.dataset]
        defs.append(
            CheckDef(
                references_check_name(join.dataset),
                f"every {', '.join(join.on)} set here exists in the same day's staging/{other.staging_name}",
                False,
            )
        )
    defs += [
        CheckDef(FRESHNESS, _freshness_text(dataset), False),
        CheckDef(UNKNOWN_COLUMNS, "no source field outside the contract (kept in _rescued_data when present)", False),
    ]
    return defs


def _required(dataset: Dataset) -> list[str]:
    return [f.name for f in dataset.fields if f.required]


def _minimums(dataset: Dataset) -> list[str]:
    return [f"{f.name} >= {f.minimum}" for f in dataset.fields if f.minimum is not None] or ["none"]


def _freshness_text(dataset: Dataset) -> str:
    by = dataset.freshness_column or "the partition's day"
    return f"the newest record (by {by}) is at most {dataset.max_staleness} old at the end of the day"


def check_specs(asset_key: dg.AssetKey, defs: list[CheckDef]) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            d.name,
            asset=asset_key,
            description=d.description + (" (blocking)" if d.blocking else " (advisory)"),
            blocking=d.blocking,
            partitions_def=daily_partitions,
        )
        for d in defs
    ]


def check_results(
    asset_key: dg.AssetKey, defs: list[CheckDef], outcomes: list[CheckOutcome]
) -> list[dg.AssetCheckResult]:
    by_name = {o.name: o for o in outcomes}
    results = []
    for d in defs:
        outcome = by_name[d.name]
        results.append(
            dg.AssetCheckResult(
                asset_key=asset_key,
                check_name=d.name,
                passed=outcome.passed,
                severity=dg.AssetCheckSeverity.ERROR if d.blocking else dg.AssetCheckSeverity.WARN,
                description=outcome.description,
                metadata=_metadata(outcome.metadata),
            )
        )
    return results


def _metadata(values: dict[str, object]) -> dict[str, dg.MetadataValue]:
    converted: dict[str, dg.MetadataValue] = {}
    for key, value in values.items():
        if isinstance(value, dg.MetadataValue):
            converted[key] = value
        elif isinstance(value, bool):
            converted[key] = dg.MetadataValue.bool(value)
        elif isinstance(value, int):
            converted[key] = dg.MetadataValue.int(value)
        elif isinstance(value, float):
            converted[key] = dg.MetadataValue.float(value)
        elif isinstance(value, str):
            converted[key] = dg.MetadataValue.text(value)
        else:
            converted[key] = dg.MetadataValue.json(json.loads(json.dumps(value, default=str)))
    return converted


# ---------------------------------------------------------------------------------------------------
# Evaluating the checks of one partition
# ---------------------------------------------------------------------------------------------------


def run_clean_checks(store: LakeStore, dataset: Dataset, day: date) -> list[CheckOutcome]:
    """Every clean check of ``dataset`` for ``day``, from what the lake holds."""
    with scratch_dir() as folder:
        named = _fetch_named(store, layout.clean_prefix(dataset.name, day), folder / "clean")
        quarantined = _fetch_named(store, layout.quarantine_prefix(dataset.name, day), folder / "quarantine")
        paths = list(named.values())
        validation = validate_files(
            paths, clean_model(dataset, day), newest_of=[c for c in [dataset.freshness_column] if c]
        )
        outcomes = _pandera_outcomes(dataset, validation)
        unique = [f.name for f in dataset.fields if f.unique_in_file]
        if unique:
            failures = Failures()
            for name in unique:
                found = duplicate_keys(paths, ["_source_file", name], folder)
                failures.add(f"unique({name}) per file", found.count, found.samples)
            outcomes.append(_failures_outcome(UNIQUE, failures, validation, f"{', '.join(unique)} unique per file"))
        outcomes.append(_row_accounting(store, dataset, day, named, quarantined))
        outcomes.append(_freshness(dataset, day, validation, allow_empty=dataset.snapshot))
        outcomes.append(_unknown_columns(validation))
    return outcomes


def run_staging_checks(store: LakeStore, dataset: Dataset, day: date) -> list[CheckOutcome]:
    """Every staging check of ``dataset`` for ``day``."""
    with scratch_dir() as folder:
        paths = _fetch(store, layout.staging_prefix(dataset.name, day), folder / "staging")
        newest = RECORD_DATE if dataset.snapshot else dataset.freshness_column
        validation = validate_files(paths, staging_model(dataset, DATASETS, day), newest_of=[newest] if newest else [])
        outcomes = _pandera_outcomes(dataset, validation)
        if dataset.dedup_key:
            found = duplicate_keys(paths, list(dataset.dedup_key), folder)
            outcomes.append(_failures_outcome(UNIQUE, found, validation, f"one row per {', '.join(dataset.dedup_key)}"))
        for join in dataset.staging_joins:
            other = DATASETS[join.dataset]
            other_paths = _fetch(store, layout.staging_prefix(other.name, day), folder / f"join-{other.name}")
            missing, referencing = missing_references(paths, other_paths, list(join.on), folder)
            outcome = _failures_outcome(
                references_check_name(join.dataset),
                missing,
                validation,
                f"{', '.join(join.on)} found in staging/{other.staging_name}",
            )
            outcome.metadata["rows_with_reference"] = referencing
            outcome.metadata["share_missing"] = round(missing.count / referencing, 6) if referencing else 0.0
            if not other_paths and referencing:
                outcome.description = f"no staging/{other.staging_name} snapshot for {day}: nothing to resolve against"
            outcomes.append(outcome)
        outcomes.append(_freshness(dataset, day, validation, allow_empty=False, column=newest))
        outcomes.append(_unknown_columns(validation))
    return outcomes


def _ledger_entry_of(path: Path | None) -> str | None:
    """The ledger entry a clean file's footer says it was written from (None for files that do not say)."""
    if path is None:
        return None
    metadata = pq.ParquetFile(path).schema_arrow.metadata or {}
    value = metadata.get(LEDGER_ENTRY_KEY)
    return value.decode() if value else None


def _fetch(store: LakeStore, prefix: str, folder: Path) -> list[Path]:
    return list(_fetch_named(store, prefix, folder).values())


def _fetch_named(store: LakeStore, prefix: str, folder: Path) -> dict[str, Path]:
    """Local copies of the Parquet objects under ``prefix``, by object name (local names differ per backend)."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = parquet_keys(store, prefix)
    return {PurePosixPath(k).name: p for k, p in zip(keys, fetch_many(store, keys, folder), strict=True)}


_DESCRIPTIONS: dict[str, Callable[[Dataset], str]] = {
    SCHEMA: lambda d: f"columns, types and lineage as contract v{d.version} declares",
    REQUIRED: lambda d: "required fields are set",
    ALLOWED: lambda d: "values within their allowed sets and formats",
    RANGES: lambda d: "numeric values within range",
    ROW_RULES: lambda d: "row rules hold",
}


def _pandera_outcomes(dataset: Dataset, validation: PartitionValidation) -> list[CheckOutcome]:
    names = [SCHEMA, REQUIRED, ALLOWED, RANGES] + ([ROW_RULES] if dataset.row_rules else [])
    return [_failures_outcome(n, validation.of(n), validation, _DESCRIPTIONS[n](dataset)) for n in names]


def _failures_outcome(name: str, failures: Failures, validation: PartitionValidation, holds: str) -> CheckOutcome:
    metadata: dict[str, object] = {
        "failures": failures.count,
        "rows": validation.rows,
        "rows_validated": validation.rows_validated,
        "sampled": validation.rows_validated < validation.rows,
        "files": validation.files,
        "validation_seconds": round(validation.seconds, 3),
    }
    if failures.count:
        metadata["failures_by_check"] = dict(failures.by_check)
        metadata["failure_cases"] = failures.samples
        metadata["failure_sample"] = _sample_table(failures.samples)
        checks = ", ".join(f"{check} ({count})" for check, count in failures.by_check.most_common(5))
        return CheckOutcome(name, False, f"{failures.count} failure(s): {checks}", metadata)
    return CheckOutcome(name, True, f"{holds} ({validation.rows} rows in {validation.files} file(s))", metadata)


def _sample_table(samples: list[dict[str, object]]) -> dg.MetadataValue:
    columns = ["_source_file", "_source_line", "column", "check", "value"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for sample in samples:
        cells = [
            str(sample.get(c, sample.get("file", "")) if c == "_source_file" else sample.get(c, "")) for c in columns
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ")[:80] for cell in cells) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def _row_accounting(
    store: LakeStore, dataset: Dataset, day: date, clean_files: dict[str, Path], quarantine_files: dict[str, Path]
) -> CheckOutcome:
    """Every row of every current archived file is in clean or in the quarantine, file by file.

    Counted from the Parquet footers of what the lake holds, against the ledger: independent of the step's
    own bookkeeping, so it catches a lost or half-written file as well as a counting bug. Each clean file
    is named after its archived arrival's ledger entry and records that entry in its footer, so a failure
    names the file and the cause: no clean file, a clean file holding another arrival, counts that differ,
    or a clean file no current archive accounts for.
    """
    sources = current_archive_versions(Ledger(store).entries(dataset.name, day))
    clean_rows = {name: parquet_rows([p]) for name, p in clean_files.items()}
    quarantined_rows = {name: parquet_rows([p]) for name, p in quarantine_files.items()}
    mismatches: list[dict[str, object]] = []
    expected_names = set()
    for entry in sources:
        name = layout.derived_name(entry.source_name, entry.entry_id)
        expected_names.add(name)
        archived, clean, quarantined = entry.rows or 0, clean_rows.get(name, 0), quarantined_rows.get(name, 0)
        written_from = _ledger_entry_of(clean_files.get(name))
        cause = None
        if name not in clean_rows:
            cause = f"no clean file {name}"
        elif written_from is not None and written_from != entry.entry_id:
            cause = f"clean file {name} holds ledger entry {written_from}, not {entry.entry_id}"
        elif archived != clean + quarantined:
            cause = f"archived {archived} rows, clean {clean} + quarantined {quarantined}"
        if cause is not None:
            mismatches.append(
                {
                    "source_name": entry.source_name,
                    "archive_key": entry.destination_key,
                    "clean_file": name,
                    "archived": archived,
                    "clean": clean,
                    "quarantined": quarantined,
                    "cause": cause,
                }
            )
    for name in sorted(set(clean_rows) - expected_names):
        mismatches.append(
            {
                "clean_file": name,
                "archived": 0,
                "clean": clean_rows[name],
                "cause": f"clean file {name} ({clean_rows[name]} rows) belongs to no current archived file",
            }
        )
    archived_total = sum(e.rows or 0 for e in sources)
    clean_total, quarantined_total = sum(clean_rows.values()), sum(quarantined_rows.values())
    metadata: dict[str, object] = {
        "rows_archived": archived_total,
        "rows_clean": clean_total,
        "rows_quarantined": quarantined_total,
        "rows_unaccounted": archived_total - clean_total - quarantined_total,
        "files_archived": len(sources),
    }
    if mismatches:
        metadata["mismatched_files"] = mismatches[:20]
        causes = "; ".join(f"{m.get('source_name', m['clean_file'])!s}: {m['cause']}" for m in mismatches[:3]) + (
            "; ..." if len(mismatches) > 3 else ""
        )
        return CheckOutcome(
            ROW_ACCOUNTING,
            False,
            f"{len(mismatches)} file(s) do not account for their rows (archived {archived_total}, "
            f"clean {clean_total} + quarantined {quarantined_total}): {causes}",
            metadata,
        )
    return CheckOutcome(
        ROW_ACCOUNTING,
        True,
        f"archived {archived_total} = clean {clean_total} + quarantined {quarantined_total}",
        metadata,
    )


def _freshness(
    dataset: Dataset, day: date, validation: PartitionValidation, *, allow_empty: bool, column: str | None = None
) -> CheckOutcome:
    column = column if column is not None else dataset.freshness_column
    end_of_day = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
    newest = validation.newest.get(column) if column else None
    if isinstance(newest, datetime):
        newest_time = newest
    elif isinstance(newest, date):
        newest_time = datetime.combine(newest + timedelta(days=1), datetime.min.time(), UTC)  # end of that day
    elif validation.rows:
        newest_time = end_of_day  # rows without a timestamp are the day's own
    else:
        newest_time = None
    metadata: dict[str, object] = {"rows": validation.rows, "max_staleness_hours": _hours(dataset.max_staleness)}
    if newest_time is None:
        if allow_empty:
            return CheckOutcome(FRESHNESS, True, "no new records for the day; staging carries the snapshot", metadata)
        return CheckOutcome(FRESHNESS, False, f"no {dataset.name} rows for {day}", metadata)
    age = end_of_day - newest_time
    metadata["newest_record"] = newest_time.isoformat()
    metadata["age_hours"] = _hours(age)
    if age > dataset.max_staleness:
        return CheckOutcome(
            FRESHNESS,
            False,
            f"newest record is {_hours(age)} h old (allowed {_hours(dataset.max_staleness)} h)",
            metadata,
        )
    return CheckOutcome(FRESHNESS, True, f"newest record {newest_time.isoformat()} ({_hours(age)} h old)", metadata)


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def _unknown_columns(validation: PartitionValidation) -> CheckOutcome:
    columns = sorted(validation.rescued_columns)
    metadata: dict[str, object] = {"rescued_columns": columns, "rows_with_rescued_data": validation.rescued_rows}
    if columns:
        metadata["files"] = sorted(validation.rescued_files)[:20]
        return CheckOutcome(
            UNKNOWN_COLUMNS,
            False,
            f"source fields outside the contract kept in _rescued_data: {', '.join(columns)}; adopt them in the "
            "contract or ask the source to stop sending them",
            metadata,
        )
    return CheckOutcome(UNKNOWN_COLUMNS, True, "every source field is in the contract", metadata)
