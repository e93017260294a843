"""The Dagster layer: the only package that defines Dagster objects (assets, checks, sensors, jobs, resources).

Everything below it is plain Python over the lake and the warehouse (``customer360.steps``, ``lake``,
``processing``, ``contracts``, ``warehouse``); this package wraps those steps as software-defined assets and
assembles them in ``customer360.defs.definitions``. Where to look:

- ``definitions.py``: the assembly (assets, jobs, sensors, resources, executor) and nothing else;
- ``keys.py``: every asset key, job, sensor and check name, shared metadata key and tag, spelled once;
- ``checks.py``: ``ZoneCheck``, one object per asset check giving both its spec and its result, and every
  zone's checks; ``deliveries.py``: the expected-deliveries check and its judgement;
- ``assets/``: one module per zone step (``raw``, ``gate``, ``clean``, ``staging``, ``warehouse``, ``mart``,
  ``unroutable``), plus how a step records each day (``days``) and presents itself (``metadata``,
  ``presentation``, ``rejections``);
- ``sensors/``: the raw/ sensor (``raw_sensor``, ``notifications``), rejection alerts and delivery expectations;
- ``automation.py``, ``partitions.py``, ``backfill.py``: when assets run, over which days, and replays;
- ``resources/``: the lake and the warehouse.
"""
