"""The Customer 360 mart: one row per customer per day, the product this pipeline is named for.

Each ``mart_date`` row joins the customer snapshot of that day (profile, current plan and fee, tenure,
churn flag) with usage over the trailing 30 days ending at ``mart_date`` (partitions mart_date-29 ..
mart_date of ``activity``). Like the loads, a day is rebuilt by delete + insert in one transaction, so
a rebuild after a corrected staging day replaces the mart day instead of adding to it.

Personal data: no column the customers contract marks ``personal`` (``Field.personal``; today ``email``
and ``msisdn``) reaches the mart; it carries ``<column>_sha256``, the SHA-256 (hex) of the trimmed value
(lower-cased too for a lower-cased kind such as email), so marts can still be joined on them without
exposing the raw values. A field newly marked personal is hashed in the mart the moment it is declared,
a profile column among them included (``mart_schema``, ``mart_sql``).

Why one template rendered per dialect: the statement is identical on DuckDB and Snowflake except for
the bind placeholder syntax and the hash function (DuckDB ``sha256(x)``, Snowflake ``SHA2(x, 256)``).
``MART_SQL`` holds the rendered statements side by side, so each dialect's SQL can be read in full.
"""

from __future__ import annotations

import textwrap
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa

from customer360.contracts import CUSTOMERS, Dataset, Field, Kind
from customer360.contracts.schemas import personal_columns, staging_schema
from customer360.warehouse.base import Dialect, Warehouse

MART_TABLE = "customer_360"
WINDOW_DAYS = 30

# The customers snapshot's columns the mart carries, in mart order; one the contract marks personal is
# carried hashed instead (with the other hashed columns, after these).
PROFILE_COLUMNS = (
    "gender",
    "senior_citizen",
    "partner",
    "dependents",
    "contract",
    "payment_method",
    "internet_service",
    "plan_id",
    "plan_name",
    "plan_monthly_fee",
    "tenure",
    "churn",
)
HASH_SUFFIX = "_sha256"

# The usage columns, computed in the warehouse over the window.
USAGE_FIELDS = (
    pa.field("voice_minutes_30d", pa.decimal128(18, 2), nullable=False),
    pa.field("sms_count_30d", pa.int64(), nullable=False),
    pa.field("data_mb_30d", pa.decimal128(18, 3), nullable=False),
    # The exact sum of 4-place charges (activity_logs 1.1.0): never rounded to cents here.
    pa.field("charges_30d", pa.decimal128(20, 4), nullable=False),
    pa.field("events_30d", pa.int64(), nullable=False),
    pa.field("roaming_share_30d", pa.float64(), nullable=False),
    pa.field("last_activity_ts", pa.timestamp("us", tz="UTC")),
)

# What each column holds, for the UI's column schema (the mart is the table analysts read).
_DESCRIPTIONS = {
    "mart_date": "the day this row describes (the partition)",
    "customer_id": "the CRM's customer id",
    "gender": "from the customers snapshot of mart_date",
    "senior_citizen": "from the customers snapshot of mart_date",
    "partner": "from the customers snapshot of mart_date",
    "dependents": "from the customers snapshot of mart_date",
    "contract": "contract type, from the customers snapshot",
    "payment_method": "from the customers snapshot",
    "internet_service": "from the customers snapshot",
    "plan_id": "the customer's current plan",
    "plan_name": "the plan's name, from the plans snapshot of mart_date",
    "plan_monthly_fee": "the plan's monthly fee, from the plans snapshot of mart_date",
    "tenure": "months as a customer",
    "churn": "the CRM's churn flag",
    "voice_minutes_30d": "voice minutes over the 30 days ending at mart_date",
    "sms_count_30d": "SMS over the 30 days ending at mart_date",
    "data_mb_30d": "data MB over the 30 days ending at mart_date",
    "charges_30d": "charges over the 30 days ending at mart_date (exact 4-place sum)",
    "events_30d": "activity events over the 30 days ending at mart_date",
    "roaming_share_30d": "share of those events made while roaming (0 to 1)",
    "last_activity_ts": "the newest activity event up to mart_date (UTC)",
}


def _clear_columns(customers: Dataset) -> list[str]:
    personal = personal_columns(customers)
    return [name for name in PROFILE_COLUMNS if name not in personal]


def mart_schema(customers: Dataset = CUSTOMERS) -> pa.Schema:
    """The mart's columns for a customers contract; the backends map them to their own types."""
    staged = staging_schema(customers)
    return pa.schema(
        [
            pa.field("mart_date", pa.date32(), nullable=False),
            staged.field("customer_id"),
            *(staged.field(name) for name in _clear_columns(customers)),
            *(pa.field(name + HASH_SUFFIX, pa.string()) for name in personal_columns(customers)),
            *USAGE_FIELDS,
        ]
    )


def _hashed_description(name: str, field: Field) -> str:
    if field.kind is Kind.PHONE:
        return "SHA-256 (hex) of the trimmed E.164 phone number; pseudonymous, not anonymous"
    lowered = ", lower-cased" if field.kind is Kind.LOWER_TEXT else ""
    return f"SHA-256 (hex) of the trimmed{lowered} {name}; the {name} itself never reaches the mart"


def mart_descriptions(customers: Dataset = CUSTOMERS) -> dict[str, str]:
    """What each mart column holds, for the UI's column schema."""
    hashed = {name + HASH_SUFFIX: _hashed_description(name, f) for name, f in personal_columns(customers).items()}
    return {name: _DESCRIPTIONS.get(name) or hashed[name] for name in mart_schema(customers).names}


MART_SCHEMA = mart_schema()
MART_DESCRIPTIONS = mart_descriptions()

# {p_name} is a bind placeholder, {customer_columns} the mart's columns from the customers snapshot
# (profile, then personal data hashed); see _render.
_DELETE_TEMPLATE = "DELETE FROM customer_360 WHERE mart_date = {p_mart_date}"

_INSERT_TEMPLATE = """
INSERT INTO customer_360 (
{columns}
)
SELECT
    c.partition_date,
    c.customer_id,
{customer_columns}
    COALESCE(u.voice_minutes, 0),
    COALESCE(u.sms_count, 0),
    COALESCE(u.data_mb, 0),
    COALESCE(u.charges, 0),
    COALESCE(u.events, 0),
    CASE WHEN COALESCE(u.events, 0) = 0 THEN 0 ELSE CAST(u.roaming_events AS DOUBLE) / u.events END,
    u.last_activity_ts
FROM customers AS c
LEFT JOIN (
    SELECT
        customer_id,
        ROUND(SUM(CASE WHEN event_type = 'voice' THEN duration_sec ELSE 0 END) / 60.0, 2) AS voice_minutes,
        SUM(CASE WHEN event_type = 'sms' THEN 1 ELSE 0 END) AS sms_count,
        SUM(CASE WHEN event_type = 'data' THEN COALESCE(data_mb, 0) ELSE 0 END) AS data_mb,
        SUM(COALESCE(charge_amount, 0)) AS charges,
        COUNT(*) AS events,
        SUM(CASE WHEN roaming THEN 1 ELSE 0 END) AS roaming_events,
        MAX(event_ts) AS last_activity_ts
    FROM activity
    WHERE partition_date BETWEEN {p_window_start} AND {p_mart_date}
    GROUP BY customer_id
) AS u ON u.customer_id = c.customer_id
WHERE c.partition_date = {p_mart_date}
""".strip()

_COUNT_TEMPLATE = "SELECT COUNT(*) FROM customer_360 WHERE mart_date = {p_mart_date}"

# Checks: one row per customer, and the mart's charges reconcile with the activity table's window.
_CHECK_MART_TEMPLATE = (
    "SELECT COUNT(*), COUNT(DISTINCT customer_id), COALESCE(SUM(charges_30d), 0) "
    "FROM customer_360 WHERE mart_date = {p_mart_date}"
)
_CHECK_SNAPSHOT_TEMPLATE = "SELECT COUNT(DISTINCT customer_id) FROM customers WHERE partition_date = {p_mart_date}"
_CHECK_ACTIVITY_TEMPLATE = """
SELECT
    COALESCE(SUM(a.charge_amount), 0),
    COALESCE(SUM(CASE WHEN c.customer_id IS NULL THEN a.charge_amount ELSE 0 END), 0)
FROM activity AS a
LEFT JOIN (
    SELECT DISTINCT customer_id FROM customers WHERE partition_date = {p_mart_date}
) AS c ON c.customer_id = a.customer_id
WHERE a.partition_date BETWEEN {p_window_start} AND {p_mart_date}
""".strip()

_DIALECT_PARTS: dict[Dialect, dict[str, str]] = {
    "duckdb": {"param": "CAST(${name} AS DATE)", "sha256": "sha256({expr})"},
    "snowflake": {"param": "CAST(%({name})s AS DATE)", "sha256": "SHA2({expr}, 256)"},
}


def _hash_input(name: str, field: Field) -> str:
    """The text a personal column is hashed from: trimmed (and lower-cased for a lower-cased kind)."""
    if field.kind is Kind.LOWER_TEXT:
        return f"LOWER(TRIM(c.{name}))"
    if pa.types.is_string(field.arrow_type):
        return f"TRIM(c.{name})"
    return f"TRIM(CAST(c.{name} AS VARCHAR))"


def _render(template: str, dialect: Dialect, customers: Dataset) -> str:
    parts = _DIALECT_PARTS[dialect]
    schema = mart_schema(customers)
    hashed = [parts["sha256"].format(expr=_hash_input(n, f)) for n, f in personal_columns(customers).items()]
    values = [f"c.{name}" for name in _clear_columns(customers)] + hashed
    return template.format(
        p_mart_date=parts["param"].format(name="mart_date"),
        p_window_start=parts["param"].format(name="window_start"),
        columns=textwrap.fill(", ".join(schema.names), width=105, initial_indent="    ", subsequent_indent="    "),
        customer_columns="\n".join(f"    {value}," for value in values),
    )


_TEMPLATES = {
    "delete": _DELETE_TEMPLATE,
    "insert": _INSERT_TEMPLATE,
    "count": _COUNT_TEMPLATE,
    "check_mart": _CHECK_MART_TEMPLATE,
    "check_snapshot": _CHECK_SNAPSHOT_TEMPLATE,
    "check_activity": _CHECK_ACTIVITY_TEMPLATE,
}


def mart_sql(customers: Dataset = CUSTOMERS) -> dict[Dialect, dict[str, str]]:
    """Every mart statement, per dialect, as issued for a customers contract."""
    return {
        dialect: {name: _render(template, dialect, customers) for name, template in _TEMPLATES.items()}
        for dialect in ("duckdb", "snowflake")
    }


# Every mart statement, per dialect, as issued (today's customers contract).
MART_SQL: dict[Dialect, dict[str, str]] = mart_sql()


def _window(mart_date: date) -> dict[str, date]:
    return {"mart_date": mart_date, "window_start": mart_date - timedelta(days=WINDOW_DAYS - 1)}


def build_customer_360(warehouse: Warehouse, mart_date: date, customers: Dataset = CUSTOMERS) -> int:
    """Rebuild the mart rows of ``mart_date``; returns how many rows the day now has."""
    sql = mart_sql(customers)[warehouse.dialect]
    warehouse.ensure_table(MART_TABLE, mart_schema(customers))
    window = _window(mart_date)
    results = warehouse.execute_in_transaction(
        [
            (sql["delete"], {"mart_date": mart_date}),
            (sql["insert"], window),
            (sql["count"], {"mart_date": mart_date}),
        ]
    )
    return int(results[-1][0][0])


def snapshot_customers(warehouse: Warehouse, mart_date: date) -> int:
    """Customers in the warehouse's customers snapshot of ``mart_date``."""
    return int(warehouse.query(MART_SQL[warehouse.dialect]["check_snapshot"], {"mart_date": mart_date})[0][0])


def mart_checks(warehouse: Warehouse, mart_date: date) -> dict[str, Any]:
    """The mart day's invariants: one row per customer, and charges reconcile with activity.

    ``unmatched_activity_charges`` explains a failed reconciliation: charges of customers absent from
    the day's snapshot cannot appear in the mart.
    """
    sql = MART_SQL[warehouse.dialect]
    window = _window(mart_date)
    mart_rows, mart_customers, mart_charges = warehouse.query(sql["check_mart"], {"mart_date": mart_date})[0]
    (snapshot_customers,) = warehouse.query(sql["check_snapshot"], {"mart_date": mart_date})[0]
    activity_charges, unmatched_charges = warehouse.query(sql["check_activity"], window)[0]
    mart_charges, activity_charges = Decimal(mart_charges), Decimal(activity_charges)
    duplicates = int(mart_rows) - int(mart_customers)
    reconciled = mart_charges == activity_charges
    return {
        "mart_date": mart_date,
        "mart_rows": int(mart_rows),
        "snapshot_customers": int(snapshot_customers),
        "duplicate_customers": duplicates,
        "missing_customers": int(snapshot_customers) - int(mart_customers),
        "mart_charges": mart_charges,
        "activity_charges": activity_charges,
        "unmatched_activity_charges": Decimal(unmatched_charges),
        "charges_reconciled": reconciled,
        "passed": duplicates == 0 and reconciled and int(snapshot_customers) == int(mart_customers),
    }
