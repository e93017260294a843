"""The Dagster layer: the only package that defines Dagster objects (assets, checks, sensors, jobs, resources).

Everything below it is plain Python over the lake and the warehouse (``customer360.steps``, ``lake``,
``processing``, ``contracts``, ``warehouse``); this package wraps those steps as software-defined assets and
assembles them in ``customer360.defs.definitions``.
"""
