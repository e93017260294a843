"""Materialization metadata users look for in the UI: row counts, column schema, previews, rates."""

import dagster as dg
import pyarrow as pa


def column_schema(fields: list[tuple[str, str]] | pa.Schema) -> dg.TableSchema:
    pairs = [(f.name, str(f.type)) for f in fields] if isinstance(fields, pa.Schema) else fields
    return dg.TableSchema(columns=[dg.TableColumn(name, type_name) for name, type_name in pairs])


def preview(table: pa.Table, rows: int = 5) -> dg.MetadataValue:
    """A small markdown table of the first rows, lineage columns last."""
    head = table.slice(0, rows).to_pylist()
    if not head:
        return dg.MetadataValue.md("_no rows_")
    names = [c for c in table.column_names if c != "_rescued_data"][:14]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(_cell(row[n]) for n in names) + " |" for row in head]
    return dg.MetadataValue.md("\n".join(lines))


def _cell(value: object) -> str:
    """A data value as literal text in a Markdown table cell (the UI lets HTML through Markdown)."""
    text = "" if value is None else str(value)
    text = text.replace("\n", " ")[:40]
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def key_list(keys: list[str], limit: int = 50) -> dg.MetadataValue:
    shown = keys[:limit]
    more = f"\n- … and {len(keys) - limit} more" if len(keys) > limit else ""
    return dg.MetadataValue.md("\n".join(f"- `{k}`" for k in shown) + more if shown else "_none_")


def peak_memory_mb() -> float:
    """The run process's peak resident memory so far (MB), so the UI can plot it across partitions."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
