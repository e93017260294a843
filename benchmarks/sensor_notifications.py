"""Benchmark: pickup latency and tick time of the raw sensor, listing only vs S3 notifications + listing.

    python benchmarks/sensor_notifications.py [--objects 100000] [--new 100] [--minutes 75] [--mode both]

One moto server (S3 + SQS), one bucket seeded with ``--objects`` objects of history (half archive/, half raw/
days outside the look-back window, through moto's in-process backend: setup, not what is measured). Then, for
each mode, a fresh sensor cursor and ``--new`` new files PUT through the HTTP API at random moments of the
first half hour, half of them keyed to recent days (inside the 7-day window) and half to days 30-400 days old.

Time is simulated, ticks are real: a tick starts every 30 virtual seconds (the sensor's interval), runs for
real against moto (listing, SQS receive/delete), and the virtual clock advances by its measured duration. A
file's pickup latency is from its PUT to the end of the tick that requested its day's run. Runs are recorded
in a Dagster instance as the daemon would (so queue messages get deleted), but not executed: the files stay in
raw/, as they would while their runs queue. The listing-only mode lists the window every tick and all of raw/
every 60 minutes; notifications mode reads the queue every tick, lists the window every 15 minutes and all of
raw/ every 6 hours.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

TODAY = date(2026, 6, 30)
INTERVAL = 30.0


@dataclass
class Landing:
    key: str
    day: str
    at: float  # virtual seconds after the start
    recent: bool
    picked_at: float | None = None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=100)
    parser.add_argument("--minutes", type=int, default=75, help="virtual minutes simulated per mode")
    parser.add_argument("--mode", choices=["both", "listing", "notifications"], default="both")
    args = parser.parse_args()
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    os.environ["CUSTOMER360_START_DATE"] = "2024-01-01"
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("dagster").setLevel(logging.WARNING)

    import boto3
    import dagster as dg
    from dagster._core.storage.dagster_run import DagsterRun
    from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    from customer360.defs.definitions import gate_job, unroutable_job
    from customer360.defs.keys import RAW_SENSOR_NAME
    from customer360.defs.resources.lake import LakeResource
    from customer360.defs.sensors.notifications import QueueSettings
    from customer360.defs.sensors.raw_sensor import RawCursor, RawSensorSettings, build_raw_sensor

    logging.getLogger("dagster").setLevel(logging.WARNING)  # each tick logs its summary at INFO

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    bucket = f"telco-c360-bench-{uuid.uuid4().hex[:8]}"
    resource = LakeResource(location=f"s3://{bucket}", endpoint_url=endpoint)
    s3 = resource.store().client  # type: ignore[attr-defined]
    s3.create_bucket(Bucket=bucket)
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]

    started = time.perf_counter()
    half = args.objects // 2
    for i in range(half):
        day = TODAY - timedelta(days=30 + i % 60)
        backend.put_object(bucket, f"archive/activity_logs/{day}/usage-{i:06d}.csv", b"x\n")
    for i in range(args.objects - half):
        day = TODAY - timedelta(days=30 + i % 60)
        backend.put_object(bucket, f"raw/activity_logs/{day}/usage-{i:06d}.csv", b"x\n")
    print(f"seeded {args.objects:,} objects in {time.perf_counter() - started:.1f}s")

    def notify_queue() -> str:
        """The bucket's notification configuration, as deploy/s3-notifications/ documents it."""
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="raw-arrivals")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "raw/"}]}},
                    }
                ]
            },
        )
        return queue_url

    clock = [0.0]  # virtual seconds since the start, read by the sensors' clock
    rng = random.Random(14)
    start = datetime(TODAY.year, TODAY.month, TODAY.day, 12, tzinfo=UTC)
    modes = {
        "listing only": (RawSensorSettings(max_runs_per_tick=100), None),
        "notifications + listing": (
            RawSensorSettings(max_runs_per_tick=100, listing_minutes=15, reconcile_minutes=360),
            QueueSettings("", endpoint_url=endpoint, region_name="us-east-1", wait_seconds=1),
        ),
    }
    print(
        f"{args.new} new files per mode, landing over 30 virtual minutes; ticks every {INTERVAL:g} s for "
        f"{args.minutes} virtual minutes\n"
    )
    for label, (settings, queue) in modes.items():
        if args.mode != "both" and (queue is None) != (args.mode == "listing"):
            continue
        if queue is not None:  # notifications are configured only now, after the listing-only mode
            queue = dataclasses.replace(queue, queue_url=notify_queue())
        sensor = build_raw_sensor(
            gate_job, unroutable_job, settings=settings, queue=queue, clock=lambda: start + timedelta(seconds=clock[0])
        )
        instance = dg.DagsterInstance.ephemeral()
        cursor: str | None = None
        clock[0] = 0.0
        landings = []
        for n in range(args.new):
            recent = n % 2 == 0
            day = TODAY - timedelta(days=rng.randrange(0, 7) if recent else rng.randrange(30, 400))
            key = f"raw/activity_logs/{day}/new-{label[:5].strip()}-{n:04d}.csv"
            landings.append(Landing(key, str(day), 60 + rng.random() * 1800, recent))
        landings.sort(key=lambda f: f.at)
        pending = list(landings)
        tick_times: dict[str, list[float]] = {"full_scan": [], "window": [], "queue": []}
        tick_start = 0.0
        while tick_start < args.minutes * 60:
            clock[0] = tick_start
            while pending and pending[0].at <= tick_start:
                s3.put_object(Bucket=bucket, Key=pending.pop(0).key, Body=b"new\n")
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"lake": resource})
            began = time.perf_counter()
            result = sensor(context)
            seconds = time.perf_counter() - began
            for request in result.run_requests or []:  # what the daemon does once the tick returns
                tags = {RUN_KEY_TAG: str(request.run_key), SENSOR_NAME_TAG: RAW_SENSOR_NAME}
                instance.add_run(DagsterRun(job_name=str(request.job_name), run_id=str(uuid.uuid4()), tags=tags))
                for landing in landings:
                    if landing.day == request.partition_key and landing.at <= tick_start and landing.picked_at is None:
                        landing.picked_at = tick_start + seconds
            cursor = result.cursor
            summary = RawCursor.load(cursor).last
            tick_times[summary["mode"]].append(seconds)
            tick_start += max(INTERVAL, seconds)
        report(label, landings, tick_times)
    server.stop()
    return 0


def report(label: str, landings: list[Landing], tick_times: dict[str, list[float]]) -> None:
    print(f"== {label}")
    for kind, ticks in tick_times.items():
        if ticks:
            print(
                f"   {kind:<10} ticks {len(ticks):>4}: median {statistics.median(ticks):6.2f} s, "
                f"max {max(ticks):6.2f} s"
            )
    for recent in (True, False):
        group = [f for f in landings if f.recent is recent]
        picked = sorted(f.picked_at - f.at for f in group if f.picked_at is not None)
        name = "files in the 7-day window" if recent else "files 30-400 days old"
        if not picked:
            print(f"   {name}: none picked up")
            continue
        p95 = picked[min(len(picked) - 1, int(len(picked) * 0.95))]
        print(
            f"   {name:<27} picked up {len(picked):>3}/{len(group)}: latency median "
            f"{statistics.median(picked):7.1f} s, p95 {p95:7.1f} s, max {picked[-1]:7.1f} s"
        )
    print()


if __name__ == "__main__":
    sys.exit(main())
