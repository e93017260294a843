"""Benchmark: replaying a year of small demo days through every zone, and the cost per partition.

    python benchmarks/backfill.py [--days 365] [--sqlite]

Generates ``--days`` days of small demo data into a fresh local lake, then runs the pipeline job once per
day, in order (one partition per run: what ``customer360 replay`` and the demo do), with a real Dagster
instance. Prints the total wall time and the per-partition
overhead: the run's wall time minus the time the zone steps themselves reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

START = date(2024, 1, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument(
        "--sqlite",
        action="store_true",
        help="an on-disk SQLite instance (the embedded default) instead of in-memory storage",
    )
    args = parser.parse_args()

    import dagster as dg

    from customer360.defs.definitions import build_definitions
    from customer360.defs.keys import PIPELINE_JOB_NAME
    from customer360.defs.resources.lake import LakeResource
    from customer360.defs.resources.warehouse import WarehouseResource
    from customer360_generator import generate_demo_data

    with tempfile.TemporaryDirectory(prefix="c360-backfill-") as folder:
        lake = LakeResource(location=str(Path(folder) / "lake"))
        warehouse = WarehouseResource(backend="duckdb", duckdb_path=str(Path(folder) / "warehouse.duckdb"))
        started = time.perf_counter()
        generate_demo_data(
            lake.create().put_bytes, START, args.days, seed=1, customers=200, events_per_day=400, hours_per_day=2
        )
        print(f"generated {args.days} days of demo files in {time.perf_counter() - started:.1f}s")
        job = build_definitions(lake, warehouse).resolve_job_def(PIPELINE_JOB_NAME)
        walls, steps, failed = [], [], 0
        # In-memory instance storage by default: production keeps run history in Postgres; the on-disk SQLite
        # of the embedded default fsyncs every event and measures the laptop's disk (--sqlite shows it).
        instance_context = dg.DagsterInstance.local_temp(folder) if args.sqlite else dg.DagsterInstance.ephemeral()
        with instance_context as instance:
            began = time.perf_counter()
            for offset in range(args.days):
                day = START + timedelta(days=offset)
                run_started = time.perf_counter()
                result = job.execute_in_process(partition_key=day.isoformat(), instance=instance, raise_on_error=False)
                walls.append(time.perf_counter() - run_started)
                failed += not result.success
                steps.append(
                    sum(
                        float(event.materialization.metadata["seconds"].value)  # type: ignore[union-attr]
                        for event in result.get_asset_materialization_events()
                        if "seconds" in event.materialization.metadata
                    )
                )
                if (offset + 1) % 30 == 0:
                    print(f"  {offset + 1} days in {time.perf_counter() - began:.0f}s")
            total = time.perf_counter() - began
    overheads = [wall - step for wall, step in zip(walls, steps, strict=True)]
    print(f"\n{args.days} partitions replayed in {total:.1f}s ({total / 60:.1f} min), {failed} failed run(s)")
    print(
        f"per partition: median wall {statistics.median(walls):.2f}s, of which the zone steps' own work "
        f"{statistics.median(steps):.2f}s and Dagster + checks overhead {statistics.median(overheads):.2f}s"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
