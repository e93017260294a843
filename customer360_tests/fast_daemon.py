"""``dagster-daemon`` for tests, with the backfill loop's sleep between iterations shortened.

Everything else is the real daemon: its backfill, sensor, automation (asset daemon), run queue and
monitoring loops, its code server and the run launcher that starts one process per run. The one change:
Dagster 1.13 sleeps a fixed 30 s between backfill-loop iterations (``DEFAULT_DAEMON_INTERVAL_SECONDS``,
read by ``dagster._daemon.backfill`` on every iteration and not exposed as a setting), so each hop of a
backfill (one group of assets after the one it depends on) would cost a test half a minute of waiting.
Timings are measured with the unmodified daemon by ``benchmarks/ui_backfill.py``, never here.

    python customer360_tests/fast_daemon.py run -w workspace.yaml
"""

from __future__ import annotations

import os
import sys

import dagster._daemon.controller as controller

INTERVAL_ENV = "CUSTOMER360_TEST_DAEMON_INTERVAL_SECONDS"

controller.DEFAULT_DAEMON_INTERVAL_SECONDS = int(os.environ.get(INTERVAL_ENV, "2"))

if __name__ == "__main__":
    from dagster._daemon.cli import main

    sys.argv[0] = "dagster-daemon"
    sys.exit(main())
