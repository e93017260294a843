"""The main job end to end on the embedded default: a week of realistic raw files through every zone.

What ``python3 dev.py demo`` runs. It writes the generator's files (``customer360_generator``, from tools/)
into raw/, materializes every partition of every asset through Dagster (the same job a backfill runs, one run
per day, recorded in the instance so ``dagster dev`` shows them), then prints what each zone holds per dataset
and day, counted from the lake, the ledger and the warehouse themselves rather than from the runs' own claims.

The demo's days end yesterday (UTC) unless told otherwise (``default_start``): the UI opens on recent days
(the partitions tab, the launch dialog's "last 90 days") and the raw sensor lists the last week, so a
newcomer's first screens show the demo's data. The partitions still start in 2024 for history.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from customer360.contracts import DATASETS
from customer360.defs.backfill import QUIET_CONSOLE, replay_days, stopped_message
from customer360.defs.definitions import build_definitions
from customer360.defs.keys import UNROUTABLE_JOB_NAME
from customer360.defs.resources.lake import LakeResource, lake_resource_from_env
from customer360.defs.resources.warehouse import WarehouseResource, warehouse_resource_from_env
from customer360.lake import layout
from customer360.lake.ledger import ARCHIVED, DUPLICATE, REJECTED, Ledger
from customer360.lake.store import LakeStore
from customer360.lake.transfer import fetch_many, parquet_keys, scratch_dir
from customer360.steps.mart import mart_checks
from customer360.warehouse.base import Warehouse


def default_start(days: int, today: date | None = None) -> date:
    """The first of ``days`` demo days that end yesterday (UTC)."""
    today = today or datetime.now(UTC).date()
    return today - timedelta(days=days)


@dataclass
class DaySummary:
    dataset: str
    day: date
    archived: int
    rejected: int
    duplicates: int
    rows_archived: int
    rows_clean: int
    rows_quarantined: int
    rows_staging: int
    rows_warehouse: int


def reset_embedded(lake: LakeResource, warehouse: WarehouseResource) -> None:
    """Start the demo from an empty sandbox: only ever the embedded local folder and DuckDB file."""
    if lake.location.startswith("s3://") or warehouse.backend != "duckdb":
        raise SystemExit("the demo resets only the embedded default; unset CUSTOMER360_LAKE/WAREHOUSE or use --keep")
    for path in (Path(lake.location), Path(warehouse.duckdb_path)):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def run_demo(*, start: date, days: int, seed: int, keep: bool, customers: int, events_per_day: int) -> int:
    # The generator is a development tool (tools/, installed by dev.py), not a dependency of the runtime package:
    # imported here, before anything is reset, so without it the demo stops with what to install (errors.py).
    from customer360_generator import generate_demo_data

    started = time.perf_counter()
    lake, warehouse = lake_resource_from_env(must_exist=False), warehouse_resource_from_env()
    if not keep:
        reset_embedded(lake, warehouse)
    store = lake.create()  # the demo is one of the two things that may create a lake folder (and init)
    report = generate_demo_data(
        store.put_bytes, start, days, seed=seed, customers=customers, events_per_day=events_per_day
    )
    generated = time.perf_counter() - started
    print(f"generated {len(report.files)} raw files in {generated:.1f}s into {store.uri}")

    defs = build_definitions(lake, warehouse)
    instance = dg.DagsterInstance.get()
    failed: list[str] = []
    unroutable = defs.resolve_job_def(UNROUTABLE_JOB_NAME).execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET_CONSOLE
    )
    moved = Ledger(store).entries("_unroutable")
    print(
        f"  unroutable raw files: run {unroutable.run_id[:8]}  {'ok' if unroutable.success else 'FAILED'}  "
        f"{len(moved)} rejected: {', '.join(e.raw_key for e in moved) or '-'}"
    )
    last = start + timedelta(days=days - 1)
    for replayed in replay_days(defs, instance, start, last):
        status = "ok" if replayed.success else "FAILED"
        print(f"  {replayed.day}  run {replayed.run_id[:8]}  {status}  {replayed.seconds:.1f}s")
        for failure in replayed.failures:
            print(f"      {failure}")
        if not replayed.success:
            failed.append(replayed.day.isoformat())
            print(stopped_message("demo", replayed.day, last))
            break

    summaries = summarize(store, warehouse, start, days)
    print_summary(summaries)
    print_mart(warehouse.open(store), start, days)
    print(
        f"\ndemo finished in {time.perf_counter() - started:.1f}s; Dagster runs recorded in {instance.root_directory}"
    )
    if failed:
        print(f"runs failed for {', '.join(failed)}")
        return 1
    return 0


def summarize(store: LakeStore, warehouse: WarehouseResource, start: date, days: int) -> list[DaySummary]:
    ledger = Ledger(store)
    target = warehouse.open(store)
    summaries = []
    for dataset in DATASETS.values():
        counts = (
            dict(target.query(f"SELECT partition_date, count(*) FROM {dataset.staging_name} GROUP BY partition_date"))
            if _has_table(target, dataset.staging_name)
            else {}
        )
        for offset in range(days):
            day = start + timedelta(days=offset)
            entries = ledger.entries(dataset.name, day)
            summaries.append(
                DaySummary(
                    dataset=dataset.name,
                    day=day,
                    archived=sum(e.outcome == ARCHIVED for e in entries),
                    rejected=sum(e.outcome == REJECTED for e in entries),
                    duplicates=sum(e.outcome == DUPLICATE for e in entries),
                    rows_archived=sum(e.rows or 0 for e in entries if e.outcome == ARCHIVED),
                    rows_clean=_parquet_rows(store, layout.clean_prefix(dataset.name, day)),
                    rows_quarantined=_parquet_rows(store, layout.quarantine_prefix(dataset.name, day)),
                    rows_staging=_parquet_rows(store, layout.staging_prefix(dataset.name, day)),
                    rows_warehouse=int(counts.get(day, 0)),
                )
            )
    return summaries


def _has_table(target: object, table: str) -> bool:
    rows = target.query("SELECT lower(table_name) FROM information_schema.tables")  # type: ignore[attr-defined]
    return table.lower() in {row[0] for row in rows}


def _parquet_rows(store: LakeStore, prefix: str) -> int:
    keys = parquet_keys(store, prefix)
    if not keys:
        return 0
    with scratch_dir() as folder:
        return sum(pq.ParquetFile(path).metadata.num_rows for path in fetch_many(store, keys, folder))


def print_mart(target: Warehouse, start: date, days: int) -> None:
    """The product: Customer 360 rows per day, with its reconciliation."""
    print(f"\n{'customer_360':<14} {'day':<10} {'customers':>9} {'charges 30d':>12} {'reconciled':>10}")
    for offset in range(days):
        day = start + timedelta(days=offset)
        checks = mart_checks(target, day)
        print(
            f"{'':<14} {day.isoformat():<10} {checks['mart_rows']:>9} {float(checks['mart_charges']):>12,.2f} "
            f"{'yes' if checks['charges_reconciled'] else 'NO':>10}"
        )


def print_summary(summaries: list[DaySummary]) -> None:
    header = (
        f"{'dataset':<14} {'day':<10} {'archived':>8} {'rejected':>8} {'dup':>4} {'rows in':>8} "
        f"{'clean':>8} {'quarant.':>8} {'staging':>8} {'warehouse':>9}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for s in summaries:
        print(
            f"{s.dataset:<14} {s.day.isoformat():<10} {s.archived:>8} {s.rejected:>8} {s.duplicates:>4} "
            f"{s.rows_archived:>8} {s.rows_clean:>8} {s.rows_quarantined:>8} {s.rows_staging:>8} "
            f"{s.rows_warehouse:>9}"
        )
