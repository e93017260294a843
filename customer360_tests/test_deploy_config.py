"""The deployment files that cannot run here (no container engine, no Kubernetes, no AWS) checked as far as this
machine can: they load, the instance config they produce is accepted by Dagster 1.13.27 and by the run
launcher classes themselves, every setting the code reads in production is provided, and the image's own
command serves the code location (outside a container, against the embedded default).

What is not run here is listed in deploy/production/README.md ("Verified here, and not").
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster_aws.ecs import EcsRunLauncher
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
from dagster_k8s import K8sRunLauncher
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from customer360.defs.keys import AUTOMATION_SENSOR_NAME, GATE_TAG, RAW_SENSOR_NAME
from customer360_tests.production_home import DOCKERFILE, ECS_SETTINGS, ROOT, image_command, production_config

HELM_VALUES = ROOT / "deploy" / "kubernetes" / "values.yaml"
# What the code location reads in production (README, "Configuration"); secrets come from a secret store.
PRODUCTION_SETTINGS = {
    "CUSTOMER360_LAKE",
    "CUSTOMER360_WAREHOUSE",
    "CUSTOMER360_START_DATE",
    "SNOWFLAKE_ACCOUNT",
    "SNOWFLAKE_USER",
    "SNOWFLAKE_ROLE",
    "SNOWFLAKE_WAREHOUSE",
    "SNOWFLAKE_DATABASE",
    "SNOWFLAKE_SCHEMA",
    "CUSTOMER360_SNOWFLAKE_STAGE",
    "CUSTOMER360_SNOWFLAKE_STORAGE_INTEGRATION",
}
PRODUCTION_SECRETS = {"SNOWFLAKE_PRIVATE_KEY"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _helm_instance_config(values: dict[str, Any]) -> dict[str, Any]:
    """The instance config Dagster's chart renders from these values (templates/configmap-instance.yaml), for the
    sections this project sets: Postgres storage, run coordinator, K8sRunLauncher, compute logs, monitoring,
    concurrency. The chart's camelCase keys become Dagster's snake_case ones, as its templates do.
    """
    pg = values["postgresql"]
    postgres_db = {
        "username": pg["postgresqlUsername"],
        "password": {"env": "DAGSTER_PG_PASSWORD"},  # the chart injects it from global.postgresqlSecretName
        "hostname": pg["postgresqlHost"],
        "db_name": pg["postgresqlDatabase"],
        "port": pg["service"]["port"],
        "params": pg["postgresqlParams"],
        "scheme": pg["postgresqlScheme"],
    }
    storage = {"postgres_db": postgres_db}
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    launcher = {
        "job_namespace": k8s["jobNamespace"] or "dagster",
        "load_incluster_config": k8s["loadInclusterConfig"],
        "env_config_maps": ["dagster-pipeline-env", *k8s["envConfigMaps"]],
        "env_secrets": k8s["envSecrets"],
        "env_vars": k8s["envVars"],
        "service_account_name": values["global"]["serviceAccountName"],
        "instance_config_map": "dagster-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
        "dagster_home": "/opt/dagster/dagster_home",
        "image_pull_policy": "Always",
        "resources": k8s["resources"],
        "security_context": k8s["securityContext"],
        "fail_pod_on_run_failure": k8s["failPodOnRunFailure"],
        "labels": k8s["labels"],
    }
    s3_logs = values["computeLogManager"]["config"]["s3ComputeLogManager"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    concurrency = values["concurrency"]
    return {
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": storage},
        "event_log_storage": {
            "module": "dagster_postgres.event_log",
            "class": "PostgresEventLogStorage",
            "config": storage,
        },
        "schedule_storage": {
            "module": "dagster_postgres.schedule_storage",
            "class": "PostgresScheduleStorage",
            "config": storage,
        },
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {
                _snake(k): v
                for k, v in values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"].items()
            },
        },
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": launcher},
        "compute_logs": {
            "module": "dagster_aws.s3.compute_log_manager",
            "class": "S3ComputeLogManager",
            "config": {_snake(k): v for k, v in s3_logs.items()},
        },
        "run_monitoring": {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
        },
        "concurrency": {
            "runs": {
                "max_concurrent_runs": concurrency["runs"]["maxConcurrentRuns"],
                "tag_concurrency_limits": concurrency["runs"]["tagConcurrencyLimits"],
            },
            "pools": {_snake(k): v for k, v in concurrency["pools"].items()},
        },
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }


def test_helm_values_render_an_instance_dagster_and_its_k8s_run_launcher_accept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = yaml.safe_load(HELM_VALUES.read_text())
    instance_config = _helm_instance_config(values)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance_config))
    dagster_instance_config(str(tmp_path))  # Dagster's own validation of an instance file, conflicts included
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "from-the-kubernetes-secret")
    for section, configurable in (
        ("run_storage", PostgresRunStorage),
        ("event_log_storage", PostgresEventLogStorage),
        ("schedule_storage", PostgresScheduleStorage),
        ("compute_logs", S3ComputeLogManager),
    ):
        checked = process_config(configurable.config_type(), instance_config[section]["config"])
        assert checked.success, (section, checked.errors)
    # Same run queue and pools as the ECS file, so both deployments behave alike.
    assert instance_config["concurrency"] == {
        "runs": {
            "max_concurrent_runs": production_config()["concurrency"]["runs"]["max_concurrent_runs"],
            "tag_concurrency_limits": production_config()["concurrency"]["runs"]["tag_concurrency_limits"],
        },
        "pools": production_config()["concurrency"]["pools"],
    }
    assert instance_config["concurrency"]["runs"]["tag_concurrency_limits"][0]["key"] == GATE_TAG

    # The launcher class itself takes the rendered config (outside a cluster: a kubeconfig file instead).
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "test",
                "clusters": [{"name": "test", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                "users": [{"name": "test", "user": {"token": "not-a-secret"}}],
            }
        )
    )
    launcher_config = {
        **instance_config["run_launcher"]["config"],
        "load_incluster_config": False,
        "kubeconfig_file": str(kubeconfig),
    }
    processed = process_config(K8sRunLauncher.config_type(), launcher_config)
    assert processed.success, processed.errors
    launcher = K8sRunLauncher.from_config_value(None, processed.value)  # type: ignore[arg-type]
    assert (
        launcher.fail_pod_on_run_failure
        and launcher.resources == values["runLauncher"]["config"]["k8sRunLauncher"]["resources"]
    )

    # The user deployment is this project's image serving this code location, with every production setting.
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "customer360.defs.definitions"]
    assert str(deployment["port"]) in image_command(host="h", port=4000)
    env = {item["name"] for item in deployment["env"]}
    assert env >= PRODUCTION_SETTINGS, PRODUCTION_SETTINGS - env
    assert not (env & PRODUCTION_SECRETS), "secrets come from a Kubernetes secret, never from values"
    assert deployment["envSecrets"] and deployment["includeConfigInLaunchedRuns"]["enabled"]
    assert deployment["podSecurityContext"]["runAsNonRoot"]
    assert "postgresqlPassword" not in values["postgresql"], "the password comes from a Kubernetes secret"


def test_the_ecs_run_launcher_accepts_its_block_and_passes_every_production_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in ECS_SETTINGS.items():
        monkeypatch.setenv(name, value)
    block = production_config()["run_launcher"]
    assert (block["module"], block["class"]) == ("dagster_aws.ecs", "EcsRunLauncher")
    processed = process_config(EcsRunLauncher.config_type(), block["config"])
    assert processed.success, processed.errors
    launcher = EcsRunLauncher.from_config_value(None, processed.value)  # type: ignore[arg-type]
    assert launcher.task_role_arn == ECS_SETTINGS["CUSTOMER360_ECS_TASK_ROLE_ARN"]
    assert launcher.execution_role_arn == ECS_SETTINGS["CUSTOMER360_ECS_EXECUTION_ROLE_ARN"]
    assert launcher.run_resources == {"cpu": "2048", "memory": "4096", "ephemeral_storage": 50}
    passed = set(launcher.env_vars) | {secret["name"] for secret in launcher.secrets}
    assert passed >= PRODUCTION_SETTINGS | PRODUCTION_SECRETS, (PRODUCTION_SETTINGS | PRODUCTION_SECRETS) - passed
    assert {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_DB", "DAGSTER_PG_PASSWORD"} <= passed
    assert launcher.secrets_tags == [], "no account-wide secret listing"


def test_the_image_is_non_root_without_secrets_and_its_command_serves_the_code_location(tmp_path: Path) -> None:
    dockerfile = DOCKERFILE.read_text()
    assert re.search(r"^USER 10001", dockerfile, re.MULTILINE), "the image runs as a non-root user"
    assert '".[production]"' in dockerfile
    settings = " ".join(line for line in dockerfile.splitlines() if line.startswith(("ENV", "ARG", "  ", "    ")))
    for word in ("PASSWORD", "PRIVATE_KEY", "AWS_SECRET", "AWS_ACCESS_KEY", "TOKEN"):
        assert word not in settings.upper(), f"the image sets {word}: secrets come from the environment at run time"
    for copied in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", dockerfile, re.MULTILINE):
        for source in copied.split():
            if not source.startswith("/"):
                assert (ROOT / source).exists(), source

    # The image's CMD, run here against the embedded default (local lake, DuckDB, SQLite instance).
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path),
        "CUSTOMER360_LAKE": str(tmp_path / "lake"),
        "CUSTOMER360_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "PYTHONWARNINGS": "ignore",
    }
    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    (tmp_path / "lake").mkdir()  # what `customer360 init` does; the code location refuses a missing lake folder
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        image_command(host="127.0.0.1", port=port),
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        healthcheck = json.loads(re.search(r"HEALTHCHECK .*CMD (\[.*\])", dockerfile).group(1))  # type: ignore[union-attr]
        healthcheck = [str(Path(image_command(host="h", port=1)[0])) if p == "dagster" else p for p in healthcheck]
        healthcheck = [str(port) if p == "4000" else p for p in healthcheck]
        deadline = time.monotonic() + 180
        while subprocess.run(healthcheck, env=env, capture_output=True).returncode != 0:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the image's HEALTHCHECK never passed"
            time.sleep(1)
        # What the webserver and daemon do first: load the location's repository over gRPC.
        from dagster._core.remote_origin import GrpcServerCodeLocationOrigin

        origin = GrpcServerCodeLocationOrigin(host="127.0.0.1", port=port, location_name="customer360")
        with dg.DagsterInstance.ephemeral() as instance, origin.create_location(instance) as location:
            [repository] = location.get_repositories().values()
            sensors = {sensor.name for sensor in repository.get_sensors()}
            assert {RAW_SENSOR_NAME, AUTOMATION_SENSOR_NAME} <= sensors
            assert repository.get_asset_node_snaps()
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
        log.close()
