"""An activity day written by another hand: the benchmark's proof that speed does not rest on our generator.

Nothing here calls ``customer360_generator``: this is a plain Python writer, the way another team's
exporter would produce a file that follows ``../shared/contracts/raw-landing.md`` and nothing more.
It differs from the project's generator on purpose, in every way the contract allows:

- field order (``charge_amount`` first, ``event_id`` in the middle), CRLF line endings, every field
  quoted, values padded with spaces inside their quotes (the contract trims them);
- timestamps with a space or ``T``, with or without milliseconds, offsets as ``Z``, ``+HH:MM`` or
  ``+HHMM``; charges with 0 to 4 places; rows shuffled within each hour instead of sorted;
- re-delivered events scattered through the file (not appended to a chunk), and bad rows placed
  uniformly at random;
- JSON Lines with its own key order, decimals of charges as JSON strings (as many APIs serialize
  them), durations and volumes as JSON numbers, ``roaming`` as JSON booleans.

The fault mix is the one issue 11 measured: 1% of rows re-deliver an event, 0.2% of rows break one
rule each, in four kinds in equal parts: timestamps of the right shape that name no instant (month 13,
hour 25, minute 61 in turn), negative voice durations, unknown event types, missing customer ids.
``write_foreign_day`` returns how many rows of each (rule, column) it injected.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

FIELD_ORDER = (
    "charge_amount",
    "event_ts",
    "customer_id",
    "event_type",
    "event_id",
    "direction",
    "roaming",
    "cell_id",
    "duration_sec",
    "data_mb",
)
KINDS = {  # kind -> the (rule, column) the contract reports for it
    "impossible_timestamp": ("type", "event_ts"),
    "negative_duration": ("minimum", "duration_sec"),
    "unknown_event_type": ("allowed_values", "event_type"),
    "missing_customer_id": ("required", "customer_id"),
}
OFFSETS = [(0, "Z"), (0, "+00:00"), (60, "+01:00"), (120, "+0200"), (-300, "-05:00"), (330, "+05:30"), (-480, "-0800")]


def _timestamp(rnd: random.Random, instant: datetime) -> str:
    minutes, label = rnd.choice(OFFSETS)
    local = instant + timedelta(minutes=minutes)
    separator = rnd.choice("T ")
    millis = f".{rnd.randrange(1000):03d}" if rnd.random() < 0.3 else ""
    return f"{local:%Y-%m-%d}{separator}{local:%H:%M:%S}{millis}{label}"


def _impossible(rnd: random.Random, instant: datetime, variant: int) -> str:
    text = _timestamp(rnd, instant)
    if variant == 0:
        return text[:5] + "13" + text[7:]  # month 13
    if variant == 1:
        return text[:11] + "25" + text[13:]  # hour 25
    return text[:14] + "61" + text[16:]  # minute 61


def _event(rnd: random.Random, day: date, number: int, customers: list[str], hour: int) -> dict[str, object]:
    kind = rnd.choices(("voice", "sms", "data"), weights=(30, 25, 45))[0]
    seconds = hour * 3600 + rnd.randrange(3600)
    instant = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=seconds)
    places = rnd.randrange(5)
    charge = f"{rnd.randrange(6)}.{rnd.randrange(10**places):0{places}d}" if places else str(rnd.randrange(6))
    return {
        "event_id": f"OTHER-{day:%Y%m%d}-{number:010d}",
        "customer_id": rnd.choice(customers),
        "instant": instant,
        "event_ts": _timestamp(rnd, instant),
        "event_type": kind,
        "direction": rnd.choice(("in", "out")),
        "duration_sec": rnd.randrange(0, 3600) if kind == "voice" else None,
        "data_mb": round(rnd.randrange(1, 2_000_000) / 1000, 3) if kind == "data" else None,
        "cell_id": rnd.choice(("", f"CGI-{rnd.randrange(10**6):06d}")),
        "roaming": rnd.random() < 0.04,
        "charge_amount": charge,
    }


def _break(rnd: random.Random, event: dict[str, object], kind: str, count: int) -> None:
    if kind == "impossible_timestamp":
        event["event_ts"] = _impossible(rnd, event["instant"], count % 3)  # type: ignore[arg-type]
    elif kind == "negative_duration":
        event.update(event_type="voice", data_mb=None, duration_sec=-rnd.randrange(1, 3600))
    elif kind == "unknown_event_type":
        event.update(event_type=rnd.choice(("mms", "video", "ussd")), duration_sec=None, data_mb=None)
    else:
        event["customer_id"] = None


def _csv_line(rnd: random.Random, event: dict[str, object]) -> str:
    """Every field quoted, some padded inside their quotes (trimmed by the contract), CRLF."""
    cells = []
    for name in FIELD_ORDER:
        value = event[name]
        text = "" if value is None else ("true" if value else "false") if isinstance(value, bool) else str(value)
        if text and rnd.random() < 0.1:
            text = f" {text} "
        cells.append('"' + text.replace('"', '""') + '"')
    return ",".join(cells) + "\r\n"


def _json_line(event: dict[str, object]) -> str:
    """Its own key order; charges as JSON strings, the other measures as JSON numbers."""
    return json.dumps({k: str(event[k]) if k == "charge_amount" else event[k] for k in reversed(FIELD_ORDER)}) + "\n"


def write_foreign_day(
    paths: list[Path],
    day: date,
    rows: int,
    customers: list[str],
    *,
    seed: int = 11,
    duplicate_share: float = 0.01,
    bad_share: float = 0.002,
) -> dict[tuple[str, str], int]:
    """Write the same rows to each of ``paths`` (``.csv`` or ``.jsonl``); returns rows per (rule, column).

    Streams hour by hour (a collector that flushes hourly): memory holds one hour, whatever the day.
    """
    rnd = random.Random(seed)
    duplicates = int(round(rows * duplicate_share))
    unique = rows - duplicates
    kinds = list(KINDS)
    bad = int(round(rows * bad_share))
    bad_at = dict(zip(rnd.sample(range(unique), bad), (kinds[i % len(kinds)] for i in range(bad)), strict=True))
    injected: Counter[tuple[str, str]] = Counter()
    outputs = [
        (open(path, "w", newline="", encoding="utf-8"), path.suffix == ".csv")  # noqa: SIM115 (closed below)
        for path in paths
    ]
    try:
        for out, is_csv in outputs:
            if is_csv:
                out.write(",".join(f'"{name}"' for name in FIELD_ORDER) + "\r\n")
        number = 0
        for hour in range(24):
            count = unique // 24 + (hour < unique % 24)
            copies = duplicates // 24 + (hour < duplicates % 24)
            events = []
            for _ in range(count):
                event = _event(rnd, day, number, customers, hour)
                kind = bad_at.get(number)
                if kind is not None:
                    _break(rnd, event, kind, number)
                    injected[KINDS[kind]] += 1
                events.append((event, kind is None))
                number += 1
            rnd.shuffle(events)  # shuffled within the hour
            # Re-deliveries of healthy events land anywhere after their first delivery.
            keyed = [(float(position), event) for position, (event, _) in enumerate(events)]
            healthy = [position for position, (_, ok) in enumerate(events) if ok]
            for position in rnd.sample(healthy, min(copies, len(healthy))):
                keyed.append((rnd.uniform(position + 0.5, len(events)), events[position][0]))
            keyed.sort(key=lambda item: item[0])
            for out, is_csv in outputs:
                out.write("".join(_csv_line(rnd, e) if is_csv else _json_line(e) for _, e in keyed))
    finally:
        for out, _ in outputs:
            out.close()
    return dict(injected)
