"""customer360: the telco Customer 360 data platform (a Dagster code location).

Importing the package silences the Dagster Beta/Preview warnings of the features this code location uses on
purpose. Every process that loads it (the webserver's and the daemon's code servers, and each run's process)
printed them again: a quarter of the lines of a ``dagster dev`` log. Only these messages are silenced, so a new
Beta/Preview API still shows up once.
"""

import warnings

KNOWN_DAGSTER_WARNINGS = (
    # Per-day check results (every zone's checks, customer360.defs.assets.days).
    r"Specifying a partitions_def on an AssetCheckSpec is currently in preview",
    # A snapshot's dependency on its previous day, which does not exist for the first day.
    r"Parameter `allow_nonexistent_upstream_partitions` of initializer `TimeWindowPartitionMapping",
    # The automation's NewerInWindow condition runs in the code location (customer360.defs.automation).
    r"Parameter `use_user_code_server` of initializer `AutomationConditionSensorDefinition",
)

for _message in KNOWN_DAGSTER_WARNINGS:
    warnings.filterwarnings("ignore", message=_message)
