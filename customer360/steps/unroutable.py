"""Raw objects that belong to no dataset and day: rejected with their reason, never silently ignored.

The partitioned gates only look under ``raw/<dataset>/<YYYY-MM-DD>/``. Anything else under raw/ (an
unknown dataset prefix, a missing or impossible date, a file sitting directly under a dataset folder)
would wait there forever; this step moves each such object to ``rejected/_unroutable/`` with a report,
through the same crash-safe move as the gate, and records it in the ledger.
"""

from __future__ import annotations

import logging
from functools import partial

from customer360.contracts import DATASETS
from customer360.lake.routing import route
from customer360.lake.store import LakeStore, ObjectInfo
from customer360.steps.gate import DayLedgers, GateRun, admit, move_isolated


def find_unroutable(store: LakeStore) -> list[ObjectInfo]:
    """Raw objects whose key names no known dataset or no valid day.

    Lists unknown dataset folders whole, and for known datasets only the folders that are not valid
    days plus loose files, so the cost follows what is wrong rather than everything waiting in raw/.
    """
    found: list[ObjectInfo] = []
    for prefix in store.list_prefixes("raw/"):
        dataset = prefix.removeprefix("raw/").rstrip("/")
        if dataset not in DATASETS:
            found.extend(store.list(prefix))
            continue
        day_folders = store.list_prefixes(prefix)
        for folder in day_folders:
            if route(f"{folder}x")[2] is not None:
                found.extend(store.list(folder))
        found.extend(o for o in store.list(prefix) if o.key.count("/") == 2)
    found.extend(o for o in store.list("raw/") if o.key.count("/") == 1)
    return sorted({o.key: o for o in found}.values(), key=lambda o: o.key)


def reject_unroutable(store: LakeStore, log: logging.Logger | None = None) -> GateRun:
    log = log or logging.getLogger(__name__)
    run = GateRun("_unroutable", None)
    ledgers = DayLedgers(store)
    for info in find_unroutable(store):
        dataset, day, reason = route(info.key)
        unroutable = reason or ("unroutable_key", info.key)
        move = partial(admit, store, ledgers, info, dataset=dataset, day=day, unroutable_reason=unroutable)
        move_isolated(run, store, ledgers, info, log, move)
    return run
