"""Benchmark: one activity day through the project's real gate + clean + staging vs DuckDB on the same file.

Why a script and not a test: speed is a measurement, printed as figures, never an assertion that can
flake on a loaded CI machine. Each engine runs in its own child process so wall time and peak RSS
(``wait4``'s ``ru_maxrss``) are the whole process's, interpreter and libraries included.

    python benchmarks/run.py                 # 1M rows, CSV and gzip
    python benchmarks/run.py --with-10m      # adds the 10M-row day (about 1.1 GB; takes minutes)

What runs, on the same generated file (``customer360.generator.write_activity_day``):
- ``duckdb``: the reference job in one DuckDB process: parse and type every field, split rule-breaking
  rows off with their reason, deduplicate on ``event_id``, write zstd Parquet.
- ``customer360 gate+clean``: Dagster materializes raw/activity_logs, the gate (archive/rejected) and
  clean/activity_logs for the day, through the project's real assets, on a local-folder lake.
- ``duckdb staging`` vs ``customer360 staging``: dedup + join with the customers snapshot, from the
  project's clean output.
- ``pandera``: the clean zone's pandera schema validating the day's clean rows batch by batch, reported
  separately (it is part of the clean asset's checks).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / ".data"
DAY = date(2024, 3, 1)
CUSTOMERS = 200_000
SEED = 42


@dataclass
class Measure:
    name: str
    rows: int
    megabytes: float
    seconds: float
    peak_rss_mb: float
    detail: dict[str, object]


# ---------------------------------------------------------------------------------------------------
# Child tasks (each runs in a fresh process)
# ---------------------------------------------------------------------------------------------------

DUCKDB_CLEAN_SQL = """
CREATE TEMP TABLE typed AS
SELECT *,
  CASE
    WHEN event_id IS NULL OR trim(event_id) = '' THEN 'required:event_id'
    WHEN customer_id IS NULL OR NOT regexp_full_match(trim(customer_id), '[0-9]{{4}}-[A-Z]{{5}}')
      THEN 'pattern:customer_id'
    WHEN ts IS NULL THEN 'type:event_ts'
    WHEN trim(event_type) NOT IN ('voice', 'sms', 'data') THEN 'allowed_values:event_type'
    WHEN trim(direction) NOT IN ('in', 'out') THEN 'allowed_values:direction'
    WHEN trim(roaming) NOT IN ('true', 'false') THEN 'allowed_values:roaming'
    WHEN charge IS NULL THEN 'type:charge_amount'
    WHEN charge < 0 THEN 'minimum:charge_amount'
    WHEN nullif(trim(duration_sec), '') IS NOT NULL AND dur IS NULL THEN 'type:duration_sec'
    WHEN nullif(trim(data_mb), '') IS NOT NULL AND mb IS NULL THEN 'type:data_mb'
    WHEN dur < 0 THEN 'minimum:duration_sec'
    WHEN mb < 0 THEN 'minimum:data_mb'
    WHEN trim(event_type) <> 'voice' AND dur IS NOT NULL THEN 'duration_only_for_voice'
    WHEN trim(event_type) <> 'data' AND mb IS NOT NULL THEN 'data_mb_only_for_data'
  END AS reason
FROM (
  SELECT *,
    CASE WHEN regexp_full_match(trim(event_ts),
                                '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}[T ][0-9:.]+(Z|[+-][0-9]{{2}}:?[0-9]{{2}})')
         THEN TRY_CAST(trim(event_ts) AS TIMESTAMPTZ) END AS ts,
    TRY_CAST(nullif(trim(duration_sec), '') AS BIGINT) AS dur,
    TRY_CAST(nullif(trim(data_mb), '') AS DECIMAL(14, 3)) AS mb,
    TRY_CAST(nullif(trim(charge_amount), '') AS DECIMAL(14, 4)) AS charge
  FROM read_csv('{source}', header = true, all_varchar = true, compression = 'auto')
);
COPY (SELECT * FROM typed WHERE reason IS NOT NULL) TO '{out}/bad.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (
  -- GROUP BY with any_value is DuckDB's fastest dedup here (a hash aggregate; QUALIFY row_number() sorts).
  SELECT trim(event_id) AS event_id, any_value(trim(customer_id)) AS customer_id, any_value(ts) AS event_ts,
         any_value(trim(event_type)) AS event_type, any_value(trim(direction)) AS direction,
         any_value(dur) AS duration_sec, any_value(mb) AS data_mb, any_value(nullif(trim(cell_id), '')) AS cell_id,
         any_value(trim(roaming)) = 'true' AS roaming, any_value(charge) AS charge_amount
  FROM typed WHERE reason IS NULL
  GROUP BY trim(event_id)
) TO '{out}/clean.parquet' (FORMAT parquet, COMPRESSION zstd);
"""

DUCKDB_STAGING_SQL = """
COPY (
  SELECT e.* EXCLUDE (partition_date), DATE '{day}' AS partition_date, c.plan_id
  FROM (SELECT * FROM read_parquet('{clean}/*.parquet')
        QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY _source_file, _source_line) = 1) e
  LEFT JOIN (SELECT customer_id, plan_id FROM read_parquet('{customers}/*.parquet')) c USING (customer_id)
) TO '{out}/staging.parquet' (FORMAT parquet, COMPRESSION zstd);
"""


def child_duckdb_clean(source: str, out: str) -> dict[str, object]:
    import duckdb

    connection = duckdb.connect(config={"preserve_insertion_order": False})
    connection.execute(DUCKDB_CLEAN_SQL.format(source=source, out=out))
    bad = connection.execute(f"SELECT count(*) FROM '{out}/bad.parquet'").fetchone()[0]
    good = connection.execute(f"SELECT count(*) FROM '{out}/clean.parquet'").fetchone()[0]
    return {"rows_clean_dedup": good, "rows_quarantined": bad}


def child_duckdb_staging(clean: str, customers: str, out: str) -> dict[str, object]:
    import duckdb

    connection = duckdb.connect()
    connection.execute(DUCKDB_STAGING_SQL.format(clean=clean, customers=customers, out=out, day=DAY.isoformat()))
    return {"rows_staging": connection.execute(f"SELECT count(*) FROM '{out}/staging.parquet'").fetchone()[0]}


def _materialize(lake_root: str, selection: list[str]) -> dict[str, object]:
    import dagster as dg

    from customer360.definitions import build_definitions
    from customer360.lake.resource import LakeResource
    from customer360.warehouse.resource import WarehouseResource

    defs = build_definitions(LakeResource(location=lake_root),
                             WarehouseResource(backend="duckdb", duckdb_path=f"{lake_root}.duckdb"))
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    result = dg.materialize(assets, selection=selection, partition_key=DAY.isoformat(),
                            instance=dg.DagsterInstance.ephemeral(),
                            resources={"lake": defs.resources["lake"], "warehouse": defs.resources["warehouse"]})
    metadata: dict[str, object] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        for key in ("dagster/row_count", "rows_quarantined", "files_archived", "files_rejected", "seconds"):
            if key in materialization.metadata:
                metadata[f"{materialization.asset_key.to_user_string()}:{key}"] = materialization.metadata[key].value
    return metadata


def child_project_gate_clean(lake_root: str) -> dict[str, object]:
    return _materialize(lake_root, ["raw/activity_logs", "archive/activity_logs", "rejected/activity_logs",
                                    "clean/activity_logs"])


def child_project_staging(lake_root: str) -> dict[str, object]:
    return _materialize(lake_root, ["staging/activity"])


def child_pandera(lake_root: str) -> dict[str, object]:
    """The clean asset's pandera validation (the same function its check runs), on the day's clean files."""
    from customer360.checks.validate import validate_files
    from customer360.contracts import ACTIVITY_LOGS
    from customer360.contracts.pandera_models import clean_model

    folder = Path(lake_root) / "clean" / "activity_logs" / f"dt={DAY.isoformat()}"
    result = validate_files(sorted(folder.glob("*.parquet")), clean_model(ACTIVITY_LOGS, DAY))
    return {"rows_validated": result.rows, "failures": {k: v.count for k, v in result.failures.items()},
            "seconds": round(result.seconds, 3)}


CHILD_TASKS = {
    "duckdb_clean": child_duckdb_clean,
    "duckdb_staging": child_duckdb_staging,
    "project_gate_clean": child_project_gate_clean,
    "project_staging": child_project_staging,
    "pandera": child_pandera,
}


# ---------------------------------------------------------------------------------------------------
# The parent: prepares data, runs children, prints the table
# ---------------------------------------------------------------------------------------------------


def _own_peak_rss_mb() -> float:
    """This process's high-water RSS (VmHWM), which unlike ru_maxrss does not inherit the parent's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(task: str, *args: str) -> tuple[float, float, dict[str, object]]:
    """(wall seconds, peak RSS MB, the child's JSON result) of one task in a fresh process."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, __file__, "--child", task, *args], stdout=subprocess.PIPE,
                               env={**os.environ, "PYTHONWARNINGS": "ignore"}, cwd=ROOT)
    assert process.stdout is not None
    output = process.stdout.read()
    status = process.wait()
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{task} failed (status {status})")
    result = json.loads(output.decode().strip().splitlines()[-1])
    return seconds, float(result.pop("_peak_rss_mb")), result


def customers_snapshot(lake_root: Path) -> list[str]:
    """A customers + plans day through the real pipeline, so staging activity has a snapshot to join.

    The customers file is the CRM's newer layout (with ``plan_id``), so the join brings a value for every
    event, as it does in production; the plans catalog is the generator's.
    """
    import numpy as np

    from customer360.generator import generate_demo_data
    from customer360.generator.customers import customers_csv
    from customer360.generator.demo_data import demo_customer_book
    from customer360.lake.resource import open_lake

    store = open_lake(str(lake_root))

    def only_plans(key: str, data: bytes) -> None:
        if key.startswith("raw/plans/") and f"/{DAY.isoformat()}/" in key:
            store.put_bytes(key, data)

    generate_demo_data(only_plans, DAY, 1, seed=SEED, customers=1, events_per_day=0, hours_per_day=1)
    book = demo_customer_book(SEED, CUSTOMERS)
    rows = np.arange(len(book))
    store.put_bytes(f"raw/customers/{DAY.isoformat()}/crm_customers_snapshot_{DAY.isoformat()}.csv",
                    customers_csv(book, rows, new_layout=True, day=DAY, rng=np.random.default_rng(SEED)))
    _materialize(str(lake_root), ["raw/customers", "archive/customers", "rejected/customers", "clean/customers",
                                  "raw/plans", "archive/plans", "rejected/plans", "clean/plans",
                                  "staging/plans", "staging/customers"])
    import pyarrow.parquet as pq

    folder = lake_root / "staging" / "customers" / f"dt={DAY.isoformat()}"
    return pq.read_table(folder, columns=["customer_id"])["customer_id"].to_pylist()


def activity_file(rows: int, compressed: bool, customer_ids: list[str]) -> Path:
    import numpy as np

    from customer360.generator import write_activity_day

    path = DATA / f"usage-{rows}.csv{'.gz' if compressed else ''}"
    if not path.exists():
        started = time.perf_counter()
        write_activity_day(path.with_suffix(path.suffix + ".tmp"), DAY, rows, seed=SEED,
                           customer_ids=np.array(customer_ids), gzip=compressed)
        path.with_suffix(path.suffix + ".tmp").rename(path)
        print(f"  generated {path.name} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.1f}s")
    return path


def bench_file(source: Path, reference_lake: Path, scratch: Path) -> list[Measure]:
    rows_hint = int(source.name.split("-")[1].split(".")[0])
    megabytes = source.stat().st_size / 1e6
    measures = []

    out = scratch / "duckdb"
    out.mkdir()
    seconds, rss, detail = run_child("duckdb_clean", str(source), str(out))
    measures.append(Measure("duckdb parse+type+split+dedup", rows_hint, megabytes, seconds, rss, detail))

    lake = scratch / "lake"
    shutil.copytree(reference_lake, lake, ignore=shutil.ignore_patterns("*.duckdb"))
    raw = lake / "raw" / "activity_logs" / DAY.isoformat() / source.name
    raw.parent.mkdir(parents=True)
    os.link(source, raw)  # the raw object is the benchmark file itself, no copy
    seconds, rss, detail = run_child("project_gate_clean", str(lake))
    measures.append(Measure("customer360 gate+clean", rows_hint, megabytes, seconds, rss, detail))

    clean = lake / "clean" / "activity_logs" / f"dt={DAY.isoformat()}"
    customers = lake / "staging" / "customers" / f"dt={DAY.isoformat()}"
    out = scratch / "duckdb-staging"
    out.mkdir()
    seconds, rss, detail = run_child("duckdb_staging", str(clean), str(customers), str(out))
    measures.append(Measure("duckdb staging (dedup+join)", rows_hint, megabytes, seconds, rss, detail))
    seconds, rss, detail = run_child("project_staging", str(lake))
    measures.append(Measure("customer360 staging", rows_hint, megabytes, seconds, rss, detail))
    seconds, rss, detail = run_child("pandera", str(lake))
    measures.append(Measure("pandera validation (clean)", rows_hint, megabytes, seconds, rss, detail))
    return measures


def print_table(title: str, measures: list[Measure]) -> None:
    reference = {m.name.split(" ")[1]: m.seconds for m in measures if m.name.startswith("duckdb")}
    # "duckdb parse+type+split+dedup" -> key "parse+type+split+dedup"; "duckdb staging (...)" -> "staging"
    print(f"\n{title}")
    header = (f"{'step':<32} {'rows':>11} {'MB':>8} {'wall s':>8} {'rows/s':>11} {'MB/s':>7} {'peak RSS MB':>12} "
              f"{'x duckdb':>9}")
    print(header + "\n" + "-" * len(header))
    for m in measures:
        kind = "staging" if "staging" in m.name else "parse+type+split+dedup"
        compared = not m.name.startswith(("duckdb", "pandera"))
        ratio = m.seconds / reference[kind] if compared and kind in reference else None
        ratio_text = f"{ratio:>9.2f}" if ratio is not None else f"{'':>9}"
        print(f"{m.name:<32} {m.rows:>11,} {m.megabytes:>8.0f} {m.seconds:>8.2f} {m.rows / m.seconds:>11,.0f} "
              f"{m.megabytes / m.seconds:>7.1f} {m.peak_rss_mb:>12,.0f} {ratio_text}")
    for m in measures:
        print(f"  {m.name}: {json.dumps(m.detail, default=str)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-10m", action="store_true", help="also run the 10M-row day (minutes)")
    parser.add_argument("--rows", type=int, nargs="*", help="explicit sizes instead of 1M (and 10M)")
    parser.add_argument("--no-gzip", action="store_true", help="skip the gzip-compressed variants")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, *task_args = args.child
        result = CHILD_TASKS[task](*task_args)
        print(json.dumps({**result, "_peak_rss_mb": _own_peak_rss_mb()}, default=str))
        return 0

    sizes = args.rows or ([1_000_000, 10_000_000] if args.with_10m else [1_000_000])
    DATA.mkdir(parents=True, exist_ok=True)
    reference_lake = DATA / "reference-lake"
    if not (reference_lake / "staging" / "customers").exists():
        shutil.rmtree(reference_lake, ignore_errors=True)
        print("preparing the customers snapshot the activity staging joins ...")
        customers_snapshot(reference_lake)
    import pyarrow.parquet as pq

    customer_ids = pq.read_table(reference_lake / "staging" / "customers", columns=["customer_id"])[
        "customer_id"].to_pylist()
    for rows in sizes:
        for compressed in (False, True) if not args.no_gzip else (False,):
            source = activity_file(rows, compressed, customer_ids)
            with tempfile.TemporaryDirectory(prefix="c360-bench-", dir=DATA) as scratch:
                measures = bench_file(source, reference_lake, Path(scratch))
            print_table(f"{source.name}: {rows:,} rows, {source.stat().st_size / 1e6:.0f} MB", measures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
