"""The README's main command, headless: everything built and every check passing on a market a
user brings in a settings file (three tickers, 2012-2017, no alternative data), gates reported."""

import argparse
import re
import time
from pathlib import Path

import pytest

from jobs.main import main, open_instance, planned_materializations, settings_from, summarize
from odyssey.settings import load_settings, preset_path
from tests.main_run import SETTINGS_VARIABLES


def _settings_file(tmp_path: Path) -> Path:
    """The quick preset with every piece of local state under tmp_path/home."""
    path = tmp_path / "odyssey.toml"
    path.write_text(f'extends = "{preset_path("quick")}"\n\n[paths]\nhome = "home"\n')
    return path


@pytest.fixture
def no_settings_environment(monkeypatch):
    """Nothing of the caller's environment (e.g. `make`'s DAGSTER_HOME) may redirect the run's state."""
    for name in SETTINGS_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    for flag in ("--settings", "--profile", "--settings-json"):
        parser.add_argument(flag)
    return parser.parse_args(argv)


def _record(job, partition=None, checks=(), materialized=1, errors=()):
    return {"job": job, "partition": partition, "run_id": "r", "materialized": materialized,
            "checks": [{"asset": a, "check": c, "passed": p, "blocking": b, "reason": r,
                        "evaluable": not (r or "").startswith("not yet evaluable")} for a, c, p, b, r in checks],
            "errors": list(errors)}


def test_settings_come_from_the_file_or_the_preset(tmp_path, quick_settings, no_settings_environment):
    path = _settings_file(tmp_path)
    from_file = settings_from(_args("--settings", str(path)))
    assert from_file.paths.home == str(tmp_path / "home")
    assert from_file.paths.dagster_home == str(tmp_path / "home" / "dagster_home")
    assert from_file.universe == quick_settings.universe and from_file.dates == quick_settings.dates
    assert settings_from(_args("--profile", "quick")).universe == quick_settings.universe
    with pytest.raises(ValueError, match="unknown settings preset 'nope'"):
        settings_from(_args("--profile", "nope"))


def test_prepare_only_creates_the_settings_dagster_home_with_the_ticker_partitions(tmp_path, quick_settings,
                                                                                  no_settings_environment):
    path = _settings_file(tmp_path)
    assert main(["--settings", str(path), "--prepare-only"]) == 0
    settings = load_settings(path, environ={})
    assert (tmp_path / "home" / "dagster_home" / "dagster.yaml").exists()
    with open_instance(settings) as instance:
        assert instance.get_dynamic_partitions("ticker") == list(quick_settings.universe.tickers)


def test_summary_exit_codes_name_what_failed(quick_settings):
    started = time.perf_counter()
    good = [_record("market_features", checks=[("raw_prices", "raw_prices_schema", True, True, None)], materialized=3)]
    text, code = summarize(quick_settings, good, 3, started)
    assert code == 0 and "assets      3/3 materializations" in text and "checks      1/1 passed" in text
    assert "FAILED" not in text and "WARNING" not in text

    late = [_record("market_features", checks=[("raw_prices", "raw_prices_up_to_date", False, False, "behind")],
                    materialized=3)]
    text, code = summarize(quick_settings, late, 3, started)
    assert code == 0 and "WARNING   raw_prices:raw_prices_up_to_date  (behind)" in text

    gated = [_record("forecasting", "NVDA", checks=[("forecast_models", "has_skill", False, True, "no skill")],
                     materialized=1)]
    text, code = summarize(quick_settings, gated, 5, started)
    assert code == 2 and "FAILED    forecast_models[NVDA]:has_skill  (no skill)" in text
    assert "a blocking check failed" in text

    # the policy's gate fails with severity WARN: nothing was skipped, the baseline advises
    advised = [dict(_record("portfolio", checks=[("ppo_policy", "policy_earns_its_place", False, False, "worse")],
                            materialized=10), advice=["the equal_weight baseline, because ..."])]
    text, code = summarize(quick_settings, advised, 10, started)
    assert code == 0 and "WARNING   ppo_policy:policy_earns_its_place  (worse)" in text
    assert "advice      recommendations from the equal_weight baseline, because ..." in text

    # a check with nothing to judge yet passes, and is counted apart from the passes
    waiting = [_record("forecasting", t, checks=[("forecast_models", "no_regression", True, False,
                                                  f"not yet evaluable: {n} of 40 realised days")])
               for t, n in (("NVDA", 3), ("SPY", 3))]
    waiting += good
    text, code = summarize(quick_settings, waiting, 5, started)
    assert code == 0 and "checks      1/3 passed, 2 not yet evaluable (nothing to judge yet), 0 failed" in text
    assert ("WAITING   forecast_models[NVDA, SPY]:no_regression  (not yet evaluable: 3 of 40 realised days, "
            "...)") in text

    broken = [_record("market_features", errors=["raw_market: boom"], materialized=0)]
    text, code = summarize(quick_settings, broken, 17, started)
    assert code == 1 and "step error  raw_market: boom" in text


@pytest.mark.slow
def test_main_command_builds_everything_and_reports_it(three_ticker_run):
    path, done = three_ticker_run.settings_file, three_ticker_run.done
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Odyssey run summary" in out
    # 20 data assets (2 of them the market states), 2 market memory assets, 7 forecasting assets (2 of
    # them the analog forecast) for each of the 3 tickers, forecasts, the forecast log and the live skill
    # of every ticker, the drift of every ticker, 11 portfolio assets, 6 tick assets, and the lineage document
    from graph import build_definitions

    settings = load_settings(path, environ={})
    assert planned_materializations(build_definitions(settings), 3) == 20 + 2 + 3 * 7 + 3 + 1 + 11 + 6 + 1
    assert "assets      65/65 materializations" in out
    passed, total, waiting = map(int, re.search(r"checks\s+(\d+)/(\d+) passed, (\d+) not yet evaluable",
                                                out).groups())
    # 18 data checks, 5 deployment gates for each of the 3 tickers, the live-skill and drift checks (every
    # ticker in one), the check that no champion was refused for serving, 3 portfolio checks, 8 tick checks
    assert total == 18 + 3 * 5 + 1 + 1 + 1 + 3 + 8
    # every check passes, except perhaps the policy's gate: that one only decides who advises
    warnings = re.findall(r"WARNING\s+(\S+)", out)
    assert "FAILED" not in out and warnings in ([], ["ppo_policy:policy_earns_its_place"])
    assert passed + waiting == total - len(warnings)
    # a fresh build has forecast nothing live yet, deployed first champions and trained them up to
    # the newest sessions: live skill, regression and drift have nothing to judge, and say so
    assert re.search(r"WAITING\s+forecast_outcomes:live_skill_check", out)
    assert re.search(r"WAITING\s+forecast_models\[[^]]+\]:no_regression", out)
    assert re.search(r"WAITING\s+feature_drift:feature_drift_check", out)
    assert waiting == 1 + 3 + 1
    advice = re.search(r"advice\s+recommendations from (.*)", out).group(1)
    # the strategy strategy_selection chose on held-out sessions, saying why; never the policy when its gate warned
    assert re.match(r"(the equal_weight baseline|the PPO policy|momentum_12_1|inverse_volatility|xgboost_top_1|"
                    r"analog_top_1): .*(deflated Sharpe|refused|failed)", advice), advice
    assert not (warnings and advice.startswith("the PPO policy"))
    assert "three: 3 tickers, 2012-01-03 .. 2017-12-29" in out
    # nothing a user cannot act on: no library warnings, no MLflow migration logs
    assert "RuntimeWarning" not in done.stderr and "PreviewWarning" not in done.stderr
    assert "mlflow.store.db.utils" not in done.stderr
    home = three_ticker_run.home
    assert f"outputs     {home / 'storage'}" in out
    assert f"lineage     {home / 'storage'}/reports/lineage.md" in out
    assert (home / "storage" / "tables" / "forecasts.parquet").exists()
    assert (home / "storage" / "tables" / "forecast_log.parquet").exists()
    assert (home / "storage" / "reports" / "backtest_report.html").exists()
    assert (home / "storage" / "reports" / "recommendations.json").exists()
    # a fresh build's champions were trained up to the newest sessions: no session after their
    # windows to compare, so no ticker's drift is judged and no Evidently report is written
    assert not (home / "storage" / "reports" / "drift").exists()
    assert (home / "mlflow" / "mlflow.db").exists()
    assert (home / "dagster_home" / "dagster.yaml").exists()
    # the UI reads the same instance: the runs are in it
    with open_instance(settings) as instance:
        jobs = {r.job_name for r in instance.get_runs()}
    assert {"market_features", "evaluation", "deployment", "drift_reports", "batch_forecasts", "portfolio", "ticks",
            "lineage_document"} <= jobs
