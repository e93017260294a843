"""Why a file was rejected, on screen: the rejection report rendered as Markdown metadata.

The gate writes a JSON report beside every rejected file (``<name>.report.json``: reasons with messages,
failing sample lines, schema diff, what to do). Operators look at the rejected/* asset page and at the
``no_rejected_files`` check, not into the bucket, so both carry the reports as Markdown: per file, each
failed check with its message and count, what to do, the sample lines, the schema diff and where the report
is. Everything quoted from a file (sample values, header names, messages that quote them) is escaped: the
UI renders Markdown with HTML passing through, and a file's content must never turn into markup.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath

import dagster as dg

from customer360.lake.store import LakeStore

MAX_FILES = 10  # files rendered in full; the rest are listed by name
MAX_SAMPLES = 5  # sample lines per failed check
MAX_TEXT = 120  # characters of a quoted value

_MARKDOWN_SPECIALS = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", **{c: f"\\{c}" for c in "\\`*_[]|#"}})


def plain(text: object) -> str:
    """Text that renders as itself in Markdown (no emphasis, links, code, and no HTML: entities for <>&)."""
    return str(text).replace("\n", " ").translate(_MARKDOWN_SPECIALS)


def code(value: object, *, in_table: bool = False) -> str:
    """A value quoted from a file, as a code span (literal, ``<`` included), bounded and one line."""
    text = str(value).replace("\r", "").replace("\n", "⏎")
    text = text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"
    if in_table:
        text = text.replace("|", "\\|")  # GFM splits table cells on | even inside code spans
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def read_report(store: LakeStore, report_key: str) -> dict[str, object]:
    """The report JSON, or a stand-in naming the key when it cannot be read (never fails the caller)."""
    try:
        loaded = json.loads(store.read_bytes(report_key))
    except Exception as error:  # noqa: BLE001 - a missing or broken report must not hide the others
        return {"report_key": report_key, "unreadable": f"{type(error).__name__}: {error}"}
    return {"report_key": report_key, **loaded} if isinstance(loaded, dict) else {"report_key": report_key}


def rejections_markdown(reports: Iterable[Mapping[str, object]]) -> dg.MetadataValue:
    """Every report as a section: what failed and why, what to do, samples, schema diff, report key."""
    reports = list(reports)
    if not reports:
        return dg.MetadataValue.md("_no rejected files_")
    sections = [_section(report) for report in reports[:MAX_FILES]]
    rest = reports[MAX_FILES:]
    if rest:
        sections.append(f"… and {len(rest)} more: " + ", ".join(code(_name(r)) for r in rest))
    return dg.MetadataValue.md("\n\n".join(sections))


def _name(report: Mapping[str, object]) -> str:
    key = report.get("source_key") or report.get("rejected_key") or report.get("report_key") or "?"
    return PurePosixPath(str(key)).name


def _section(report: Mapping[str, object]) -> str:
    lines = [f"#### {code(_name(report))}"]
    if "unreadable" in report:
        return "\n".join(
            [*lines, f"report {code(report['report_key'])} could not be read: {plain(report['unreadable'])}"]
        )
    facts = [f"from {code(report.get('source_key', '?'))}"]
    if report.get("size") is not None:
        facts.append(f"{int(report['size']):,} bytes")  # type: ignore[call-overload]
    if report.get("contract_version"):
        facts.append(f"contract v{plain(report['contract_version'])}")
    policy = report.get("policy") or {}
    if isinstance(policy, dict) and policy.get("level"):
        facts.append(f"{plain(policy['level'])} defect")
    lines.append(" · ".join(facts))
    failed = [f for f in report.get("failed_checks") or [] if isinstance(f, dict)]  # type: ignore[union-attr]
    for check in failed:
        count = f" ({int(check.get('count') or 1):,}×)" if (check.get("count") or 1) != 1 else ""
        lines.append(f"- **{plain(check.get('check'))}**{count}: {plain(check.get('message', ''))}")
    action = report.get("action")
    if action:
        lines.append(f"\n**What to do:** {plain(action)}")
    samples = [(str(c.get("check")), s) for c in failed for s in (c.get("samples") or [])[:MAX_SAMPLES]]
    if samples:
        lines += ["", "| check | line | sample |", "|---|---|---|"]
        for check_name, sample in samples:
            sample = sample if isinstance(sample, dict) else {"text": sample}
            line = sample.get("line", "")
            details = ", ".join(f"{plain(k)} {code(v, in_table=True)}" for k, v in sample.items() if k != "line")
            lines.append(f"| {plain(check_name)} | {plain(line)} | {details} |")
    diff = report.get("schema_diff") or {}
    if isinstance(diff, dict) and any(diff.values()):
        parts = [f"{plain(kind)}: " + ", ".join(code(n) for n in names) for kind, names in diff.items() if names]
        lines.append("\n**Schema diff:** " + "; ".join(parts))
    lines.append(f"\nReport: {code(report.get('report_key', ''))}")
    return "\n".join(lines)
