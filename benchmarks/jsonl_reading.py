"""Benchmark: JSON Lines gate + clean against DuckDB's read_json doing the same job, on files of another hand.

Why a script and not a test: speed is a measurement, printed as figures. Each engine runs in its own
child process, on the same file, in the same run (``run.py``'s children and protocol).

    python benchmarks/jsonl_reading.py                      # 300,000 and 1,000,000 rows, .jsonl and .jsonl.gz
    python benchmarks/jsonl_reading.py --rows 1000000 --no-gzip

The files are written here, not by the project's generator (whose JSON writer is uniform): every line
has its keys in its own order, optional keys are left out, numbers come as JSON numbers or as strings,
booleans both ways, text is unicode (raw or escaped), a third of the lines end in CRLF, and a blank
line follows every thousandth. 1% of the events are repeated.

What runs on each file:
- ``duckdb read_json``: ``run.py``'s reference job (parse and type every field, split rule-breaking
  rows off with their reason, deduplicate, write zstd Parquet) reading with ``read_json``, every
  column VARCHAR.
- ``customer360 gate+clean``: the real assets through Dagster on a local-folder lake (``run.py``'s
  child); its wall time includes starting Dagster (a few seconds a 1M-row file does not amortize).
- ``reader only``: ``StringBatches`` over the file in a process of its own (the JSON Lines parse).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (the sibling benchmark: its child tasks, day and protocol)

DATA = run.DATA / "jsonl"


def write_events(path: Path, rows: int, seed: int = 7) -> None:
    """Activity events as another exporter might write them (see the module docstring)."""
    rng = random.Random(seed)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    cells = ["C-1", "C-22", "Zürich-7", "東京-3", "São-Paulo-2", None]
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8", newline="") as out:  # type: ignore[operator]
        for i in range(rows):
            number = i if rng.random() > 0.01 else max(0, i - rng.randint(1, 500))  # 1% repeats
            kind = rng.choice(("voice", "sms", "data"))
            charge = round(rng.random() * 5, 2)
            record: dict[str, object] = {
                "event_id": f"ev-{number:010d}",
                "customer_id": f"{rng.randrange(10000):04d}-{''.join(rng.choices(letters, k=5))}",
                "event_ts": f"2024-03-01T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z",
                "event_type": kind,
                "direction": rng.choice(("in", "out")),
                "cell_id": rng.choice(cells),
                "roaming": rng.choice((True, False, "true", "false")),
                "charge_amount": rng.choice((charge, f"{charge:.2f}", 0, 12.5)),
            }
            if kind == "voice":
                seconds = rng.randrange(1, 3600)
                record["duration_sec"] = rng.choice((seconds, str(seconds)))
            elif kind == "data":
                megabytes = round(rng.random() * 500, 3)
                record["data_mb"] = rng.choice((megabytes, f"{megabytes:.3f}"))
            items = list(record.items())
            rng.shuffle(items)
            line = json.dumps(dict(items), ensure_ascii=rng.random() < 0.3)
            out.write(line + ("\r\n" if i % 3 == 0 else "\n") + ("\n" if i % 1000 == 999 else ""))


def child_reader(source: str) -> dict[str, object]:
    from customer360.processing.formats import StringBatches, detect_format

    path = Path(source)
    started = time.process_time()
    rows = sum(batch.num_rows for batch, _ in StringBatches(path, detect_format(path.name)))  # type: ignore[arg-type]
    return {"rows": rows, "cpu_seconds": round(time.process_time() - started, 2)}


CHILD_TASKS = {"reader": child_reader}


def own_child(task: str, *args: str) -> tuple[float, float, dict[str, object]]:
    started = time.perf_counter()
    output = subprocess.run(
        [sys.executable, __file__, "--child", task, *args],
        capture_output=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    ).stdout
    result = json.loads(output.decode().strip().splitlines()[-1])
    return time.perf_counter() - started, float(result.pop("_peak_rss_mb")), result


def bench(source: Path) -> None:
    megabytes = source.stat().st_size / 1e6
    print(f"\n{source.name}: {megabytes:.0f} MB")
    with tempfile.TemporaryDirectory(prefix="c360-jsonl-", dir=DATA) as scratch:
        out = Path(scratch) / "duckdb"
        out.mkdir()
        duck = run.run_child("duckdb_clean", str(source), str(out))
        lake = Path(scratch) / "lake"
        raw = lake / "raw" / "activity_logs" / run.DAY.isoformat() / source.name
        raw.parent.mkdir(parents=True)
        os.link(source, raw)
        ours = run.run_child("project_gate_clean", str(lake))
    reader_seconds, reader_rss, reader = own_child("reader", str(source))
    print(f"  {'duckdb read_json job':<32} {duck.seconds:>7.2f} s {duck.rss_mb:>7,.0f} MB  {duck.detail}")
    print(
        f"  {'customer360 gate+clean':<32} {ours.seconds:>7.2f} s {ours.rss_mb:>7,.0f} MB  "
        f"x duckdb {ours.seconds / duck.seconds:.2f}  {ours.detail}"
    )
    print(f"  {'reader only (StringBatches)':<32} {reader_seconds:>7.2f} s {reader_rss:>7,.0f} MB  {reader}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[300_000, 1_000_000])
    parser.add_argument("--no-gzip", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, *task_args = args.child
        result = CHILD_TASKS[task](*task_args)
        print(json.dumps({**result, "_peak_rss_mb": run._own_peak_rss_mb()}, default=str))
        return 0
    DATA.mkdir(parents=True, exist_ok=True)
    for rows in args.rows:
        for suffix in (".jsonl",) if args.no_gzip else (".jsonl", ".jsonl.gz"):
            source = DATA / f"events-{rows}{suffix}"
            if not source.exists():
                started = time.perf_counter()
                partial = source.with_name("partial-" + source.name)
                write_events(partial, rows)
                partial.rename(source)
                print(f"  wrote {source.name} in {time.perf_counter() - started:.1f}s")
            bench(source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
