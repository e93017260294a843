"""How the assets present themselves in the UI: kinds for the backends in use, the zone, owners and tags.

Applied in one place (``definitions.build_assets``) to every asset the zone factories build, like the
automation conditions, so the factories stay free of it:

* **kinds** name the zone (the graph labels a node with the last part of its key only, so
  ``archive/customers`` and ``clean/customers`` both read "customers"; the zone kind is the badge that tells
  them apart), the format (Parquet for clean and staging) and the storage actually in use: ``s3`` when the
  lake is on S3, ``file`` for the local folder, and ``duckdb`` or ``snowflake`` for the warehouse, not both;
* **owners**: the data-platform team (``CUSTOMER360_OWNER`` overrides it, e.g. a team or an email);
* **tags**: ``customer360/zone``, ``customer360/dataset`` and ``customer360/personal_data`` (``yes`` where
  email and phone numbers are held in full, ``hashed`` in the mart, ``unknown`` for unroutable objects,
  else ``no``), so the catalog can be filtered by them.
"""

from __future__ import annotations

import dagster as dg

from customer360 import settings
from customer360.contracts import DATASETS
from customer360.defs.keys import CLEAN, DATASET_TAG, MART, PERSONAL_DATA_TAG, STAGING, WAREHOUSE, ZONE_TAG, dataset_of

DEFAULT_OWNER = settings.DEFAULT_OWNER
OWNER_ENV = settings.OWNER_ENV
PARQUET_ZONES = (CLEAN, STAGING)
WAREHOUSE_ZONES = (WAREHOUSE, MART)
PERSONAL_DATASETS = {d.name for d in DATASETS.values() if any(f.personal for f in d.fields)}


def lake_kind(location: str) -> str:
    return "s3" if location.startswith("s3://") else "file"


def kinds_of(zone: str, lake: str, warehouse: str) -> set[str]:
    if zone in WAREHOUSE_ZONES:
        return {zone, warehouse}
    return {zone, lake, *(["parquet"] if zone in PARQUET_ZONES else [])}


def tags_of(zone: str, key: dg.AssetKey) -> dict[str, str]:
    declared = dataset_of(key)
    dataset = declared.name if declared is not None else None
    if zone == MART:
        personal = "hashed"
    elif dataset is None:
        personal = "unknown"  # rejected/unroutable: objects that name no dataset
    else:
        personal = "yes" if dataset in PERSONAL_DATASETS else "no"
    return {
        ZONE_TAG: zone,
        DATASET_TAG: dataset or ("all" if zone == MART else "none"),
        PERSONAL_DATA_TAG: personal,
    }


def with_presentation(
    assets: list[dg.AssetsDefinition], *, lake_location: str, warehouse_backend: str
) -> list[dg.AssetsDefinition]:
    """``assets`` with kinds, owners and tags as described in the module docstring."""
    lake = lake_kind(lake_location)
    owner = settings.asset_owner()

    def present(spec: dg.AssetSpec) -> dg.AssetSpec:
        zone = spec.group_name or spec.key.path[0]
        return spec.replace_attributes(kinds=kinds_of(zone, lake, warehouse_backend)).merge_attributes(
            owners=[owner], tags=tags_of(zone, spec.key)
        )

    return dg.map_asset_specs(present, assets)
