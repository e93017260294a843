"""The ``customer360`` command: generate demo data, run the demo end to end, query the file ledger.

Dagster's own CLI (``dagster dev``, ``dagster asset materialize``) drives the code location; this
command covers what Dagster does not know about: creating the lake, the demo's raw files, the
end-to-end demo with its summary, the ledger of every file the gate has seen, replays and backfills.

Every subcommand ends an error it cannot handle with one line on stderr (what failed, which endpoint,
bucket or file, what to check; ``customer360.errors``) and a non-zero exit; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from datetime import date
from pathlib import Path

from customer360.defs.resources.lake import LakeResource, lake_resource_from_env
from customer360.lake.ledger import OUTCOMES, Ledger, query
from customer360.lake.store import LakeStore


def _start(args: argparse.Namespace) -> date:
    from customer360.demo import default_start

    return args.start or default_start(args.days)


def _open_lake(lake: LakeResource | None = None) -> LakeStore:
    """The configured lake, checked to answer (a missing bucket or endpoint fails here, before any work)."""
    store = (lake or lake_resource_from_env()).store()
    store.list_prefixes("")
    return store


def _init(args: argparse.Namespace) -> int:
    lake = lake_resource_from_env(must_exist=False)
    existed = lake.is_s3 or Path(lake.location).is_dir()
    store = lake.create()
    if lake.is_s3:
        print(f"lake {store.uri} is ready: the bucket exists and answers at {lake.endpoint_url or 'AWS'}")
    else:
        print(f"lake folder {store.uri} {'already exists' if existed else 'created'}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from customer360_generator import generate_demo_data

    store = _open_lake()
    args.start = _start(args)
    if args.activity_day_rows is not None:
        return _generate_activity_day(args, store)
    report = generate_demo_data(
        store.put_bytes,
        args.start,
        args.days,
        seed=args.seed,
        customers=args.customers,
        events_per_day=args.events_per_day,
    )
    faults = [f for f in report.files if f.fault]
    print(
        f"wrote {len(report.files)} raw files ({report.customers} customers, {report.events} events) "
        f"to {store.uri}; {len(faults)} with injected faults:"
    )
    for generated in faults:
        print(f"  {generated.fault:<18} {generated.key}")
    return 0


def _generate_activity_day(args: argparse.Namespace, store: LakeStore) -> int:
    """One activity day with a chosen fault mix, and exactly what it injected (the benchmark's files)."""
    import tempfile
    from pathlib import Path

    from customer360_generator import BAD_ROW_KINDS, ROW_FAULTS, write_activity_file
    from customer360_generator.demo_data import demo_customer_book

    kinds = {"all": tuple(sorted(ROW_FAULTS)), "demo": BAD_ROW_KINDS}.get(args.faults) or tuple(args.faults.split(","))
    unknown = sorted(set(kinds) - set(ROW_FAULTS))
    if unknown:
        print(f"unknown fault kinds {unknown}; known: all, demo, {', '.join(sorted(ROW_FAULTS))}", file=sys.stderr)
        return 2
    name = f"usage-{args.start.isoformat()}.{args.format}"
    key = f"raw/activity_logs/{args.start.isoformat()}/{name}"
    with tempfile.TemporaryDirectory(prefix="customer360-generate-") as folder:
        path = Path(folder) / name
        report = write_activity_file(
            path,
            args.start,
            args.activity_day_rows,
            seed=args.seed,
            customer_ids=demo_customer_book(args.seed, args.customers).ids,
            duplicate_share=args.duplicate_share,
            bad_share=args.bad_share,
            kinds=kinds,
        )
        store.put_file(key, path)
    summary = {"key": key, "uri": store.uri, **report.as_dict()}
    if args.report:
        Path(args.report).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from customer360.demo import run_demo

    return run_demo(
        start=_start(args),
        days=args.days,
        seed=args.seed,
        keep=args.keep,
        customers=args.customers,
        events_per_day=args.events_per_day,
    )


def _ledger(args: argparse.Namespace) -> int:
    ledger = Ledger(_open_lake())
    entries = list(
        query(
            ledger, dataset=args.dataset, day=args.day, outcome=args.outcome, key_contains=args.key, reason=args.reason
        )
    )
    if args.json:
        for entry in entries:
            print(json.dumps(asdict(entry), default=str))
        return 0
    print(f"{'first seen':<27} {'dataset':<14} {'day':<10} {'outcome':<9} {'rows':>8}  raw key -> destination")
    for e in entries:
        reasons = f"  [{', '.join(e.reasons)}]" if e.reasons else ""
        print(
            f"{e.first_seen[:26]:<27} {e.dataset:<14} {e.partition or '-':<10} {e.outcome:<9} "
            # A local file name need not be UTF-8: its stray bytes are shown escaped rather than crash the print.
            f"{e.rows if e.rows is not None else '-':>8}  {_printable(e.raw_key)} -> {e.destination_key}{reasons}"
        )
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")
    return 0


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _quarantine(args: argparse.Namespace) -> int:
    from customer360.contracts import DATASETS
    from customer360.steps.clean import query_quarantine

    store = _open_lake()
    rows = query_quarantine(store, DATASETS[args.dataset], args.day, rule=args.rule, column=args.column)
    if args.json:
        for row in rows.to_pylist():
            print(json.dumps(row, default=str))
        return 0
    print(f"{'source file':<60} {'line':>7}  {'rule':<24} {'column':<16} value")
    for row in rows.slice(0, args.limit).to_pylist():
        print(
            f"{row['_source_file']:<60} {row['_source_line']:>7}  {row['rule']:<24} {row['column'] or '-':<16} "
            f"{row['value']!r}"
        )
    counts = rows.group_by("rule").aggregate([("rule", "count")]).to_pylist()
    summary = ", ".join(f"{c['rule']}: {c['rule_count']}" for c in sorted(counts, key=lambda c: -c["rule_count"]))
    shown = f" (first {args.limit} shown)" if rows.num_rows > args.limit else ""
    plural = "s" if rows.num_rows != 1 else ""
    print(f"{rows.num_rows} quarantined row{plural}{shown}" + (f"; {summary}" if summary else ""))
    return 0


def _backfill(args: argparse.Namespace) -> int:
    import dagster as dg

    from customer360.defs.backfill import BackfillRequestError, plan_backfill, submit_backfill
    from customer360.defs.definitions import defs

    _open_lake()  # the daemon's runs will need it: a wrong lake is refused now, not in every run
    graph = defs.resolve_asset_graph()
    try:
        plan = plan_backfill(graph, args.start, args.end, args.select)
    except BackfillRequestError as error:
        print(f"customer360 backfill: {error}", file=sys.stderr)
        return 2
    print(f"{plan.title}: {len(plan.partitions)} day(s), each step walking the range in order")
    print("  assets: " + ", ".join(k.to_user_string() for k in plan.asset_keys))
    if plan.unpartitioned_skipped:
        print("  not daily, left out: " + ", ".join(k.to_user_string() for k in plan.unpartitioned_skipped))
    if args.dry_run:
        print("dry run: nothing submitted")
        return 0
    instance = dg.DagsterInstance.get()  # DAGSTER_HOME: the instance the daemon serves
    try:
        backfill_id = submit_backfill(instance, graph, plan)
    finally:
        instance.dispose()
    print(
        f"submitted backfill {backfill_id} to the instance in {os.environ.get('DAGSTER_HOME')}; the daemon runs it "
        f"(dagster dev or dagster-daemon run), progress at /runs/b/{backfill_id} in the UI"
    )
    return 0


def _replay(args: argparse.Namespace) -> int:
    import dagster as dg

    from customer360.defs.backfill import QUIET_CONSOLE, SILENT_CONSOLE, replay_days, stopped_message
    from customer360.defs.definitions import build_definitions
    from customer360.defs.resources.warehouse import warehouse_resource_from_env

    if args.end < args.start:
        print("customer360 replay: --end is before --start", file=sys.stderr)
        return 2
    lake = lake_resource_from_env()
    _open_lake(lake)
    defs = build_definitions(lake, warehouse_resource_from_env())
    instance = dg.DagsterInstance.get()  # runs recorded where the UI shows them
    console = QUIET_CONSOLE if args.debug else SILENT_CONSOLE
    try:
        for replayed in replay_days(defs, instance, args.start, args.end, run_config=console):
            status = "ok" if replayed.success else "FAILED"
            print(f"  {replayed.day}  run {replayed.run_id[:8]}  {status}  {replayed.seconds:.1f}s", flush=True)
            for failure in replayed.failures:
                print(f"      {failure}", flush=True)
            if not replayed.success:
                print(stopped_message("replay", replayed.day, args.end), file=sys.stderr)
                return 1
    finally:
        instance.dispose()
    return 0


def _add_command(commands: argparse._SubParsersAction, name: str, *, help: str) -> argparse.ArgumentParser:  # noqa: A002
    command = commands.add_parser(name, help=help)
    # Accepted after the subcommand too; SUPPRESS keeps the subparser from resetting a --debug given before it.
    command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="customer360", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="on an error, show the traceback, not one line")
    commands = parser.add_subparsers(dest="command", required=True)

    def data_options(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--start",
            type=date.fromisoformat,
            default=None,
            help="first business day (default: the days end yesterday, UTC, so the UI's default views show them)",
        )
        command.add_argument("--days", type=int, default=7)
        command.add_argument("--seed", type=int, default=7)
        command.add_argument("--customers", type=int, default=2_000)
        command.add_argument("--events-per-day", type=int, default=20_000)

    def day_range(command: argparse.ArgumentParser) -> None:
        command.add_argument("--start", required=True, type=date.fromisoformat, help="first day, YYYY-MM-DD")
        command.add_argument("--end", required=True, type=date.fromisoformat, help="last day (included), YYYY-MM-DD")

    init = _add_command(
        commands, "init", help="create the lake folder CUSTOMER360_LAKE names (for s3://, check the bucket answers)"
    )
    init.set_defaults(run=_init)

    generate = _add_command(commands, "generate", help="write realistic raw files (with real-world faults) to raw/")
    data_options(generate)
    mix = generate.add_argument_group(
        "one activity day with a chosen fault mix (instead of the demo week; the benchmark's files)"
    )
    mix.add_argument("--activity-day-rows", type=int, help="rows of the day, duplicates and bad rows included")
    mix.add_argument("--duplicate-share", type=float, default=0.01, help="share of rows re-delivering an event")
    mix.add_argument("--bad-share", type=float, default=0.002, help="share of rows breaking one rule each")
    mix.add_argument("--faults", default="all", help="fault kinds in equal parts: all, demo, or comma-separated names")
    mix.add_argument("--format", default="csv", choices=("csv", "csv.gz", "jsonl", "jsonl.gz"))
    mix.add_argument("--report", help="also write the injected counts as JSON to this file")
    generate.set_defaults(run=_generate)

    demo = _add_command(commands, "demo", help="generate a week and run every zone of every day through Dagster")
    data_options(demo)
    demo.add_argument(
        "--keep",
        action="store_true",
        help="keep the embedded demo lake and warehouse instead of starting from empty ones",
    )
    demo.set_defaults(run=_demo)

    ledger = _add_command(commands, "ledger", help="query the file ledger (every file the gate has seen)")
    ledger.add_argument("--dataset")
    ledger.add_argument("--day", type=date.fromisoformat)
    ledger.add_argument("--outcome", choices=OUTCOMES)
    ledger.add_argument("--key", help="substring of the raw or destination key")
    ledger.add_argument("--reason", help="a rejection reason code, e.g. not_utf8")
    ledger.add_argument("--json", action="store_true", help="one JSON object per line")
    ledger.set_defaults(run=_ledger)

    from customer360.contracts import DATASETS

    quarantine = _add_command(commands, "quarantine", help="query the rows quarantined for breaking a contract rule")
    quarantine.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    quarantine.add_argument("--day", required=True, type=date.fromisoformat)
    quarantine.add_argument("--rule", help="only rows that broke this rule (e.g. e164, allowed_values, type)")
    quarantine.add_argument("--column", help="only rows whose first broken rule was on this column")
    quarantine.add_argument("--limit", type=int, default=50, help="rows printed in the table view")
    quarantine.add_argument("--json", action="store_true", help="every matching row as one JSON object per line")
    quarantine.set_defaults(run=_quarantine)

    backfill = _add_command(
        commands, "backfill", help="replay a range of days: submit a backfill (one run per range) for the daemon to run"
    )
    day_range(backfill)
    backfill.add_argument(
        "--select",
        help="assets in the UI's selection syntax, e.g. group:staging or key:clean/customers+ (default: all daily)",
    )
    backfill.add_argument("--dry-run", action="store_true", help="print what would be submitted; submit nothing")
    backfill.set_defaults(run=_backfill)

    replay = _add_command(
        commands, "replay", help="replay a range of days now, in this process: one run per day, in order (fastest)"
    )
    day_range(replay)
    replay.set_defaults(run=_replay)
    return parser


def main(argv: list[str] | None = None) -> int:
    import warnings

    import dagster as dg

    from customer360.errors import describe, where_from_env

    # Loading the code location warns about every beta/preview Dagster API it uses: noise for a CLI reader.
    for category in (dg.BetaWarning, dg.PreviewWarning):
        warnings.filterwarnings("ignore", category=category)
    os.environ.setdefault("DAGSTER_HOME", os.getcwd()) if os.path.exists("dagster.yaml") else None
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print(f"customer360 {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        print(
            f"customer360 {args.command}: {describe(error, where_from_env())} (--debug shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
