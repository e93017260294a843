"""archive/<dataset> and rejected/<dataset>: one gate step per dataset produces both.

A ``multi_asset`` because one decision (accept or refuse each raw file) writes both zones; either can
be empty for a day. See ``customer360.steps.gate`` for the move protocol.

A rejection must be loud: ``rejected/<dataset>`` carries the asset check ``no_rejected_files`` (severity
WARN, recorded per partition), failing while the day has rejected files that no later arrival made
good. The check result and the day's materialization both carry ``why_rejected``: each such file's report
as Markdown (what failed and why, what to do, sample lines, schema diff; ``customer360.defs.assets.rejections``),
so the UI shows why without opening the lake. The materialization lists the run's rejected files as
``rejected_files`` for the alert sensor (``customer360.defs.sensors.alerts``).
"""

import logging
from collections.abc import Iterator
from datetime import date

import dagster as dg

from customer360.contracts import Dataset
from customer360.defs.assets.days import DayEvent, DayRecord, days_of, record_days
from customer360.defs.assets.metadata import key_list
from customer360.defs.assets.rejections import read_report, rejections_markdown
from customer360.defs.checks import GATE_REJECTION_CHECK, Rejections
from customer360.defs.keys import (
    ARCHIVE,
    RAW,
    REJECTED_FILES_METADATA,
    REJECTIONS_METADATA,
    ROW_COUNT,
    STEP_TAG,
    zone_key,
)
from customer360.defs.keys import REJECTED as REJECTED_ZONE  # REJECTED is the ledger's outcome here
from customer360.defs.partitions import daily_partitions
from customer360.defs.resources.lake import LakeResource
from customer360.lake.ledger import ARCHIVED, DUPLICATE, REJECTED, VANISHED, outstanding_rejections
from customer360.lake.store import LakeStore
from customer360.steps.gate import run_gate


def build_gate_asset(dataset: Dataset) -> dg.AssetsDefinition:
    archive_key, rejected_key = zone_key(ARCHIVE, dataset), zone_key(REJECTED_ZONE, dataset)

    @dg.multi_asset(
        name=f"gate_{dataset.name}",
        specs=[
            dg.AssetSpec(
                archive_key,
                deps=[zone_key(RAW, dataset)],
                group_name=ARCHIVE,
                description=f"Accepted {dataset.name} files, byte-for-byte and immutable: the audit trail and "
                "the only input to ETL.",
                partitions_def=daily_partitions,
            ),
            dg.AssetSpec(
                rejected_key,
                deps=[zone_key(RAW, dataset)],
                group_name=REJECTED_ZONE,
                description=f"Refused {dataset.name} files, each with a JSON report saying why and what to do.",
                partitions_def=daily_partitions,
            ),
        ],
        partitions_def=daily_partitions,
        op_tags={STEP_TAG: "gate"},
        check_specs=[GATE_REJECTION_CHECK.spec(rejected_key)],
    )
    def gate(context: dg.AssetExecutionContext, lake: LakeResource) -> Iterator[DayEvent]:
        store = lake.store()
        archive, rejected, errors = [], [], {}
        for day in days_of(context):
            archived_day, rejected_day, day_errors = _gate_day(store, dataset, day, context.log)
            archive.append(archived_day)
            rejected.append(rejected_day)
            errors.update(day_errors)
        yield from record_days(context, archive_key, archive)
        yield from record_days(context, rejected_key, rejected)
        if errors:
            raise dg.Failure(
                description=f"{len(errors)} raw file(s) could not be moved and stay in raw/ for the next run",
                metadata={"errors": dg.MetadataValue.json(errors)},
            )

    return gate


def _gate_day(
    store: LakeStore, dataset: Dataset, day: date, log: logging.Logger
) -> tuple[DayRecord, DayRecord, dict[str, str]]:
    run = run_gate(store, dataset, day, log=log)
    archived, rejected, duplicates = run.of(ARCHIVED), run.of(REJECTED), run.of(DUPLICATE)
    vanished = run.of(VANISHED)
    archive = DayRecord(
        day,
        {
            "files_archived": len(archived),
            "files_duplicate": len(duplicates),
            "corrections": len([f for f in archived if f.corrects]),
            ROW_COUNT: sum(f.rows for f in archived),
            "rows_breaking_rules": sum(f.bad_rows for f in archived),
            "archive_keys": key_list([str(f.destination_key) for f in archived]),
            # Gone from raw/ before the gate could read them (deleted upstream): in the ledger, nothing kept.
            "files_vanished": len(vanished),
            "vanished_keys": key_list([f.raw_key for f in vanished]),
            # Replaced in raw/ while the gate held them: the admitted version moved, the newer one waits.
            "files_left_for_next_run": dg.MetadataValue.json(
                {f.raw_key: f.left_in_raw for f in run.files if f.left_in_raw} | run.deferred
            ),
            "moved_by_another_gate_run": len(run.moved_by_another_run),
        },
    )
    # The check reports the day's state, not this run's: a replay with an empty raw/ must not turn it green.
    day_entries = run.day_entries  # read once by the gate run, with its own appends
    outstanding = outstanding_rejections(day_entries)
    resolved = len([e for e in day_entries if e.outcome == REJECTED]) - len(outstanding)
    why = rejections_markdown(read_report(store, e.report_key) for e in outstanding if e.report_key)
    check = GATE_REJECTION_CHECK.result(
        Rejections(
            [{"raw_key": e.raw_key, "reasons": list(e.reasons), "report_key": e.report_key} for e in outstanding],
            resolved,
            why,
        )
    )
    refused = DayRecord(
        day,
        {
            "files_rejected": len(rejected),
            "reasons": dg.MetadataValue.json({f.raw_key: f.reasons for f in rejected}),
            "report_keys": key_list([str(f.report_key) for f in rejected]),
            REJECTED_FILES_METADATA: dg.MetadataValue.json([f.alert_fields() for f in rejected]),
            REJECTIONS_METADATA: why,  # the day's files still rejected, this run's and earlier ones
        },
        [check],
    )
    return archive, refused, dict(run.errors)
