"""Every setting customer360 takes from the environment: one reader, every variable's name, type and default.

Why one module: the environment used to be read in eleven places through three private copies of the same
helper, which disagreed on details (one stripped values, one did not; one took an exported-but-empty variable
for unset, one for a value). Now ``env`` is the one function that reads ``os.environ`` for our settings, every
variable is named here once, and callers get typed values. Plain Python, no Dagster: the lake, the processing
code and the CLI read settings too.

How Dagster comes in: a value a resource holds as config and that is a secret or may change between processes
(Snowflake's key and user, Slack's token, the alert webhook URL) goes into the resource as a ``dagster.EnvVar``
naming the variable (``customer360.defs.resources``): Dagster resolves it where the resource is used and the UI
shows the name, never the value. What decides the shape of the definitions when they load (which lake, which
warehouse backend, the partitions' first day, the sensors' intervals) is read here; EnvVar cannot do that.

Rules every setting follows: read when asked for (not at import), so a test or a command that sets a variable
first sees it; stripped; an exported-but-empty variable (``NAME=``) means unset, so its default applies.
Settings of one component that travel together are typed dataclasses next to that component, reading their
variables through the helpers here: ``customer360.lake.s3.S3Settings`` (S3 timeouts and attempts),
``customer360.defs.sensors.raw_sensor.RawSensorSettings`` (the raw/ listing) and
``customer360.defs.sensors.notifications.QueueSettings`` (the S3 notifications queue).
"""

from __future__ import annotations

import os
import tempfile
from datetime import date
from pathlib import Path


def env(*names: str) -> str | None:
    """The first of ``names`` set to a non-empty value, stripped; None when none is."""
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def env_int(name: str, default: int) -> int:
    """``name`` as an integer, else ``default``."""
    value = env(name)
    return int(value) if value else default


def env_number(name: str, default: float) -> float:
    """``name`` as a number greater than 0, else ``default``; ValueError naming the variable otherwise."""
    value = env(name)
    if not value:
        return default
    try:
        parsed = float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None
    if parsed <= 0:
        raise ValueError(f"{name}={value!r} must be greater than 0")
    return parsed


# -- the lake (customer360.defs.resources.lake, customer360.lake.s3) ---------------------------------------------

LAKE_ENV = "CUSTOMER360_LAKE"  # a local folder laid out like the bucket, or s3://<bucket>[/<prefix>]
DEFAULT_LOCAL_LAKE = Path(".lake") / "telco-customer360-pipeline"  # the embedded lake, relative to the cwd
# boto3 reads AWS_ENDPOINT_URL[_S3] by itself; naming them here lets the endpoint show in the resource's config.
S3_ENDPOINT_ENVS = ("CUSTOMER360_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
# botocore itself only reads AWS_DEFAULT_REGION; AWS_REGION is what most other tools set.
REGION_ENVS = ("AWS_REGION", "AWS_DEFAULT_REGION")
S3_CONNECT_TIMEOUT_ENV = "CUSTOMER360_S3_CONNECT_TIMEOUT_SECONDS"  # default 5 s (S3Settings)
S3_READ_TIMEOUT_ENV = "CUSTOMER360_S3_READ_TIMEOUT_SECONDS"  # default 30 s, per wait for bytes (S3Settings)
S3_MAX_ATTEMPTS_ENV = "CUSTOMER360_S3_MAX_ATTEMPTS"  # default 3, the first try included (S3Settings)


def lake_location() -> str | None:
    """``CUSTOMER360_LAKE``; None means the embedded folder ``DEFAULT_LOCAL_LAKE``."""
    return env(LAKE_ENV)


def s3_endpoint_url() -> str | None:
    """An S3-compatible endpoint (MinIO, moto, ...); None means AWS itself."""
    return env(*S3_ENDPOINT_ENVS)


def aws_region() -> str | None:
    return env(*REGION_ENVS)


# -- the warehouse (customer360.defs.resources.warehouse) --------------------------------------------------------

WAREHOUSE_ENV = "CUSTOMER360_WAREHOUSE"  # duckdb (default) or snowflake
DEFAULT_WAREHOUSE = "duckdb"
DUCKDB_PATH_ENV = "CUSTOMER360_DUCKDB_PATH"
DEFAULT_DUCKDB_PATH = "./.lake/warehouse.duckdb"
SNOWFLAKE_STAGE_ENV = "CUSTOMER360_SNOWFLAKE_STAGE"
DEFAULT_SNOWFLAKE_STAGE = "customer360_staging"
SNOWFLAKE_STORAGE_INTEGRATION_ENV = "CUSTOMER360_SNOWFLAKE_STORAGE_INTEGRATION"
# WarehouseResource field -> variable; passed to the resource as EnvVars (secrets among them).
SNOWFLAKE_ENV: dict[str, str] = {
    "account": "SNOWFLAKE_ACCOUNT",
    "user": "SNOWFLAKE_USER",
    "role": "SNOWFLAKE_ROLE",
    "warehouse": "SNOWFLAKE_WAREHOUSE",
    "database": "SNOWFLAKE_DATABASE",
    "schema": "SNOWFLAKE_SCHEMA",
    "private_key": "SNOWFLAKE_PRIVATE_KEY",
    "private_key_path": "SNOWFLAKE_PRIVATE_KEY_PATH",
    "private_key_password": "SNOWFLAKE_PRIVATE_KEY_PASSWORD",
}


def warehouse_backend() -> str:
    """The backend's name, lower-cased (the resource checks it is one it knows)."""
    return (env(WAREHOUSE_ENV) or DEFAULT_WAREHOUSE).lower()


def duckdb_path() -> str:
    return env(DUCKDB_PATH_ENV) or DEFAULT_DUCKDB_PATH


def snowflake_stage() -> str:
    """The external stage over s3://<bucket>/staging/ that Snowflake's COPY reads."""
    return env(SNOWFLAKE_STAGE_ENV) or DEFAULT_SNOWFLAKE_STAGE


def snowflake_storage_integration() -> str | None:
    return env(SNOWFLAKE_STORAGE_INTEGRATION_ENV)


# -- partitions, automation, presentation (customer360.defs) ----------------------------------------------------

START_DATE_ENV = "CUSTOMER360_START_DATE"  # the first daily partition, YYYY-MM-DD
DEFAULT_START_DATE = "2024-01-01"
AUTOMATION_INTERVAL_ENV = "CUSTOMER360_AUTOMATION_INTERVAL_SECONDS"
DEFAULT_AUTOMATION_INTERVAL_SECONDS = 30
OWNER_ENV = "CUSTOMER360_OWNER"  # every asset's owner in the UI: a team or an email
DEFAULT_OWNER = "team:data-platform"


def start_date() -> date:
    return date.fromisoformat(env(START_DATE_ENV) or DEFAULT_START_DATE)


def automation_interval_seconds() -> int:
    return env_int(AUTOMATION_INTERVAL_ENV, DEFAULT_AUTOMATION_INTERVAL_SECONDS)


def asset_owner() -> str:
    return env(OWNER_ENV) or DEFAULT_OWNER


# -- discovering raw files (customer360.defs.sensors.raw_sensor, .notifications) ---------------------------------

# RawSensorSettings: look-back days, runs per tick, full-scan and window-listing minutes, tick interval.
SENSOR_LOOKBACK_DAYS_ENV = "CUSTOMER360_SENSOR_LOOKBACK_DAYS"
SENSOR_MAX_RUNS_PER_TICK_ENV = "CUSTOMER360_SENSOR_MAX_RUNS_PER_TICK"
SENSOR_RECONCILE_MINUTES_ENV = "CUSTOMER360_SENSOR_RECONCILE_MINUTES"
SENSOR_INTERVAL_ENV = "CUSTOMER360_SENSOR_INTERVAL_SECONDS"
SENSOR_LISTING_MINUTES_ENV = "CUSTOMER360_SENSOR_LISTING_MINUTES"
DISCOVERY_ENV = "CUSTOMER360_RAW_DISCOVERY"  # listing (default) or notifications
DEFAULT_DISCOVERY = "listing"
# QueueSettings: the SQS queue the bucket notifies, its endpoint, and how much of it one tick reads.
QUEUE_URL_ENV = "CUSTOMER360_RAW_QUEUE_URL"
SQS_ENDPOINT_ENVS = ("CUSTOMER360_SQS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL")
QUEUE_MAX_MESSAGES_ENV = "CUSTOMER360_QUEUE_MAX_MESSAGES_PER_TICK"
QUEUE_WAIT_SECONDS_ENV = "CUSTOMER360_QUEUE_WAIT_SECONDS"
QUEUE_VISIBILITY_SECONDS_ENV = "CUSTOMER360_QUEUE_VISIBILITY_SECONDS"
QUEUE_MAX_RECEIVES_ENV = "CUSTOMER360_QUEUE_MAX_RECEIVES"


def raw_discovery() -> str:
    """How the raw sensor discovers files, lower-cased (the sensor checks it is a mode it knows)."""
    return (env(DISCOVERY_ENV) or DEFAULT_DISCOVERY).lower()


def sqs_endpoint_url() -> str | None:
    return env(*SQS_ENDPOINT_ENVS)


# -- alerts (customer360.defs.resources.alerts) ------------------------------------------------------------------

# Slack (through dagster-slack) when the token and the channel are set, else the webhook, else the Dagster log.
SLACK_TOKEN_ENV = "SLACK_TOKEN"
SLACK_CHANNEL_ENV = "CUSTOMER360_SLACK_CHANNEL"
SLACK_API_URL_ENV = "CUSTOMER360_SLACK_API_URL"  # a Slack-compatible gateway instead of https://slack.com/api/
ALERT_WEBHOOK_URL_ENV = "CUSTOMER360_ALERT_WEBHOOK_URL"  # POST of one JSON object per alert


# -- this machine (customer360.processing.parsed) ---------------------------------------------------------------

PARSED_DIR_ENV = "CUSTOMER360_PARSED_DIR"  # where the gate leaves its parse of a file for clean


def parsed_dir() -> Path:
    return Path(env(PARSED_DIR_ENV) or Path(tempfile.gettempdir()) / "customer360-parsed")
