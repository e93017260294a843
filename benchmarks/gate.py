"""Benchmark: the gate's time for one day of many small files (one per minute is 1,440 a day).

Why: the gate used to re-read the day's whole ledger for every file it admitted, so a day's gate time grew
with the square of its files. It now reads the day's ledger once per run and keeps it in memory; this
script prints the figures that show the cost per file staying flat as the day grows.

    python benchmarks/gate.py                       # local lake: 1,000 and 2,000 files; moto S3: 100 and 200
    python benchmarks/gate.py --local 1440 --s3     # one size on the local lake only

Each size runs on a fresh lake (a temp folder, or a fresh bucket on an in-process moto S3 server): the
files are landed in raw/activity_logs/<day>/ (a few valid rows each, distinct content), then one gate
run moves them all. Printed: files, seconds, milliseconds per file, and the ratio of the per-file cost
to the smallest size's (1.0 = linear in files; 2.0 at twice the files = quadratic).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from customer360.contracts import DATASETS  # noqa: E402
from customer360.defs.resources.lake import open_lake  # noqa: E402
from customer360.lake.store import LakeStore  # noqa: E402
from customer360.steps.gate import run_gate  # noqa: E402

DAY = date(2024, 3, 1)
HEADER = "event_id,customer_id,event_ts,event_type,direction,duration_sec,data_mb,cell_id,roaming,charge_amount\n"


def activity_file(index: int, rows: int = 3) -> bytes:
    lines = [
        f"e-{index:06d}-{row},7590-VHVEG,2024-03-01T{index % 24:02d}:{index % 60:02d}:00Z,voice,out,60,,C-1,false,0.5\n"
        for row in range(rows)
    ]
    return (HEADER + "".join(lines)).encode()


@contextmanager
def local_lake() -> Iterator[LakeStore]:
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as folder:
        yield open_lake(str(Path(folder) / "lake"))


@contextmanager
def moto_lake() -> Iterator[LakeStore]:
    from moto.server import ThreadedMotoServer

    # moto accepts any credentials; these keep a real profile or key from ever being used against it.
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ[name] = value
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        bucket = f"gate-bench-{uuid.uuid4().hex[:8]}"
        store = open_lake(f"s3://{bucket}", endpoint_url=f"http://{host}:{port}")
        store.client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        yield store
    finally:
        server.stop()


def measure(make_lake: Callable[[], object], files: int) -> float:
    with make_lake() as store:  # type: ignore[attr-defined]
        for index in range(files):
            store.put_bytes(f"raw/activity_logs/{DAY}/minute-{index:05d}.csv", activity_file(index))
        logging.getLogger("customer360").setLevel(logging.WARNING)
        started = time.perf_counter()
        run = run_gate(store, DATASETS["activity_logs"], DAY)
        seconds = time.perf_counter() - started
        assert not run.errors and len(run.files) == files, (len(run.files), list(run.errors.items())[:3])
        assert not list(store.list("raw/"))
        return seconds


def report(backend: str, sizes: list[int], make_lake: Callable[[], object]) -> None:
    base = None
    for files in sizes:
        seconds = measure(make_lake, files)
        per_file = seconds / files
        base = base or per_file
        print(
            f"{backend:6} {files:6,d} files  {seconds:8.1f} s  {per_file * 1000:7.1f} ms/file  "
            f"x{per_file / base:.2f} per-file cost vs {sizes[0]:,d} files",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local", type=int, nargs="*", default=[1000, 2000], help="sizes on a local lake")
    parser.add_argument("--s3", type=int, nargs="*", default=[100, 200], help="sizes on moto S3")
    args = parser.parse_args()
    if args.local:
        report("local", args.local, local_lake)
    if args.s3:
        report("moto", args.s3, moto_lake)


if __name__ == "__main__":
    main()
