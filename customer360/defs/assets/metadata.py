"""Materialization metadata users look for in the UI: row counts, column schema, previews, rates."""

from collections.abc import Mapping, Sequence

import dagster as dg
import pyarrow as pa

from customer360.contracts import DATASETS, Dataset

# Columns every zone adds to the contract's: where a row came from and how.
LINEAGE_DESCRIPTIONS = {
    "partition_date": "the business day (partition) the row belongs to",
    "_source_file": "the archived file the row was read from",
    "_source_line": "the row's line (CSV) or record (JSON Lines) number in that file",
    "_contract_version": "the contract version the file was validated against",
    "_rescued_data": "fields the contract does not know, as a JSON object (see the unknown_columns check)",
    "_record_date": "the business day of the file this snapshot row was last updated by",
}


def column_descriptions(dataset: Dataset) -> dict[str, str]:
    """Every column a dataset's clean, staging and warehouse tables can have, described from its contract."""
    described = {**dataset.column_descriptions(), **LINEAGE_DESCRIPTIONS}
    for join in dataset.staging_joins:
        other = DATASETS[join.dataset]
        for column, alias in join.columns:
            source = other.field(column).column_description
            described.setdefault(alias, f"joined from {join.dataset}.{column}: {source}")
    return described


def column_schema(
    fields: list[tuple[str, str]] | pa.Schema, descriptions: Mapping[str, str] | None = None
) -> dg.TableSchema:
    pairs = [(f.name, str(f.type)) for f in fields] if isinstance(fields, pa.Schema) else fields
    described = descriptions or {}
    return dg.TableSchema(
        columns=[dg.TableColumn(name, type_name, description=described.get(name)) for name, type_name in pairs]
    )


def rows_preview(names: Sequence[str], rows: Sequence[Sequence[object]]) -> dg.MetadataValue:
    """A Markdown table of a few rows read from a warehouse table."""
    return preview(pa.Table.from_pylist([dict(zip(names, row, strict=True)) for row in rows]) if rows else None)


def preview(table: pa.Table | None, rows: int = 5) -> dg.MetadataValue:
    """A small markdown table of the first rows, lineage columns last."""
    head = table.slice(0, rows).to_pylist() if table is not None else []
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
