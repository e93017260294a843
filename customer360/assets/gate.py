"""archive/<dataset> and rejected/<dataset>: one gate step per dataset produces both.

A ``multi_asset`` because one decision (accept or refuse each raw file) writes both zones; either can
be empty for a day. See ``customer360.ingest.gate`` for the move protocol.
"""

import dagster as dg

from customer360.assets.metadata import key_list
from customer360.contracts import Dataset
from customer360.ingest.gate import run_gate
from customer360.lake.ledger import ARCHIVED, DUPLICATE, REJECTED
from customer360.lake.resource import LakeResource
from customer360.partitions import daily_partitions, partition_day


def archive_key_of(dataset: Dataset) -> dg.AssetKey:
    return dg.AssetKey(["archive", dataset.name])


def rejected_key_of(dataset: Dataset) -> dg.AssetKey:
    return dg.AssetKey(["rejected", dataset.name])


def build_gate_asset(dataset: Dataset) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name=f"gate_{dataset.name}",
        specs=[
            dg.AssetSpec(
                archive_key_of(dataset),
                deps=[dg.AssetKey(["raw", dataset.name])],
                group_name="archive",
                description=f"Accepted {dataset.name} files, byte-for-byte and immutable: the audit trail and "
                "the only input to ETL.",
                kinds={"s3"},
                partitions_def=daily_partitions,
            ),
            dg.AssetSpec(
                rejected_key_of(dataset),
                deps=[dg.AssetKey(["raw", dataset.name])],
                group_name="rejected",
                description=f"Refused {dataset.name} files, each with a JSON report saying why and what to do.",
                kinds={"s3"},
                partitions_def=daily_partitions,
            ),
        ],
        partitions_def=daily_partitions,
        op_tags={"customer360/step": "gate"},
    )
    def gate(context: dg.AssetExecutionContext, lake: LakeResource):  # noqa: ANN202 - generator of results
        run = run_gate(lake.store(), dataset, partition_day(context), log=context.log)
        archived, rejected, duplicates = run.of(ARCHIVED), run.of(REJECTED), run.of(DUPLICATE)
        yield dg.MaterializeResult(
            asset_key=archive_key_of(dataset),
            metadata={
                "files_archived": len(archived),
                "files_duplicate": len(duplicates),
                "corrections": len([f for f in archived if f.corrects]),
                "dagster/row_count": sum(f.rows for f in archived),
                "rows_breaking_rules": sum(f.bad_rows for f in archived),
                "archive_keys": key_list([str(f.destination_key) for f in archived]),
            },
        )
        yield dg.MaterializeResult(
            asset_key=rejected_key_of(dataset),
            metadata={
                "files_rejected": len(rejected),
                "reasons": dg.MetadataValue.json({f.raw_key: f.reasons for f in rejected}),
                "report_keys": key_list([str(f.report_key) for f in rejected]),
            },
        )
        if run.errors:
            raise dg.Failure(
                description=f"{len(run.errors)} raw file(s) could not be moved and stay in raw/ for the next run",
                metadata={"errors": dg.MetadataValue.json(run.errors)},
            )

    return gate
