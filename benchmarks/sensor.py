"""Benchmark: raw/ sensor ticks over a bucket with 100,000 objects of history, against moto's S3 server.

    python benchmarks/sensor.py [--objects 100000] [--new 100]

Seeds ``--objects`` objects, half in archive/ and half in raw/ days outside the look-back window, through
moto's in-process backend (seeding is setup, not what is measured), then times, through moto's real HTTP
API, the ticks a user's deployment sees: the first tick (a full scan of raw/, launching the history in
bounded batches), an ordinary tick with ``--new`` new files in the window, and an ordinary tick with none.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta

TODAY = date(2024, 6, 30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=100)
    args = parser.parse_args()
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    import dagster as dg
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    from customer360.defs.definitions import gate_job, unroutable_job
    from customer360.defs.resources.lake import LakeResource
    from customer360.defs.sensors.raw_sensor import RawSensorSettings, build_raw_sensor

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    bucket = f"telco-c360-bench-{uuid.uuid4().hex[:8]}"
    resource = LakeResource(location=f"s3://{bucket}", endpoint_url=f"http://{host}:{port}")
    resource.store().client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]

    started = time.perf_counter()
    history_days = 60
    half = args.objects // 2
    for i in range(half):
        day = TODAY - timedelta(days=30 + i % history_days)
        backend.put_object(bucket, f"archive/activity_logs/{day}/usage-{i:06d}.csv", b"x\n")
    for i in range(args.objects - half):
        day = TODAY - timedelta(days=30 + i % history_days)
        backend.put_object(bucket, f"raw/activity_logs/{day}/usage-{i:06d}.csv", b"x\n")
    print(f"seeded {args.objects:,} objects in {time.perf_counter() - started:.1f}s")

    settings = RawSensorSettings(lookback_days=7, max_runs_per_tick=100, reconcile_minutes=60)
    clock_now = datetime(TODAY.year, TODAY.month, TODAY.day, 12, tzinfo=UTC)
    sensor = build_raw_sensor(gate_job, unroutable_job, settings=settings, clock=lambda: clock_now)

    with dg.instance_for_test() as instance:
        cursor = None

        def tick(label: str) -> None:
            nonlocal cursor
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"lake": resource})
            began = time.perf_counter()
            result = sensor(context)
            seconds = time.perf_counter() - began
            cursor = result.cursor
            runs = len(result.run_requests or [])
            print(f"{label:<44} {seconds:>7.2f}s  runs requested {runs:>4}")

        tick(f"first tick (full scan of {args.objects - half:,} raw objects)")
        for day_offset in range(7):
            for n in range(args.new // 7 + (1 if day_offset < args.new % 7 else 0)):
                day = TODAY - timedelta(days=day_offset)
                backend.put_object(bucket, f"raw/activity_logs/{day}/new-{n:04d}.csv", b"x\n")
        tick(f"ordinary tick, {args.new} new files in the window")
        tick("ordinary tick, nothing new")
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
