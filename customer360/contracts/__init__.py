"""Dataset contracts: each dataset declared once; every zone step is generated from these."""

from customer360.contracts.activity_logs import ACTIVITY_LOGS
from customer360.contracts.customers import CUSTOMERS
from customer360.contracts.model import Dataset, ExpectedDelivery, Field, Kind, RowRule, StagingJoin
from customer360.contracts.plans import PLANS

# Order matters: a dataset's staging joins name datasets listed before it.
DATASETS: dict[str, Dataset] = {d.name: d for d in (PLANS, CUSTOMERS, ACTIVITY_LOGS)}

__all__ = [
    "ACTIVITY_LOGS",
    "CUSTOMERS",
    "DATASETS",
    "PLANS",
    "Dataset",
    "ExpectedDelivery",
    "Field",
    "Kind",
    "RowRule",
    "StagingJoin",
]
