"""Where each zone keeps a dataset's files: the bucket layout in one place.

``raw/``, ``archive/`` and ``rejected/`` (files) keep the upstream business date as ``<YYYY-MM-DD>/``
(the landing contract's layout, so an archived key reads like the raw key it came from); the zones the
pipeline writes use
Hive-style ``dt=YYYY-MM-DD/`` so engines (DuckDB, Snowflake, Spark) can prune on it.

Names. Upstream chooses raw names; everything the pipeline derives from them must be storable on both
backends (``MAX_NAME_BYTES`` per segment, no backslash or control character) and must never collide:

* archive: ``archive/<dataset>/<day>/<name>`` keeps the upstream name (the gate rejects names the lake
  cannot store, see ``lake.routing.key_defect``); a correction goes beside it as ``<stem>.v-<sha12><ext>``,
  shortened with a hash of the full name when it would not fit;
* rejected: ``rejected/<dataset>/<day>/<entry id>/<escaped, bounded name>`` and its report beside it with
  ``.report.json`` appended: one folder per arrival, named by its ledger entry, so no upstream name (not
  even ``x.csv.report.json``) and no second arrival can ever land on another's file or report;
* clean and quarantine: ``<slug of the name>-<entry id>.parquet``: one file per archived arrival, unique
  even when two names slug alike (``crm part.csv``, ``crm_part.csv``), bounded whatever the name's length.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date

from customer360.lake.store import MAX_NAME_BYTES

ZONES = ("raw", "archive", "rejected", "clean", "staging")
LEDGER_ZONE = "ledger"
UNROUTABLE = "_unroutable"
REPORT_SUFFIX = ".report.json"
# Extensions kept whole when a name is shortened, so a reader still knows the format.
_EXTENSION = re.compile(r"(\.[0-9A-Za-z]{1,10}){1,2}$")
_SLUG_CHARS = re.compile(r"[^0-9A-Za-z._=-]")
_SLUG_MAX = 80

_RAW_KEY = re.compile(r"^raw/(?P<dataset>[^/]+)/(?P<day>[^/]+)/(?P<name>[^/].*)$")


def day_prefix(zone: str, dataset: str, day: date) -> str:
    if zone in ("raw", "archive", "rejected"):
        return f"{zone}/{dataset}/{day.isoformat()}/"
    return f"{zone}/{dataset}/dt={day.isoformat()}/"


def raw_prefix(dataset: str, day: date) -> str:
    return day_prefix("raw", dataset, day)


def archive_key(dataset: str, day: date, name: str) -> str:
    return f"{day_prefix('archive', dataset, day)}{name}"


def rejected_key(dataset: str | None, day: date | None, entry_id: str, name: str) -> str:
    """Where one rejected arrival's copy goes (its report: this key + ``REPORT_SUFFIX``).

    A folder per arrival, named by its ledger entry id: create-only writes can never meet another
    arrival's copy or report there, and the name is escaped and bounded so any raw name fits.
    """
    folder = day_prefix("rejected", dataset, day) if dataset and day else f"rejected/{UNROUTABLE}/"
    return f"{folder}{entry_id}/{safe_name(name, MAX_NAME_BYTES - len(REPORT_SUFFIX))}"


def quarantine_prefix(dataset: str, day: date) -> str:
    """Rows that broke a rule, beside the dataset's rejected files."""
    return f"rejected/{dataset}/rows/dt={day.isoformat()}/"


def clean_prefix(dataset: str, day: date) -> str:
    return day_prefix("clean", dataset, day)


def staging_prefix(dataset: str, day: date) -> str:
    return day_prefix("staging", dataset, day)


def staging_manifest_key(dataset: str, day: date) -> str:
    """Written last by a staging build that completed (even an empty one); the warehouse loads only what it lists.

    Inside the day's prefix, named like Spark's ``_SUCCESS``: engines reading the folder skip ``_`` files,
    and the warehouse loads only the Parquet keys the manifest names.
    """
    return f"{staging_prefix(dataset, day)}_manifest.json"


def staging_build_marker_key(dataset: str, day: date) -> str:
    """Present while a staging build of the day runs (between removing the old manifest and writing the new).

    Outside the day's prefix, which the build empties; the warehouse and the mart, finding no manifest but
    this marker, wait for the build instead of failing on a day that is only being rebuilt.
    """
    return f"staging/{dataset}/_building/{day.isoformat()}.json"


def partition_day(prefix: str) -> date | None:
    """The day of a day folder (``.../2024-01-03/`` or ``.../dt=2024-01-03/``); None for any other folder."""
    name = prefix.rstrip("/").rsplit("/", 1)[-1].removeprefix("dt=")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", name):
        return None
    try:
        return date.fromisoformat(name)
    except ValueError:
        return None


def ledger_prefix(dataset: str, day: date | None = None) -> str:
    if day is None:
        return f"{LEDGER_ZONE}/{dataset}/"
    return f"{LEDGER_ZONE}/{dataset}/dt={day.isoformat()}/"


def derived_name(source_name: str, entry_id: str, suffix: str = ".parquet") -> str:
    """The clean (and quarantine) file of one archived arrival: readable, unique per ledger entry, bounded.

    The ledger entry id makes it unique (two names that slug alike, or the same name's versions); the
    slug of the upstream name only helps a person browsing. The original name is kept in the file's
    metadata, not in its key.
    """
    slug = _SLUG_CHARS.sub("_", source_name)[:_SLUG_MAX]
    return f"{slug}-{entry_id}{suffix}"


def version_name(name: str, sha256: str) -> str:
    """``crm.csv.gz`` -> ``crm.v-<sha12>.csv.gz``: a correction beside the old version, same extension."""
    for extension in (".csv.gz", ".jsonl.gz", ".csv", ".jsonl"):
        if name.lower().endswith(extension):
            stem, ext = name[: -len(extension)], name[-len(extension) :]
            break
    else:
        stem, ext = name, ""
    marker = f".v-{sha256[:12]}{ext}"
    return bounded_name(stem, MAX_NAME_BYTES - _utf8_len(marker), original=name) + marker


def safe_name(name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """``name`` as a single key segment any backend stores: unsafe characters %-escaped, bounded in bytes.

    Escaped: '/', backslash, '%' itself and anything not printable (control and format characters,
    bytes of a name that was not UTF-8), so the escaped name still tells a person what arrived; an empty,
    ``.`` or ``..`` name becomes ``%2E``-escaped. Too long, it keeps its head and extension and gets a hash
    of the original.
    """
    escaped = "".join(c if c.isprintable() and c not in "/\\%" else _percent(c) for c in name)
    if escaped in ("", ".", ".."):
        escaped = escaped.replace(".", "%2E") or "(empty name)"
    return bounded_name(escaped, max_bytes, original=name)


def bounded_name(name: str, max_bytes: int, *, original: str | None = None) -> str:
    """``name`` if it fits in ``max_bytes`` (UTF-8), else its head + ``~`` + a hash of ``original`` + extension."""
    if _utf8_len(name) <= max_bytes:
        return name
    match = _EXTENSION.search(name[-24:])
    extension = match.group(0) if match else ""
    digest = hashlib.sha256((original if original is not None else name).encode("utf-8", "surrogateescape"))
    tail = f"~{digest.hexdigest()[:16]}{extension}"
    head = name[: len(name) - len(extension)]
    budget = max_bytes - _utf8_len(tail)
    while _utf8_len(head) > budget:
        head = head[: max(0, len(head) - max(1, (_utf8_len(head) - budget) // 4))]
    return head + tail


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def _percent(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogateescape"))


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
