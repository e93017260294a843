"""Runs the real Definitions against a test lake and a test warehouse, one Dagster run per day.

Tests use the same job, resources and instance machinery as production (a real ephemeral Dagster
instance, real assets); only the lake location and the DuckDB file differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import dagster as dg

from customer360.defs.definitions import build_definitions
from customer360.defs.keys import PIPELINE_JOB_NAME, UNROUTABLE_JOB_NAME
from customer360.defs.resources.lake import LakeResource
from customer360.defs.resources.warehouse import WarehouseResource
from customer360.lake.s3 import S3LakeStore
from customer360.lake.store import LakeStore


@dataclass
class Pipeline:
    store: LakeStore
    lake: LakeResource
    warehouse: WarehouseResource
    instance: dg.DagsterInstance
    runs: list[dg.ExecuteInProcessResult] = field(default_factory=list)

    @property
    def defs(self) -> dg.Definitions:
        return build_definitions(self.lake, self.warehouse)

    def run_day(self, day: date, *, selection: list[str] | None = None) -> dg.ExecuteInProcessResult:
        defs = self.defs
        if selection is None:
            job = defs.resolve_job_def(PIPELINE_JOB_NAME)
            result = job.execute_in_process(partition_key=day.isoformat(), instance=self.instance, raise_on_error=False)
        else:
            assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
            result = dg.materialize(
                assets,
                selection=selection,
                partition_key=day.isoformat(),
                instance=self.instance,
                resources={"lake": self.lake, "warehouse": self.warehouse},
                raise_on_error=False,
            )
        self.runs.append(result)
        return result

    def reject_unroutable(self) -> dg.ExecuteInProcessResult:
        job = self.defs.resolve_job_def(UNROUTABLE_JOB_NAME)
        result = job.execute_in_process(instance=self.instance, raise_on_error=False)
        self.runs.append(result)
        return result

    def warehouse_rows(self, table: str, day: date) -> int:
        rows = self.warehouse.open(self.store).query(f"SELECT count(*) FROM {table} WHERE partition_date = ?", [day])
        return int(rows[0][0])


def lake_resource_for(store: LakeStore, endpoint_url: str | None) -> LakeResource:
    if isinstance(store, S3LakeStore):
        return LakeResource(location=store.uri, endpoint_url=endpoint_url)
    return LakeResource(location=store.uri)


def make_pipeline(store: LakeStore, tmp_path: Path, endpoint_url: str | None) -> Pipeline:
    return Pipeline(
        store=store,
        lake=lake_resource_for(store, endpoint_url),
        warehouse=WarehouseResource(backend="duckdb", duckdb_path=str(tmp_path / "warehouse.duckdb")),
        instance=dg.DagsterInstance.ephemeral(),
    )
