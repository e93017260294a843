"""activity_logs: usage events (CDR/xDR), the big dataset: typically hourly files, millions of rows a day.

An event may be delivered in more than one file (at-least-once upstream); staging keeps one row per
``event_id`` for the day.
"""

from datetime import timedelta
from decimal import Decimal

from customer360.contracts.model import Dataset, ExpectedDelivery, Field, Kind, RowRule, StagingJoin

ACTIVITY_LOGS = Dataset(
    name="activity_logs",
    version="1.1.0",
    description="Usage events: voice, sms and data, with their charge.",
    staging_name="activity",
    key=("event_id",),
    dedup_key=("event_id",),
    order_by=("_source_file", "_source_line"),
    freshness_column="event_ts",
    max_staleness=timedelta(days=1),
    # 24 hourly files, all in by 03:00 UTC the next day; a file's hour is in its name or its events' event_ts.
    delivery=ExpectedDelivery(files=24, due_after_day=timedelta(hours=3), hourly=True, hour_field="event_ts"),
    staging_joins=(StagingJoin("customers", on=("customer_id",), columns=(("plan_id", "plan_id"),)),),
    fields=(
        Field("event_id", Kind.TEXT, required=True),
        Field("customer_id", Kind.TEXT, required=True, pattern=r"[0-9]{4}-[A-Z]{5}"),
        Field("event_ts", Kind.TIMESTAMP, required=True),
        Field("event_type", Kind.STATE, required=True, states=("voice", "sms", "data")),
        Field("direction", Kind.STATE, required=True, states=("in", "out")),
        Field("duration_sec", Kind.INT, minimum=Decimal(0), description="voice only"),
        Field("data_mb", Kind.DECIMAL, minimum=Decimal(0), precision=14, scale=3, description="data only"),
        Field("cell_id", Kind.TEXT),
        Field("roaming", Kind.FLAG, required=True, true_value="true", false_value="false"),
        Field(
            "charge_amount",
            Kind.DECIMAL,
            required=True,
            minimum=Decimal(0),
            precision=14,
            scale=4,
            description="4 places: rating systems bill sub-cent amounts per second or per MB",
        ),
    ),
    row_rules=(
        RowRule(
            name="duration_only_for_voice",
            description="duration_sec is set only on voice events",
            when_column="event_type",
            when_not_in=("voice",),
            require_null=("duration_sec",),
        ),
        RowRule(
            name="data_mb_only_for_data",
            description="data_mb is set only on data events",
            when_column="event_type",
            when_not_in=("data",),
            require_null=("data_mb",),
        ),
    ),
)
