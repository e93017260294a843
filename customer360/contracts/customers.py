"""customers: the CRM extract (a snapshot or a delta of changed customers).

The first 21 fields are the CRM's long-standing layout, the public IBM "Telco Customer Churn" sample's.
Newer CRM releases add ``plan_id``, ``email``, ``msisdn`` and ``updated_at``: optional in the header, so
files in both layouts are accepted and mix freely (schema evolution by addition).
"""

from datetime import timedelta
from decimal import Decimal

from customer360.contracts.model import Dataset, ExpectedDelivery, Field, Kind, StagingJoin

_YES_NO = {"kind": Kind.FLAG, "true_value": "Yes", "false_value": "No"}
_INTERNET_ADDON = {"kind": Kind.STATE, "states": ("Yes", "No", "No internet service")}

CUSTOMERS = Dataset(
    name="customers",
    version="1.1.0",
    description="One record per customer as of its change time; snapshot or delta files.",
    staging_name="customers",
    key=("customer_id",),
    dedup_key=("customer_id",),
    # The newest record of a customer wins: latest business day, then change time, then file and line.
    order_by=("_record_date", "updated_at", "_source_file", "_source_line"),
    snapshot=True,
    freshness_column="updated_at",
    max_staleness=timedelta(days=3),
    delivery=ExpectedDelivery(files=1, due_after_day=timedelta(hours=6)),  # the CRM extract, by 06:00 UTC
    staging_joins=(
        StagingJoin(
            "plans", on=("plan_id",), columns=(("plan_name", "plan_name"), ("monthly_fee", "plan_monthly_fee"))
        ),
    ),
    fields=(
        Field("customerID", Kind.TEXT, required=True, pattern=r"[0-9]{4}-[A-Z]{5}", unique_in_file=True),
        Field("gender", Kind.STATE, states=("Male", "Female")),
        Field("SeniorCitizen", Kind.FLAG, true_value="1", false_value="0"),
        Field("Partner", **_YES_NO),
        Field("Dependents", **_YES_NO),
        Field("tenure", Kind.INT, minimum=Decimal(0), description="months"),
        Field("PhoneService", **_YES_NO),
        Field("MultipleLines", Kind.STATE, states=("Yes", "No", "No phone service")),
        Field("InternetService", Kind.STATE, states=("DSL", "Fiber optic", "No")),
        Field("OnlineSecurity", **_INTERNET_ADDON),
        Field("OnlineBackup", **_INTERNET_ADDON),
        Field("DeviceProtection", **_INTERNET_ADDON),
        Field("TechSupport", **_INTERNET_ADDON),
        Field("StreamingTV", **_INTERNET_ADDON),
        Field("StreamingMovies", **_INTERNET_ADDON),
        Field("Contract", Kind.STATE, states=("Month-to-month", "One year", "Two year")),
        Field("PaperlessBilling", **_YES_NO),
        Field(
            "PaymentMethod",
            Kind.STATE,
            states=("Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)"),
        ),
        Field("MonthlyCharges", Kind.DECIMAL, minimum=Decimal(0)),
        Field(
            "TotalCharges",
            Kind.DECIMAL,
            minimum=Decimal(0),
            description="blank for new customers (tenure 0) who have no bill yet",
        ),
        Field("Churn", **_YES_NO),
        Field("plan_id", Kind.TEXT, optional=True, description="references plans.plan_id"),
        Field("email", Kind.LOWER_TEXT, optional=True, personal=True),
        Field("msisdn", Kind.PHONE, optional=True, personal=True, description="E.164"),
        Field("updated_at", Kind.TIMESTAMP, optional=True, description="change time of the record"),
    ),
)
