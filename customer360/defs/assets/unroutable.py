"""rejected/unroutable: raw objects outside ``raw/<dataset>/<YYYY-MM-DD>/``, rejected with a reason.

Not partitioned: such an object has no valid day by definition. Like the day's rejected assets it
carries the WARN check ``no_rejected_files`` (failing when this run rejected anything) and lists its
rejected files for the alert sensor. The raw sensor requests it whenever a
listing finds one; the demo and a user can materialize it at any time (it is idempotent: an empty raw/
moves nothing).
"""

import dagster as dg

from customer360.defs.assets.metadata import key_list
from customer360.defs.assets.rejections import read_report, rejections_markdown
from customer360.defs.checks import UNROUTABLE_REJECTION_CHECK, Rejections
from customer360.defs.keys import REJECTED, REJECTED_FILES_METADATA, REJECTIONS_METADATA, UNROUTABLE_KEY
from customer360.defs.resources.lake import LakeResource
from customer360.steps.unroutable import reject_unroutable


@dg.asset(
    key=UNROUTABLE_KEY,
    group_name=REJECTED,
    description="Raw objects naming no known dataset or no valid business date, moved to rejected/_unroutable/ "
    "with a JSON report each.",
    check_specs=[UNROUTABLE_REJECTION_CHECK.spec(UNROUTABLE_KEY)],
)
def unroutable_raw_files(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    store = lake.store()
    run = reject_unroutable(store, log=context.log)
    if run.errors:
        raise dg.Failure(
            description=f"{len(run.errors)} object(s) could not be moved",
            metadata={"errors": dg.MetadataValue.json(run.errors)},
        )
    fields = [f.alert_fields() for f in run.files]
    why = rejections_markdown(read_report(store, str(f.report_key)) for f in run.files if f.report_key)
    return dg.MaterializeResult(
        metadata={
            "files_rejected": len(run.files),
            "reasons": dg.MetadataValue.json({f.raw_key: f.reasons for f in run.files}),
            "report_keys": key_list([str(f.report_key) for f in run.files]),
            REJECTED_FILES_METADATA: dg.MetadataValue.json(fields),
            REJECTIONS_METADATA: why,
        },
        check_results=[UNROUTABLE_REJECTION_CHECK.result(Rejections(fields, why=why))],
    )
