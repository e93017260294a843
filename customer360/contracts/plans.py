"""plans: the product catalog, one record per plan (snapshot or changed plans)."""

from datetime import timedelta
from decimal import Decimal

from customer360.contracts.model import Dataset, Field, Kind, RowRule

PLANS = Dataset(
    name="plans",
    version="1.0.0",
    description="The product catalog: plans, their fee and allowances (blank allowance = unlimited).",
    staging_name="plans",
    key=("plan_id",),
    dedup_key=("plan_id",),
    order_by=("_record_date", "_source_file", "_source_line"),
    snapshot=True,
    # The catalog changes a few times a year; a snapshot weeks old is normal.
    max_staleness=timedelta(days=120),
    delivery=None,  # only on change: no day is expected to bring a file
    fields=(
        Field("plan_id", Kind.TEXT, required=True, unique_in_file=True),
        Field("plan_name", Kind.TEXT, required=True),
        Field("contract", Kind.STATE, required=True, states=("Month-to-month", "One year", "Two year")),
        Field("monthly_fee", Kind.DECIMAL, required=True, minimum=Decimal(0)),
        Field("data_allowance_gb", Kind.DECIMAL, minimum=Decimal(0), scale=3, description="blank = unlimited"),
        Field("voice_minutes", Kind.INT, minimum=Decimal(0), description="blank = unlimited"),
        Field("sms_allowance", Kind.INT, minimum=Decimal(0), description="blank = unlimited"),
        Field("effective_from", Kind.DATE, required=True),
        Field("effective_to", Kind.DATE, description="blank = open-ended"),
    ),
    row_rules=(
        RowRule(
            name="effective_to_before_effective_from",
            description="effective_to must not be before effective_from",
            not_before=("effective_to", "effective_from"),
        ),
    ),
)
