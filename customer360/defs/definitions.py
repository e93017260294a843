"""The customer360 code location: every zone of every dataset, generated from the dataset contracts.

This is the one file that assembles the Definitions. The environment chooses where the lake and the
warehouse live (``CUSTOMER360_LAKE``, ``CUSTOMER360_WAREHOUSE``; see README); nothing else changes
between a laptop and production.
"""

from __future__ import annotations

import dagster as dg

from customer360.contracts import DATASETS
from customer360.defs.assets.clean import build_clean_asset
from customer360.defs.assets.gate import build_gate_asset
from customer360.defs.assets.mart import customer_360
from customer360.defs.assets.presentation import with_presentation
from customer360.defs.assets.raw import build_raw_asset
from customer360.defs.assets.staging import build_staging_asset
from customer360.defs.assets.unroutable import unroutable_raw_files
from customer360.defs.assets.warehouse import build_warehouse_asset
from customer360.defs.automation import build_automation_sensor, with_automation, with_backfill_policy
from customer360.defs.deliveries import delivery_checks
from customer360.defs.keys import GATE_JOB_NAME, PIPELINE_JOB_NAME, UNROUTABLE_JOB_NAME, UNROUTABLE_KEY, gate_keys
from customer360.defs.resources.alerts import AlertsResource, alerts_resource_from_env
from customer360.defs.resources.lake import LakeResource, lake_resource_from_env
from customer360.defs.resources.warehouse import WarehouseResource, warehouse_resource_from_env
from customer360.defs.sensors.alerts import build_alert_sensor
from customer360.defs.sensors.deliveries import build_delivery_sensor
from customer360.defs.sensors.notifications import QueueSettings
from customer360.defs.sensors.raw_sensor import build_raw_sensor

ZONE_FACTORIES = (build_raw_asset, build_gate_asset, build_clean_asset, build_staging_asset, build_warehouse_asset)


def build_assets(
    lake: LakeResource | None = None, warehouse: WarehouseResource | None = None
) -> list[dg.AssetsDefinition]:
    """Every asset; ``lake`` and ``warehouse`` (default: the environment's) choose the kinds the UI shows."""
    lake = lake or lake_resource_from_env()
    warehouse = warehouse or warehouse_resource_from_env()
    zone_assets = [factory(dataset) for dataset in DATASETS.values() for factory in ZONE_FACTORIES]
    # Clean, staging, warehouse and mart follow their inputs (customer360.defs.automation); raw/gate are sensor-driven.
    # Every daily asset: one run per range of days (customer360.defs.automation.DAILY_BACKFILL_POLICY).
    # Kinds for the backends in use, the zone, owners and tags (customer360.defs.assets.presentation).
    assets = with_automation([*zone_assets, customer_360, unroutable_raw_files])
    assets = with_presentation(assets, lake_location=lake.location, warehouse_backend=warehouse.backend)
    return with_backfill_policy(assets)


unroutable_job = dg.define_asset_job(
    UNROUTABLE_JOB_NAME,
    selection=dg.AssetSelection.assets(UNROUTABLE_KEY),
    description="Move raw objects that name no dataset or day to rejected/_unroutable/ with a report.",
)

pipeline_job = dg.define_asset_job(
    PIPELINE_JOB_NAME,
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(UNROUTABLE_KEY),
    description="Every zone of every dataset, for one day or a range: raw -> gate -> clean -> staging -> "
    "warehouse -> mart.",
)


gate_job = dg.define_asset_job(
    GATE_JOB_NAME,
    selection=dg.AssetSelection.assets(*(key for dataset in DATASETS for key in gate_keys(dataset))),
    description="Move one dataset's raw files of one day to archive/ or rejected/ (what the raw sensor runs).",
)


def build_definitions(
    lake: LakeResource, warehouse: WarehouseResource, alerts: AlertsResource | None = None
) -> dg.Definitions:
    """The code location over ``lake`` and ``warehouse``; alerts go where ``alerts`` (default: the environment) says."""
    return dg.Definitions(
        assets=build_assets(lake, warehouse),
        # Expected deliveries per day on archive/<dataset>, for datasets whose contract declares them.
        asset_checks=delivery_checks(list(DATASETS.values())),
        jobs=[pipeline_job, unroutable_job, gate_job],
        sensors=[
            # CUSTOMER360_RAW_DISCOVERY=notifications adds the S3 notifications queue to the listing.
            build_raw_sensor(gate_job, unroutable_job, queue=QueueSettings.from_env()),
            build_automation_sensor(),
            build_alert_sensor(),
            build_delivery_sensor(),
        ],
        resources={"lake": lake, "warehouse": warehouse, "alerts": alerts or alerts_resource_from_env()},
        # One process per run, steps in it one after another: a day's steps form a chain anyway, and a
        # process per step re-imports the code location (seconds each) for steps that often take less.
        executor=dg.in_process_executor,
    )


def __getattr__(name: str) -> dg.Definitions:
    """``defs``, the code location Dagster loads, built from the environment on first access.

    Why not at import: the environment's lake is checked when the code location loads (a mistyped
    ``CUSTOMER360_LAKE`` fails the load with its reason, which ``dagster dev`` shows), yet the demo, the
    benchmarks and ``customer360 replay`` import this module for ``build_definitions`` with a lake of their
    own (the demo creates its lake first), so importing it must not require the environment's. Dagster finds
    ``defs`` through ``dir()`` (``__dir__`` below) and ``getattr``, exactly as a module-level variable.
    """
    if name == "defs":
        built = build_definitions(lake_resource_from_env(), warehouse_resource_from_env())
        globals()["defs"] = built
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "defs"})
