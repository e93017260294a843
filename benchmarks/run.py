"""Benchmark matrix: one activity day per cell (format x fault mix), the project's real assets vs DuckDB.

Why a script and not a test: speed is a measurement, printed as figures, never an assertion that can
flake on a loaded CI machine. Row accounting, though, is asserted in every cell: a fast wrong answer
is not a result. Each engine runs in its own child process on the same file in the same run, so wall
time and peak RSS (the child's VmHWM) are the whole process's, interpreter and libraries included.

    python benchmarks/run.py                       # 1M rows per cell: 4 formats x mixes a, b, c
    python benchmarks/run.py --rows 300000 --foreign  # quick; plus the file written by another hand
    python benchmarks/run.py --with-10m            # 10M rows per cell (tens of minutes)
    python benchmarks/run.py --with-10m --cells jsonl:b,csv.gz:a   # only those cells

Cells: formats ``.csv``, ``.csv.gz``, ``.jsonl``, ``.jsonl.gz`` x fault mixes (a) none, (b) realistic:
1% duplicates and 0.2% bad rows spread uniformly, every way of breaking the contract in equal parts
(``customer360_generator.ROW_FAULTS``), (c) hostile: 40% bad rows, so the gate rejects the file.
Every file of a mix holds the same events; ``customer360 generate --activity-day-rows ...`` (printed
with the matrix) writes the same bytes. ``--foreign`` adds cells on a file written by
``benchmarks/foreign_feed.py`` (not our generator): issue 11's 1% duplicates and 0.2% bad rows of four kinds.

What runs per cell, each in a fresh process:
- ``duckdb``: the reference job in one DuckDB process: parse, type every field by the contract's own
  shapes (places, int64, calendar), split rule-breaking rows off with their first rule, deduplicate on
  ``event_id``, write zstd Parquet. Its per-rule counts must equal the injected ones too.
- ``gate+clean``: Dagster materializes raw/, the gate (archive/rejected) and clean/activity_logs for the
  day through the project's real assets, on a local-folder lake (a hostile file ends at the gate).
- ``duckdb staging`` vs ``staging``: dedup + join with the day's customers snapshot, from clean.

Asserted per cell: clean + quarantined = rows read = rows written; quarantine (or the rejection
report) per rule and column = what the generator injected; staging rows = distinct valid events.
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
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "benchmarks" / ".data"
DAY = date(2024, 3, 1)
CUSTOMERS = 200_000
SEED = 42
FORMATS = ("csv", "csv.gz", "jsonl", "jsonl.gz")
RSS_LIMIT_MB = 1024


@dataclass(frozen=True)
class Mix:
    key: str
    name: str
    duplicate_share: float
    bad_share: float

    @property
    def rejected(self) -> bool:
        return self.bad_share > 0.05  # above the activity_logs contract's max_bad_row_share


MIXES = {
    "a": Mix("a", "none", 0.0, 0.0),
    "b": Mix("b", "realistic", 0.01, 0.002),
    "c": Mix("c", "hostile", 0.01, 0.40),
}
FOREIGN = Mix("f", "foreign", 0.01, 0.002)


# ---------------------------------------------------------------------------------------------------
# Child tasks (each runs in a fresh process)
# ---------------------------------------------------------------------------------------------------

COLUMNS = (
    "event_id",
    "customer_id",
    "event_ts",
    "event_type",
    "direction",
    "duration_sec",
    "data_mb",
    "cell_id",
    "roaming",
    "charge_amount",
)

DUCKDB_CLEAN_SQL = """
CREATE TEMP TABLE typed AS
SELECT *,
  CASE
    WHEN event_id IS NULL THEN 'required:event_id'
    WHEN customer_id IS NULL THEN 'required:customer_id'
    WHEN NOT regexp_full_match(customer_id, '[0-9]{{4}}-[A-Z]{{5}}') THEN 'pattern:customer_id'
    WHEN event_ts IS NULL THEN 'required:event_ts'
    WHEN ts IS NULL THEN 'type:event_ts'
    WHEN event_type IS NULL THEN 'required:event_type'
    WHEN event_type NOT IN ('voice', 'sms', 'data') THEN 'allowed_values:event_type'
    WHEN direction IS NULL THEN 'required:direction'
    WHEN direction NOT IN ('in', 'out') THEN 'allowed_values:direction'
    WHEN duration_sec IS NOT NULL AND dur IS NULL THEN 'type:duration_sec'
    WHEN dur < 0 THEN 'minimum:duration_sec'
    WHEN data_mb IS NOT NULL AND mb IS NULL THEN 'type:data_mb'
    WHEN mb < 0 THEN 'minimum:data_mb'
    WHEN roaming IS NULL THEN 'required:roaming'
    WHEN roaming NOT IN ('true', 'false') THEN 'allowed_values:roaming'
    WHEN charge_amount IS NULL THEN 'required:charge_amount'
    WHEN charge IS NULL THEN 'type:charge_amount'
    WHEN charge < 0 THEN 'minimum:charge_amount'
    WHEN event_type <> 'voice' AND dur IS NOT NULL THEN 'duration_only_for_voice:duration_sec'
    WHEN event_type <> 'data' AND mb IS NOT NULL THEN 'data_mb_only_for_data:data_mb'
  END AS reason
FROM (
  SELECT *,
    CASE WHEN regexp_full_match(event_ts, '{timestamp}') THEN TRY_CAST(event_ts AS TIMESTAMPTZ) END AS ts,
    CASE WHEN regexp_full_match(duration_sec, '{integer}') THEN TRY_CAST(duration_sec AS BIGINT) END AS dur,
    CASE WHEN regexp_full_match(data_mb, '{volume}') THEN TRY_CAST(data_mb AS DECIMAL(14, 3)) END AS mb,
    CASE WHEN regexp_full_match(charge_amount, '{money}') THEN TRY_CAST(charge_amount AS DECIMAL(14, 4)) END AS charge
  FROM (SELECT {trimmed} FROM {relation})
);
COPY (SELECT * FROM typed WHERE reason IS NOT NULL) TO '{out}/bad.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (
  -- GROUP BY with any_value is DuckDB's fastest dedup here (a hash aggregate; QUALIFY row_number() sorts).
  SELECT event_id, any_value(customer_id) AS customer_id, any_value(ts) AS event_ts,
         any_value(event_type) AS event_type, any_value(direction) AS direction, any_value(dur) AS duration_sec,
         any_value(mb) AS data_mb, any_value(cell_id) AS cell_id, any_value(roaming) = 'true' AS roaming,
         any_value(charge) AS charge_amount
  FROM typed WHERE reason IS NULL
  GROUP BY event_id
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


def duckdb_clean_sql(source: str, out: str) -> str:
    from customer360.contracts import ACTIVITY_LOGS
    from customer360.processing.standardize import shape_of

    def shape(name: str) -> str:
        return shape_of(ACTIVITY_LOGS.field(name)).removeprefix("^").removesuffix("$")

    if ".jsonl" in source:
        columns = ", ".join(f"'{c}': 'VARCHAR'" for c in COLUMNS)
        relation = f"read_json('{source}', format = 'newline_delimited', columns = {{{columns}}})"
    else:
        relation = f"read_csv('{source}', header = true, all_varchar = true, compression = 'auto')"
    return DUCKDB_CLEAN_SQL.format(
        relation=relation,
        trimmed=", ".join(f"nullif(trim({c}), '') AS {c}" for c in COLUMNS),
        timestamp=shape("event_ts"),
        integer=shape("duration_sec"),
        volume=shape("data_mb"),
        money=shape("charge_amount"),
        out=out,
    )


def child_duckdb_clean(source: str, out: str) -> dict[str, object]:
    import duckdb

    connection = duckdb.connect(config={"preserve_insertion_order": False})
    connection.execute(duckdb_clean_sql(source, out))
    bad = dict(connection.execute(f"SELECT reason, count(*) FROM '{out}/bad.parquet' GROUP BY reason").fetchall())
    clean = connection.execute(f"SELECT count(*) FROM '{out}/clean.parquet'").fetchone()[0]
    rows = connection.execute("SELECT count(*) FROM typed").fetchone()[0]
    return {"rows_read": rows, "rows_clean_dedup": clean, "bad": bad}


def child_duckdb_staging(clean: str, customers: str, out: str) -> dict[str, object]:
    import duckdb

    connection = duckdb.connect()
    connection.execute(DUCKDB_STAGING_SQL.format(clean=clean, customers=customers, out=out, day=DAY.isoformat()))
    return {"rows_staging": connection.execute(f"SELECT count(*) FROM '{out}/staging.parquet'").fetchone()[0]}


def _materialize(lake_root: str, selection: list[str]) -> dict[str, object]:
    import dagster as dg

    from customer360.defs.definitions import build_definitions
    from customer360.defs.resources.lake import LakeResource
    from customer360.defs.resources.warehouse import WarehouseResource

    defs = build_definitions(
        LakeResource(location=lake_root), WarehouseResource(backend="duckdb", duckdb_path=f"{lake_root}.duckdb")
    )
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    result = dg.materialize(
        assets,
        selection=selection,
        partition_key=DAY.isoformat(),
        instance=dg.DagsterInstance.ephemeral(),
        resources={"lake": defs.resources["lake"], "warehouse": defs.resources["warehouse"]},
    )
    metadata: dict[str, object] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        for key in ("dagster/row_count", "rows_quarantined", "files_archived", "files_rejected"):
            if key in materialization.metadata:
                metadata[f"{materialization.asset_key.to_user_string()}:{key}"] = materialization.metadata[key].value
    return metadata


def child_project_gate_clean(lake_root: str) -> dict[str, object]:
    return _materialize(
        lake_root, ["raw/activity_logs", "archive/activity_logs", "rejected/activity_logs", "clean/activity_logs"]
    )


def child_project_staging(lake_root: str) -> dict[str, object]:
    return _materialize(lake_root, ["staging/activity"])


CHILD_TASKS = {
    "duckdb_clean": child_duckdb_clean,
    "duckdb_staging": child_duckdb_staging,
    "project_gate_clean": child_project_gate_clean,
    "project_staging": child_project_staging,
}


# ---------------------------------------------------------------------------------------------------
# The parent: prepares the files, runs the children, checks the accounting, prints the matrix
# ---------------------------------------------------------------------------------------------------


def _own_peak_rss_mb() -> float:
    """This process's high-water RSS (VmHWM), which unlike ru_maxrss does not inherit the parent's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Run:
    seconds: float
    rss_mb: float
    detail: dict[str, object]
    cpu_seconds: float = 0.0  # user + system of the child, all its threads: steadier than wall on a loaded machine


def run_child(task: str, *args: str) -> Run:
    """Wall seconds, peak RSS and the JSON result of one task in a fresh process (its log kept aside)."""
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", task, *args],
            stdout=subprocess.PIPE,
            stderr=log,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            cwd=ROOT,
        )
        assert process.stdout is not None
        output = process.stdout.read()
        _, wait_status, usage = os.wait4(process.pid, 0)
        process.returncode = status = os.waitstatus_to_exitcode(wait_status)
        seconds = time.perf_counter() - started
        if status != 0:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-5000:])
            raise SystemExit(f"{task} {args} failed (status {status})")
    result = json.loads(output.decode().strip().splitlines()[-1])
    return Run(seconds, float(result.pop("_peak_rss_mb")), result, usage.ru_utime + usage.ru_stime)


def customer_ids() -> list[str]:
    from customer360_generator.demo_data import demo_customer_book

    return [str(i) for i in demo_customer_book(SEED, CUSTOMERS).ids]


def customers_snapshot(lake_root: Path) -> None:
    """A customers + plans day through the real pipeline, so staging activity has a snapshot to join.

    The customers file is the CRM's newer layout (with ``plan_id``) over the same book of customers the
    activity files draw from, so the join brings a value for every event, as it does in production.
    """
    import numpy as np

    from customer360.defs.resources.lake import init_lake
    from customer360_generator import generate_demo_data
    from customer360_generator.customers import customers_csv
    from customer360_generator.demo_data import demo_customer_book

    store = init_lake(str(lake_root))

    def only_plans(key: str, data: bytes) -> None:
        if key.startswith("raw/plans/") and f"/{DAY.isoformat()}/" in key:
            store.put_bytes(key, data)

    generate_demo_data(only_plans, DAY, 1, seed=SEED, customers=1, events_per_day=0, hours_per_day=1)
    book = demo_customer_book(SEED, CUSTOMERS)
    store.put_bytes(
        f"raw/customers/{DAY.isoformat()}/crm_customers_snapshot_{DAY.isoformat()}.csv",
        customers_csv(book, np.arange(len(book)), new_layout=True, day=DAY, rng=np.random.default_rng(SEED)),
    )
    _materialize(
        str(lake_root),
        ["raw/customers", "archive/customers", "rejected/customers", "clean/customers"]
        + ["raw/plans", "archive/plans", "rejected/plans", "clean/plans", "staging/plans", "staging/customers"],
    )


@dataclass
class Source:
    """One benchmark file and what it holds, as its writer reports it."""

    path: Path
    rows: int
    duplicates: int
    injected: dict[tuple[str, str], int]
    megabytes: float = 0.0

    def __post_init__(self) -> None:
        self.megabytes = self.path.stat().st_size / 1e6  # kept: a 10M-row file is deleted after its cells

    @property
    def bad_rows(self) -> int:
        return sum(self.injected.values())


def generator_command(rows: int, mix: Mix, file_format: str) -> str:
    return (
        f"customer360 generate --start {DAY} --seed {SEED} --customers {CUSTOMERS} --activity-day-rows {rows} "
        f"--duplicate-share {mix.duplicate_share} --bad-share {mix.bad_share} --faults all --format {file_format}"
    )


def mix_files(rows: int, mix: Mix, formats: list[str], ids: list[str]) -> dict[str, Source]:
    """The day of ``mix`` in every format (one generator pass writes them all); cached in benchmarks/.data."""
    import numpy as np

    from customer360_generator import ROW_FAULTS
    from customer360_generator.activity import write_activity_files

    paths = {f: DATA / f"usage-{rows}-{mix.key}.{f}" for f in formats}
    sidecar = DATA / f"usage-{rows}-{mix.key}.report.json"
    if not (sidecar.exists() and all(p.exists() for p in paths.values())):
        started = time.perf_counter()
        temporary = [p.with_name(p.name.replace(f"-{mix.key}.", f"-{mix.key}.tmp.")) for p in paths.values()]
        report = write_activity_files(
            temporary,
            DAY,
            rows,
            seed=SEED,
            customer_ids=np.array(ids),
            duplicate_share=mix.duplicate_share,
            bad_share=mix.bad_share,
            kinds=sorted(ROW_FAULTS),
        )
        for tmp, final in zip(temporary, paths.values(), strict=True):
            tmp.rename(final)
        sidecar.write_text(
            json.dumps({"rows": report.rows, "duplicates": report.duplicates, **report.as_dict()}, indent=1)
        )
        took = time.perf_counter() - started
        print(f"  generated mix {mix.key} ({rows:,} rows, {len(paths)} formats) in {took:.0f}s")
    saved = json.loads(sidecar.read_text())
    injected = {tuple(k.split(":", 1)): v for k, v in saved["by_rule_and_column"].items()}
    return {f: Source(p, saved["rows"], saved["duplicates"], injected) for f, p in paths.items()}  # type: ignore[misc]


def foreign_files(rows: int, ids: list[str], formats: list[str]) -> dict[str, Source]:
    """The foreign writer's day as .csv and/or .jsonl (whichever of them ``formats`` names)."""
    from benchmarks.foreign_feed import write_foreign_day

    paths = {f: DATA / f"foreign-{rows}.{f}" for f in ("csv", "jsonl") if f in formats}
    sidecar = DATA / f"foreign-{rows}.{'-'.join(paths)}.report.json"
    if not (sidecar.exists() and all(p.exists() for p in paths.values())):
        started = time.perf_counter()
        injected = write_foreign_day(list(paths.values()), DAY, rows, ids, duplicate_share=FOREIGN.duplicate_share,
                                     bad_share=FOREIGN.bad_share)  # fmt: skip
        sidecar.write_text(json.dumps({f"{r}:{c}": n for (r, c), n in injected.items()}))
        took = time.perf_counter() - started
        print(f"  wrote the foreign file ({rows:,} rows, {' and '.join(paths)}) in {took:.0f}s")
    injected = {tuple(k.split(":", 1)): v for k, v in json.loads(sidecar.read_text()).items()}
    duplicates = int(round(rows * FOREIGN.duplicate_share))
    return {f: Source(p, rows, duplicates, injected) for f, p in paths.items()}  # type: ignore[misc]


@dataclass
class Cell:
    file_format: str
    mix: Mix
    source: Source
    duckdb: Run | None = None
    gate_clean: Run | None = None
    duckdb_staging: Run | None = None
    staging: Run | None = None
    outcome: str = ""
    accounting: str = ""
    problems: list[str] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)


def _parquet_rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in sorted(folder.glob("*.parquet")))


def check_accounting(cell: Cell, lake: Path) -> None:
    """clean + quarantined = read = written, quarantine (or report) per rule and column = injected."""
    import pyarrow.parquet as pq

    from customer360.defs.resources.lake import open_lake
    from customer360.lake.ledger import Ledger

    source, problems = cell.source, cell.problems
    store = open_lake(str(lake))
    (entry,) = Ledger(store).entries("activity_logs", DAY)
    cell.outcome = entry.outcome
    expected_by_rule: Counter[str] = Counter()
    for (rule, _), count in source.injected.items():
        expected_by_rule[rule] += count
    if entry.rows != source.rows:
        problems.append(f"gate read {entry.rows} rows of {source.rows}")
    if cell.mix.rejected:
        report = json.loads(store.read_bytes(str(entry.report_key)))
        if entry.outcome != "rejected" or report["reasons"] != ["too_many_bad_rows"]:
            problems.append(f"expected a too_many_bad_rows rejection, got {entry.outcome} {report['reasons']}")
        if (report["rows"], report["bad_rows"]) != (source.rows, source.bad_rows):
            problems.append(f"report rows/bad {report['rows']}/{report['bad_rows']} != {source.rows}/{source.bad_rows}")
        if report["rule_counts"] != dict(expected_by_rule):
            problems.append(f"report rule_counts {report['rule_counts']} != injected {dict(expected_by_rule)}")
        cell.accounting = f"rejected: {report['bad_rows']:,} of {report['rows']:,} rows counted by rule"
    else:
        clean = _parquet_rows(lake / "clean" / "activity_logs" / f"dt={DAY}")
        quarantine_folder = lake / "rejected" / "activity_logs" / "rows" / f"dt={DAY}"
        found: Counter[tuple[str, str]] = Counter()
        for path in sorted(quarantine_folder.glob("*.parquet")):
            table = pq.read_table(path, columns=["rule", "column"])
            found.update(zip(table["rule"].to_pylist(), table["column"].to_pylist(), strict=True))
        quarantined = sum(found.values())
        if entry.outcome != "archived":
            problems.append(f"expected the file archived, got {entry.outcome} {entry.reasons}")
        if clean + quarantined != source.rows:
            problems.append(f"clean {clean} + quarantined {quarantined} != rows {source.rows}")
        if dict(found) != source.injected:
            problems.append(f"quarantine per rule {dict(found)} != injected {source.injected}")
        cell.accounting = f"{clean:,} + {quarantined:,} = {source.rows:,}"
    if cell.duckdb is not None:
        bad = {tuple(k.split(":", 1)): v for k, v in cell.duckdb.detail["bad"].items()}  # type: ignore[union-attr]
        if bad != source.injected or cell.duckdb.detail["rows_read"] != source.rows:
            problems.append(f"duckdb found {bad} in {cell.duckdb.detail['rows_read']} rows")
        if cell.duckdb.detail["rows_clean_dedup"] != source.rows - source.bad_rows - source.duplicates:
            problems.append(f"duckdb kept {cell.duckdb.detail['rows_clean_dedup']} distinct valid events")


def bench_cell(cell: Cell, reference_lake: Path, scratch: Path, with_staging: bool) -> None:
    source = cell.source.path
    load_before = os.getloadavg()[0]
    out = scratch / "duckdb"
    out.mkdir()
    cell.duckdb = run_child("duckdb_clean", str(source), str(out))

    lake = scratch / "lake"
    shutil.copytree(reference_lake, lake, ignore=shutil.ignore_patterns("*.duckdb"))
    raw = lake / "raw" / "activity_logs" / DAY.isoformat() / source.name
    raw.parent.mkdir(parents=True)
    os.link(source, raw)  # the raw object is the benchmark file itself, no copy
    cell.gate_clean = run_child("project_gate_clean", str(lake))
    check_accounting(cell, lake)

    if with_staging and not cell.mix.rejected:
        clean = lake / "clean" / "activity_logs" / f"dt={DAY}"
        customers = lake / "staging" / "customers" / f"dt={DAY}"
        out = scratch / "duckdb-staging"
        out.mkdir()
        cell.duckdb_staging = run_child("duckdb_staging", str(clean), str(customers), str(out))
        cell.staging = run_child("project_staging", str(lake))
        distinct = cell.source.rows - cell.source.bad_rows - cell.source.duplicates
        staged = _parquet_rows(lake / "staging" / "activity_logs" / f"dt={DAY}")
        if staged != distinct or cell.duckdb_staging.detail["rows_staging"] != distinct:
            cell.problems.append(f"staging rows {staged} (duckdb {cell.duckdb_staging.detail}) != {distinct}")
    cell.load = (load_before, os.getloadavg()[0])


def _ratio(ours: Run | None, theirs: Run | None) -> float | None:
    return ours.seconds / theirs.seconds if ours and theirs else None


def print_matrix(cells: list[Cell], rows: int) -> list[str]:
    """The matrix as printed (and pasted into the README); returns the failed targets."""
    header = (
        f"{'format':<9}{'mix':<12}{'MB':>7} | {'duckdb s':>8} {'gate+clean s':>12} {'ratio':>6} {'RSS MB':>7} "
        f"{'cpu s':>11} {'ratio':>5} | "
        f"{'duckdb s':>8} {'staging s':>9} {'ratio':>6} {'RSS MB':>7} | {'load':>9} | rows: clean + quarantined = read"
    )
    print(f"\nactivity day of {rows:,} rows per cell (staging: dedup + join with {CUSTOMERS:,} customers)")
    print(f"{'':<28} | {'parse, type, split, dedup, zstd Parquet (cpu: duckdb/ours)':<62} | "
          f"{'staging (dedup + join)':<36} |")  # fmt: skip
    print(header + "\n" + "-" * len(header))
    failed: list[str] = []
    by_key = {(c.file_format, c.mix.key): c for c in cells}
    for cell in cells:
        assert cell.duckdb is not None and cell.gate_clean is not None
        megabytes = cell.source.megabytes
        ratio = _ratio(cell.gate_clean, cell.duckdb)
        cpu = f"{cell.duckdb.cpu_seconds:.1f}/{cell.gate_clean.cpu_seconds:.1f}"
        cpu_ratio = cell.gate_clean.cpu_seconds / max(cell.duckdb.cpu_seconds, 1e-9)
        first = (
            f"{cell.duckdb.seconds:>8.2f} {cell.gate_clean.seconds:>12.2f} {ratio:>6.2f} "
            f"{cell.gate_clean.rss_mb:>7,.0f} {cpu:>11} {cpu_ratio:>5.2f}"
        )
        if cell.staging and cell.duckdb_staging:
            staging_ratio = _ratio(cell.staging, cell.duckdb_staging)
            second = (
                f"{cell.duckdb_staging.seconds:>8.2f} {cell.staging.seconds:>9.2f} {staging_ratio:>6.2f} "
                f"{cell.staging.rss_mb:>7,.0f}"
            )
        elif cell.mix.rejected:
            clean_cell = by_key.get((cell.file_format, "a"))
            versus = _ratio(cell.gate_clean, clean_cell.gate_clean) if clean_cell else None
            second = f"{'rejected at the gate: ' + (f'{versus:.2f}x (a)' if versus else ''):<33}"
        else:
            second = f"{'':<33}"
        verdict = "ok " + cell.accounting if not cell.problems else "FAILED: " + "; ".join(cell.problems)
        load = f"{cell.load[0]:.1f}-{cell.load[1]:.1f}"
        print(f"{cell.file_format:<9}{cell.mix.key + ' ' + cell.mix.name:<12}{megabytes:>7,.0f} | {first} | {second} | "
              f"{load:>9} | {verdict}")  # fmt: skip
        name = f"{cell.file_format} {cell.mix.key}"
        if cell.problems:
            failed.append(f"{name}: row accounting")
        if cell.gate_clean.rss_mb > RSS_LIMIT_MB or (cell.staging and cell.staging.rss_mb > RSS_LIMIT_MB):
            failed.append(f"{name}: peak RSS above {RSS_LIMIT_MB} MB")
        if cell.mix.key in ("a", "b", "f"):
            if ratio is not None and ratio > 1.5:
                failed.append(f"{name}: gate+clean {ratio:.2f}x DuckDB (target 1.5x)")
            staging_ratio = _ratio(cell.staging, cell.duckdb_staging)
            if staging_ratio is not None and staging_ratio > 2.0:
                failed.append(f"{name}: staging {staging_ratio:.2f}x DuckDB (target 2x)")
        if cell.mix.rejected:
            clean_cell = by_key.get((cell.file_format, "a"))
            versus = _ratio(cell.gate_clean, clean_cell.gate_clean) if clean_cell else None
            if versus is not None and versus > 2.0:
                failed.append(f"{name}: hostile file decided in {versus:.2f}x the clean file's time (target 2x)")
    print("\nfault mixes (customer360_generator, every kind of ROW_FAULTS in equal parts; the same bytes as):")
    for mix in sorted({c.mix for c in cells if c.mix.key != "f"}, key=lambda m: m.key):
        print(f"  ({mix.key}) {mix.name:<10} {generator_command(rows, mix, '<format>')}")
    if any(c.mix.key == "f" for c in cells):
        print(f"  (f) foreign    benchmarks/foreign_feed.py: {FOREIGN.duplicate_share:.0%} duplicates, "
              f"{FOREIGN.bad_share:.1%} bad rows of 4 kinds (issue 11's file)")  # fmt: skip
    print("\ntargets: gate+clean <= 1.5x DuckDB and staging <= 2x for (a), (b) (and f); peak RSS <= 1 GiB; "
          "(c) decided in <= 2x the (a) time; exact row accounting everywhere")  # fmt: skip
    print("  all met" if not failed else "  NOT MET:\n    " + "\n    ".join(failed))
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per cell (default 1M)")
    parser.add_argument("--with-10m", action="store_true", help="10M rows per cell (tens of minutes)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated subset of " + ", ".join(FORMATS))
    parser.add_argument("--mixes", default="a,b,c", help="comma-separated subset of a, b, c")
    parser.add_argument(
        "--cells", default="", help="only these cells, e.g. csv:a,jsonl.gz:b (overrides --formats and --mixes)"
    )
    parser.add_argument("--foreign", action="store_true", help="add cells on a file written by another hand")
    parser.add_argument("--no-staging", action="store_true", help="skip the staging comparison")
    parser.add_argument("--keep-data", action="store_true", help="keep the generated files (10M: ~13 GB)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, *task_args = args.child
        result = CHILD_TASKS[task](*task_args)
        print(json.dumps({**result, "_peak_rss_mb": _own_peak_rss_mb()}, default=str))
        return 0

    rows = 10_000_000 if args.with_10m else args.rows
    formats = [f for f in args.formats.split(",") if f]
    mixes = [MIXES[m] for m in args.mixes.split(",") if m]
    wanted = {tuple(c.split(":", 1)) for c in args.cells.split(",") if c}
    if wanted:
        unknown = {c for c in wanted if len(c) != 2 or c[0] not in FORMATS or c[1] not in MIXES}
        if unknown:
            parser.error(f"unknown cells {sorted(unknown)}: format:mix with format in {FORMATS}, mix in a, b, c")
        formats = [f for f in FORMATS if any(c[0] == f for c in wanted)]
        mixes = [m for m in MIXES.values() if any(c[1] == m.key for c in wanted)]
    DATA.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    reference_lake = DATA / "reference-lake"
    if not (reference_lake / "staging" / "customers").exists():
        shutil.rmtree(reference_lake, ignore_errors=True)
        print("preparing the customers snapshot the activity staging joins ...")
        customers_snapshot(reference_lake)
    ids = customer_ids()
    cells: list[Cell] = []
    plan = [(mix, mix_files) for mix in mixes] + ([(FOREIGN, None)] if args.foreign else [])
    for mix, _ in plan:
        if mix is FOREIGN:
            sources = foreign_files(rows, ids, formats)
        else:
            sources = mix_files(rows, mix, [f for f in formats if not wanted or (f, mix.key) in wanted], ids)
        for file_format, source in sources.items():
            cell = Cell(file_format, mix, source)
            with tempfile.TemporaryDirectory(prefix="c360-bench-", dir=DATA) as scratch:
                bench_cell(cell, reference_lake, Path(scratch), not args.no_staging)
            cells.append(cell)
            staging = (
                f", staging duckdb {cell.duckdb_staging.seconds:.1f}s ours {cell.staging.seconds:.1f}s"
                if cell.staging and cell.duckdb_staging
                else ""
            )
            print(f"  {file_format} {mix.key}: duckdb {cell.duckdb.seconds:.1f}s, gate+clean "  # type: ignore[union-attr]
                  f"{cell.gate_clean.seconds:.1f}s{staging}, {'ok' if not cell.problems else cell.problems}")  # type: ignore[union-attr]  # fmt: skip
        if not args.keep_data and rows >= 10_000_000:
            for source in sources.values():
                source.path.unlink(missing_ok=True)
    failed = print_matrix(cells, rows)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 1 if any("accounting" in f for f in failed) else 0


if __name__ == "__main__":
    sys.exit(main())
