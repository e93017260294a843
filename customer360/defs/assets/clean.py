"""clean/<dataset>: see ``customer360.steps.clean`` for what the step does.

The step validates what it wrote and reports the contract's asset checks (``customer360.checks``) per
day; a failed blocking check fails the step, so staging never builds from that day. A run may cover a
range of days (``customer360.defs.assets.days``): each day is cleaned, checked and recorded on its own.
"""

import logging
from collections.abc import Iterator
from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from customer360.contracts import Dataset
from customer360.contracts.schemas import clean_schema
from customer360.defs.assets.days import DayEvent, DayRecord, days_of, record_days
from customer360.defs.assets.metadata import column_descriptions, column_schema, peak_memory_mb, preview
from customer360.defs.checks import check_specs, clean_checks, run_clean_checks
from customer360.defs.keys import ARCHIVE, CLEAN, COLUMN_SCHEMA, ROW_COUNT, zone_key
from customer360.defs.partitions import daily_partitions
from customer360.defs.resources.lake import LakeResource
from customer360.lake import layout
from customer360.lake.store import LakeStore
from customer360.lake.transfer import fetch_many, scratch_dir
from customer360.steps.clean import clean_partition


def build_clean_asset(dataset: Dataset) -> dg.AssetsDefinition:
    key = zone_key(CLEAN, dataset)

    @dg.asset(
        key=key,
        deps=[zone_key(ARCHIVE, dataset)],
        group_name=CLEAN,
        partitions_def=daily_partitions,
        description=f"{dataset.name} typed and standardized per contract v{dataset.version}, as Parquet under "
        f"`clean/{dataset.name}/dt=YYYY-MM-DD/`; rule-breaking rows quarantined under `rejected/{dataset.name}/rows/`.",
        metadata={
            COLUMN_SCHEMA: column_schema(clean_schema(dataset), column_descriptions(dataset)),
            "contract_version": dataset.version,
        },
        check_specs=check_specs(key, clean_checks(dataset)),
    )
    def clean(context: dg.AssetExecutionContext, lake: LakeResource) -> Iterator[DayEvent]:
        store = lake.store()
        records = [_clean_day(store, dataset, day, context.log) for day in days_of(context)]
        yield from record_days(context, key, records)

    return clean


def _clean_day(store: LakeStore, dataset: Dataset, day: date, log: logging.Logger) -> DayRecord:
    result = clean_partition(store, dataset, day, log=log)
    sample = _first_rows(store, next((f.clean_key for f in result.files if f.stats.clean_rows), None))
    rate = result.rows_archived / result.seconds if result.seconds else 0.0
    metadata: dict[str, object] = {
        ROW_COUNT: result.rows_clean,
        "rows_archived": result.rows_archived,
        "rows_quarantined": result.rows_quarantined,
        "rule_counts": dg.MetadataValue.json(result.rule_counts),
        "files": len(result.files),
        # Clean file names derive from the ledger entry; which upstream file each one holds.
        "source_files": dg.MetadataValue.json(
            {f.clean_key: {"source_name": f.source_name, "archive_key": f.archive_key} for f in result.files}
        ),
        "rescued_columns": dg.MetadataValue.json(result.rescued_columns),
        "seconds": round(result.seconds, 3),
        "rows_per_second": round(rate),
        "peak_memory_mb": peak_memory_mb(),
        "lake_prefix": layout.clean_prefix(dataset.name, day),
        "rows_per_rule": dg.MetadataValue.md(_rule_table(result.rule_counts)),
    }
    if sample is not None:
        metadata["preview"] = preview(sample)
    return DayRecord(day, metadata, [outcome.result() for outcome in run_clean_checks(store, dataset, day)])


def _rule_table(rule_counts: dict[str, int]) -> str:
    """Quarantined rows per rule, for the partition's materialization page."""
    if not rule_counts:
        return "_no row quarantined_"
    rows = sorted(rule_counts.items(), key=lambda item: -item[1])
    return "\n".join(["| rule | rows quarantined |", "|---|---|", *[f"| {rule} | {count} |" for rule, count in rows]])


def _first_rows(store: LakeStore, key: str | None, rows: int = 5) -> pa.Table | None:
    """A preview read from one clean file's first rows, not the whole day read back."""
    if key is None:
        return None
    with scratch_dir() as folder:
        (path,) = fetch_many(store, [key], folder)
        return pa.Table.from_batches([next(pq.ParquetFile(path).iter_batches(batch_size=rows))])
