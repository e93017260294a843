"""The product catalog feed (``plans``): a full catalog once, then a small change file.

Why hand-written rows instead of random ones: a catalog is a handful of products that people
recognise, and the interesting cases are specific rather than statistical: unlimited allowances
(blank), a retired plan with ``effective_to``, a plan name with a comma (forces RFC 4180 quoting),
and later a price change plus a new plan. The dates are relative to the demo's first day so the
catalog is valid whatever start date the caller picks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pyarrow as pa

from customer360_generator import text

PLAN_FIELDS: tuple[str, ...] = (
    "plan_id",
    "plan_name",
    "contract",
    "monthly_fee",
    "data_allowance_gb",
    "voice_minutes",
    "sms_allowance",
    "effective_from",
    "effective_to",
)


@dataclass(frozen=True)
class Plan:
    plan_id: str
    plan_name: str
    contract: str
    monthly_fee: str
    data_allowance_gb: str | None  # None = unlimited (blank in the file)
    voice_minutes: int | None
    sms_allowance: int | None
    effective_from: date
    effective_to: date | None = None


def catalog(start: date) -> list[Plan]:
    """The catalog as it stands on ``start``."""
    launch = start - timedelta(days=3 * 365)
    refresh = start - timedelta(days=400)
    return [
        Plan("PLN-001", "Basic Talk", "Month-to-month", "19.99", "0.5", 300, 300, launch),
        Plan("PLN-002", "Essentials 5GB", "Month-to-month", "35.00", "5", None, None, launch),
        Plan("PLN-003", "Unlimited", "Month-to-month", "70.00", None, None, None, refresh),
        Plan("PLN-004", "Family Share 20GB", "One year", "55.00", "20", None, None, launch),
        Plan("PLN-005", "Unlimited Plus, 5G", "One year", "85.00", None, None, None, refresh),
        Plan("PLN-006", "Business Pro 50GB", "Two year", "95.50", "50", None, None, launch),
        Plan("PLN-007", "Two-Year Saver 10GB", "Two year", "40.00", "10", 1000, None, launch),
        Plan("PLN-008", "Legacy Prepaid 2GB", "Month-to-month", "25.00", "2", 500, 500,
             launch - timedelta(days=700), start - timedelta(days=30)),
    ]  # fmt: skip


def changes(day: date) -> list[Plan]:
    """A later catalog change: a price rise on an existing plan and a new top tier."""
    return [
        Plan("PLN-003", "Unlimited", "Month-to-month", "75.00", None, None, None, day),
        Plan("PLN-009", "Unlimited Max 5G", "Two year", "110.00", None, None, None, day),
    ]


# Which plans a CRM record may reference, by its Contract (customers pick only current plans).
PLAN_IDS_BY_CONTRACT: dict[str, tuple[str, ...]] = {
    "Month-to-month": ("PLN-001", "PLN-002", "PLN-003"),
    "One year": ("PLN-004", "PLN-005"),
    "Two year": ("PLN-006", "PLN-007"),
}


def _opt(value: object | None) -> str | None:
    return None if value is None else str(value)


def plans_csv(plans: list[Plan]) -> bytes:
    """The plans as a CSV file (blank = unlimited / open-ended)."""
    rows = [
        (
            p.plan_id,
            p.plan_name,
            p.contract,
            p.monthly_fee,
            p.data_allowance_gb,
            _opt(p.voice_minutes),
            _opt(p.sms_allowance),
            p.effective_from.isoformat(),
            None if p.effective_to is None else p.effective_to.isoformat(),
        )
        for p in plans
    ]
    columns = [pa.array(list(col), type=pa.string()) for col in zip(*rows, strict=True)]
    return text.csv_bytes(PLAN_FIELDS, columns)
