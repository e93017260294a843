"""Validation of what a zone holds: pandera models generated from the contracts, run over written partitions.

The Dagster asset checks that report these results are declared in ``customer360.defs.checks``.
"""
