"""The warehouse layer: idempotent partition loads from staging, schema evolution, the Customer 360 mart.

The same behaviours are asserted on both backends. DuckDB runs over both lake backends (``lake``
fixture). Snowflake runs the product's real statements (CREATE STAGE, information_schema, CREATE/ALTER
TABLE, BEGIN, DELETE, COPY INTO ... FILES = (...), COMMIT/ROLLBACK, the mart SQL) through
dagster-snowflake's SnowflakeResource, with ``snowflake.connector.connect`` patched to fakesnow, and
COPY reading the staging Parquet files from the moto S3 server.

fakesnow 0.11.15 gaps met on the way, each worked around in TEST SETUP ONLY (product SQL unchanged):

1. COPY from an S3 stage reads with DuckDB's ``read_parquet('s3://...')``, which needs the httpfs
   extension; DuckDB cannot download it here. Installed from the ``duckdb-extension-httpfs`` wheel's
   file (``duckdb_extension_httpfs/extensions/v<duckdb version>/httpfs.duckdb_extension``) with
   ``INSTALL '<file>'`` into a per-session ``extension_directory`` (not ~/.duckdb), then ``LOAD httpfs``.
2. fakesnow ignores the stage's STORAGE_INTEGRATION (it stores NULL) and has no credentials of its
   own: a DuckDB S3 secret points at the moto endpoint (path-style URLs, USE_SSL false, fake keys).
3. A stage reference with a path, ``@stage/customers/dt=2024-03-31/``, is looked up as a stage
   literally named ``STAGE/CUSTOMERS/DT=2024-03-31/`` ("does not exist"). Snowflake resolves the stage
   and appends the path to its URL; ``fakesnow.copy_into.stage_url_from_var`` is wrapped to do that.
4. ``CREATE STAGE IF NOT EXISTS`` on an existing stage raises "Object ... already exists" (the IF NOT
   EXISTS is dropped). ``fakesnow.transforms.create_stage`` is wrapped so that, with IF NOT EXISTS,
   the statement is a plain (possibly zero-row) insert into fakesnow's stage catalogue.
5. Every SUM/AVG argument is rewritten to ``TRY_CAST(x AS DOUBLE)`` (meant for Snowflake's implicit
   VARCHAR-to-number cast), so SUM over NUMBER(12,2) comes back as a float (7.3499999...), where
   Snowflake returns an exact NUMBER and the charges reconciliation compares exact decimals. The
   product never aggregates VARCHAR, so ``fakesnow.transforms.numeric_agg_implicit_cast`` is replaced
   by a no-op and DuckDB's exact DECIMAL sums stand in for Snowflake's.

Known gaps the product's SQL does not hit, so no workaround was needed:
- COPY options must be upper case (``FILE_FORMAT = (TYPE = 'PARQUET')``): the product's are.
- Without FILES, fakesnow globs only one level below the stage path; the product always lists FILES.
- The stage's own FILE_FORMAT is ignored (COPY would default to CSV): the product's COPY names it.
- COPY results report rows_parsed = rows_loaded and never partial loads; per-file parsing is still
  exercised, and failure handling by a missing file (which fakesnow raises as real Snowflake does).
"""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import duckdb_extension_httpfs
import fakesnow
import fakesnow.copy_into
import fakesnow.transforms
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import snowflake.connector
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlglot import exp

from customer360.contracts import CUSTOMERS as CUSTOMERS_CONTRACT
from customer360.defs.resources.warehouse import WarehouseResource, warehouse_resource_from_env
from customer360.lake.s3 import S3LakeStore
from customer360.lake.store import LakeStore
from customer360.lake.transfer import FOOTER_GUESS
from customer360.steps.load import Reconciliation, load_day
from customer360.steps.mart import MART_SCHEMA, MART_SQL, MART_TABLE, build_customer_360, mart_checks
from customer360.steps.staging import StagingManifest
from customer360.warehouse.base import SchemaEvolutionError, Warehouse, WarehouseLoadError
from customer360.warehouse.duckdb_backend import DuckDBWarehouse
from customer360.warehouse.snowflake_backend import SnowflakeWarehouse

# ---------------------------------------------------------------------------------------------------
# Staging data: the schemas the staging zone writes (declared by the datasets, passed to the loader)
# ---------------------------------------------------------------------------------------------------

LINEAGE = [
    pa.field("_source_file", pa.string()),
    pa.field("_source_line", pa.int64()),
    pa.field("_record_date", pa.date32()),
]
CUSTOMERS = pa.schema(
    [
        pa.field("partition_date", pa.date32(), nullable=False),
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("gender", pa.string()),
        pa.field("senior_citizen", pa.bool_()),
        pa.field("partner", pa.bool_()),
        pa.field("dependents", pa.bool_()),
        pa.field("tenure", pa.int64()),
        pa.field("phone_service", pa.bool_()),
        pa.field("multiple_lines", pa.string()),
        pa.field("internet_service", pa.string()),
        *(
            pa.field(name, pa.string())
            for name in (
                "online_security",
                "online_backup",
                "device_protection",
                "tech_support",
                "streaming_tv",
                "streaming_movies",
            )
        ),
        pa.field("contract", pa.string()),
        pa.field("paperless_billing", pa.bool_()),
        pa.field("payment_method", pa.string()),
        pa.field("monthly_charges", pa.decimal128(12, 2)),
        pa.field("total_charges", pa.decimal128(12, 2)),
        pa.field("churn", pa.bool_()),
        pa.field("plan_id", pa.string()),
        pa.field("email", pa.string()),
        pa.field("msisdn", pa.string()),
        pa.field("updated_at", pa.timestamp("us", tz="UTC")),
        pa.field("plan_name", pa.string()),
        pa.field("plan_monthly_fee", pa.decimal128(12, 2)),
        *LINEAGE,
    ]
)
ACTIVITY = pa.schema(
    [
        pa.field("partition_date", pa.date32(), nullable=False),
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("event_ts", pa.timestamp("us", tz="UTC")),
        pa.field("event_type", pa.string()),
        pa.field("direction", pa.string()),
        pa.field("duration_sec", pa.int64()),
        pa.field("data_mb", pa.decimal128(14, 3)),
        pa.field("cell_id", pa.string()),
        pa.field("roaming", pa.bool_()),
        pa.field("charge_amount", pa.decimal128(14, 4)),  # activity_logs 1.1.0: 4 places
        pa.field("plan_id", pa.string()),
        *LINEAGE,
    ]
)
# The activity table as activity_logs 1.0.0 created it (charges with 2 places), for the widening scenario.
ACTIVITY_2_PLACES = ACTIVITY.set(
    ACTIVITY.get_field_index("charge_amount"), pa.field("charge_amount", pa.decimal128(12, 2))
)
MART_2_PLACES = MART_SCHEMA.set(
    MART_SCHEMA.get_field_index("charges_30d"), pa.field("charges_30d", pa.decimal128(18, 2), nullable=False)
)

DAY = date(2024, 3, 31)


def customer(customer_id: str, day: date, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "partition_date": day,
        "customer_id": customer_id,
        "gender": "Female",
        "senior_citizen": False,
        "partner": True,
        "dependents": False,
        "tenure": 12,
        "phone_service": True,
        "multiple_lines": "no",
        "internet_service": "fiber_optic",
        "online_security": "no",
        "online_backup": "yes",
        "device_protection": "no",
        "tech_support": "no",
        "streaming_tv": "yes",
        "streaming_movies": "yes",
        "contract": "month-to-month",
        "paperless_billing": True,
        "payment_method": "electronic_check",
        "monthly_charges": Decimal("70.35"),
        "total_charges": Decimal("844.20"),
        "churn": False,
        "plan_id": "P-UNL",
        "email": f" {customer_id.upper()}@Example.com",
        "msisdn": f"44770090{customer_id[-1]}000",
        "updated_at": datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
        "plan_name": "Unlimited",
        "plan_monthly_fee": Decimal("30.00"),
        "_source_file": f"archive/customers/{day}/crm.csv",
        "_source_line": 2,
        "_record_date": day,
    }
    row.update(overrides)
    return row


def event(
    event_id: str,
    customer_id: str,
    ts: datetime,
    event_type: str,
    *,
    duration_sec: int = 0,
    data_mb: str = "0",
    roaming: bool = False,
    charge: str = "0",
) -> dict[str, Any]:
    return {
        "partition_date": ts.date(),
        "event_id": event_id,
        "customer_id": customer_id,
        "event_ts": ts,
        "event_type": event_type,
        "direction": "out",
        "duration_sec": duration_sec,
        "data_mb": Decimal(data_mb),
        "cell_id": "CELL-1",
        "roaming": roaming,
        "charge_amount": Decimal(charge),
        "plan_id": "P-UNL",
        "_source_file": f"archive/activity_logs/{ts.date()}/events.jsonl",
        "_source_line": 1,
        "_record_date": ts.date(),
    }


def write_staging(
    lake: LakeStore, tmp_path: Path, namespace: str, day: date, schema: pa.Schema, *parts: list[dict[str, Any]]
) -> list[str]:
    """Write a day's staging files (replacing any already there), as the staging zone would."""
    prefix = f"staging/{namespace}/dt={day.isoformat()}/"
    lake.delete_prefix(prefix)
    keys = []
    for index, rows in enumerate(parts):
        local = tmp_path / f"{namespace}-{day}-{index}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), local)
        key = f"{prefix}part-{index:05d}.parquet"
        lake.put_file(key, local)
        keys.append(key)
    return keys


def count(warehouse: Warehouse, table: str, day: date) -> int:
    sql = {"duckdb": "?", "snowflake": "%s"}[warehouse.dialect]
    return warehouse.query(f"SELECT COUNT(*) FROM {table} WHERE partition_date = {sql}", [day])[0][0]


# ---------------------------------------------------------------------------------------------------
# Scenarios shared by both backends
# ---------------------------------------------------------------------------------------------------


def check_load_replay_correction(warehouse: Warehouse, lake: LakeStore, tmp_path: Path) -> None:
    other_day = DAY - timedelta(days=1)
    other = write_staging(lake, tmp_path, "customers", other_day, CUSTOMERS, [customer("c1", other_day)])
    warehouse.replace_partition("customers", CUSTOMERS, other_day, other)

    keys = write_staging(
        lake,
        tmp_path,
        "customers",
        DAY,
        CUSTOMERS,
        [customer("c1", DAY), customer("c2", DAY), customer("c3", DAY, total_charges=None)],
        [customer("c4", DAY), customer("c5", DAY)],
    )
    first = warehouse.replace_partition("customers", CUSTOMERS, DAY, keys)
    assert (first.table, first.partition_date, first.rows_loaded, first.rows_deleted) == ("customers", DAY, 5, 0)
    assert [(f.key, f.status, f.rows_parsed, f.rows_loaded, f.errors_seen, f.first_error) for f in first.files] == [
        (keys[0], "LOADED", 3, 3, 0, None),
        (keys[1], "LOADED", 2, 2, 0, None),
    ]
    assert count(warehouse, "customers", DAY) == 5

    # A replay (the sensor firing twice, a backfill) replaces the day: same rows, never doubled.
    replay = warehouse.replace_partition("customers", CUSTOMERS, DAY, keys)
    assert (replay.rows_deleted, replay.rows_loaded) == (5, 5)
    assert count(warehouse, "customers", DAY) == 5

    # A correction of the day (fewer, changed rows under the same file name) replaces its rows.
    corrected = write_staging(
        lake, tmp_path, "customers", DAY, CUSTOMERS, [customer("c1", DAY, churn=True), customer("c9", DAY)]
    )
    result = warehouse.replace_partition("customers", CUSTOMERS, DAY, corrected)
    assert (result.rows_deleted, result.rows_loaded) == (5, 2)
    assert sorted(warehouse.query("SELECT customer_id, churn, total_charges FROM customers WHERE churn")) == [
        ("c1", True, Decimal("844.20"))
    ]
    assert count(warehouse, "customers", DAY) == 2
    assert count(warehouse, "customers", other_day) == 1, "another day's rows must be untouched"

    # A day whose staging became empty is emptied in the warehouse too; a table not yet created is fine.
    assert warehouse.delete_partition("customers", DAY) == 2
    assert (count(warehouse, "customers", DAY), count(warehouse, "customers", other_day)) == (0, 1)
    assert warehouse.delete_partition("plans", DAY) == 0


def check_failed_load_keeps_rows(warehouse: Warehouse, lake: LakeStore, tmp_path: Path) -> None:
    keys = write_staging(lake, tmp_path, "customers", DAY, CUSTOMERS, [customer("c1", DAY), customer("c2", DAY)])
    warehouse.replace_partition("customers", CUSTOMERS, DAY, keys)

    # A listed file that is gone fails the load (on Snowflake after the DELETE: rolled back).
    with pytest.raises(WarehouseLoadError, match="part-00042"):
        warehouse.replace_partition("customers", CUSTOMERS, DAY, [*keys, keys[0].replace("part-00000", "part-00042")])
    assert count(warehouse, "customers", DAY) == 2

    # A staging file holding rows of another day would survive that day's replays: refused.
    bad = write_staging(lake, tmp_path, "customers", DAY, CUSTOMERS, [customer("c1", DAY - timedelta(days=3))])
    with pytest.raises(WarehouseLoadError, match="rows of other days"):
        warehouse.replace_partition("customers", CUSTOMERS, DAY, bad)
    assert count(warehouse, "customers", DAY) == 2
    assert count(warehouse, "customers", DAY - timedelta(days=3)) == 0


def check_schema_evolution(warehouse: Warehouse, lake: LakeStore, tmp_path: Path) -> None:
    old_day, new_day = DAY - timedelta(days=1), DAY
    old = write_staging(lake, tmp_path, "customers", old_day, CUSTOMERS, [customer("c1", old_day)])
    assert warehouse.replace_partition("customers", CUSTOMERS, old_day, old).added_columns == []

    evolved = CUSTOMERS.append(pa.field("loyalty_tier", pa.string()))
    new = write_staging(lake, tmp_path, "customers", new_day, evolved, [customer("c1", new_day, loyalty_tier="gold")])
    result = warehouse.replace_partition("customers", evolved, new_day, new)
    assert result.added_columns == ["loyalty_tier"]
    assert sorted(warehouse.query("SELECT partition_date, loyalty_tier FROM customers")) == [
        (old_day, None),
        (new_day, "gold"),
    ]
    assert warehouse.ensure_table("customers", evolved) == [], "a second run adds nothing"

    # Old rows cannot satisfy a new NOT NULL column: refused instead of guessing a default.
    with pytest.raises(SchemaEvolutionError, match="region"):
        warehouse.ensure_table("customers", evolved.append(pa.field("region", pa.string(), nullable=False)))


def check_mart(warehouse: Warehouse, lake: LakeStore, tmp_path: Path) -> None:
    def load(namespace: str, table: str, schema: pa.Schema, day: date, rows: list[dict[str, Any]]) -> None:
        warehouse.replace_partition(table, schema, day, write_staging(lake, tmp_path, namespace, day, schema, rows))

    previous = DAY - timedelta(days=1)
    load("customers", "customers", CUSTOMERS, previous, [customer("c1", previous), customer("c2", previous)])
    load(
        "customers",
        "customers",
        CUSTOMERS,
        DAY,
        [customer("c1", DAY), customer("c2", DAY, churn=True, tenure=40), customer("c3", DAY, email=None)],
    )

    def at(day: int, hour: int = 12, minute: int = 0, second: int = 0, tz: Any = UTC) -> datetime:
        return datetime(2024, 3, day, hour, minute, second, tzinfo=tz)

    events = [
        event("e0", "c1", at(1), "voice", duration_sec=600, charge="5.00"),  # day 31 before: outside
        event("e1", "c1", at(2), "voice", duration_sec=120, roaming=True, charge="1.00"),  # first day in
        event("e2", "c1", at(15, 8), "sms", charge="0.1025"),  # sub-cent: 4 places kept to the mart
        event("e3", "c1", at(15, 9, 30), "data", data_mb="250.500", charge="2.50"),
        event("e4", "c2", at(15, 10), "voice", duration_sec=90, charge="0.75"),
        event("e5", "c2", at(31, 23, 59, 59), "data", data_mb="100.250", roaming=True, charge="3.00"),
        event("e6", "c2", datetime(2024, 4, 1, 0, 0, 1, tzinfo=UTC), "voice", duration_sec=60, charge="9.99"),
    ]
    for day in sorted({e["partition_date"] for e in events}):
        load("activity_logs", "activity", ACTIVITY, day, [e for e in events if e["partition_date"] == day])

    assert build_customer_360(warehouse, DAY) == 3
    assert build_customer_360(warehouse, DAY) == 3, "a rebuild replaces the day"
    usage = ["voice_minutes_30d", "sms_count_30d", "data_mb_30d", "charges_30d", "events_30d"]
    columns = ["customer_id", "churn", "tenure", "plan_name", "plan_monthly_fee", *usage]
    columns += ["roaming_share_30d", "last_activity_ts"]
    mart = {row[0]: row[1:] for row in warehouse.query(f"SELECT {', '.join(columns)} FROM customer_360")}
    c1_usage = (Decimal("2.00"), 1, Decimal("250.500"), Decimal("3.6025"), 3)  # e1 (window's first day), e2, e3
    c2_usage = (Decimal("1.50"), 0, Decimal("100.250"), Decimal("3.75"), 2)  # e4, e5 (mart day, 23:59:59)
    no_usage = (Decimal("0.00"), 0, Decimal("0.000"), Decimal("0.0000"), 0)
    assert mart == {
        "c1": (False, 12, "Unlimited", Decimal("30.00"), *c1_usage, pytest.approx(1 / 3), at(15, 9, 30, tz=None)),
        "c2": (True, 40, "Unlimited", Decimal("30.00"), *c2_usage, 0.5, at(31, 23, 59, 59, tz=None)),
        "c3": (False, 12, "Unlimited", Decimal("30.00"), *no_usage, 0.0, None),
    }

    hashed = dict(
        (r[0], r[1:]) for r in warehouse.query("SELECT customer_id, email_sha256, msisdn_sha256 FROM customer_360")
    )
    assert hashed["c1"] == (
        hashlib.sha256(b"c1@example.com").hexdigest(),  # trimmed and lower-cased before hashing
        hashlib.sha256(b"447700901000").hexdigest(),
    )
    assert hashed["c3"][0] is None
    everything = " ".join(str(v) for row in warehouse.query("SELECT * FROM customer_360") for v in row)
    assert "xample.com" not in everything and "447700901000" not in everything, "no raw personal data in the mart"

    checks = mart_checks(warehouse, DAY)
    assert checks["duplicate_customers"] == 0
    assert checks["mart_charges"] == checks["activity_charges"] == Decimal("7.3525")
    assert checks["charges_reconciled"] and checks["passed"]

    # Activity of a customer missing from the snapshot cannot reach the mart: the check says so.
    load("activity_logs", "activity", ACTIVITY, date(2024, 3, 20), [event("e9", "c9", at(20), "sms", charge="4.00")])
    build_customer_360(warehouse, DAY)
    checks = mart_checks(warehouse, DAY)
    assert (checks["activity_charges"], checks["unmatched_activity_charges"]) == (Decimal("11.3525"), Decimal("4.00"))
    assert not checks["charges_reconciled"] and not checks["passed"]


def check_decimal_widening(warehouse: Warehouse, lake: LakeStore, tmp_path: Path) -> None:
    """A warehouse built under activity_logs 1.0.0 (charges with 2 places) takes the 4-place charges of
    1.1.0: the column is widened in place, old rows keep their exact value, nothing is ever rounded."""
    old_day = DAY - timedelta(days=1)
    at_old, at_new = datetime(2024, 3, 30, 12, tzinfo=UTC), datetime(2024, 3, 31, 12, tzinfo=UTC)
    old = write_staging(
        lake, tmp_path, "activity_logs", old_day, ACTIVITY_2_PLACES, [event("e1", "c1", at_old, "sms", charge="1.25")]
    )
    warehouse.replace_partition("activity", ACTIVITY_2_PLACES, old_day, old)
    assert warehouse.ensure_table(MART_TABLE, MART_2_PLACES) == []

    new = write_staging(
        lake, tmp_path, "activity_logs", DAY, ACTIVITY, [event("e2", "c1", at_new, "data", charge="0.0125")]
    )
    assert warehouse.replace_partition("activity", ACTIVITY, DAY, new).added_columns == ["charge_amount"]
    assert sorted(warehouse.query("SELECT event_id, charge_amount FROM activity")) == [
        ("e1", Decimal("1.2500")),
        ("e2", Decimal("0.0125")),
    ]
    assert warehouse.ensure_table("activity", ACTIVITY) == [], "a second run widens nothing"
    assert warehouse.ensure_table(MART_TABLE, MART_SCHEMA) == ["charges_30d"]

    # Back to 2 places would round 0.0125: refused, the table untouched.
    with pytest.raises(SchemaEvolutionError, match="charge_amount"):
        warehouse.ensure_table("activity", ACTIVITY_2_PLACES)
    assert sorted(warehouse.query("SELECT charge_amount FROM activity")) == [(Decimal("0.0125"),), (Decimal("1.2500"),)]


# ---------------------------------------------------------------------------------------------------
# DuckDB (over both lake backends)
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def duck(lake: LakeStore, tmp_path: Path) -> DuckDBWarehouse:
    return DuckDBWarehouse(str(tmp_path / "warehouse" / "c360.duckdb"), lake)


def test_duckdb_load_replay_and_correction(duck: DuckDBWarehouse, lake: LakeStore, tmp_path: Path) -> None:
    check_load_replay_correction(duck, lake, tmp_path)


def test_duckdb_failed_load_keeps_previous_rows(duck: DuckDBWarehouse, lake: LakeStore, tmp_path: Path) -> None:
    check_failed_load_keeps_rows(duck, lake, tmp_path)


def test_duckdb_schema_evolution(duck: DuckDBWarehouse, lake: LakeStore, tmp_path: Path) -> None:
    check_schema_evolution(duck, lake, tmp_path)


def test_duckdb_widens_decimal_columns_exactly(duck: DuckDBWarehouse, lake: LakeStore, tmp_path: Path) -> None:
    check_decimal_widening(duck, lake, tmp_path)


def test_duckdb_customer_360_mart(duck: DuckDBWarehouse, lake: LakeStore, tmp_path: Path) -> None:
    check_mart(duck, lake, tmp_path)


def test_mart_hashes_every_field_the_contract_marks_personal(
    duck: DuckDBWarehouse, lake: LakeStore, tmp_path: Path
) -> None:
    """A customers contract that also marks ``gender`` (a state) and ``tenure`` (an integer) personal: the
    mart carries their hashes beside email's and msisdn's, and neither value in the clear."""
    variant = dataclasses.replace(
        CUSTOMERS_CONTRACT,
        fields=tuple(
            dataclasses.replace(f, personal=True) if f.name in ("gender", "tenure") else f
            for f in CUSTOMERS_CONTRACT.fields
        ),
    )
    rows = [customer("c1", DAY, gender="Female", tenure=12), customer("c2", DAY, gender="Male", tenure=40)]
    keys = write_staging(lake, tmp_path, "customers", DAY, CUSTOMERS, rows)
    duck.replace_partition("customers", CUSTOMERS, DAY, keys)
    duck.ensure_table("activity", ACTIVITY)

    assert build_customer_360(duck, DAY, variant) == 2
    columns = [
        row[0]
        for row in duck.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'customer_360' "
            "ORDER BY ordinal_position"
        )
    ]
    hashed = ["gender_sha256", "tenure_sha256", "email_sha256", "msisdn_sha256"]
    assert "gender" not in columns and "tenure" not in columns
    assert columns[columns.index("churn") + 1 : columns.index("churn") + 5] == hashed
    assert duck.query(f"SELECT customer_id, {', '.join(hashed)} FROM customer_360 ORDER BY customer_id") == [
        (
            "c1",
            hashlib.sha256(b"Female").hexdigest(),
            hashlib.sha256(b"12").hexdigest(),
            hashlib.sha256(b"c1@example.com").hexdigest(),
            hashlib.sha256(b"447700901000").hexdigest(),
        ),
        (
            "c2",
            hashlib.sha256(b"Male").hexdigest(),
            hashlib.sha256(b"40").hexdigest(),
            hashlib.sha256(b"c2@example.com").hexdigest(),
            hashlib.sha256(b"447700902000").hexdigest(),
        ),
    ]
    values = {v for row in duck.query("SELECT * FROM customer_360") for v in row}
    assert not values & {"Female", "Male", 12, 40}, "no value of a personal field in the clear"
    # Today's contract is untouched by the variant: its mart keeps gender and tenure in the clear.
    assert {"gender", "tenure"} <= set(MART_SCHEMA.names) and "gender_sha256" not in MART_SCHEMA.names


def test_load_step_reconciles_footers_manifest_and_copy(duck: DuckDBWarehouse, lake: LakeStore, tmp_path: Path) -> None:
    """The load step reads each staging file's schema and row count from its footer and returns every count
    of the day's rows: the footers', the manifest's, COPY's and the table's (the asset's check compares them)."""
    keys = write_staging(
        lake, tmp_path, "customers", DAY, CUSTOMERS, [customer("c1", DAY), customer("c2", DAY)], [customer("c3", DAY)]
    )
    manifest = StagingManifest("customers", DAY, keys, rows=3, built_at=datetime.now(UTC).isoformat())
    loaded = load_day(lake, duck, CUSTOMERS_CONTRACT, DAY, manifest)
    assert (loaded.schema, loaded.files) == (CUSTOMERS, 2)
    assert loaded.reconciliation == Reconciliation(
        staging_rows=3, staging_manifest_rows=3, rows_loaded_per_copy=3, rows_in_table_for_day=3, copy_errors=False
    )
    assert count(duck, "customers", DAY) == 3

    # A manifest that disagrees with the files it lists: the day is loaded, and the counts show the disagreement.
    short = StagingManifest("customers", DAY, keys, rows=2, built_at=datetime.now(UTC).isoformat())
    reloaded = load_day(lake, duck, CUSTOMERS_CONTRACT, DAY, short)
    assert reloaded.rows_deleted == 3
    assert reloaded.reconciliation == Reconciliation(
        staging_rows=3, staging_manifest_rows=2, rows_loaded_per_copy=3, rows_in_table_for_day=3, copy_errors=False
    )

    # A day staging built empty empties the warehouse's day.
    empty = StagingManifest("customers", DAY, [], rows=0, built_at=datetime.now(UTC).isoformat())
    emptied = load_day(lake, duck, CUSTOMERS_CONTRACT, DAY, empty)
    assert (emptied.rows_deleted, emptied.result, count(duck, "customers", DAY)) == (3, None, 0)


def test_load_step_reads_staging_footers_not_whole_files(s3_lake: S3LakeStore, tmp_path: Path) -> None:
    """On S3, the load fetches each staging file whole once (the warehouse's own read, DuckDB here): the
    schema and row counts come from one ranged read of each file's end. The S3 client's requests to moto
    are observed through botocore's own event hook (nothing of ours is replaced)."""
    duck = DuckDBWarehouse(str(tmp_path / "c360.duckdb"), s3_lake)
    # Distinct, incompressible emails: files several times the size of a footer read.
    rows = [customer(f"c{i}", DAY, email=f"{hashlib.sha256(str(i).encode()).hexdigest()}@x.com") for i in range(6000)]
    keys = write_staging(s3_lake, tmp_path, "customers", DAY, CUSTOMERS, rows[:3000], rows[3000:])
    assert all(s3_lake.head(key).size > 2 * FOOTER_GUESS for key in keys)  # type: ignore[union-attr]
    manifest = StagingManifest("customers", DAY, keys, rows=6000, built_at=datetime.now(UTC).isoformat())
    gets: list[tuple[str, str | None]] = []

    def observe(params: dict[str, Any], **_: Any) -> None:
        gets.append((params["Key"].rpartition("/")[2], params.get("Range")))

    s3_lake.client.meta.events.register("provide-client-params.s3.GetObject", observe)
    loaded = load_day(s3_lake, duck, CUSTOMERS_CONTRACT, DAY, manifest)
    assert loaded.reconciliation is not None and loaded.reconciliation.rows_in_table_for_day == 6000
    names = [key.rpartition("/")[2] for key in keys]
    whole = sorted(name for name, byte_range in gets if byte_range is None)
    ranged = sorted((name, byte_range) for name, byte_range in gets if byte_range is not None)
    assert whole == names, "each staging file is fetched whole exactly once: by the warehouse's load"
    assert ranged == [(name, f"bytes=-{FOOTER_GUESS}") for name in names], "footers: one read of each file's end"


def test_duckdb_types_from_arrow_and_utc_timestamps(local_lake: LakeStore, tmp_path: Path) -> None:
    duck = DuckDBWarehouse(str(tmp_path / "c360.duckdb"), local_lake)
    keys = write_staging(local_lake, tmp_path, "customers", DAY, CUSTOMERS, [customer("c1", DAY)])
    duck.replace_partition("customers", CUSTOMERS, DAY, keys)
    types = dict(
        duck.query("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'customers'")
    )
    assert (types["monthly_charges"], types["tenure"], types["churn"], types["updated_at"]) == (
        "DECIMAL(12,2)",
        "BIGINT",
        "BOOLEAN",
        "TIMESTAMP",
    )
    # Stored as UTC wall-clock time whatever the machine's zone (the load pins the session to UTC).
    assert duck.query("SELECT updated_at FROM customers") == [(datetime(2024, 3, 1, 9, 30),)]


def test_duckdb_holds_no_lock_between_calls(local_lake: LakeStore, tmp_path: Path) -> None:
    duck = DuckDBWarehouse(str(tmp_path / "c360.duckdb"), local_lake)
    keys = write_staging(local_lake, tmp_path, "customers", DAY, CUSTOMERS, [customer("c1", DAY)])
    duck.replace_partition("customers", CUSTOMERS, DAY, keys)
    # Another process (another run) can open the file for writing while this warehouse object lives.
    script = (
        f"import duckdb; print(duckdb.connect({duck.path!r}).execute('SELECT count(*) FROM customers').fetchone()[0])"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.strip() == "1"


def test_refuses_keys_outside_the_partition(local_lake: LakeStore, tmp_path: Path) -> None:
    duck = DuckDBWarehouse(str(tmp_path / "c360.duckdb"), local_lake)
    with pytest.raises(ValueError, match="not in partition"):
        duck.replace_partition("customers", CUSTOMERS, DAY, ["staging/customers/dt=2024-03-30/part-00000.parquet"])
    with pytest.raises(ValueError, match="refusing to empty"):
        duck.replace_partition("customers", CUSTOMERS, DAY, [])
    with pytest.raises(ValueError, match="not a staging file"):
        duck.replace_partition("customers", CUSTOMERS, DAY, ["clean/customers/dt=2024-03-31/part-00000.parquet"])


# ---------------------------------------------------------------------------------------------------
# The warehouse resource
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _clear_warehouse_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "CUSTOMER360_WAREHOUSE",
        "CUSTOMER360_DUCKDB_PATH",
        "CUSTOMER360_SNOWFLAKE_STAGE",
        "CUSTOMER360_SNOWFLAKE_STORAGE_INTEGRATION",
        "SNOWFLAKE_ACCOUNT",
        "SNOWFLAKE_USER",
        "SNOWFLAKE_ROLE",
        "SNOWFLAKE_WAREHOUSE",
        "SNOWFLAKE_DATABASE",
        "SNOWFLAKE_SCHEMA",
        "SNOWFLAKE_PRIVATE_KEY",
        "SNOWFLAKE_PRIVATE_KEY_PATH",
        "SNOWFLAKE_PRIVATE_KEY_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)


def _set_snowflake_env(monkeypatch: pytest.MonkeyPatch, private_key_pem: str) -> None:
    _clear_warehouse_env(monkeypatch)
    for name, value in {
        "CUSTOMER360_WAREHOUSE": "snowflake",
        "SNOWFLAKE_ACCOUNT": "acme-c360",
        "SNOWFLAKE_USER": "CUSTOMER360_LOADER",
        "SNOWFLAKE_ROLE": "CUSTOMER360_LOADER",
        "SNOWFLAKE_WAREHOUSE": "LOAD_WH",
        "SNOWFLAKE_DATABASE": "CUSTOMER360",
        "SNOWFLAKE_SCHEMA": "WAREHOUSE",
        "SNOWFLAKE_PRIVATE_KEY": private_key_pem,
        "CUSTOMER360_SNOWFLAKE_STAGE": "c360_staging",
        "CUSTOMER360_SNOWFLAKE_STORAGE_INTEGRATION": "c360_lake_s3",
    }.items():
        monkeypatch.setenv(name, value)


def test_resource_defaults_to_embedded_duckdb(monkeypatch: pytest.MonkeyPatch, local_lake: LakeStore) -> None:
    _clear_warehouse_env(monkeypatch)
    warehouse = warehouse_resource_from_env().open(local_lake)
    assert isinstance(warehouse, DuckDBWarehouse)
    # Made absolute when the definitions load: run workers need not share the webserver's directory.
    assert warehouse.path == str(Path.cwd() / ".lake" / "warehouse.duckdb")
    monkeypatch.setenv("CUSTOMER360_DUCKDB_PATH", "/data/c360.duckdb")
    assert warehouse_resource_from_env().open(local_lake).path == "/data/c360.duckdb"  # type: ignore[attr-defined]


def test_resource_snowflake_from_env(
    monkeypatch: pytest.MonkeyPatch, private_key_pem: str, s3_lake: S3LakeStore, local_lake: LakeStore
) -> None:
    _set_snowflake_env(monkeypatch, private_key_pem)
    resource = warehouse_resource_from_env()
    # Secrets stay EnvVars in the definitions (the UI shows the variable name, never the key).
    assert "BEGIN PRIVATE KEY" not in repr(resource)
    warehouse = resource.open(s3_lake)
    assert isinstance(warehouse, SnowflakeWarehouse)
    assert warehouse.create_stage_sql() == (
        f"CREATE STAGE IF NOT EXISTS c360_staging URL = 's3://{s3_lake.bucket}/staging/' "
        "STORAGE_INTEGRATION = c360_lake_s3 FILE_FORMAT = (TYPE = 'PARQUET')"
    )
    assert warehouse.copy_partition_sql(
        "customers", "customers", DAY, ["part-00000.parquet", "part-00001.parquet"]
    ) == (
        "COPY INTO customers FROM @c360_staging/customers/dt=2024-03-31/ "
        "FILES = ('part-00000.parquet', 'part-00001.parquet') FILE_FORMAT = (TYPE = 'PARQUET') "
        "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE FORCE = TRUE"
    )
    with pytest.raises(ValueError, match="reads the lake from S3"):
        resource.open(local_lake)

    monkeypatch.delenv("SNOWFLAKE_PRIVATE_KEY")
    with pytest.raises(ValueError, match="SNOWFLAKE_PRIVATE_KEY"):
        warehouse_resource_from_env()
    monkeypatch.setenv("CUSTOMER360_WAREHOUSE", "oracle")
    with pytest.raises(ValueError, match="oracle"):
        warehouse_resource_from_env()


def test_resource_rejects_unknown_backend(local_lake: LakeStore) -> None:
    with pytest.raises(ValueError, match="unknown warehouse backend"):
        WarehouseResource(backend="bigquery").open(local_lake)


# ---------------------------------------------------------------------------------------------------
# Snowflake: the product's statements on fakesnow, COPY reading staging files from moto S3
# ---------------------------------------------------------------------------------------------------

HTTPFS_FILE = (
    Path(duckdb_extension_httpfs.__file__).parent / "extensions" / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
)


def _patch_fakesnow_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Teach fakesnow three Snowflake behaviours the product relies on (gaps 3 to 5 above)."""
    stage_url = fakesnow.copy_into.stage_url_from_var

    def stage_url_with_path(var: str, duck_conn: Any, database: str | None, schema: str | None) -> str:
        name, _, path = var.partition("/")
        return stage_url(name, duck_conn, database, schema).rstrip("/") + "/" + path

    monkeypatch.setattr(fakesnow.copy_into, "stage_url_from_var", stage_url_with_path)

    create_stage = fakesnow.transforms.create_stage

    def create_stage_if_not_exists(expression: exp.Expression, database: str | None, schema: str | None) -> Any:
        transformed = create_stage(expression, database, schema)
        if transformed is not expression and expression.args.get("exists"):
            # Without the marker the cursor runs the (zero-row when present) insert and does not raise.
            transformed.args.pop("create_stage_name", None)
        return transformed

    monkeypatch.setattr(fakesnow.transforms, "create_stage", create_stage_if_not_exists)

    def keep_numeric_aggregates(expression: exp.Expression) -> exp.Expression:
        return expression

    monkeypatch.setattr(fakesnow.transforms, "numeric_agg_implicit_cast", keep_numeric_aggregates)


@pytest.fixture(scope="session")
def duckdb_extension_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("duckdb-extensions"))


@pytest.fixture
def fake_snowflake(moto_server: str, duckdb_extension_dir: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """snowflake.connector.connect → fakesnow, whose DuckDB reads s3:// from the moto server."""
    assert HTTPFS_FILE.exists(), f"httpfs extension file not found in the wheel: {HTTPFS_FILE}"
    _patch_fakesnow_gaps(monkeypatch)
    endpoint = moto_server.removeprefix("http://")
    with fakesnow.patch():
        # Every fakesnow connection is a cursor on one DuckDB database: extensions and secrets set
        # here are seen by the connections the product opens through SnowflakeResource.
        setup = snowflake.connector.connect(database="CUSTOMER360", schema="WAREHOUSE")
        duck_conn = setup._duck_conn  # type: ignore[attr-defined]
        duck_conn.execute(f"SET extension_directory = '{duckdb_extension_dir}'")
        duck_conn.execute(f"INSTALL '{HTTPFS_FILE}'")
        duck_conn.execute("LOAD httpfs")
        duck_conn.execute(
            "CREATE SECRET moto_s3 (TYPE s3, KEY_ID 'testing', SECRET 'testing', REGION 'us-east-1', "
            f"ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false)"
        )
        yield


@pytest.fixture
def snow(
    fake_snowflake: None, s3_lake: S3LakeStore, monkeypatch: pytest.MonkeyPatch, private_key_pem: str
) -> SnowflakeWarehouse:
    """The Snowflake warehouse exactly as the code location builds it: from the environment."""
    _set_snowflake_env(monkeypatch, private_key_pem)
    warehouse = warehouse_resource_from_env().open(s3_lake)
    assert isinstance(warehouse, SnowflakeWarehouse)
    return warehouse


def test_snowflake_load_replay_and_correction(snow: SnowflakeWarehouse, s3_lake: S3LakeStore, tmp_path: Path) -> None:
    check_load_replay_correction(snow, s3_lake, tmp_path)
    # Tables come from the Arrow schema with Snowflake types; timestamps are TIMESTAMP_NTZ (UTC).
    types = dict(
        snow.query("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s", ["CUSTOMERS"])
    )
    assert (types["UPDATED_AT"], types["MONTHLY_CHARGES"], types["CHURN"]) == ("TIMESTAMP_NTZ", "NUMBER", "BOOLEAN")
    assert snow.query("SELECT DISTINCT updated_at FROM customers") == [(datetime(2024, 3, 1, 9, 30),)]


def test_snowflake_failed_copy_keeps_previous_rows(
    snow: SnowflakeWarehouse, s3_lake: S3LakeStore, tmp_path: Path
) -> None:
    check_failed_load_keeps_rows(snow, s3_lake, tmp_path)


def test_snowflake_schema_evolution(snow: SnowflakeWarehouse, s3_lake: S3LakeStore, tmp_path: Path) -> None:
    check_schema_evolution(snow, s3_lake, tmp_path)


def test_snowflake_widens_decimal_columns_exactly(
    snow: SnowflakeWarehouse, s3_lake: S3LakeStore, tmp_path: Path
) -> None:
    check_decimal_widening(snow, s3_lake, tmp_path)


def test_snowflake_completes_a_widening_cut_short(
    snow: SnowflakeWarehouse, s3_lake: S3LakeStore, tmp_path: Path
) -> None:
    """Snowflake widens through a scratch column, one auto-committed DDL at a time; a run that died
    after dropping the old column left every value in the scratch column: the next run finishes."""
    old_day = DAY - timedelta(days=1)
    at_old = datetime(2024, 3, 30, 12, tzinfo=UTC)
    old = write_staging(
        s3_lake,
        tmp_path,
        "activity_logs",
        old_day,
        ACTIVITY_2_PLACES,
        [event("e1", "c1", at_old, "sms", charge="1.25")],
    )
    snow.replace_partition("activity", ACTIVITY_2_PLACES, old_day, old)
    snow.execute_script(
        "ALTER TABLE activity ADD COLUMN charge_amount__widening NUMBER(14,4);"
        "UPDATE activity SET charge_amount__widening = charge_amount;"
        "ALTER TABLE activity DROP COLUMN charge_amount"
    )

    assert snow.ensure_table("activity", ACTIVITY) == []
    assert snow.query("SELECT event_id, charge_amount FROM activity") == [("e1", Decimal("1.2500"))]
    assert "CHARGE_AMOUNT__WIDENING" not in str(snow.query("SELECT column_name FROM information_schema.columns"))


def test_snowflake_customer_360_mart(snow: SnowflakeWarehouse, s3_lake: S3LakeStore, tmp_path: Path) -> None:
    assert "SHA2(LOWER(TRIM(c.email)), 256)" in MART_SQL["snowflake"]["insert"]
    assert "sha256(LOWER(TRIM(c.email)))" in MART_SQL["duckdb"]["insert"]
    check_mart(snow, s3_lake, tmp_path)
