"""Which gate a raw key goes to, and why a key cannot be archived under its own name: pure key layout.

Why here and not in the gate: routing is a question about key names only (``layout``'s
``raw/<dataset>/<YYYY-MM-DD>/<name>``, the contract's dataset names and the lake's name limits), asked
by the gate, the unroutable sweep, the raw sensor and the notifications alike; none of them should need
the gate's machinery to learn where a key belongs.
"""

from __future__ import annotations

from datetime import date

from customer360.contracts import DATASETS, Dataset
from customer360.lake import layout
from customer360.lake.store import MAX_NAME_BYTES


def route(key: str) -> tuple[Dataset | None, date | None, tuple[str, str] | None]:
    """Which dataset and day's gate a raw key goes to, or why it goes to none (the unroutable sweep).

    Any key under a valid ``raw/<dataset>/<YYYY-MM-DD>/`` routes to that day's gate, which lists the
    whole prefix, so it also judges the file name there (``key_defect``): a bad key inside a day's folder
    is rejected, reported and alerted on as part of that day.
    """
    parsed = layout.parse_raw_key(key)
    segments = key.split("/")
    if parsed is not None and parsed.dataset in DATASETS and parsed.day is not None:
        return DATASETS[parsed.dataset], parsed.day, None
    day_folder = layout.parse_raw_key(f"{'/'.join(segments[:3])}/x") if len(segments) >= 4 else None
    if day_folder is not None and day_folder.dataset in DATASETS and day_folder.day is not None:
        # Inside a valid day's folder but no file name of it (a folder marker holding bytes): that day's
        # gate lists it and rejects it (key_defect); the unroutable sweep never looks inside valid days.
        return DATASETS[day_folder.dataset], day_folder.day, None
    defect = key_defect(key)
    if defect is not None and defect[0] == "unsafe_key":
        return None, None, defect
    if parsed is None:
        if len(segments) == 3 and segments[1] in DATASETS:
            return DATASETS[segments[1]], None, ("missing_partition_date", f"{key!r} has no <YYYY-MM-DD>/ folder")
        return None, None, ("unroutable_key", f"{key!r} is not raw/<dataset>/<YYYY-MM-DD>/<file name>")
    dataset = DATASETS.get(parsed.dataset)
    if dataset is None:
        return None, None, ("unknown_dataset", f"{parsed.dataset!r} is not one of {sorted(DATASETS)}")
    return dataset, None, ("invalid_partition_date", f"{parsed.day_text!r} is not a valid YYYY-MM-DD date")


def key_defect(key: str) -> tuple[str, str] | None:
    """Why a key under a day's folder is not a file of that day the lake can archive under its name.

    Unsafe segments (empty, ``.``, ``..``, a trailing '/', a backslash, control characters or bytes that
    are not UTF-8), a name longer than a file name can be on every backend, or a sub-folder. Such a file
    is rejected under a safe, bounded key, its original key in the report and the ledger.
    """
    segments = key.split("/")
    if any(s in ("", ".", "..") for s in segments) or "\\" in key or not all(c.isprintable() for c in key):
        return "unsafe_key", (
            f"{key!r} has '.', '..' or empty path segments, a backslash, or characters that are not printable "
            "UTF-8 text"
        )
    parsed = layout.parse_raw_key(key)
    if parsed is not None and "/" in parsed.name:
        return "unroutable_key", f"{key!r} is in a sub-folder of the day's folder"
    longest = max(len(s.encode("utf-8", "surrogateescape")) for s in segments)
    if longest > MAX_NAME_BYTES:
        return "name_too_long", (
            f"a name in {key[:80]!r}... is {longest} bytes long (UTF-8); the lake stores names of at most "
            f"{MAX_NAME_BYTES} bytes"
        )
    return None
