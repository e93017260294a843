"""raw/<dataset>: what arrived. Observed, never transformed or read past the gate.

Materializing a raw partition records what is waiting in ``raw/<dataset>/<day>/`` (keys, sizes, ETags)
as the run's metadata, which is what the sensor's runs carry into the UI. The objects themselves are
moved by the gate right after.
"""

from collections.abc import Iterator

import dagster as dg

from customer360.contracts import Dataset
from customer360.defs.assets.days import DayEvent, DayRecord, days_of, record_days
from customer360.defs.assets.metadata import key_list
from customer360.defs.keys import RAW, zone_key
from customer360.defs.partitions import daily_partitions
from customer360.defs.resources.lake import LakeResource
from customer360.lake import layout


def build_raw_asset(dataset: Dataset) -> dg.AssetsDefinition:
    key = zone_key(RAW, dataset)

    @dg.asset(
        key=key,
        group_name=RAW,
        partitions_def=daily_partitions,
        description=f"Files landed in `raw/{dataset.name}/YYYY-MM-DD/` by upstream: untrusted, temporary. "
        + dataset.description,
        metadata={"lake_prefix": f"raw/{dataset.name}/"},
    )
    def raw_files(context: dg.AssetExecutionContext, lake: LakeResource) -> Iterator[DayEvent]:
        store = lake.store()
        records = []
        for day in days_of(context):
            objects = list(store.list(layout.raw_prefix(dataset.name, day)))
            context.log.info("%d file(s) waiting in raw/%s/%s/", len(objects), dataset.name, day)
            records.append(
                DayRecord(
                    day,
                    {
                        "files": len(objects),
                        "bytes": sum(o.size for o in objects),
                        "keys": key_list([o.key for o in objects]),
                    },
                )
            )
        yield from record_days(context, key, records)

    return raw_files
