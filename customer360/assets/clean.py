"""clean/<dataset>: see ``customer360.zones.clean`` for what the step does."""

import dagster as dg

from customer360.assets.metadata import column_schema, preview
from customer360.contracts import Dataset
from customer360.lake import layout
from customer360.lake.resource import LakeResource
from customer360.partitions import daily_partitions, partition_day
from customer360.processing.standardize import clean_schema
from customer360.zones.clean import clean_partition, read_clean


def clean_key_of(dataset: Dataset) -> dg.AssetKey:
    return dg.AssetKey(["clean", dataset.name])


def build_clean_asset(dataset: Dataset) -> dg.AssetsDefinition:
    @dg.asset(
        key=clean_key_of(dataset),
        deps=[dg.AssetKey(["archive", dataset.name])],
        group_name="clean",
        partitions_def=daily_partitions,
        description=f"{dataset.name} typed and standardized per contract v{dataset.version}, as Parquet under "
        f"clean/{dataset.name}/dt=<day>/; rule-breaking rows quarantined under rejected/{dataset.name}/rows/.",
        kinds={"parquet", "s3"},
        metadata={"dagster/column_schema": column_schema(clean_schema(dataset)), "contract_version": dataset.version},
    )
    def clean(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        store = lake.store()
        day = partition_day(context)
        result = clean_partition(store, dataset, day, log=context.log)
        sample = (
            read_clean(store, dataset, day).slice(0, 5) if result.rows_clean and result.rows_clean < 200_000 else None
        )
        rate = result.rows_archived / result.seconds if result.seconds else 0.0
        metadata: dict[str, object] = {
            "dagster/row_count": result.rows_clean,
            "rows_archived": result.rows_archived,
            "rows_quarantined": result.rows_quarantined,
            "rule_counts": dg.MetadataValue.json(result.rule_counts),
            "files": len(result.files),
            "rescued_columns": dg.MetadataValue.json(result.rescued_columns),
            "seconds": round(result.seconds, 3),
            "rows_per_second": round(rate),
            "lake_prefix": layout.clean_prefix(dataset.name, day),
        }
        if sample is not None:
            metadata["preview"] = preview(sample)
        return dg.MaterializeResult(metadata=metadata)

    return clean
