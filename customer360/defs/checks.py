"""Every asset check of the code location, as ``ZoneCheck``s: one object declares a check and judges it.

Why one abstraction: a check used to be declared in one list (the ``AssetCheckSpec`` the asset carries) and
evaluated in another (the step's results), matched by name, in three idioms. A ``ZoneCheck`` holds the
check's name, what it guards, whether it blocks, and the function that judges it from the step's evidence
(the day's files, a load's counts, the gate's rejections); ``spec`` gives Dagster its declaration and
``evaluate`` its result, so a check cannot be declared without being evaluated or evaluated under a name
never declared. Names come from ``customer360.defs.keys``.

Where the checks run: each zone asset declares its checks (so Dagster's UI lists them on the asset, and
automation conditions such as ``all_deps_blocking_checks_passed`` see the blocking ones) and yields their
results from the same step, right after writing the partition. Why in the step and not as a separate check
op: a blocking check then fails the step that wrote the defect, so nothing downstream in the run (staging
after clean, the warehouse after staging) ever starts from it.

Severity is the contract's judgement of who must act (a blocking check reports ERROR, any other WARN):

- blocking (ERROR): the zone's schema and types, required fields, allowed values, ranges, row rules,
  uniqueness, clean's row accounting, the warehouse load reconciling with staging, one mart row per customer.
  Downstream must never see these defects.
- advisory (WARN): freshness, unknown source fields kept in ``_rescued_data`` (someone decides whether
  to adopt them into the contract), references between datasets (an event of a customer the CRM
  has not sent yet is a late-arriving dimension, not a broken event; the row is kept and loaded), rejected
  files, the mart's charges reconciling with activity, expected deliveries (``customer360.defs.deliveries``).

Every check of a daily asset is partitioned like its asset, so results are recorded per partition: the steps
yield each day's results as evaluations of that day (``customer360.defs.assets.days``), in single-day runs and
in runs over a range of days alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, Generic, TypeVar

import dagster as dg
import pyarrow.parquet as pq

from customer360.checks.models import RECORD_DATE, clean_model, staging_model
from customer360.checks.validate import (
    Failures,
    PartitionValidation,
    duplicate_keys,
    missing_references,
    parquet_rows,
    validate_files,
)
from customer360.contracts import DATASETS, Dataset
from customer360.contracts.model import StagingJoin
from customer360.defs.assets.metadata import key_list
from customer360.defs.keys import (
    ALLOWED_CHECK,
    CHARGES_RECONCILE_CHECK,
    CLEAN,
    FRESHNESS_CHECK,
    LOAD_RECONCILES_CHECK,
    ONE_ROW_PER_CUSTOMER_CHECK,
    RANGES_CHECK,
    REJECTION_CHECK,
    REJECTIONS_METADATA,
    REQUIRED_CHECK,
    ROW_ACCOUNTING_CHECK,
    ROW_RULES_CHECK,
    SCHEMA_CHECK,
    STAGING,
    UNIQUE_CHECK,
    UNKNOWN_COLUMNS_CHECK,
    references_check,
)
from customer360.defs.partitions import daily_partitions
from customer360.lake import layout
from customer360.lake.ledger import Ledger, current_archive_versions
from customer360.lake.store import LakeStore
from customer360.lake.transfer import fetch_many, parquet_keys, scratch_dir

# The footer key clean writes the arrival's ledger entry under (customer360.steps.clean.LEDGER_ENTRY_KEY);
# spelled here so the checks read the lake without importing the step they check.
LEDGER_ENTRY_KEY = b"customer360.ledger_entry"

Evidence = TypeVar("Evidence")


@dataclass(frozen=True)
class Verdict:
    """What judging a check found: passed or not, in words, with the figures behind it."""

    passed: bool
    description: str | None = None
    metadata: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ZoneCheck(Generic[Evidence]):
    """One asset check: its declaration (name, what it guards, blocking or not) and how it is judged.

    ``judge`` turns the evidence the step gathered (one type per kind of check: ``DayFiles`` for clean and
    staging, ``LoadedDay`` for the warehouse, the mart's invariants, ``Rejections``, a ``DayDelivery``) into
    a ``Verdict``. ``partitioned`` checks are recorded per day, like their daily asset.
    """

    name: str
    description: str
    blocking: bool
    judge: Callable[[Evidence], Verdict]
    partitioned: bool = True

    @property
    def severity(self) -> dg.AssetCheckSeverity:
        return dg.AssetCheckSeverity.ERROR if self.blocking else dg.AssetCheckSeverity.WARN

    def spec(self, asset_key: dg.AssetKey) -> dg.AssetCheckSpec:
        """The declaration an asset (or ``dg.multi_asset``) carries."""
        return dg.AssetCheckSpec(
            self.name,
            asset=asset_key,
            description=self.description,
            blocking=self.blocking,
            partitions_def=daily_partitions if self.partitioned else None,
        )

    def evaluate(self, evidence: Evidence) -> CheckOutcome:
        return CheckOutcome(self, self.judge(evidence))

    def result(self, evidence: Evidence) -> dg.AssetCheckResult:
        """The result a step yields (``customer360.defs.assets.days`` records it for its day)."""
        return self.evaluate(evidence).result()

    def evaluation(self, asset_key: dg.AssetKey, evidence: Evidence, day: date) -> dg.AssetCheckEvaluation:
        """The same result recorded without a run, for ``day`` (a sensor reporting a day that fell due)."""
        verdict = self.judge(evidence)
        return dg.AssetCheckEvaluation(
            asset_key=asset_key,
            check_name=self.name,
            passed=verdict.passed,
            severity=self.severity,
            description=verdict.description,
            metadata=_metadata(verdict.metadata),
            blocking=self.blocking,
            partition=day.isoformat(),
        )


@dataclass(frozen=True)
class CheckOutcome:
    """A check and its verdict on one evidence."""

    check: ZoneCheck[Any]
    verdict: Verdict

    @property
    def name(self) -> str:
        return self.check.name

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    @property
    def description(self) -> str | None:
        return self.verdict.description

    @property
    def metadata(self) -> Mapping[str, object]:
        return self.verdict.metadata

    def result(self) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            check_name=self.check.name,
            passed=self.verdict.passed,
            severity=self.check.severity,
            description=self.verdict.description,
            metadata=_metadata(self.verdict.metadata),
        )


def check_specs(asset_key: dg.AssetKey, checks: list[ZoneCheck[Any]]) -> list[dg.AssetCheckSpec]:
    return [check.spec(asset_key) for check in checks]


def blocking_passed(outcomes: list[CheckOutcome]) -> bool:
    return all(outcome.passed for outcome in outcomes if outcome.check.blocking)


def _metadata(values: Mapping[str, object]) -> dict[str, dg.MetadataValue]:
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
# clean/<dataset> and staging/<table>: the contract's checks over the day's files
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayFiles:
    """What the clean or staging checks of one day judge: the day's files, fetched once and validated once.

    ``folder`` is the scratch folder holding the local copies; it exists while the checks are judged.
    """

    store: LakeStore
    dataset: Dataset
    day: date
    folder: Path
    files: dict[str, Path]  # by object name (local names differ per backend)
    validation: PartitionValidation
    quarantined: dict[str, Path] = field(default_factory=dict)

    @property
    def paths(self) -> list[Path]:
        return list(self.files.values())


def _contract_check(
    name: str, guards: str, blocking: bool, judge: Callable[[DayFiles], Verdict]
) -> ZoneCheck[DayFiles]:
    return ZoneCheck(name, guards + (" (blocking)" if blocking else " (advisory)"), blocking, judge)


_HOLDS: dict[str, Callable[[Dataset], str]] = {
    SCHEMA_CHECK: lambda d: f"columns, types and lineage as contract v{d.version} declares",
    REQUIRED_CHECK: lambda d: "required fields are set",
    ALLOWED_CHECK: lambda d: "values within their allowed sets and formats",
    RANGES_CHECK: lambda d: "numeric values within range",
    ROW_RULES_CHECK: lambda d: "row rules hold",
}


def _pandera_check(dataset: Dataset, name: str, guards: str) -> ZoneCheck[DayFiles]:
    """A check whose failures are the pandera group ``name`` of the day's one validation pass."""
    holds = _HOLDS[name](dataset)
    return _contract_check(
        name, guards, True, lambda day_files: _failures_verdict(day_files.validation.of(name), day_files, holds)
    )


def _pandera_checks(dataset: Dataset, zone: str) -> list[ZoneCheck[DayFiles]]:
    checks = [
        _pandera_check(
            dataset, SCHEMA_CHECK, f"{zone} columns, Arrow types and lineage match contract v{dataset.version}"
        ),
        _pandera_check(
            dataset, REQUIRED_CHECK, f"required fields are non-null: {', '.join(_required(dataset)) or 'none'}"
        ),
        _pandera_check(
            dataset, ALLOWED_CHECK, "closed sets hold canonical states; patterns, E.164 and lowercase emails hold"
        ),
        _pandera_check(dataset, RANGES_CHECK, "numeric minimums: " + ", ".join(_minimums(dataset))),
    ]
    if dataset.row_rules:
        checks.append(_pandera_check(dataset, ROW_RULES_CHECK, "; ".join(r.description for r in dataset.row_rules)))
    return checks


UNKNOWN_COLUMNS_GUARDS = "no source field outside the contract (kept in _rescued_data when present)"


def clean_checks(dataset: Dataset) -> list[ZoneCheck[DayFiles]]:
    """Every check of ``clean/<dataset>``, in the order its results are reported."""
    checks = _pandera_checks(dataset, CLEAN)
    unique = [f.name for f in dataset.fields if f.unique_in_file]
    if unique:
        checks.append(
            _contract_check(
                UNIQUE_CHECK,
                f"{', '.join(unique)} unique within each source file",
                True,
                lambda day_files: _unique_per_file(day_files, unique),
            )
        )
    checks += [
        _contract_check(
            ROW_ACCOUNTING_CHECK,
            "rows archived (current file versions, per the ledger) = rows in clean + rows quarantined",
            True,
            _row_accounting,
        ),
        _contract_check(
            FRESHNESS_CHECK,
            _freshness_text(dataset),
            False,
            lambda day_files: _freshness(day_files, allow_empty=dataset.snapshot, column=dataset.freshness_column),
        ),
        _contract_check(UNKNOWN_COLUMNS_CHECK, UNKNOWN_COLUMNS_GUARDS, False, _unknown_columns),
    ]
    return checks


def staging_freshness_column(dataset: Dataset) -> str | None:
    """What a staging day's freshness is judged by: a snapshot's record date, else the contract's column."""
    return RECORD_DATE if dataset.snapshot else dataset.freshness_column


def staging_checks(dataset: Dataset) -> list[ZoneCheck[DayFiles]]:
    """Every check of ``staging/<table>``, in the order its results are reported."""
    checks = _pandera_checks(dataset, STAGING)
    if dataset.dedup_key:
        scope = "the snapshot" if dataset.snapshot else "the day"
        checks.append(
            _contract_check(
                UNIQUE_CHECK, f"one row per {', '.join(dataset.dedup_key)} in {scope}", True, _one_row_per_key
            )
        )
    for join in dataset.staging_joins:
        other = DATASETS[join.dataset]
        checks.append(
            _contract_check(
                references_check(join.dataset),
                f"every {', '.join(join.on)} set here exists in the same day's staging/{other.staging_name}",
                False,
                lambda day_files, join=join: _references(day_files, join),
            )
        )
    column = staging_freshness_column(dataset)
    checks += [
        _contract_check(
            FRESHNESS_CHECK,
            _freshness_text(dataset),
            False,
            lambda day_files: _freshness(day_files, allow_empty=False, column=column),
        ),
        _contract_check(UNKNOWN_COLUMNS_CHECK, UNKNOWN_COLUMNS_GUARDS, False, _unknown_columns),
    ]
    return checks


def _required(dataset: Dataset) -> list[str]:
    return [f.name for f in dataset.fields if f.required]


def _minimums(dataset: Dataset) -> list[str]:
    return [f"{f.name} >= {f.minimum}" for f in dataset.fields if f.minimum is not None] or ["none"]


def _freshness_text(dataset: Dataset) -> str:
    by = dataset.freshness_column or "the partition's day"
    return f"the newest record (by {by}) is at most {dataset.max_staleness} old at the end of the day"


def run_clean_checks(store: LakeStore, dataset: Dataset, day: date) -> list[CheckOutcome]:
    """Every clean check of ``dataset`` for ``day``, from what the lake holds."""
    with scratch_dir() as folder:
        files = _fetch_named(store, layout.clean_prefix(dataset.name, day), folder / "clean")
        quarantined = _fetch_named(store, layout.quarantine_prefix(dataset.name, day), folder / "quarantine")
        validation = validate_files(
            list(files.values()),
            clean_model(dataset, day),
            newest_of=[c for c in [dataset.freshness_column] if c],
        )
        day_files = DayFiles(store, dataset, day, folder, files, validation, quarantined)
        return [check.evaluate(day_files) for check in clean_checks(dataset)]


def run_staging_checks(store: LakeStore, dataset: Dataset, day: date) -> list[CheckOutcome]:
    """Every staging check of ``dataset`` for ``day``."""
    with scratch_dir() as folder:
        files = _fetch_named(store, layout.staging_prefix(dataset.name, day), folder / "staging")
        newest = staging_freshness_column(dataset)
        validation = validate_files(
            list(files.values()), staging_model(dataset, DATASETS, day), newest_of=[newest] if newest else []
        )
        day_files = DayFiles(store, dataset, day, folder, files, validation)
        return [check.evaluate(day_files) for check in staging_checks(dataset)]


def _unique_per_file(day_files: DayFiles, unique: list[str]) -> Verdict:
    failures = Failures()
    for name in unique:
        found = duplicate_keys(day_files.paths, ["_source_file", name], day_files.folder)
        failures.add(f"unique({name}) per file", found.count, found.samples)
    return _failures_verdict(failures, day_files, f"{', '.join(unique)} unique per file")


def _one_row_per_key(day_files: DayFiles) -> Verdict:
    key = list(day_files.dataset.dedup_key)
    found = duplicate_keys(day_files.paths, key, day_files.folder)
    return _failures_verdict(found, day_files, f"one row per {', '.join(key)}")


def _references(day_files: DayFiles, join: StagingJoin) -> Verdict:
    other = DATASETS[join.dataset]
    other_paths = _fetch(
        day_files.store, layout.staging_prefix(other.name, day_files.day), day_files.folder / f"join-{other.name}"
    )
    missing, referencing = missing_references(day_files.paths, other_paths, list(join.on), day_files.folder)
    verdict = _failures_verdict(missing, day_files, f"{', '.join(join.on)} found in staging/{other.staging_name}")
    metadata = {
        **verdict.metadata,
        "rows_with_reference": referencing,
        "share_missing": round(missing.count / referencing, 6) if referencing else 0.0,
    }
    description = verdict.description
    if not other_paths and referencing:
        description = f"no staging/{other.staging_name} snapshot for {day_files.day}: nothing to resolve against"
    return Verdict(verdict.passed, description, metadata)


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


def _failures_verdict(failures: Failures, day_files: DayFiles, holds: str) -> Verdict:
    validation = day_files.validation
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
        return Verdict(False, f"{failures.count} failure(s): {checks}", metadata)
    return Verdict(True, f"{holds} ({validation.rows} rows in {validation.files} file(s))", metadata)


def _sample_table(samples: list[dict[str, object]]) -> dg.MetadataValue:
    columns = ["_source_file", "_source_line", "column", "check", "value"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for sample in samples:
        cells = [
            str(sample.get(c, sample.get("file", "")) if c == "_source_file" else sample.get(c, "")) for c in columns
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ")[:80] for cell in cells) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def _row_accounting(day_files: DayFiles) -> Verdict:
    """Every row of every current archived file is in clean or in the quarantine, file by file.

    Counted from the Parquet footers of what the lake holds, against the ledger: independent of the step's
    own bookkeeping, so it catches a lost or half-written file as well as a counting bug. Each clean file
    is named after its archived arrival's ledger entry and records that entry in its footer, so a failure
    names the file and the cause: no clean file, a clean file holding another arrival, counts that differ,
    or a clean file no current archive accounts for.
    """
    store, dataset, day = day_files.store, day_files.dataset, day_files.day
    clean_files, quarantine_files = day_files.files, day_files.quarantined
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
        return Verdict(
            False,
            f"{len(mismatches)} file(s) do not account for their rows (archived {archived_total}, "
            f"clean {clean_total} + quarantined {quarantined_total}): {causes}",
            metadata,
        )
    return Verdict(
        True,
        f"archived {archived_total} = clean {clean_total} + quarantined {quarantined_total}",
        metadata,
    )


def _freshness(day_files: DayFiles, *, allow_empty: bool, column: str | None) -> Verdict:
    dataset, day, validation = day_files.dataset, day_files.day, day_files.validation
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
            return Verdict(True, "no new records for the day; staging carries the snapshot", metadata)
        return Verdict(False, f"no {dataset.name} rows for {day}", metadata)
    age = end_of_day - newest_time
    metadata["newest_record"] = newest_time.isoformat()
    metadata["age_hours"] = _hours(age)
    if age > dataset.max_staleness:
        return Verdict(
            False,
            f"newest record is {_hours(age)} h old (allowed {_hours(dataset.max_staleness)} h)",
            metadata,
        )
    return Verdict(True, f"newest record {newest_time.isoformat()} ({_hours(age)} h old)", metadata)


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def _unknown_columns(day_files: DayFiles) -> Verdict:
    validation = day_files.validation
    columns = sorted(validation.rescued_columns)
    metadata: dict[str, object] = {"rescued_columns": columns, "rows_with_rescued_data": validation.rescued_rows}
    if columns:
        metadata["files"] = sorted(validation.rescued_files)[:20]
        return Verdict(
            False,
            f"source fields outside the contract kept in _rescued_data: {', '.join(columns)}; adopt them in the "
            "contract or ask the source to stop sending them",
            metadata,
        )
    return Verdict(True, "every source field is in the contract", metadata)


# ---------------------------------------------------------------------------------------------------
# warehouse/<table>: the load reconciles with staging
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedDay:
    """What one staging day's load into the warehouse is judged by: every count of its rows."""

    files: int  # staging files loaded; 0 when staging built the day empty
    staging_manifest_rows: int = 0
    staging_rows: int = 0  # from the staging files' own footers
    rows_loaded_per_copy: int = 0
    rows_in_table_for_day: int = 0
    copy_errors: bool = False


def _load_reconciles(loaded: LoadedDay) -> Verdict:
    if not loaded.files:
        return Verdict(True, metadata={"staging_rows": 0})
    counts = (
        loaded.staging_manifest_rows,
        loaded.rows_loaded_per_copy,
        loaded.staging_rows,
        loaded.rows_in_table_for_day,
    )
    return Verdict(
        len(set(counts)) == 1 and not loaded.copy_errors,
        metadata={
            "staging_rows": loaded.staging_rows,
            "staging_manifest_rows": loaded.staging_manifest_rows,
            "rows_loaded_per_copy": loaded.rows_loaded_per_copy,
            "rows_in_table_for_day": loaded.rows_in_table_for_day,
        },
    )


WAREHOUSE_CHECKS: list[ZoneCheck[LoadedDay]] = [
    ZoneCheck(
        LOAD_RECONCILES_CHECK,
        "Rows loaded per COPY's file results equal the staging files' row counts and the staging manifest's.",
        True,
        _load_reconciles,
    )
]

# ---------------------------------------------------------------------------------------------------
# mart/customer_360: the day's invariants (``customer360.steps.mart.mart_checks``)
# ---------------------------------------------------------------------------------------------------

MartInvariants = Mapping[str, Any]


def _one_row_per_customer(invariants: MartInvariants) -> Verdict:
    return Verdict(
        invariants["duplicate_customers"] == 0 and invariants["missing_customers"] == 0,
        metadata={
            k: invariants[k] for k in ("mart_rows", "snapshot_customers", "duplicate_customers", "missing_customers")
        },
    )


def _charges_reconcile(invariants: MartInvariants) -> Verdict:
    return Verdict(
        bool(invariants["charges_reconciled"]),
        metadata={
            "mart_charges": float(invariants["mart_charges"]),
            "activity_charges": float(invariants["activity_charges"]),
            "charges_of_customers_missing_from_snapshot": float(invariants["unmatched_activity_charges"]),
        },
    )


MART_CHECKS: list[ZoneCheck[MartInvariants]] = [
    ZoneCheck(
        ONE_ROW_PER_CUSTOMER_CHECK,
        "Exactly one mart row per customer of the day's snapshot.",
        True,
        _one_row_per_customer,
    ),
    ZoneCheck(
        CHARGES_RECONCILE_CHECK,
        "The mart's 30-day charges equal the activity table's for the window.",
        False,
        _charges_reconcile,
    ),
]

# ---------------------------------------------------------------------------------------------------
# rejected/<dataset> and rejected/unroutable: files still rejected
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejections:
    """The rejected files a check reports: each with ``raw_key``, ``reasons`` and ``report_key``."""

    outstanding: list[Mapping[str, Any]]
    resolved: int = 0  # rejected files a later arrival made good
    why: dg.MetadataValue | None = None  # their reports as Markdown (``customer360.defs.assets.rejections``)


def _no_rejected_files(rejections: Rejections) -> Verdict:
    outstanding = rejections.outstanding
    reasons = sorted({str(reason) for f in outstanding for reason in f["reasons"]})
    return Verdict(
        not outstanding,
        f"{len(outstanding)} rejected file(s): {', '.join(reasons)}" if outstanding else "no rejected files",
        {
            "rejected_files": len(outstanding),
            "resolved_by_a_later_file": rejections.resolved,
            "reasons": dg.MetadataValue.json({str(f["raw_key"]): f["reasons"] for f in outstanding}),
            "report_keys": key_list([str(f["report_key"]) for f in outstanding]),
            **({REJECTIONS_METADATA: rejections.why} if rejections.why is not None else {}),
        },
    )


GATE_REJECTION_CHECK: ZoneCheck[Rejections] = ZoneCheck(
    REJECTION_CHECK,
    "Warns while the day has rejected files no later arrival made good; the metadata names each file's reasons "
    "and its report in rejected/.",
    False,
    _no_rejected_files,
)
UNROUTABLE_REJECTION_CHECK: ZoneCheck[Rejections] = ZoneCheck(
    REJECTION_CHECK,
    "Warns when the sweep rejected objects; the metadata names each one's reason and report.",
    False,
    _no_rejected_files,
    partitioned=False,  # rejected/unroutable has no days
)
