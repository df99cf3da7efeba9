"""The portfolio group in Dagster on the quick synthetic market: the policy trains on out-of-sample
forecasts before the test period only, the ONNX export matches torch, every strategy in the backtest
obeys the same limits and costs, the report renders, and recommendations are guarded."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from assets.portfolio import PURGE_DAYS
from checks.portfolio import recommendation_limits
from odyssey.universe import get_profile
from tests.dagster_helpers import (check_results, fast_forecasting_config, materialized, quick_source, read_table,
                                   run_graph)

PPO_TEST = {"total_timesteps": 2048, "n_steps": 128, "episode_length": 64, "n_envs": 2, "checkpoint_every": 512}
PORTFOLIO_ASSETS = {"ppo_policy", "policy_onnx", "baseline_weights", "backtest", "backtest_metrics", "monte_carlo",
                    "stress_tests", "backtest_report", "recommendations", "recommendation_files"}


def _portfolio_config(**recommendation) -> dict:
    ops = {"ppo_policy": {"config": PPO_TEST}, "monte_carlo": {"config": {"paths": 300}}}
    if recommendation:
        ops["recommendations"] = {"config": recommendation}
    return {"ops": ops}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    storage = tmp_path_factory.mktemp("portfolio_storage")
    home = storage / "state"
    assert run_graph(storage, quick_source(), home=home).success
    for ticker in get_profile("quick").tickers:
        assert run_graph(storage, quick_source(), job="forecasting", partition_key=ticker, home=home,
                         run_config=fast_forecasting_config()).success
    assert run_graph(storage, quick_source(), job="batch_forecasts", home=home).success
    result = run_graph(storage, quick_source(), job="portfolio", home=home, run_config=_portfolio_config())
    return storage, home, result


def _json(storage, asset: str) -> dict:
    return json.loads((storage / "tables" / f"{asset}.json").read_text())


@pytest.mark.slow
def test_the_whole_group_builds_and_its_checks_pass(built):
    _, _, result = built
    assert result.success
    assert PORTFOLIO_ASSETS <= materialized(result)
    assert check_results(result) == {"onnx_matches_torch": True, "recommendation_limits": True}


@pytest.mark.slow
def test_policy_trains_only_before_the_test_period(built):
    storage, _, _ = built
    policy = _json(storage, "ppo_policy")
    profile = get_profile("quick")
    cut = pd.Timestamp(profile.validation_end) - pd.offsets.BDay(PURGE_DAYS)
    assert pd.Timestamp(policy["train_end"]) <= cut
    assert pd.Timestamp(policy["evaluation_start"]) > pd.Timestamp(profile.validation_end)
    # training starts once every ticker has an out-of-sample forecast, never on in-sample fits
    first_forecast = max(read_table(storage, f"walkforward_forecasts/{t}")["date"].min() for t in profile.tickers)
    assert pd.Timestamp(policy["train_start"]) == first_forecast
    assert policy["timesteps"] == PPO_TEST["total_timesteps"]
    assert len(policy["signal_scale"]) == len(profile.tickers)


@pytest.mark.slow
def test_every_strategy_trades_the_same_days_within_the_limits(built):
    storage, _, _ = built
    daily = read_table(storage, "backtest")
    tickers = get_profile("quick").tickers
    weights = daily[[f"w_{t}" for t in tickers]].to_numpy()
    assert (weights >= -1e-12).all() and (weights <= 0.20 + 1e-12).all()
    assert (weights.sum(axis=1) <= 0.80 + 1e-12).all()
    by_strategy = daily.groupby("strategy")["date"].apply(lambda d: tuple(d))
    assert by_strategy.nunique() == 1  # identical days for all
    assert set(by_strategy.index) == {"ppo", "equal_weight", "inverse_volatility", "momentum_12_1", "xgboost_top_1"}
    equal = daily[daily["strategy"] == "equal_weight"]
    np.testing.assert_allclose(equal[[f"w_{t}" for t in tickers]].to_numpy(), 0.16)  # 80 % over 5 names
    # every strategy starts from cash: day one trades exactly what it buys, and pays 15 bps on it
    first = daily.sort_values("date").groupby("strategy").head(1)
    bought = first[[f"w_{t}" for t in tickers]].sum(axis=1)
    np.testing.assert_allclose(first["traded"], bought)
    np.testing.assert_allclose(first["cost"], bought * 0.0015)
    # the backtest runs on every trading day of the test period: no embargo gaps
    days = pd.DatetimeIndex(sorted(daily["date"].unique()))
    assert days.equals(pd.bdate_range(days[0], days[-1]))
    metrics = pd.DataFrame(_json(storage, "backtest_metrics")["metrics"])
    sharpe = metrics[metrics["metric"] == "sharpe"]
    assert (sharpe["ci_low"] < sharpe["ci_high"]).all()
    assert set(metrics["metric"]) >= {"cagr", "volatility", "sharpe", "sortino", "max_drawdown", "calmar", "win_rate",
                                      "profit_factor", "turnover", "costs_paid"}


@pytest.mark.slow
def test_monte_carlo_and_stress_tests_cover_every_strategy(built):
    storage, _, _ = built
    paths = read_table(storage, "monte_carlo")
    assert paths.groupby("strategy").size().eq(300).all()
    stress = read_table(storage, "stress_tests")
    crash = stress[stress["scenario"] == "covid_crash_2020"]
    assert (crash["covered_days"] > 10).all()  # the quick test period includes it
    shock = stress[stress["scenario"] == "equities_minus_20pct (average weights)"].set_index("strategy")
    # equal weight holds 16 % in each of four equities and 16 % in IEF (+2 %): 0.64 * -20 % + 0.16 * 2 %
    assert shock.loc["equal_weight", "return"] == pytest.approx(0.64 * -0.20 + 0.16 * 0.02, abs=1e-9)


@pytest.mark.slow
def test_recommendations_are_written_and_respect_the_limits(built):
    storage, _, _ = built
    table = read_table(storage, "recommendations")
    payload = json.loads((storage / "reports" / "recommendations.json").read_text())
    csv = pd.read_csv(storage / "reports" / "recommendations.csv")
    assert len(table) == len(csv) == len(payload["orders"]) == 5
    assert set(table["action"]) <= {"BUY", "SELL", "HOLD"}
    assert table["target_weight"].between(0, 0.20 + 1e-12).all() and table["target_weight"].sum() <= 0.80 + 1e-12
    assert payload["cash_weight"] == pytest.approx(1 - table["target_weight"].sum())
    np.testing.assert_allclose(table["trade_value"], table["change"] * 1_000_000)


@pytest.mark.slow
def test_given_holdings_become_orders_and_an_overweight_is_always_sold(built):
    storage, home, _ = built
    holdings = {"AAPL": 0.35, "NVDA": 0.0, "SPY": 0.10, "QQQ": 0.10, "IEF": 0.10}
    result = run_graph(storage, quick_source(), job="portfolio", home=home,
                       run_config=_portfolio_config(current_weights=holdings, hold_band=0.5))
    assert result.success
    table = read_table(storage, "recommendations").set_index("ticker")
    # a band of 50 % holds everything, except the 35 % position that breaks the 20 % limit
    assert table.loc["AAPL", "action"] == "SELL" and table.loc["AAPL", "target_weight"] == pytest.approx(0.20)
    assert (table.drop("AAPL")["action"] == "HOLD").all()


def test_the_limits_check_blocks_a_breach():
    policy = {"tickers": ["A", "B"], "constraints": {"max_weight": 0.2, "max_invested": 0.8, "cost_bps": 10.0,
                                                     "slippage_bps": 5.0}}
    bad = pd.DataFrame({"ticker": ["A", "B"], "target_weight": [0.25, 0.1], "change": [0.25, 0.0],
                        "action": ["BUY", "BUY"]})
    result = recommendation_limits(recommendations=bad, ppo_policy=policy)
    assert not result.passed
    reason = result.metadata["reason"].value
    assert "A: weight 0.2500 > 0.2" in reason and "action does not match the weight change for ['B']" in reason
    good = bad.assign(target_weight=[0.2, 0.1], change=[0.2, 0.0], action=["BUY", "HOLD"])
    assert recommendation_limits(recommendations=good, ppo_policy=policy).passed


@pytest.mark.slow
def test_repeating_the_same_training_loads_its_final_checkpoint(built):
    storage, home, _ = built
    first = _json(storage, "ppo_policy")
    again = run_graph(storage, quick_source(), job="portfolio", home=home,
                      run_config=_portfolio_config())
    assert again.success
    second = _json(storage, "ppo_policy")
    assert second["resumed_from"] == 2048  # the first run's final checkpoint: nothing left to train
    assert second["sha256"] == first["sha256"]


@pytest.mark.slow
def test_the_report_renders_its_charts_in_headless_chromium(built):
    storage, _, _ = built
    page_path = storage / "reports" / "backtest_report.html"
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is installed by the test setup (make test-deps)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page()
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        charts = page.evaluate("""() => Array.from(document.images).map(i => (
            {id: i.id, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}))""")
        headings = page.locator("h2").all_inner_texts()
        browser.close()
    assert {c["id"] for c in charts} == {"chart-equity_curves", "chart-drawdowns", "chart-rolling_sharpe",
                                         "chart-monthly_returns", "chart-monte_carlo"}
    assert all(c["complete"] and c["width"] > 200 and c["height"] > 100 for c in charts)
    assert "Stress tests" in headings and "Metrics" in headings


@pytest.mark.slow
def test_invalid_holdings_are_refused_with_the_reason(built):
    import dagster as dg

    from tests.dagster_helpers import step_errors

    storage, home, _ = built
    result = run_graph(storage, quick_source(), job="portfolio", home=home,
                       selection=[dg.AssetKey("recommendations")],
                       run_config={"ops": {"recommendations": {"config": {"current_weights": {"AAPL": -0.1, "XYZ": 0.1}}}}})
    assert not result.success
    message = " ".join(step_errors(result))
    assert "unknown ['XYZ']" in message and "invalid {'AAPL': -0.1}" in message
