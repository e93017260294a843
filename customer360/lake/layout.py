"""Where each zone keeps a dataset's files: the bucket layout in one place.

``raw/``, ``archive/`` and ``rejected/`` (files) keep the upstream business date as ``<YYYY-MM-DD>/``
(the landing contract's layout, so an archived key reads like the raw key it came from); the zones the
pipeline writes use
Hive-style ``dt=YYYY-MM-DD/`` so engines (DuckDB, Snowflake, Spark) can prune on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

ZONES = ("raw", "archive", "rejected", "clean", "staging")
LEDGER_ZONE = "ledger"
UNROUTABLE = "_unroutable"

_RAW_KEY = re.compile(r"^raw/(?P<dataset>[^/]+)/(?P<day>[^/]+)/(?P<name>[^/].*)$")


def day_prefix(zone: str, dataset: str, day: date) -> str:
    if zone in ("raw", "archive", "rejected"):
        return f"{zone}/{dataset}/{day.isoformat()}/"
    return f"{zone}/{dataset}/dt={day.isoformat()}/"


def raw_prefix(dataset: str, day: date) -> str:
    return day_prefix("raw", dataset, day)


def archive_key(dataset: str, day: date, name: str) -> str:
    return f"{day_prefix('archive', dataset, day)}{name}"


def rejected_key(dataset: str, day: date, name: str) -> str:
    return f"{day_prefix('rejected', dataset, day)}{name}"


def unroutable_rejected_key(raw_key: str) -> str:
    """Where a raw object that names no known dataset or no valid day is rejected to."""
    return f"rejected/{UNROUTABLE}/{raw_key.removeprefix('raw/')}"


def quarantine_prefix(dataset: str, day: date) -> str:
    """Rows that broke a rule, beside the dataset's rejected files."""
    return f"rejected/{dataset}/rows/dt={day.isoformat()}/"


def clean_prefix(dataset: str, day: date) -> str:
    return day_prefix("clean", dataset, day)


def staging_prefix(dataset: str, day: date) -> str:
    return day_prefix("staging", dataset, day)


def ledger_prefix(dataset: str, day: date | None = None) -> str:
    if day is None:
        return f"{LEDGER_ZONE}/{dataset}/"
    return f"{LEDGER_ZONE}/{dataset}/dt={day.isoformat()}/"


def parquet_name(source_name: str) -> str:
    """One clean/quarantine Parquet file per source file keeps clean granular and traceable."""
    return re.sub(r"[^0-9A-Za-z._=-]", "_", source_name) + ".parquet"


@dataclass(frozen=True)
class RawKey:
    """A raw key split into the parts the landing contract gives meaning to."""

    key: str
    dataset: str
    day_text: str
    name: str

    @property
    def day(self) -> date | None:
        """The business date, or None when the key's date is missing or impossible."""
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", self.day_text):
            return None
        try:
            return date.fromisoformat(self.day_text)
        except ValueError:
            return None


def parse_raw_key(key: str) -> RawKey | None:
    """Split ``raw/<dataset>/<YYYY-MM-DD>/<name>``; None when the key does not even have that shape."""
    match = _RAW_KEY.match(key)
    if not match:
        return None
    return RawKey(key, match["dataset"], match["day"], match["name"])
