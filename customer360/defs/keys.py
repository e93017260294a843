"""Every name Dagster knows this code location by, spelled once: asset keys, jobs, sensors, checks, tags, metadata.

Why one module: asset keys, check names and metadata keys are identities in the Dagster instance (run history,
check history, the alert sensors' cursors, the automation's conditions read them), and the sensors need them
without importing the asset modules that build the assets. Everything in ``customer360.defs`` and the CLI
takes its names from here.

**Which name an asset carries: the dataset's, or its table's.** A dataset has two names in its contract
(``customer360.contracts``): ``Dataset.name``, what upstream delivers and what the lake's prefixes are named
after (``raw/activity_logs/``, ``archive/activity_logs/``, ``clean/activity_logs/``, and also
``staging/activity_logs/``), and ``Dataset.staging_name``, the analytics table it becomes (``activity``). The
zones that hold files as they arrived or as the contract types them (raw, archive, rejected, clean) are keyed
by the dataset name; the zones that hold the analytics table (staging, whose shape the warehouse loads as is,
and the warehouse) are keyed by the table name. Hence ``clean/activity_logs`` next to ``staging/activity`` and
``warehouse/activity``: one declaration, two names, and ``zone_key`` is the one place that picks between them.
Why not one name everywhere: asset keys are the identities the instance stores materializations, check results
and the automation's state under; renaming ``staging/activity`` (or ``clean/activity_logs``) would orphan every
deployment's history, and users and tests address these keys. So the rule is explained and derived here
instead of changed.
"""

from __future__ import annotations

import dagster as dg

from customer360.checks.models import ALLOWED, RANGES, REQUIRED, ROW_RULES, SCHEMA, UNIQUE
from customer360.contracts import DATASETS, Dataset
from customer360.steps.mart import MART_TABLE

# ---------------------------------------------------------------------------------------------------
# Zones and asset keys
# ---------------------------------------------------------------------------------------------------

RAW, ARCHIVE, REJECTED, CLEAN, STAGING, WAREHOUSE, MART = (
    "raw",
    "archive",
    "rejected",
    "clean",
    "staging",
    "warehouse",
    "mart",
)
GATE_ZONES = (RAW, ARCHIVE, REJECTED)  # what one gate run materializes for a (dataset, day)
TABLE_ZONES = (STAGING, WAREHOUSE)  # keyed by the table a dataset becomes (``Dataset.staging_name``)


def asset_name(zone: str, dataset: Dataset | str) -> str:
    """The last part of ``dataset``'s asset key in ``zone``: its table name in staging and the warehouse, else its name.

    ``dataset`` is a contract or a dataset's name (as lake keys and sensor cursors carry it).
    """
    declared = DATASETS[dataset] if isinstance(dataset, str) else dataset
    return declared.staging_name if zone in TABLE_ZONES else declared.name


def zone_key(zone: str, dataset: Dataset | str) -> dg.AssetKey:
    """The asset key of ``dataset`` in ``zone`` (``raw/customers``, ``clean/activity_logs``, ``staging/activity``)."""
    return dg.AssetKey([zone, asset_name(zone, dataset)])


def gate_keys(dataset: Dataset | str) -> list[dg.AssetKey]:
    """The assets one gate run of ``dataset`` materializes: raw, archive and rejected."""
    return [zone_key(zone, dataset) for zone in GATE_ZONES]


def zone_keys(zone: str) -> list[dg.AssetKey]:
    """Every dataset's asset in ``zone``."""
    return [zone_key(zone, dataset) for dataset in DATASETS.values()]


MART_KEY = dg.AssetKey([MART, MART_TABLE])  # the warehouse table ``customer_360``, in the mart's group
UNROUTABLE_KEY = dg.AssetKey([REJECTED, "unroutable"])  # raw objects that name no dataset or day
REJECTED_KEYS = [*zone_keys(REJECTED), UNROUTABLE_KEY]  # every asset whose materializations list rejected files


def dataset_of(key: dg.AssetKey) -> Dataset | None:
    """The dataset an asset key belongs to (None for the mart and ``rejected/unroutable``)."""
    zone, name = key.path[0], key.path[-1]
    return next((d for d in DATASETS.values() if asset_name(zone, d) == name), None)


# ---------------------------------------------------------------------------------------------------
# Jobs and sensors
# ---------------------------------------------------------------------------------------------------

PIPELINE_JOB_NAME = "customer360_pipeline"
GATE_JOB_NAME = "ingest_raw_files"
UNROUTABLE_JOB_NAME = "reject_unroutable_raw_files"

RAW_SENSOR_NAME = "raw_files_sensor"
AUTOMATION_SENSOR_NAME = "customer360_automation"
ALERT_SENSOR_NAME = "rejection_alerts"
DELIVERY_SENSOR_NAME = "delivery_expectations"

# ---------------------------------------------------------------------------------------------------
# Asset checks (declared with their evaluation in ``customer360.defs.checks``)
# ---------------------------------------------------------------------------------------------------

# The contract's pandera check groups (``customer360.checks``): each group's failures are one asset check.
SCHEMA_CHECK, REQUIRED_CHECK, ALLOWED_CHECK, RANGES_CHECK, ROW_RULES_CHECK, UNIQUE_CHECK = (
    SCHEMA,
    REQUIRED,
    ALLOWED,
    RANGES,
    ROW_RULES,
    UNIQUE,
)
ROW_ACCOUNTING_CHECK = "row_accounting"
FRESHNESS_CHECK = "freshness"
UNKNOWN_COLUMNS_CHECK = "unknown_columns"
REJECTION_CHECK = "no_rejected_files"
LOAD_RECONCILES_CHECK = "load_reconciles_with_staging"
ONE_ROW_PER_CUSTOMER_CHECK = "one_row_per_customer"
CHARGES_RECONCILE_CHECK = "charges_reconcile_with_activity"
DELIVERY_CHECK = "expected_deliveries"


def references_check(dataset_name: str) -> str:
    """The staging check that every reference to ``dataset_name`` resolves in the same day's staging."""
    return f"references_{dataset_name}"


# ---------------------------------------------------------------------------------------------------
# Metadata keys and tags
# ---------------------------------------------------------------------------------------------------

ROW_COUNT = "dagster/row_count"  # Dagster's own: the UI plots it per partition
COLUMN_SCHEMA = "dagster/column_schema"  # Dagster's own: the asset's columns tab
REJECTED_FILES_METADATA = "rejected_files"  # each rejected file of a run; the alert sensor reads it
REJECTIONS_METADATA = "why_rejected"  # each outstanding rejected file's report, as Markdown

GATE_TAG = "customer360/gate"  # <dataset>/<day>: dagster.yaml runs one gate run per value at a time
RAW_FILES_TAG = "customer360/raw_files"  # how many raw files a sensor run moves
BACKFILL_SOURCE_TAG = "customer360/backfill"  # who submitted a backfill (``cli``)
STEP_TAG = "customer360/step"  # op tag naming the zone step
ZONE_TAG, DATASET_TAG, PERSONAL_DATA_TAG = "customer360/zone", "customer360/dataset", "customer360/personal_data"
AUTOMATION_TAG = "dagster/from_automation_condition"  # Dagster sets it on the automation's runs
