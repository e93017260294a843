"""Asset checks of the zones: pandera schemas generated from the contracts, run over each written partition."""

from customer360.checks.zone_checks import (
    CheckDef,
    CheckOutcome,
    check_results,
    check_specs,
    clean_check_defs,
    run_clean_checks,
    run_staging_checks,
    staging_check_defs,
)

__all__ = [
    "CheckDef",
    "CheckOutcome",
    "check_results",
    "check_specs",
    "clean_check_defs",
    "run_clean_checks",
    "run_staging_checks",
    "staging_check_defs",
]
