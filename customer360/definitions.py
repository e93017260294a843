"""The customer360 code location: every zone of every dataset, generated from the dataset contracts.

This is the one file that assembles the Definitions. The environment chooses where the lake and the
warehouse live (``CUSTOMER360_LAKE``, ``CUSTOMER360_WAREHOUSE``; see README); nothing else changes
between a laptop and production.
"""

from __future__ import annotations

import dagster as dg

from customer360.assets.clean import build_clean_asset
from customer360.assets.gate import build_gate_asset
from customer360.assets.mart import customer_360
from customer360.assets.raw import build_raw_asset
from customer360.assets.staging import build_staging_asset
from customer360.assets.unroutable import UNROUTABLE_KEY, unroutable_raw_files
from customer360.assets.warehouse import build_warehouse_asset
from customer360.contracts import DATASETS
from customer360.lake.resource import LakeResource, lake_resource_from_env
from customer360.warehouse.resource import WarehouseResource, warehouse_resource_from_env

ZONE_FACTORIES = (build_raw_asset, build_gate_asset, build_clean_asset, build_staging_asset, build_warehouse_asset)

PIPELINE_JOB_NAME = "customer360_pipeline"


def build_assets() -> list[dg.AssetsDefinition]:
    zone_assets = [factory(dataset) for dataset in DATASETS.values() for factory in ZONE_FACTORIES]
    return [*zone_assets, customer_360, unroutable_raw_files]


UNROUTABLE_JOB_NAME = "reject_unroutable_raw_files"

unroutable_job = dg.define_asset_job(
    UNROUTABLE_JOB_NAME,
    selection=dg.AssetSelection.assets(UNROUTABLE_KEY),
    description="Move raw objects that name no dataset or day to rejected/_unroutable/ with a report.",
)

pipeline_job = dg.define_asset_job(
    PIPELINE_JOB_NAME,
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(UNROUTABLE_KEY),
    description="Every zone of every dataset for one day: raw -> gate -> clean -> staging -> warehouse.",
)


def build_definitions(lake: LakeResource, warehouse: WarehouseResource) -> dg.Definitions:
    return dg.Definitions(
        assets=build_assets(),
        jobs=[pipeline_job, unroutable_job],
        resources={"lake": lake, "warehouse": warehouse},
    )


defs = build_definitions(lake_resource_from_env(), warehouse_resource_from_env())
