"""One Dagster resource for the warehouse, two backends: DuckDB (embedded default) or Snowflake.

Why one resource with a ``backend`` switch rather than two resources: every asset is written against
the ``Warehouse`` protocol, and the deployment picks the engine with ``CUSTOMER360_WAREHOUSE``. The
resource only holds configuration; ``open(lake)`` builds the backend for a run, because the DuckDB
backend reads staging through the run's LakeStore and Snowflake needs the lake's S3 URL for its stage.

Secrets never become plain config: ``warehouse_resource_from_env`` wires every Snowflake setting as an
``EnvVar`` so the Dagster UI shows the variable name, not the value. Auth is key-pair only, through
dagster-snowflake's ``private_key`` / ``private_key_path`` (+ ``private_key_password``) fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from customer360 import settings
from customer360.lake.store import LakeStore
from customer360.warehouse.base import Warehouse
from customer360.warehouse.duckdb_backend import DuckDBWarehouse
from customer360.warehouse.snowflake_backend import SnowflakeWarehouse

if TYPE_CHECKING:
    from dagster_snowflake import SnowflakeResource

BACKENDS = ("duckdb", "snowflake")
DEFAULT_DUCKDB_PATH = settings.DEFAULT_DUCKDB_PATH
DEFAULT_STAGE = settings.DEFAULT_SNOWFLAKE_STAGE
# WarehouseResource field -> environment variable, for the Snowflake backend.
SNOWFLAKE_ENV = settings.SNOWFLAKE_ENV
# Without these Snowflake cannot resolve unqualified table names or authenticate.
_REQUIRED_SNOWFLAKE = ("account", "user", "database", "schema")


class WarehouseResource(ConfigurableResource):
    """Where the warehouse lives. ``open(lake)`` returns a ``Warehouse`` for one run."""

    backend: str = Field(default="duckdb", description="'duckdb' (embedded default) or 'snowflake'.")
    duckdb_path: str = Field(default=DEFAULT_DUCKDB_PATH, description="DuckDB database file.")
    account: str | None = Field(default=None, description="Snowflake account identifier.")
    user: str | None = Field(default=None, description="Snowflake user (key-pair auth).")
    role: str | None = Field(default=None, description="Snowflake role.")
    warehouse: str | None = Field(default=None, description="Snowflake virtual warehouse running the COPY.")
    database: str | None = Field(default=None, description="Snowflake database holding the tables.")
    # 'schema' shadows a pydantic attribute, hence the alias (as in dagster-snowflake).
    schema_: str | None = Field(default=None, alias="schema", description="Snowflake schema.")
    private_key: str | None = Field(default=None, description="PEM private key (use an EnvVar).")
    private_key_path: str | None = Field(default=None, description="Path to the PEM private key file.")
    private_key_password: str | None = Field(default=None, description="Passphrase of an encrypted key.")
    stage: str = Field(default=DEFAULT_STAGE, description="External stage over s3://<bucket>/staging/.")
    storage_integration: str | None = Field(
        default=None, description="Storage integration the stage uses to read the bucket."
    )

    def open(self, lake: LakeStore) -> Warehouse:
        """The configured backend, reading staging from ``lake``."""
        if self.backend == "duckdb":
            return DuckDBWarehouse(self.duckdb_path, lake)
        if self.backend == "snowflake":
            return SnowflakeWarehouse(
                self.snowflake_resource(),
                stage=self.stage,
                storage_integration=self.storage_integration,
                lake_bucket_url=lake.uri,
            )
        raise ValueError(f"unknown warehouse backend {self.backend!r}; expected one of {BACKENDS}")

    def snowflake_resource(self) -> SnowflakeResource:
        """dagster-snowflake's resource with this configuration's values.

        Built with resolved values: the nested resource is not part of the Definitions, so Dagster would
        not resolve EnvVars inside it. When this resource is used outside a run (a script, a test) its
        own EnvVars are resolved here first.
        """
        # Imported here: dagster-snowflake loads Snowpark (seconds per run process), and the default
        # DuckDB deployment never needs it.
        from dagster_snowflake import SnowflakeResource

        resolved = self.process_config_and_initialize()
        values: dict[str, Any] = {
            "account": resolved.account,
            "user": resolved.user,
            "role": resolved.role,
            "warehouse": resolved.warehouse,
            "database": resolved.database,
            "schema": resolved.schema_,
            "private_key": resolved.private_key,
            "private_key_path": resolved.private_key_path,
            "private_key_password": resolved.private_key_password,
        }
        missing = [name for name in _REQUIRED_SNOWFLAKE if not values[name]]
        if missing:
            raise ValueError(f"Snowflake warehouse is missing {missing}")
        return SnowflakeResource(**{name: value for name, value in values.items() if value is not None})


def warehouse_resource_from_env() -> WarehouseResource:
    """The warehouse resource the code location uses, configured from the environment.

    ``CUSTOMER360_WAREHOUSE`` picks the backend ("duckdb" by default). Missing Snowflake settings fail
    here, when the code location loads, instead of in the middle of the first load.
    """
    backend = settings.warehouse_backend()
    if backend not in BACKENDS:
        raise ValueError(f"CUSTOMER360_WAREHOUSE={backend!r}; expected one of {BACKENDS}")
    # Absolute at definition load: the webserver, daemon and run workers may not share a working directory.
    duckdb_path = str(Path(settings.duckdb_path()).expanduser().absolute())
    if backend == "duckdb":
        return WarehouseResource(backend="duckdb", duckdb_path=duckdb_path)

    present = {name for name, var in SNOWFLAKE_ENV.items() if settings.env(var)}
    missing = [SNOWFLAKE_ENV[name] for name in _REQUIRED_SNOWFLAKE if name not in present]
    if len(present & {"private_key", "private_key_path"}) != 1:
        missing.append("exactly one of SNOWFLAKE_PRIVATE_KEY / SNOWFLAKE_PRIVATE_KEY_PATH")
    if missing:
        raise ValueError(f"CUSTOMER360_WAREHOUSE=snowflake needs {', '.join(missing)}")
    # EnvVars, resolved by Dagster from the environment where the resource is used: the UI shows their names.
    snowflake: dict[str, Any] = {name: EnvVar(SNOWFLAKE_ENV[name]) for name in present}
    return WarehouseResource(
        backend="snowflake",
        duckdb_path=duckdb_path,
        stage=settings.snowflake_stage(),
        storage_integration=settings.snowflake_storage_integration(),
        **snowflake,
    )
