"""The production instance (``deploy/production/dagster.yaml``) on a real PostgreSQL.

What an operator relies on when they point DAGSTER_HOME at that folder: the file loads with nothing but the
environment filled in, its storage is Postgres (the tables exist after the first start), the run queue
carries the gate's one-run-per-(dataset, day) limit and the warehouse pool, and the ECS run launcher accepts
its config. A missing variable is named, not silently defaulted.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_aws.ecs import EcsRunLauncher
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from customer360.defs.keys import GATE_TAG
from customer360_tests.production_home import ECS_SETTINGS, write_home


@pytest.fixture
def production_settings(postgres_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    settings = {**postgres_env, **ECS_SETTINGS, "CUSTOMER360_LOG_BUCKET": "telco-customer360-dagster-logs"}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return settings


def test_the_production_instance_loads_on_postgres_with_its_launcher_queue_and_pools(
    tmp_path: Path, production_settings: dict[str, str]
) -> None:
    instance = dg.DagsterInstance.from_config(str(write_home(tmp_path / "home")))
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert isinstance(instance.compute_log_manager, S3ComputeLogManager)

        launcher = instance.run_launcher
        assert isinstance(launcher, EcsRunLauncher)
        assert launcher.task_role_arn == ECS_SETTINGS["CUSTOMER360_ECS_TASK_ROLE_ARN"]
        assert launcher.execution_role_arn == ECS_SETTINGS["CUSTOMER360_ECS_EXECUTION_ROLE_ARN"]
        assert launcher.use_current_ecs_task_config
        assert {s["name"]: s["valueFrom"] for s in launcher.secrets} == {
            "DAGSTER_PG_PASSWORD": ECS_SETTINGS["CUSTOMER360_PG_PASSWORD_SECRET_ARN"],
            "SNOWFLAKE_PRIVATE_KEY": ECS_SETTINGS["CUSTOMER360_SNOWFLAKE_KEY_SECRET_ARN"],
        }
        assert "DAGSTER_PG_PASSWORD" not in launcher.env_vars, "the password travels as a secret, never in plain"

        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None
        assert [(limit["key"], limit["limit"]) for limit in queue.tag_concurrency_limits] == [(GATE_TAG, 1)]
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1

        assert instance.get_runs() == []
    finally:
        instance.dispose()

    connection = psycopg2.connect(
        host=production_settings["DAGSTER_PG_HOST"],
        port=int(production_settings["DAGSTER_PG_PORT"]),
        user=production_settings["DAGSTER_PG_USER"],
        password=production_settings["DAGSTER_PG_PASSWORD"],
        dbname=production_settings["DAGSTER_PG_DB"],
    )
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        tables = {row[0] for row in cursor.fetchall()}
    connection.close()
    assert {"runs", "event_logs", "jobs", "instigators", "concurrency_slots", "kvs"} <= tables


def test_a_missing_setting_is_named_when_the_instance_loads(
    tmp_path: Path, production_settings: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    home = write_home(tmp_path / "home")
    with pytest.raises(DagsterInvalidConfigError, match="DAGSTER_PG_PASSWORD"):
        dg.DagsterInstance.from_config(str(home)).run_storage  # noqa: B018 - storage is built on first use
