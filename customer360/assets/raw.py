"""raw/<dataset>: what arrived. Observed, never transformed or read past the gate.

Materializing a raw partition records what is waiting in ``raw/<dataset>/<day>/`` (keys, sizes, ETags)
as the run's metadata, which is what the sensor's runs carry into the UI. The objects themselves are
moved by the gate right after.
"""

import dagster as dg

from customer360.assets.metadata import key_list
from customer360.contracts import Dataset
from customer360.lake import layout
from customer360.lake.resource import LakeResource
from customer360.partitions import daily_partitions, partition_day


def build_raw_asset(dataset: Dataset) -> dg.AssetsDefinition:
    @dg.asset(
        key=["raw", dataset.name],
        group_name="raw",
        partitions_def=daily_partitions,
        description=f"Files landed in raw/{dataset.name}/<day>/ by upstream: untrusted, temporary. "
        + dataset.description,
        kinds={"s3"},
        metadata={"lake_prefix": f"raw/{dataset.name}/"},
    )
    def raw_files(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        store = lake.store()
        objects = list(store.list(layout.raw_prefix(dataset.name, partition_day(context))))
        context.log.info("%d file(s) waiting in raw/%s/%s/", len(objects), dataset.name, context.partition_key)
        return dg.MaterializeResult(
            metadata={
                "files": len(objects),
                "bytes": sum(o.size for o in objects),
                "keys": key_list([o.key for o in objects]),
            }
        )

    return raw_files
