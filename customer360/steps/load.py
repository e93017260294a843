"""The warehouse load: a day of staging, exactly as its completed build listed it, replaces the day's rows.

Only staging is ever read, and only a staging day whose build completed: the load takes exactly the
files the day's staging manifest lists (``customer360.steps.staging``), and refuses a day without one
(staging failed, or never ran for it) instead of reading an empty prefix as "the day has no rows" and
deleting the warehouse's rows (a mistyped lake location used to empty the warehouse that way). A
manifest that lists no files is a day staging built empty: then the day's rows are deleted. A run over
a range of days checks every day's manifest before it loads any (``staged_days``). A load replaces
exactly the partition's rows in one transaction, so a replay never duplicates and a correction replaces.

The table's schema and the files' own row counts come from the staging files' Parquet footers, read
from the end of each file alone (``lake.transfer.parquet_footer``): the files' data is read once, by the
warehouse's load itself. Every count of the day's rows is returned (``Reconciliation``); the warehouse
asset's check judges whether they agree (``customer360.defs.checks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pyarrow as pa

from customer360.contracts import Dataset
from customer360.lake import layout
from customer360.lake.store import LakeStore
from customer360.lake.transfer import parquet_footer
from customer360.steps.staging import StagingManifest, read_staging_manifest
from customer360.warehouse.base import LoadResult, Warehouse


@dataclass(frozen=True)
class Reconciliation:
    """The day's rows as four witnesses count them; a load is trusted only when they agree."""

    staging_rows: int  # the staging files' footers
    staging_manifest_rows: int  # the staging build's manifest
    rows_loaded_per_copy: int  # the sum of COPY's per-file results
    rows_in_table_for_day: int  # the table's rows for the day after the load
    copy_errors: bool  # any file COPY reported errors for


@dataclass(frozen=True)
class DayLoad:
    """What loading one day did; ``result``, ``schema`` and ``reconciliation`` are None for a day built empty."""

    day: date
    files: int  # the staging files the manifest lists
    rows_deleted: int
    result: LoadResult | None
    schema: pa.Schema | None
    reconciliation: Reconciliation | None


def staged_days(store: LakeStore, dataset: Dataset, days: list[date]) -> tuple[dict[date, StagingManifest], list[date]]:
    """Each day's completed staging build (its manifest), and the days that have none (in ``days`` order)."""
    manifests = {day: read_staging_manifest(store, dataset, day) for day in days}
    staged = {day: manifest for day, manifest in manifests.items() if manifest is not None}
    return staged, [day for day in days if day not in staged]


def unstaged_message(dataset: Dataset, days: list[date]) -> str:
    """Why days without a completed staging build are not loaded, and what to run."""
    first, last = days[0], days[-1]
    named = str(first) if first == last else f"{', '.join(map(str, days[:5]))}{' ...' if len(days) > 5 else ''}"
    return (
        f"warehouse/{dataset.staging_name}: staging/{dataset.staging_name} has no completed build for {named} (no "
        f"{layout.staging_manifest_key(dataset.name, first)}: its staging failed, or never ran), so there is nothing "
        f"trustworthy to load; the warehouse's rows are left as they are. Materialize staging/{dataset.staging_name} "
        f"for those days first (customer360 replay --start {first} --end {last})."
    )


def load_day(store: LakeStore, target: Warehouse, dataset: Dataset, day: date, manifest: StagingManifest) -> DayLoad:
    """Replace ``day``'s rows of the dataset's table with exactly the files ``manifest`` lists."""
    if not manifest.files:
        # Staging completed with no rows for the day: the warehouse holds nothing for it either.
        return DayLoad(day, 0, target.delete_partition(dataset.staging_name, day), None, None, None)
    footers = [parquet_footer(store, key) for key in manifest.files]
    schema = footers[0].schema
    result = target.replace_partition(dataset.staging_name, schema, day, manifest.files)
    reconciliation = Reconciliation(
        staging_rows=sum(footer.rows for footer in footers),
        staging_manifest_rows=manifest.rows,
        rows_loaded_per_copy=sum(f.rows_loaded for f in result.files),
        rows_in_table_for_day=result.rows_loaded,
        copy_errors=any(f.errors_seen for f in result.files),
    )
    return DayLoad(day, len(manifest.files), result.rows_deleted, result, schema, reconciliation)
