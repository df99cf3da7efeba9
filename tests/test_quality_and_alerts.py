"""Quality scores on data where the answer is known, and the run-failure alert log."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pandas as pd
import pytest

from odyssey import features as F
from odyssey.quality import long_gaps, nan_outside_warmup, quality_scores
from odyssey.settings import load_settings, preset_path
from resources.settings import SettingsResource
from sensors.alerts import record_alert, run_failure_alerts
from tests.dagster_helpers import quick_settings


def _scores(raw, clean, tickers, start):
    frame = quality_scores(raw, clean, tickers, start)
    return dict(zip(frame["dimension"], frame["score"]))


def test_good_synthetic_data_scores_high(quick_pipeline):
    p = quick_pipeline
    scores = _scores(p.data.prices, p.clean, p.profile.tickers, p.profile.start)
    assert all(v >= 0.95 for v in scores.values()), scores
    assert scores["uniqueness"] == 1.0 and scores["timeliness"] == 1.0


def test_each_dimension_drops_for_its_own_defect(quick_pipeline):
    p = quick_pipeline
    raw, clean, tickers, start = p.data.prices, p.clean, p.profile.tickers, p.profile.start
    missing = _scores(raw[raw["ticker"] != "IEF"], clean, tickers, start)
    assert missing["completeness"] == pytest.approx(0.8, abs=0.01) and missing["timeliness"] == 0.8
    dup = _scores(pd.concat([raw, raw.head(len(raw) // 10)]), clean, tickers, start)
    assert dup["uniqueness"] == pytest.approx(1 - (len(raw) // 10) / (len(raw) + len(raw) // 10))
    swapped = raw.copy()
    rows = swapped.index[:len(raw) // 10]
    swapped.loc[rows, ["high", "low"]] = swapped.loc[rows, ["low", "high"]].to_numpy()
    bad = _scores(swapped, clean, tickers, start)
    assert bad["consistency"] == pytest.approx(0.9, abs=0.001)
    stale = raw[~((raw["ticker"] == "AAPL") & (raw["date"] > raw["date"].max() - pd.Timedelta(days=30)))]
    assert _scores(stale, clean, tickers, start)["timeliness"] == pytest.approx(0.8)


def test_completeness_counts_sessions_from_each_tickers_first_bar(quick_pipeline):
    """A ticker listed later than the start is not incomplete before its first bar; a session it
    misses afterwards is. Holidays are not sessions, so they are never missing."""
    p = quick_pipeline
    raw, clean, tickers, start = p.data.prices, p.clean, p.profile.tickers, p.profile.start
    sessions = p.profile.sessions
    full = raw[raw["ticker"] != "IEF"]
    ief = pd.DataFrame({"date": sessions, "ticker": "IEF", "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0,
                        "volume": 1.0})
    have = len(full) + len(sessions)
    complete = _scores(pd.concat([full, ief]), clean, tickers, start)["completeness"]
    assert complete == pytest.approx(have / (4 * len(sessions) + len(sessions)))
    late = ief[ief["date"] >= sessions[500]]
    assert _scores(pd.concat([full, late]), clean, tickers, start)["completeness"] == pytest.approx(
        (len(full) + len(late)) / (4 * len(sessions) + len(late)))
    holes = late.drop(late.index[[10, 11, 12]])
    assert _scores(pd.concat([full, holes]), clean, tickers, start)["completeness"] == pytest.approx(
        (len(full) + len(late) - 3) / (4 * len(sessions) + len(late)))


def test_long_gap_and_warmup_rules_name_ticker_and_dates(quick_pipeline):
    clean = quick_pipeline.clean.copy()
    aapl = clean.index[clean["ticker"] == "AAPL"][100:108]
    clean.loc[aapl, "gap"] = True
    gaps = long_gaps(clean)
    assert gaps.to_dict("records") == [{"ticker": "AAPL", "start": clean.loc[aapl[0], "date"].date(),
                                        "end": clean.loc[aapl[-1], "date"].date(), "sessions": 8}]
    features = quick_pipeline.features.copy()
    row = features.index[features["ticker"] == "SPY"][400]
    features.loc[row, "RSI_14"] = float("nan")
    bad = nan_outside_warmup(features, F.feature_names(quick_pipeline.profile.alt_series))
    assert bad[["feature", "ticker", "rows"]].to_dict("records") == [{"feature": "RSI_14", "ticker": "SPY", "rows": 1}]


def test_alert_log_appends_json_lines(tmp_path):
    path = tmp_path / "alerts.log"
    record_alert({"run_id": "a", "error": "boom"}, path=path)
    record_alert({"run_id": "b", "error": "bang"}, path=path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [x["run_id"] for x in lines] == ["a", "b"]


def _alert_a_failed_run(resource: SettingsResource):
    """Run a job that fails and let run_failure_alerts report it with this settings resource."""
    @dg.op
    def explode():
        raise RuntimeError("synthetic failure")

    @dg.job
    def failing():
        explode()

    with dg.instance_for_test() as instance:
        result = failing.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alerts", dagster_event=failure, dagster_instance=instance,
            dagster_run=result.dagster_run, resources={"settings": resource}).for_run_failure()
        run_failure_alerts(context)
    return result


def test_run_failure_sensor_records_a_failed_run(tmp_path):
    settings = quick_settings(tmp_path / "home")
    result = _alert_a_failed_run(SettingsResource.of(settings))
    assert settings.paths.alerts_log == str(tmp_path / "home" / "alerts.log")
    alert = json.loads((tmp_path / "home" / "alerts.log").read_text().splitlines()[0])
    assert alert["run_id"] == result.run_id and alert["job"] == "failing"


def test_the_alert_webhook_comes_from_its_variable_and_is_never_in_the_shown_settings(tmp_path, monkeypatch):
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_port}/services/planted-webhook-token-41"
    try:
        environ = {"ODYSSEY_HOME": str(tmp_path / "home"), "ODYSSEY_ALERT_WEBHOOK": hook}
        settings = load_settings(preset_path("quick"), environ=environ)
        resource = SettingsResource.of(settings)
        assert "planted-webhook-token" not in resource.document
        monkeypatch.setenv("ODYSSEY_ALERT_WEBHOOK", hook)  # the run's environment, read when the resource starts
        result = _alert_a_failed_run(resource)
    finally:
        server.shutdown()
    [(path, alert)] = received
    assert path == "/services/planted-webhook-token-41"
    assert alert["run_id"] == result.run_id and alert["job"] == "failing"
