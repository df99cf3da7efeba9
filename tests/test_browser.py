"""The UI as a user clicks it, in headless Chromium (Playwright): dagster-webserver and
dagster-daemon on a small market's instance. Open the asset graph; click Materialize on an asset
and see its run succeed; see the failed blocking gate on forecast_models and deployed_models not
built; drop a new session in the landing folder and see the sensor's run appear and finish.

Screenshots go to $ODYSSEY_SCREENSHOTS (default: the test's temporary folder); the README's are
made with `ODYSSEY_SCREENSHOTS=docs/images pytest tests/test_browser.py`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from jobs.main import open_instance
from odyssey.landing import synthetic_days, write_landing
from odyssey.settings import ENV_OVERRIDES, SIGNING_KEY_ENV, load_settings, preset_path
from resources.storage import last_landed_day
from tests.dagster_helpers import fast_forecasting_config, run_graph
from tests.test_webserver import REPO_ROOT, Server, _free_port, _stop, _wait_until_loaded

TICKERS = ("SPY", "QQQ")
GATED = "SPY"  # its candidate fails has_skill: the settings ask for more out-of-sample days than there are
RUN_TIMEOUT = 240.0
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]


class UI:
    """The webserver and the daemon on one instance, with the settings they load."""

    def __init__(self, server: Server, settings, daemon: subprocess.Popen, shots: Path):
        self.server, self.settings, self.daemon, self.shots = server, settings, daemon, shots


def _settings_file(home: Path) -> Path:
    path = home / "odyssey.toml"
    path.write_text(f'extends = "{preset_path("quick")}"\nname = "browser"\n\n[paths]\nhome = "{home}"\n\n'
                    f'[universe]\ntickers = {list(TICKERS)!r}\nbenchmark = "SPY"\n\n'
                    '[gates]\nmin_skill_days = 100000\n\n[daemon]\nlanding_seconds = 1\nfollow_seconds = 5\n')
    return path


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser")
    settings = load_settings(_settings_file(home), environ={})
    with open_instance(settings) as instance:  # the market and one gated ticker, built in process
        assert run_graph(settings, instance=instance).success
        run_graph(settings, job="forecasting", partition_key=GATED, instance=instance,
                  run_config=fast_forecasting_config())
    env = {k: v for k, v in os.environ.items() if k not in {*ENV_OVERRIDES, "ODYSSEY_SETTINGS", SIGNING_KEY_ENV}}
    env.update(DAGSTER_HOME=settings.paths.dagster_home, ODYSSEY_SETTINGS=str(home / "odyssey.toml"),
               PYTHONUNBUFFERED="1")
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "dagster"), "sensor", "start", "landing_sensor", "-w", "workspace.yaml"],
                   cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    port = _free_port()
    logs = tmp_path_factory.mktemp("ui_logs")
    with (logs / "webserver.log").open("wb") as web_log, (logs / "daemon.log").open("wb") as daemon_log:
        webserver = subprocess.Popen([str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
                                      "-p", str(port)], cwd=REPO_ROOT, env=env, stdout=web_log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        daemon = subprocess.Popen([str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=REPO_ROOT,
                                  env=env, stdout=daemon_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", webserver, logs / "webserver.log", home)
    shots = Path(os.environ.get("ODYSSEY_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    try:
        _wait_until_loaded(server)
        yield UI(server, settings, daemon, shots)
    finally:
        _stop(daemon)
        _stop(webserver)


@pytest.fixture(scope="module")
def page(ui):
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is installed by the test setup (make browser)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        tab = browser.new_page(viewport={"width": 1440, "height": 900})
        tab.set_default_timeout(60_000)
        tab.goto(f"{ui.server.url}/asset-groups")
        skip = tab.get_by_role("button", name="Skip")  # the first visit's newsletter dialog
        try:
            skip.click(timeout=10_000)
        except Exception:  # noqa: BLE001 - no dialog on this visit
            pass
        yield tab
        browser.close()


def _runs(ui: UI, job: str | None = None) -> list:
    with open_instance(ui.settings) as instance:
        return instance.get_runs(dg.RunsFilter(job_name=job) if job else None)


def _finished(ui: UI, run_id: str) -> dg.DagsterRun:
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        with open_instance(ui.settings) as instance:
            run = instance.get_run_by_id(run_id)
        if run.is_finished:
            return run
        time.sleep(1)
    pytest.fail(f"run {run_id} not finished after {RUN_TIMEOUT:.0f} s; daemon and webserver logs:\n"
                f"{ui.server.log_tail()}")


def _run_page(ui: UI, page, run_id: str, shot: str) -> None:
    """The run's page shows it succeeded; a screenshot once its event log has loaded."""
    page.goto(f"{ui.server.url}/runs/{run_id}")
    page.get_by_text("Success", exact=True).first.wait_for()
    page.get_by_text("Loading run logs").first.wait_for(state="detached")
    page.screenshot(path=str(ui.shots / shot))


@pytest.mark.slow
def test_the_asset_graph_shows_every_group(ui, page):
    page.goto(f"{ui.server.url}/asset-groups")
    for group in ("market", "features", "forecasting", "monitoring", "portfolio", "memory", "ticks"):
        page.get_by_text(group, exact=True).first.wait_for()
    page.get_by_text("fetching statuses").first.wait_for(state="detached")
    page.screenshot(path=str(ui.shots / "ui_asset_graph.png"))


@pytest.mark.slow
def test_materialize_clicked_on_an_asset_runs_and_succeeds(ui, page):
    before = {r.run_id for r in _runs(ui)}
    page.goto(f"{ui.server.url}/assets/data_quality_report")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ui.shots / "ui_asset_page.png"))
    page.locator("button", has_text="Materialize").first.click()
    deadline = time.monotonic() + 60
    while not (new := [r for r in _runs(ui) if r.run_id not in before]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert new, "clicking Materialize launched no run"
    run = _finished(ui, new[0].run_id)
    assert run.status == dg.DagsterRunStatus.SUCCESS, ui.server.log_tail()
    _run_page(ui, page, run.run_id, "ui_materialize_run.png")


@pytest.mark.slow
def test_a_failed_gate_shows_on_forecast_models_and_deployed_models_is_not_built(ui, page):
    page.goto(f"{ui.server.url}/assets/forecast_models?view=checks")
    check = page.get_by_text("has_skill", exact=True).first
    check.wait_for()
    check.click()
    page.get_by_text("Failed").first.wait_for()
    page.get_by_text("skill cannot be judged").first.wait_for()  # the reason, in the check's metadata
    page.screenshot(path=str(ui.shots / "ui_gate_failed.png"))
    with open_instance(ui.settings) as instance:
        assert instance.get_latest_materialization_event(dg.AssetKey("deployed_models")) is None
    page.goto(f"{ui.server.url}/assets/deployed_models?view=partitions")
    page.get_by_text("Materialized (0)").first.wait_for()  # the gated partition was never built
    page.screenshot(path=str(ui.shots / "ui_deployed_models_not_built.png"))


@pytest.mark.slow
def test_a_file_dropped_in_the_landing_folder_starts_the_sensors_run(ui, page):
    from graph import build_definitions

    before = {r.run_id for r in _runs(ui, "ingest")}
    profile = ui.settings.profile()
    storage = build_definitions(ui.settings).resources["storage"]
    data = synthetic_days(profile, ui.settings.source.synthetic, last_landed_day(storage, profile.end, "bars"), 1)
    write_landing(data, Path(ui.settings.paths.landing_dirs[0]))
    page.goto(f"{ui.server.url}/runs")
    deadline = time.monotonic() + 120
    while not (new := [r for r in _runs(ui, "ingest") if r.run_id not in before]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert new, "the landing sensor started no ingest run"
    page.reload()
    page.get_by_text(new[0].run_id[:8]).first.wait_for()  # the run appears in the list
    run = _finished(ui, new[0].run_id)
    assert run.status == dg.DagsterRunStatus.SUCCESS, ui.server.log_tail()
    assert run.tags.get("odyssey/trigger") == "landing"
    _run_page(ui, page, run.run_id, "ui_landing_run.png")
    page.get_by_text("Launched by landing_sensor").first.wait_for()  # who launched it, on the run's page
