"""The least-privilege policies in ``deploy/iam/`` against the pipeline's real S3 operations, on moto's server with
IAM enforcement (``INITIAL_NO_AUTH_ACTION_COUNT``: after that many unauthenticated bootstrap calls, every request
must be signed by a known key and is authorized against the caller's IAM policies).

Each role is an IAM role holding exactly its policy document from ``deploy/iam/``, and every request below is
signed with that role's temporary credentials (STS AssumeRole), as on AWS (ECS task role / EKS IRSA):

* the upstream writers land a demo week, each only under ``raw/<its dataset>/``;
* the pipeline role runs the raw sensor's listing and the whole pipeline job (gate, clean, staging, warehouse)
  for every day: every step succeeds, raw/ ends empty; then the alert and expected-delivery sensors, which
  claim their alerts with create-only markers under alerts/;
* the pipeline role cannot delete an archived object (nor a version of it), and its create-only write over one
  is refused; the upstream writer cannot read archive/ nor write another dataset's prefix; Snowflake's storage
  integration reads staging/ and nothing else; analysts read none of the zones.

What moto's IAM emulation cannot enforce (moto 5.2, ``moto/iam/access_control.py``; see also
deploy/production/README.md): it evaluates the Action and Resource of identity policies (inline and attached,
users and assumed roles) and explicit Deny, but **ignores Condition blocks** (only ``StringEquals`` is
implemented and it is skipped when the request carries no context values, which moto never supplies for S3):
``s3:if-none-match`` (create-only), ``s3:if-match`` (raw deletes of the admitted version only), ``s3:prefix``
(listing scoped to zones) and ``aws:PrincipalArn`` /
``aws:SecureTransport`` are not checked, so a conditional Allow acts as unconditional there. Bucket policies
are evaluated for object GET/PUT/DELETE (``moto/s3/responses.py``), also without their conditions; every
statement of ``bucket-policy.json`` is conditional (all principals but the break-glass role; PUTs without
If-None-Match; requests without TLS), so on moto it would deny every request: it is checked here as a document
(``test_the_bucket_policy_spares_only_the_break_glass_role``), and enforced by AWS only. Object Lock retention
on a version is enforced by moto's S3 itself, but not the ``s3:BypassGovernanceRetention`` permission.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import boto3
import dagster as dg
import pytest
from botocore.exceptions import ClientError

from customer360.contracts import DATASETS
from customer360.defs.definitions import build_definitions
from customer360.defs.resources.alerts import AlertsResource
from customer360.defs.resources.lake import LakeResource, open_lake
from customer360.defs.resources.warehouse import WarehouseResource
from customer360.defs.sensors.alerts import SENT_PREFIX, build_alert_sensor
from customer360.defs.sensors.deliveries import MARKER_PREFIX, build_delivery_sensor
from customer360.defs.sensors.raw_sensor import RawSensorSettings, build_raw_sensor
from customer360.lake.ledger import Ledger, query
from customer360.lake.routing import route
from customer360.lake.store import ObjectExistsError
from customer360_generator import generate_demo_data

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "deploy" / "iam"
BUCKET = "telco-customer360-pipeline"  # the name the policy documents grant on
ACCOUNT = "123456789012"  # moto's default account, the one in the policy documents
START = date(2024, 1, 1)
DAYS = 2
AFTER_THE_DAYS = datetime(2024, 1, 4, 12, tzinfo=UTC)  # every day's deliveries fell due: hourly files are late
# The bootstrap below makes exactly these unauthenticated calls: create the admin user, give it a policy, a key.
BOOTSTRAP_CALLS = 3


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None

    def client(self, service: str, endpoint: str):  # noqa: ANN201 - boto3 clients have no importable type
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            aws_session_token=self.session_token,
        )

    def env(self) -> dict[str, str]:
        token = self.session_token or ""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_SESSION_TOKEN": token,
            "AWS_SECURITY_TOKEN": token,
        }


@dataclass(frozen=True)
class Account:
    endpoint: str
    admin: Credentials

    def role(self, name: str, policy_file: str) -> Credentials:
        """An IAM role holding exactly ``deploy/iam/<policy_file>``; its temporary credentials."""
        iam, sts = self.admin.client("iam", self.endpoint), self.admin.client("sts", self.endpoint)
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "sts:AssumeRole",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/admin"},
                }
            ],
        }
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName=name, PolicyName=name, PolicyDocument=(POLICIES / policy_file).read_text())
        assumed = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{name}", RoleSessionName="test")
        c = assumed["Credentials"]
        return Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])


@pytest.fixture
def account(fake_aws_credentials: None, tmp_path: Path) -> Iterator[Account]:
    """A moto server (its own process) that authorizes every request after the bootstrap calls."""
    port = _free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(BOOTSTRAP_CALLS)}
    log = (tmp_path / "moto.log").open("wb")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "moto.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.2)
        bootstrap = Credentials("testing", "testing").client("iam", endpoint)
        bootstrap.create_user(UserName="admin")
        bootstrap.put_user_policy(
            UserName="admin",
            PolicyName="admin",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
            ),
        )
        key = bootstrap.create_access_key(UserName="admin")["AccessKey"]
        admin = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
        with pytest.raises(ClientError, match="InvalidClientTokenId|InvalidAccessKeyId|AccessDenied"):
            bootstrap.list_users()  # enforcement is on: the unknown bootstrap key is refused from now on
        yield Account(endpoint, admin)
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
        log.close()


def _denied(call, **kwargs) -> bool:  # noqa: ANN001 - a bound boto3 client method
    try:
        call(**kwargs)
    except ClientError as error:
        return error.response["Error"]["Code"] in {"AccessDenied", "403"}
    return False


def test_each_role_can_do_what_the_pipeline_does_and_nothing_it_must_not(
    account: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_admin = account.admin.client("s3", account.endpoint)
    # The documented bucket setup: Object Lock (governance, default retention) implies versioning.
    setup = json.loads((POLICIES / "s3-bucket-setup.json").read_text())
    s3_admin.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    s3_admin.put_object_lock_configuration(Bucket=BUCKET, ObjectLockConfiguration=setup["ObjectLockConfiguration"])
    assert s3_admin.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"

    pipeline = account.role("customer360-pipeline", "pipeline-policy.json")
    writers = {name: account.role(f"upstream-{name}", f"upstream-{name}-writer-policy.json") for name in DATASETS}
    snowflake = account.role("customer360-snowflake", "snowflake-storage-integration-policy.json")
    analyst = account.role("customer360-analyst", "analysts-guard-policy.json")

    # Upstream systems land a demo week, each under its own dataset only.
    sent: dict[str, bytes] = {}
    generate_demo_data(sent.__setitem__, START, DAYS, seed=3, customers=60, events_per_day=120, hours_per_day=2)
    landed: dict[str, bytes] = {}
    for key, data in sent.items():
        dataset, _, _ = route(key)
        if dataset is None:
            continue  # a dataset no upstream writer may write (checked below)
        writers[dataset.name].client("s3", account.endpoint).put_object(Bucket=BUCKET, Key=key, Body=data)
        landed[key] = data
    customers_writer = writers["customers"].client("s3", account.endpoint)
    assert _denied(customers_writer.put_object, Bucket=BUCKET, Key="raw/plans/2024-01-01/x.csv", Body=b"a\n")
    assert _denied(customers_writer.put_object, Bucket=BUCKET, Key="raw/billing/2024-01-01/x.csv", Body=b"a\n")

    # The pipeline role: the raw sensor's listing, then every zone step of every day.
    for name, value in pipeline.env().items():
        monkeypatch.setenv(name, value)
    lake = LakeResource(location=f"s3://{BUCKET}", endpoint_url=account.endpoint)
    defs = build_definitions(lake, WarehouseResource(backend="duckdb", duckdb_path=str(tmp_path / "wh.duckdb")))
    instance = dg.DagsterInstance.ephemeral()
    sensor = build_raw_sensor(
        defs.resolve_job_def("ingest_raw_files"),
        defs.resolve_job_def("reject_unroutable_raw_files"),
        settings=RawSensorSettings(reconcile_minutes=0),
    )
    tick = sensor(dg.build_sensor_context(instance=instance, resources={"lake": lake}))
    assert len(tick.run_requests) == len({(route(key)[0].name, route(key)[1]) for key in landed})
    job = defs.resolve_job_def("customer360_pipeline")
    for offset in range(DAYS):
        day = START + timedelta(days=offset)
        result = job.execute_in_process(partition_key=day.isoformat(), instance=instance, raise_on_error=False)
        failures = [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert result.success, failures
    store = open_lake(f"s3://{BUCKET}", endpoint_url=account.endpoint)
    assert not list(store.list("raw/")), "the pipeline moved every landed file"
    # The sensors that write to the lake: one alert per rejected file, expected-delivery judgements (both claim
    # with create-only markers under alerts/).
    for lake_sensor in (build_alert_sensor(), build_delivery_sensor(clock=lambda: AFTER_THE_DAYS)):
        lake_sensor(dg.build_sensor_context(instance=instance, resources={"lake": lake, "alerts": AlertsResource()}))
    assert list(store.list(SENT_PREFIX)) and list(store.list(MARKER_PREFIX)), "alerts claimed as the pipeline role"
    entries = list(query(Ledger(store)))
    assert sorted(e.raw_key for e in entries) == sorted(landed)

    # The pipeline can never destroy the record: no delete, no delete of a version, no overwrite.
    archived = next(e for e in entries if e.outcome == "archived").destination_key
    s3_pipeline = pipeline.client("s3", account.endpoint)
    assert _denied(s3_pipeline.delete_object, Bucket=BUCKET, Key=archived)
    version = s3_admin.head_object(Bucket=BUCKET, Key=archived)["VersionId"]
    assert _denied(s3_pipeline.delete_object, Bucket=BUCKET, Key=archived, VersionId=version)
    with pytest.raises(ObjectExistsError):
        store.put_bytes(archived, b"tampered", create_only=True)
    assert store.read_bytes(archived) == landed[next(e.raw_key for e in entries if e.destination_key == archived)]
    # Object Lock (governance) holds the version even for a principal IAM would let delete it.
    with pytest.raises(ClientError, match="AccessDenied"):
        s3_admin.delete_object(Bucket=BUCKET, Key=archived, VersionId=version)

    # Upstream writers cannot read what the pipeline accepted; nor list it.
    assert _denied(customers_writer.get_object, Bucket=BUCKET, Key=archived)
    assert _denied(customers_writer.list_objects_v2, Bucket=BUCKET, Prefix="archive/")

    # Snowflake's storage integration: staging/ only.
    s3_snowflake = snowflake.client("s3", account.endpoint)
    staged = s3_snowflake.list_objects_v2(Bucket=BUCKET, Prefix="staging/")["Contents"]
    assert staged and s3_snowflake.get_object(Bucket=BUCKET, Key=staged[0]["Key"])["Body"].read()
    assert _denied(s3_snowflake.get_object, Bucket=BUCKET, Key=archived)
    clean_key = next(o.key for o in store.list("clean/"))
    assert _denied(s3_snowflake.get_object, Bucket=BUCKET, Key=clean_key)

    # Analysts: none of the zones (they query the mart in the warehouse).
    s3_analyst = analyst.client("s3", account.endpoint)
    for key in (archived, clean_key, staged[0]["Key"]):
        assert _denied(s3_analyst.get_object, Bucket=BUCKET, Key=key), key
    assert _denied(s3_analyst.list_objects_v2, Bucket=BUCKET, Prefix="raw/")


def test_the_bucket_policy_spares_only_the_break_glass_role() -> None:
    policy = json.loads((POLICIES / "bucket-policy.json").read_text())
    break_glass = f"arn:aws:iam::{ACCOUNT}:role/customer360-break-glass"
    by_sid = {statement["Sid"]: statement for statement in policy["Statement"]}
    for sid in ("ArchiveAndLedgerAreNeverDeletedOrUnlocked", "ArchiveAndLedgerWritesAreCreateOnly"):
        statement = by_sid[sid]
        assert statement["Effect"] == "Deny" and statement["Principal"] == "*"
        assert statement["Resource"] == [f"arn:aws:s3:::{BUCKET}/archive/*", f"arn:aws:s3:::{BUCKET}/ledger/*"]
        assert statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == break_glass
    assert {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"} <= set(
        by_sid["ArchiveAndLedgerAreNeverDeletedOrUnlocked"]["Action"]
    )
    assert by_sid["ArchiveAndLedgerWritesAreCreateOnly"]["Condition"]["Null"] == {"s3:if-none-match": "true"}
    # The break-glass role's own policy is what can erase (e.g. a GDPR erasure of an archived file).
    erase = json.loads((POLICIES / "break-glass-policy.json").read_text())["Statement"][0]
    assert {"s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"} <= set(erase["Action"])


def _allows(policy: dict, action: str, key: str) -> list[dict]:
    """The Allow statements of ``policy`` granting ``action`` on ``key`` of the bucket (IAM wildcard match)."""
    import fnmatch

    arn = f"arn:aws:s3:::{BUCKET}/{key}"
    found = []
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if statement["Effect"] == "Allow" and action in actions and any(fnmatch.fnmatchcase(arn, r) for r in resources):
            found.append(statement)
    return found


def test_the_pipeline_policy_conditions_moto_cannot_enforce() -> None:
    """What AWS enforces and moto cannot (module docstring): the grants carry the conditions the code satisfies."""
    policy = json.loads((POLICIES / "pipeline-policy.json").read_text())
    create_only = {"Null": {"s3:if-none-match": "false"}}
    for key in (
        "archive/customers/2024-01-01/crm.csv",
        "rejected/customers/2024-01-01/0a1b/crm.csv",
        "rejected/customers/2024-01-01/0a1b/crm.csv.report.json",
        "ledger/customers/dt=2024-01-01/0a1b.json",
        "alerts/sent/0a1b.json",
    ):
        grants = _allows(policy, "s3:PutObject", key)
        assert grants and all(g.get("Condition") == create_only for g in grants), key
    assert [g.get("Condition") for g in _allows(policy, "s3:DeleteObject", "raw/customers/2024-01-01/crm.csv")] == [
        {"Null": {"s3:if-match": "false"}}
    ], "raw objects are deleted only as the version the gate admitted"
    for key in (
        "clean/customers/dt=2024-01-01/x.parquet",
        "staging/activity/dt=2024-01-01/part-00000.parquet",
        "rejected/customers/rows/dt=2024-01-01/x.parquet",
    ):
        assert _allows(policy, "s3:PutObject", key) and _allows(policy, "s3:DeleteObject", key), key
    for key in ("archive/customers/2024-01-01/crm.csv", "ledger/customers/dt=2024-01-01/0a1b.json"):
        assert not _allows(policy, "s3:DeleteObject", key), key
