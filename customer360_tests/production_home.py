"""A DAGSTER_HOME holding ``deploy/production/dagster.yaml``, for tests that run the production instance here.

Why a helper and not a copy of the file: the tests must load the file operators deploy, so every setting in
it is under test. What a test home may change is explicit and small (``variant``): the run launcher (no ECS
here; runs become local processes started by the code server) and the run queue's size (20 concurrent runs
are 20 ECS tasks in production, but 20 processes on this 2-core machine).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION_INSTANCE = ROOT / "deploy" / "production" / "dagster.yaml"
DOCKERFILE = ROOT / "deploy" / "image" / "Dockerfile"
IMAGE_HOST, IMAGE_PORT = "0.0.0.0", "4000"

# Placeholders for the settings that name AWS resources (no AWS here); secrets never have a value in the file.
ECS_SETTINGS = {
    "CUSTOMER360_ECS_TASK_ROLE_ARN": "arn:aws:iam::123456789012:role/customer360-pipeline",
    "CUSTOMER360_ECS_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/customer360-ecs-execution",
    "CUSTOMER360_ECS_LOG_GROUP": "/ecs/customer360-runs",
    "CUSTOMER360_PG_PASSWORD_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:dagster-pg-AbCdEf",
    "CUSTOMER360_SNOWFLAKE_KEY_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:snowflake-AbCdEf",
}

DEFAULT_RUN_LAUNCHER = {"module": "dagster._core.launcher", "class": "DefaultRunLauncher"}


def production_config() -> dict[str, Any]:
    return yaml.safe_load(PRODUCTION_INSTANCE.read_text())


def write_home(home: Path, *, local_runs: bool = False, max_concurrent_runs: int | None = None) -> Path:
    """Write ``home/dagster.yaml``: the production file, with at most these two test-sized changes."""
    config = copy.deepcopy(production_config())
    if local_runs:
        config["run_launcher"] = DEFAULT_RUN_LAUNCHER
    if max_concurrent_runs is not None:
        config["concurrency"]["runs"]["max_concurrent_runs"] = max_concurrent_runs
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return home


def image_command(*, host: str, port: int) -> list[str]:
    """The image's CMD (its exec form, read from the Dockerfile), to run here outside a container.

    Only the listening address changes (a loopback host and a free port instead of the container's
    0.0.0.0:4000), and ``dagster`` is this virtualenv's.
    """
    lines = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("CMD [")]
    assert len(lines) == 1, "the Dockerfile has one CMD, in exec form"
    command: list[str] = json.loads(lines[0].removeprefix("CMD "))
    assert command[0] == "dagster" and IMAGE_HOST in command and IMAGE_PORT in command, command
    replace = {IMAGE_HOST: host, IMAGE_PORT: str(port), "dagster": str(Path(sys.executable).parent / "dagster")}
    return [replace.get(part, part) for part in command]
