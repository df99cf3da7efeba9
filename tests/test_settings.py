"""One typed Settings, read in one place: files, presets, `extends`, proportions, environment
overrides, validation that names the problem; and nothing else in the project reads the
environment or imports the asset modules from a check."""

import ast
import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from jobs import daily_drift_reports, daily_ingest
from odyssey.settings import DEFAULT_FILE, load_settings, preset_path
from odyssey.walkforward import walkforward_from_settings
from resources import SettingsResource, build_resources

REPO = Path(__file__).resolve().parent.parent


def test_the_default_file_is_the_full_preset(tmp_path):
    default = load_settings(environ={})
    full = load_settings(preset_path("full"), environ={})
    assert DEFAULT_FILE.name == "odyssey.toml"
    assert default.model_dump() == full.model_dump()
    assert len(default.universe.tickers) == 15 and default.universe.exchange == "XNYS"
    assert default.forecast.horizon == 5


def test_a_file_extends_a_preset_and_changes_only_what_differs(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(f'''extends = "{preset_path("full")}"
[universe]
tickers = ["AAA", "BBB", "CCC"]
benchmark = "AAA"
alt_series = []
[dates]
start = "2012-01-03"
end = "2017-12-29"
train_end = 0.6
validation_end = 0.8
[source]
kind = "csv"
csv_path = "bars"
[forecast]
horizon = 10
''')
    settings = load_settings(path, environ={})
    profile = settings.profile()
    assert profile.tickers == ("AAA", "BBB", "CCC") and profile.alt_series == ()
    assert settings.source.csv_path == str(tmp_path / "bars")  # relative to the file
    assert settings.forecast.horizon == 10
    wf = walkforward_from_settings(settings)
    assert (wf.horizon, wf.purge_rows, wf.embargo_rows) == (10, 10, 10)
    sessions = profile.sessions
    assert profile.start == "2012-01-03" and profile.end == "2017-12-29" and len(sessions) == 1509
    assert profile.train_end == str(sessions[round(0.6 * 1509) - 1].date())
    assert profile.validation_end == str(sessions[round(0.8 * 1509) - 1].date())
    assert settings.portfolio.ppo.total_timesteps == 500_000  # untouched: the preset's


def test_the_environment_overrides_the_common_knobs_and_today_resolves_to_a_session(tmp_path):
    settings = load_settings(preset_path("quick"), environ={
        "ODYSSEY_SEED": "3", "ODYSSEY_SIGNAL_STRENGTH": "0", "ODYSSEY_DRIFT_TICKERS": "AAPL, NVDA",
        "ODYSSEY_HOME": str(tmp_path), "ODYSSEY_END": "today", "ODYSSEY_SIGNING_KEY": "secret"})
    assert settings.source.synthetic.seed == 3 and settings.source.synthetic.signal_strength == 0.0
    assert settings.source.synthetic.drift_tickers == ("AAPL", "NVDA")
    assert settings.paths.storage_url == str(tmp_path / "storage")
    assert settings.paths.signing_key_env == "ODYSSEY_SIGNING_KEY" and "secret" not in settings.model_dump_json()
    end = settings.profile(today=pd.Timestamp("2024-12-25 20:00")).end
    assert end == "2024-12-24"  # Christmas is not a session: the newest session on or before today


PLANTED_PASSWORD = "planted-password-4821"
PLANTED_WEBHOOK = "https://hooks.example.com/services/T0000/B0000/planted-webhook-token-93"


def test_credentials_reach_the_resources_by_variable_name_only(tmp_path, monkeypatch):
    """An MLflow URI with a password and the alert webhook, set in the environment: the settings
    (the settings resource's document) and every resource's configured values hold neither, only
    the variables' names; the resources read the real values when they start."""
    uri = f"https://alice:{PLANTED_PASSWORD}@mlflow.example.com/"
    environ = {"ODYSSEY_HOME": str(tmp_path), "MLFLOW_TRACKING_URI": uri, "ODYSSEY_ALERT_WEBHOOK": PLANTED_WEBHOOK}
    settings = load_settings(preset_path("quick"), environ=environ)
    assert settings.paths.mlflow_tracking_uri == "https://***@mlflow.example.com/"
    assert settings.paths.mlflow_tracking_uri_env == "MLFLOW_TRACKING_URI"
    assert settings.paths.alert_webhook_env == "ODYSSEY_ALERT_WEBHOOK"
    resources = build_resources(settings)
    shown = json.dumps({name: r.model_dump() for name, r in resources.items() if hasattr(r, "model_dump")},
                       default=str)
    assert PLANTED_PASSWORD not in shown and "planted-webhook-token" not in shown
    assert PLANTED_PASSWORD not in resources["settings"].document
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert resources["mlflow"].process_config_and_initialize().tracker().tracking_uri == uri
    assert resources["settings"].process_config_and_initialize().alert_webhook == PLANTED_WEBHOOK
    # a token in the query string is a credential too: masked, and read from the variable
    token = f"https://mlflow.example.com/api?Access_Token={PLANTED_PASSWORD}&team=quant"
    masked = load_settings(preset_path("quick"), environ={"MLFLOW_TRACKING_URI": token})
    assert masked.paths.mlflow_tracking_uri == "https://mlflow.example.com/api?Access_Token=***&team=quant"
    assert masked.paths.mlflow_tracking_uri_env == "MLFLOW_TRACKING_URI"
    assert PLANTED_PASSWORD not in build_resources(masked)["settings"].document
    # a URI without credentials is shown as it is
    plain = load_settings(preset_path("quick"), environ={"MLFLOW_TRACKING_URI": "http://mlflow:5000"})
    assert plain.paths.mlflow_tracking_uri == "http://mlflow:5000" and plain.paths.mlflow_tracking_uri_env is None
    assert build_resources(plain)["mlflow"].tracking_uri == "http://mlflow:5000"


@pytest.mark.parametrize("text, field", [
    (f'[paths]\nmlflow_tracking_uri = "https://alice:{PLANTED_PASSWORD}@mlflow.example.com"',
     "paths.mlflow_tracking_uri"),
    (f'[paths]\nstorage_url = "s3://key:{PLANTED_PASSWORD}@bucket/odyssey"', "paths.storage_url"),
    (f'[memory]\nqdrant_url = "https://user:{PLANTED_PASSWORD}@qdrant.example.com"', "memory.qdrant_url"),
    (f'[paths]\nalert_webhook = "{PLANTED_WEBHOOK}"', "paths.alert_webhook"),
    (f'[memory]\nqdrant_url = "https://qdrant.example.com:6333?api_key={PLANTED_PASSWORD}"', "memory.qdrant_url"),
    (f'[paths]\nmlflow_tracking_uri = "https://mlflow.example.com/?token={PLANTED_PASSWORD}&x=1"',
     "paths.mlflow_tracking_uri"),
    (f'[paths]\nstorage_url = "az://odyssey/tables?sv=2022&sig={PLANTED_PASSWORD}"', "paths.storage_url"),
])
def test_a_credential_written_in_a_settings_file_is_refused_without_repeating_it(tmp_path, text, field):
    path = tmp_path / "leaky.toml"
    path.write_text(f'extends = "{preset_path("quick")}"\n{text}\n')
    with pytest.raises(ValueError, match=field) as error:
        load_settings(path, environ={})
    message = str(error.value)
    assert str(path) in message and "environment variable" in message
    assert PLANTED_PASSWORD not in message and "planted-webhook-token" not in message


def test_query_parameters_that_merely_look_like_credentials_are_not_refused():
    from odyssey.settings import has_credentials, redact_url

    for url in ["s3://bucket/odyssey?key_prefix=runs", "https://qdrant.example.com?author=me",
                "postgresql://db/mlflow?sslmode=verify-full&sslkey=/etc/ssl/client.key",
                "https://mlflow.example.com/?tokenizer=bpe&design=a"]:
        assert not has_credentials(url), url
    for url in ["https://x.example.com/?X-Amz-Signature=abc", "az://c/t?sv=1&sig=abc", "https://q?api-key=abc",
                "https://q?API_KEY=abc", "https://q?key=abc"]:
        assert has_credentials(url) and "abc" not in redact_url(url), url


def test_another_file_through_odyssey_settings(tmp_path):
    path = tmp_path / "other.toml"
    path.write_text(f'extends = "{preset_path("quick")}"\nname = "other"\n')
    assert load_settings(environ={"ODYSSEY_SETTINGS": str(path)}).name == "other"


@pytest.mark.parametrize("text, message", [
    ('[universe]\ntickers = ["A", "B"]\nbenchmark = "SPY"', "benchmark 'SPY' must be one of the tickers"),
    ('[universe]\ntickers = ["A", "A"]\nbenchmark = "A"', "repeats a ticker"),
    ('[universe]\ntickers = ["A"]\nbenchmark = "A"\nalt_series = ["OIL"]', "unknown series \\['OIL'\\]"),
    ('[dates]\nstart = "2015-01-02"\ntrain_end = 1.5', "strictly between 0 and 1"),
    ('[forecast]\nxgboost = "fancy"', "unknown XGBoost preset 'fancy'"),
    ('[source]\nkind = "csv"', "needs source.csv_path"),
    ('[monitoring]\nwindow_days = 60', "retrain_hold_sessions \\(63\\) exceeds window_days \\(60\\)"),
    ('[dates]\ntrain_end = "2020-01-02"\nvalidation_end = "2019-01-02"', None),
])
def test_bad_settings_are_named(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'extends = "{preset_path("quick")}"\n{text}\n')
    if message is None:  # valid to read, refused when the dates are resolved
        with pytest.raises(ValueError, match="train_end < validation_end"):
            load_settings(path, environ={}).profile()
        return
    with pytest.raises(ValueError, match=message) as error:
        load_settings(path, environ={})
    assert str(path) in str(error.value)


def test_an_extends_loop_and_a_missing_file_are_named(tmp_path):
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n')
    with pytest.raises(ValueError, match="loops"):
        load_settings(tmp_path / "a.toml", environ={})
    with pytest.raises(FileNotFoundError, match="nowhere.toml"):
        load_settings(tmp_path / "nowhere.toml", environ={})


def _python_files(*folders: str):
    for folder in folders:
        yield from sorted((REPO / folder).rglob("*.py"))


def test_only_the_settings_loader_reads_the_environment():
    readers = []
    for path in _python_files("assets", "checks", "sensors", "jobs", "resources", "odyssey"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and \
                    isinstance(node.value, ast.Name) and node.value.id == "os":
                readers.append(f"{path.relative_to(REPO)}:{node.lineno}")
    # the loader, and the one place that sets an MLflow option for its own client
    assert {r.split(":")[0] for r in readers} <= {"odyssey/settings.py", "odyssey/registry.py"}, readers


def test_checks_sensors_and_jobs_never_import_the_asset_modules():
    offenders = []
    for path in _python_files("checks", "sensors", "jobs", "resources", "odyssey"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "assets":
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_the_daily_schedules_skip_the_days_the_exchange_is_closed(quick_settings):
    resource = SettingsResource.of(quick_settings)
    for schedule in (daily_ingest, daily_drift_reports):
        for day, runs in (("2024-12-25 22:00", False), ("2024-12-24 22:00", True)):
            context = dg.build_schedule_context(scheduled_execution_time=pd.Timestamp(day, tz="America/New_York"))
            result = schedule(context, settings=resource)
            assert isinstance(result, dg.RunRequest) is runs, (schedule.name, day)
            if not runs:
                assert "not a XNYS session" in result.skip_message


def test_a_run_may_judge_drift_on_a_window_shorter_than_the_retraining_hold():
    """The hold belongs to the retraining sensor: only the settings must keep it within their
    window, never a run's override of the window it looks at (a launchpad value)."""
    from assets.monitoring import DriftConfig
    from odyssey.settings import MonitoringSettings

    assert DriftConfig(window_days=40).apply(MonitoringSettings()).window_days == 40
