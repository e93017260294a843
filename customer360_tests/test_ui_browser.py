"""The Dagster UI in a real browser, walked as an operator walks it after a small demo (issue 15, "done when").

Headless Chromium from Debian's ``chromium`` package (``dev.py`` installs it with apt), driven by playwright
through ``executable_path``: no browser is downloaded. It talks to the stack ``dagster dev`` runs
(``customer360_tests.dagster_stack``: ``dagster-webserver`` and the daemon as processes over a temp instance)
after a small demo: two days generated and replayed (``customer360 replay``'s ``replay_days``), the second day
with the generator's rejected activity files. Then, in the browser, only through the pages:

1. the asset graph shows the zone groups;
2. the mart's "Materialize…" dialog, one day typed in: "Launch 1 run"; the run's page says Success;
3. clean/activity_logs' dialog, both days typed in as a range: "Launch backfill"; its page says Succeeded;
4. the Checks tab of clean/activity_logs: every check's execution history lists a "Passed" execution for each
   of the two days, with the day as its partition (what the backfill recorded for that day);
5. the automation refreshes what the backfill changed: staging/activity and warehouse/activity show both days
   materialized again, by the automation's runs (the run that rebuilt them is read from the instance);
6. the partition page of rejected/activity_logs for the second day shows ``why_rejected``: the missing column,
   what to do, the schema diff.

Waits are on text the UI shows (playwright's auto-waiting ``expect``), never sleeps. Screenshots of every step go
to a temp folder whose path the test prints (``-s``).
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import expect, sync_playwright

from customer360.defs.backfill import replay_days
from customer360.defs.definitions import build_definitions
from customer360.defs.resources.lake import LakeResource
from customer360.defs.resources.warehouse import WarehouseResource
from customer360_generator import generate_demo_data
from customer360_tests.dagster_stack import Stack, dagster_stack, stack_env, wait_for, write_home

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 120_000  # a loaded 2-core machine: a run process alone may take 20 s to start
LAST_DAY = datetime.now(UTC).date() - timedelta(days=1)
DAYS = [LAST_DAY - timedelta(days=1), LAST_DAY]
CHECK_NAMES = """
query Checks($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) { assetChecksOrError { ... on AssetChecks { checks { name } } } }
}
"""
REFRESHED = [["staging", "activity"], ["warehouse", "activity"]]


def _prepare(home: Path) -> None:
    """The small demo: two days generated into the stack's lake and replayed in this process."""
    env = stack_env(home)
    lake = LakeResource(location=env["CUSTOMER360_LAKE"])
    warehouse = WarehouseResource(backend="duckdb", duckdb_path=env["CUSTOMER360_DUCKDB_PATH"])
    generate_demo_data(
        lake.store().put_bytes, DAYS[0], len(DAYS), seed=5, customers=40, events_per_day=120, hours_per_day=2
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        replayed = list(replay_days(build_definitions(lake, warehouse), instance, DAYS[0], DAYS[-1]))
    assert all(day.success for day in replayed), replayed


def _latest_runs(instance: dg.DagsterInstance, path: list[str]) -> dict[str, str]:
    """Day -> run id of the latest materialization of that day of the asset."""
    latest: dict[str, str] = {}
    for record in instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(path)), limit=100
    ).records:
        latest.setdefault(str(record.partition_key), record.run_id)
    return latest


def _refreshed(stack: Stack, path: list[str], before: dict[tuple[str, ...], dict[str, str]]) -> bool:
    stack.assert_running()
    with stack.instance() as instance:
        latest = _latest_runs(instance, path)
    return all(latest.get(day) != before[tuple(path)][day] for day in before[tuple(path)])


def _check_names(stack: Stack, path: list[str]) -> list[str]:
    [node] = stack.graphql(CHECK_NAMES, {"keys": [{"path": path}]})["assetNodes"]
    return [check["name"] for check in node["assetChecksOrError"]["checks"]]


def _launch_from_dialog(page, partitions: str, button: str) -> None:  # noqa: ANN001 - playwright's Page
    """The asset page's "Materialize…" dialog: type the partitions, press the launch button, follow "View"."""
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    selection = dialog.locator("input[type=text]").first
    selection.fill(partitions)
    selection.press("Enter")
    dialog.get_by_role("button", name=button).click()
    page.get_by_role(
        "link", name="View", exact=True
    ).first.click()  # the toast: "Launched run …" / "Created backfill …"


def test_an_operator_walks_the_ui_from_the_graph_to_a_rejected_files_reasons(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: python3.11 dev.py installs Debian's chromium package")
    shots = Path(tempfile.mkdtemp(prefix="c360-ui-shots-"))
    home = tmp_path / "home"
    home.mkdir()
    write_home(home)
    started = time.monotonic()
    _prepare(home)
    print(f"\nthe small demo (generate + replay of {len(DAYS)} days): {time.monotonic() - started:.1f} s")
    days = [day.isoformat() for day in DAYS]
    fast = {"CUSTOMER360_AUTOMATION_INTERVAL_SECONDS": "3", "CUSTOMER360_SENSOR_INTERVAL_SECONDS": "5"}
    with dagster_stack(home, daemon=True, extra_env=fast) as stack, sync_playwright() as driver:
        print(f"webserver and daemon up: {time.monotonic() - started:.1f} s")
        with stack.instance() as instance:
            before = {tuple(path): _latest_runs(instance, path) for path in REFRESHED}
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            began = time.monotonic()

            def shoot(name: str) -> None:
                page.screenshot(path=shots / name)
                print(f"{time.monotonic() - began:6.1f} s  {name}")

            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)
            # The UI's "Join the Dagster community" dialog opens a second after any page load, over whatever
            # dialog the test has open (a Skip handler alone raced it): mark it seen, as Skip does (the instance's
            # setNuxSeen and the browser's communityNux key), and still answer it with Skip should it show up.
            stack.graphql("mutation { setNuxSeen }")
            page.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")
            community = page.get_by_text("Join the Dagster community")
            page.add_locator_handler(community, lambda: page.get_by_role("button", name="Skip").click())

            # 1. The graph: one box per zone group.
            page.goto(f"{stack.base_url}/asset-groups")
            for group in ("raw", "archive", "rejected", "clean", "staging", "warehouse", "mart"):
                expect(page.get_by_text(group, exact=True).first).to_be_visible()
            shoot("1-graph.png")

            # 2. One day of the mart, materialized from its page.
            page.goto(f"{stack.base_url}/assets/mart/customer_360")
            _launch_from_dialog(page, days[-1], "Launch 1 run")
            expect(page.get_by_text(f"partition: {days[-1]}")).to_be_visible()
            expect(page.get_by_text("Success", exact=True).first).to_be_visible()
            shoot("2-materialized-one-day.png")

            # 3. A backfill of both days of clean/activity_logs from the dialog.
            page.goto(f"{stack.base_url}/assets/clean/activity_logs")
            _launch_from_dialog(page, f"[{days[0]}...{days[-1]}]", "Launch backfill")
            expect(page.get_by_text(f"{days[0]}...{days[-1]}")).to_be_visible()
            expect(page.get_by_text("100% completed")).to_be_visible()
            expect(page.get_by_text("Succeeded", exact=True)).to_have_count(2)  # the column and the status
            shoot("3-backfill.png")
            backfill_id = page.url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]  # /runs/b/<id>: the page "View" opened
            with stack.instance() as instance:
                # Not "the latest backfill": the automation submits its multi-day requests as backfills too.
                assert instance.get_backfill(backfill_id) is not None, page.url
                backfill_runs = {
                    run.run_id
                    for run in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
                }
                assert backfill_runs, backfill_id

            # 4. Each check of clean/activity_logs passed for each day, recorded as that day: the newest two
            #    executions of every check are the backfill's, one per day, both Passed.
            for name in _check_names(stack, ["clean", "activity_logs"]):
                page.goto(f"{stack.base_url}/assets/clean/activity_logs?view=checks&checkDetail={name}")
                page.get_by_text("Execution history").click()
                rows = page.get_by_role("row")
                expect(rows).to_have_count(1 + 2 * len(days))  # the header, the replay's days, the backfill's days
                for position, day in enumerate(reversed(days), start=1):  # the backfill walked the days in order
                    expect(rows.nth(position)).to_contain_text(day)
                    expect(rows.nth(position)).to_contain_text("Passed")
            shoot("4-check-per-day.png")

            # 5. The automation carried the backfilled days downstream: each day's partition page names a run
            #    that is neither the replay's nor the backfill's, but the automation's.
            for path in REFRESHED:
                asset = "/".join(path)
                wait_for(f"{asset} rebuilt for {days}", lambda path=path: _refreshed(stack, path, before), 240, 2)
                with stack.instance() as instance:
                    latest = _latest_runs(instance, path)
                    for day in days:
                        run = instance.get_run_by_id(latest[day])
                        assert run is not None and run.run_id not in backfill_runs, (asset, day)
                        assert run.tags.get("dagster/from_automation_condition") == "true", (asset, day, run.tags)
                for day in days:
                    page.goto(f"{stack.base_url}/assets/{asset}?view=partitions&partition={day}")
                    expect(page.get_by_text(latest[day][:8]).first).to_be_visible()
                    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
                shoot(f"5-{path[0]}-refreshed-by-automation.png")

            # 6. Why the second day's activity file was rejected, on the rejected asset's page.
            page.goto(f"{stack.base_url}/assets/rejected/activity_logs?view=partitions&partition={days[-1]}")
            why = page.get_by_text("header lacks contract fields ['roaming']")
            expect(why.first).to_be_visible()
            expect(page.get_by_text("What to do:").first).to_be_visible()
            expect(page.get_by_text("Schema diff: missing: roaming").first).to_be_visible()
            why.first.scroll_into_view_if_needed()
            shoot("6-why-rejected.png")
        finally:
            browser.close()
    print(f"\nscreenshots: {shots}")
