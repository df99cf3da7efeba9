"""The portfolio group in Dagster on the quick synthetic market: the policy trains on out-of-sample
forecasts before the test period only, the ONNX export matches torch, every strategy in the backtest
obeys the same limits and costs, the report renders, and recommendations are guarded."""

import json
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from assets.portfolio import policy_eligibility
from checks.portfolio import recommendation_limits
from resources.settings import SettingsResource
from odyssey.calendar import sessions
from tests.dagster_helpers import (check_results, fast_forecasting_config, materialized, quick_settings, read_table,
                                   run_graph, step_errors)

PPO_TEST = {"total_timesteps": 2048, "n_steps": 128, "episode_length": 64, "n_envs": 2, "checkpoint_every": 512}
PORTFOLIO_ASSETS = {"ppo_policy", "policy_onnx", "baseline_weights", "backtest", "backtest_metrics", "monte_carlo",
                    "stress_tests", "backtest_report", "recommendations", "recommendation_files",
                    "strategy_selection"}


def _portfolio_config(**recommendation) -> dict:
    ops = {"ppo_policy": {"config": PPO_TEST}, "monte_carlo": {"config": {"paths": 300}}}
    if recommendation:
        ops["recommendations"] = {"config": recommendation}
    return {"ops": ops}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(settings, instance, result of the portfolio job): one instance across all runs, as the
    recommendation files need the limits check recorded in it."""
    settings = quick_settings(tmp_path_factory.mktemp("portfolio"))
    with dg.instance_for_test() as instance:
        assert run_graph(settings, instance=instance).success
        # the policy needs every ticker's out-of-sample forecasts; the recommendations, the champions'
        # newest forecasts: SPY gets one, the others only their walk-forward (no model with skill)
        assert run_graph(settings, job="forecasting", partition_key="SPY", instance=instance,
                         run_config=fast_forecasting_config()).success
        walkforward = [dg.AssetKey(k) for k in ("walkforward_forecasts", "walkforward_summary", "analog_forecasts",
                                                "analog_summary")]
        for ticker in set(settings.universe.tickers) - {"SPY"}:
            assert run_graph(settings, job="forecasting", partition_key=ticker, instance=instance,
                             selection=walkforward, run_config=fast_forecasting_config()).success
        assert run_graph(settings, job="batch_forecasts", instance=instance).success
        result = run_graph(settings, job="portfolio", instance=instance, run_config=_portfolio_config())
        yield settings, instance, result


def _storage(settings) -> Path:
    return Path(settings.paths.storage_url)


def _json(settings, asset: str) -> dict:
    return json.loads((_storage(settings) / "tables" / f"{asset}.json").read_text())


@pytest.mark.slow
def test_the_whole_group_builds_and_its_checks_pass(built):
    _, _, result = built
    assert result.success
    assert PORTFOLIO_ASSETS <= materialized(result)
    checks = check_results(result)
    assert checks.pop("policy_earns_its_place") in (True, False)  # its verdict decides who advises (below)
    assert checks == {"onnx_matches_torch": True, "recommendation_limits": True}


def _gate(result) -> dg.AssetCheckEvaluation:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "policy_earns_its_place"]
    return evaluation


@pytest.mark.slow
def test_the_chosen_strategy_advises_and_the_report_says_who_and_why(built):
    settings, instance, result = built
    gate = _gate(result)
    # the gate records every threshold it judged with, from the settings only
    assert {k: gate.metadata[k].value for k in ("policy_margin", "policy_level", "policy_block_days",
                                                "policy_folds")} == {"policy_margin": 0.01, "policy_level": 0.9,
                                                                     "policy_block_days": 20, "policy_folds": 3}
    selection = _json(settings, "strategy_selection")
    assert selection["trials"] == 5 and {c["name"] for c in selection["candidates"]} == {
        "ppo", "inverse_volatility", "momentum_12_1", "xgboost_top_1", "analog_top_1"}
    ppo = next(c for c in selection["candidates"] if c["name"] == "ppo")
    assert ppo["eligible"] == gate.passed
    table = read_table(settings, "recommendations")
    payload = json.loads((_storage(settings) / "reports" / "recommendations.json").read_text())
    assert set(table["advisor"]) == {selection["advisor"]} and payload["advisor"] == selection["advisor"]
    assert selection["reason"] in table["advice"].iloc[0]
    page = (_storage(settings) / "reports" / "backtest_report.html").read_text()
    assert selection["advisor"] in page and "chosen on the held-out sessions" in page
    # a policy that churns (a large tilt, traded all the way each day) cannot show it loses less than
    # the margin on its held-out blocks: it fails, and it never advises
    churn = _portfolio_config()
    churn["ops"]["ppo_policy"]["config"] = {**PPO_TEST, "tilt": 20.0, "trade_rate": 1.0, "cost_bps": 200.0}
    failed = run_graph(settings, job="portfolio", instance=instance, run_config=churn)
    assert failed.success  # the gate warns; the run goes on to backtest the policy and advise another strategy
    gate = _gate(failed)
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.WARN
    assert gate.metadata["excess_return_ci_low"].value < -settings.gates.policy_margin
    assert "cannot rule out losing more than the 1.00%/yr margin" in gate.metadata["reason"].value
    selection = _json(settings, "strategy_selection")
    assert not next(c for c in selection["candidates"] if c["name"] == "ppo")["eligible"]
    table = read_table(settings, "recommendations")
    assert set(table["advisor"]) != {"ppo"}
    # back to the default policy for the tests that follow
    assert run_graph(settings, job="portfolio", instance=instance, run_config=_portfolio_config()).success


@pytest.mark.slow
def test_recommendations_refuse_a_choice_or_verdict_made_with_other_thresholds(built):
    settings, instance, _ = built
    stricter = settings.model_copy(update={"gates": settings.gates.model_copy(update={"advice_min_dsr": 0.99,
                                                                                      "policy_margin": 0.005})})
    result = run_graph(stricter, job="advice", instance=instance)
    assert result.success
    table = read_table(settings, "recommendations")
    assert set(table["advisor"]) == {"equal_weight"}
    advice = table["advice"].iloc[0]
    assert "other thresholds than the settings'" in advice and "advice_min_dsr 0.95 (settings: 0.99)" in advice
    np.testing.assert_allclose(table["target_weight"], 0.16, atol=0.005)  # the baseline's orders
    # and one made with other strategy parameters (the rules it judged are not the ones served)
    wider = settings.model_copy(update={"portfolio": settings.portfolio.model_copy(update={"top_k": 2})})
    assert run_graph(wider, job="advice", instance=instance).success
    advice = read_table(settings, "recommendations")["advice"].iloc[0]
    assert "the choice is refused" in advice and "top_k 1 (settings: 2)" in advice
    # a policy verdict made with a lenient margin passes, and is refused under the settings' margin
    lenient = settings.model_copy(update={"gates": settings.gates.model_copy(update={"policy_margin": 0.5})})
    assert check_results(run_graph(lenient, job="portfolio", instance=instance,
                                   run_config=_portfolio_config()))["policy_earns_its_place"]
    assert policy_eligibility(instance, SettingsResource.of(lenient))[0]
    allowed, why = policy_eligibility(instance, SettingsResource.of(settings))
    assert not allowed and "policy_margin 0.5 (settings: 0.01)" in why and "the verdict is refused" in why
    assert run_graph(settings, job="portfolio", instance=instance, run_config=_portfolio_config()).success
    assert run_graph(settings, job="advice", instance=instance).success  # the settings' own thresholds again


@pytest.mark.slow
def test_policy_trains_only_before_the_test_period(built):
    settings, _, _ = built
    policy = _json(settings, "ppo_policy")
    profile = settings.profile()
    # the policy's held-out days end `horizon` sessions before the last validation session (no
    # 5-session target reaches into the test period), and its training ends `horizon` sessions
    # before they start
    validation = sessions(profile.start, profile.validation_end, profile.exchange)
    assert settings.forecast.horizon == 5
    assert pd.Timestamp(policy["validation_end"]) == validation[-1 - 5]
    held_out = validation[validation.get_loc(pd.Timestamp(policy["validation_start"])):-5]
    assert pd.Timestamp(policy["folds"][0]["train_end"]) == validation[validation.get_loc(held_out[0]) - 6]
    assert policy["train_end"] == policy["folds"][-1]["train_end"]  # the served policy: the last fold's
    pre_test = validation[validation.get_loc(pd.Timestamp(policy["train_start"])):-5]
    assert len(held_out) == round(len(pre_test) * settings.portfolio.validation_fraction)
    # three walk-forward folds: consecutive held-out blocks, each trained up to `horizon` sessions before it
    folds = policy["folds"]
    assert [f["fold"] for f in folds] == [1, 2, 3] and folds[-1]["sha256"] == policy["sha256"]
    assert folds[0]["start"] == policy["validation_start"] and folds[-1]["end"] == policy["validation_end"]
    for fold in folds:
        start = validation.get_loc(pd.Timestamp(fold["start"]))
        assert validation[start - 6] == pd.Timestamp(fold["train_end"]) and fold["train_start"] == policy["train_start"]
    test_days = sessions(pd.Timestamp(profile.validation_end) + pd.Timedelta(days=1), profile.end, profile.exchange)
    assert pd.Timestamp(policy["evaluation_start"]) == test_days[0]
    # training starts once every ticker has an out-of-sample forecast, never on in-sample fits
    first_forecast = max(read_table(settings, f"walkforward_forecasts/{t}")["date"].min() for t in profile.tickers)
    assert pd.Timestamp(policy["train_start"]) == first_forecast
    assert policy["timesteps"] == PPO_TEST["total_timesteps"]
    assert len(policy["signal_scale"]) == len(profile.tickers)
    # the run's config changes only the fields it names; the rest are the settings' (quick preset)
    assert policy["settings"] == settings.portfolio.ppo.model_copy(update=PPO_TEST).model_dump(mode="json")
    assert policy["constraints"] == {"max_weight": settings.portfolio.max_weight,
                                     "max_invested": settings.portfolio.max_invested,
                                     "cost_bps": settings.costs.cost_bps, "slippage_bps": settings.costs.slippage_bps}


@pytest.mark.slow
def test_every_strategy_trades_the_same_days_within_the_limits(built):
    settings, _, _ = built
    daily = read_table(settings, "backtest")
    tickers = settings.universe.tickers
    weights = daily[[f"w_{t}" for t in tickers]].to_numpy()
    assert (weights >= -1e-12).all() and (weights <= 0.20 + 1e-12).all()
    assert (weights.sum(axis=1) <= 0.80 + 1e-12).all()
    by_strategy = daily.groupby("strategy")["date"].apply(lambda d: tuple(d))
    assert by_strategy.nunique() == 1  # identical days for all
    assert set(by_strategy.index) == {"ppo", "equal_weight", "inverse_volatility", "momentum_12_1", "xgboost_top_1",
                                      "analog_top_1"}
    equal = daily[daily["strategy"] == "equal_weight"]
    np.testing.assert_allclose(equal[[f"w_{t}" for t in tickers]].to_numpy(), 0.16)  # 80 % over 5 names
    # every strategy starts from cash: day one trades exactly what it buys, and pays 15 bps on it
    first = daily.sort_values("date").groupby("strategy").head(1)
    bought = first[[f"w_{t}" for t in tickers]].sum(axis=1)
    np.testing.assert_allclose(first["traded"], bought)
    np.testing.assert_allclose(first["cost"], bought * 0.0015)
    # the backtest runs on every session of the test period: no embargo gaps, no holidays
    days = pd.DatetimeIndex(sorted(daily["date"].unique()))
    assert days.equals(sessions(days[0], days[-1], settings.universe.exchange))
    assert days[0] > pd.Timestamp(settings.profile().validation_end)
    metrics = pd.DataFrame(_json(settings, "backtest_metrics")["metrics"])
    sharpe = metrics[metrics["metric"] == "sharpe"]
    assert (sharpe["ci_low"] < sharpe["ci_high"]).all()
    assert set(metrics["metric"]) >= {"cagr", "volatility", "sharpe", "sortino", "max_drawdown", "calmar", "win_rate",
                                      "profit_factor", "turnover", "costs_paid"}


@pytest.mark.slow
def test_monte_carlo_and_stress_tests_cover_every_strategy(built):
    settings, _, _ = built
    paths = read_table(settings, "monte_carlo")
    assert paths.groupby("strategy").size().eq(300).all()
    stress = read_table(settings, "stress_tests")
    crash = stress[stress["scenario"] == "covid_crash_2020"]
    assert (crash["covered_days"] > 10).all()  # the quick test period includes it
    shock = stress[stress["scenario"] == "equities_minus_20pct (average weights)"].set_index("strategy")
    # equal weight holds 16 % in each of four equities and 16 % in IEF (+2 %): 0.64 * -20 % + 0.16 * 2 %
    assert shock.loc["equal_weight", "return"] == pytest.approx(0.64 * -0.20 + 0.16 * 0.02, abs=1e-9)


@pytest.mark.slow
def test_recommendations_are_written_and_respect_the_limits(built):
    settings, _, _ = built
    table = read_table(settings, "recommendations")
    payload = json.loads((_storage(settings) / "reports" / "recommendations.json").read_text())
    csv = pd.read_csv(_storage(settings) / "reports" / "recommendations.csv")
    assert len(table) == len(csv) == len(payload["orders"]) == 5
    assert set(table["action"]) <= {"BUY", "SELL", "HOLD"}
    assert table["target_weight"].between(0, 0.20 + 1e-12).all() and table["target_weight"].sum() <= 0.80 + 1e-12
    assert payload["cash_weight"] == pytest.approx(1 - table["target_weight"].sum())
    np.testing.assert_allclose(table["trade_value"], table["change"] * 1_000_000)
    # each ticker's view is its champion's newest forecast; a ticker without a model with skill has none
    forecasts = read_table(settings, "forecasts").set_index("ticker")
    assert forecasts["status"].to_dict() == {t: "champion" if t == "SPY" else "no model with skill"
                                             for t in settings.universe.tickers}
    views = table.set_index("ticker")["forecast"].reindex(forecasts.index)
    np.testing.assert_array_equal(views.to_numpy(), forecasts["prediction"].to_numpy())
    champion = forecasts["status"] == "champion"
    assert views[~champion].isna().all() and views[champion].notna().all()
    assert (table["as_of"] == str(forecasts["date"].max().date())).all()


@pytest.mark.slow
def test_recommendation_files_need_the_limits_check_passed_in_the_instance(built):
    settings, instance, _ = built
    files = [dg.AssetKey("recommendation_files")]
    again = run_graph(settings, job="portfolio", instance=instance, selection=files)
    assert again.success  # the latest recommendations passed recommendation_limits in this instance
    elsewhere = run_graph(settings, job="portfolio", instance=dg.DagsterInstance.ephemeral(), selection=files)
    assert not elsewhere.success
    assert "recommendations has never been materialized" in " ".join(step_errors(elsewhere))


@pytest.mark.slow
def test_given_holdings_become_orders_and_an_overweight_is_always_sold(built):
    settings, instance, _ = built
    holdings = {"AAPL": 0.35, "NVDA": 0.0, "SPY": 0.10, "QQQ": 0.10, "IEF": 0.10}
    result = run_graph(settings, job="portfolio", instance=instance,
                       run_config=_portfolio_config(current_weights=holdings, hold_band=0.5))
    assert result.success
    table = read_table(settings, "recommendations").set_index("ticker")
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
    settings, instance, _ = built
    first = _json(settings, "ppo_policy")
    again = run_graph(settings, job="portfolio", instance=instance, run_config=_portfolio_config())
    assert again.success
    second = _json(settings, "ppo_policy")
    assert second["resumed_from"] == 2048  # the first run's final checkpoint: nothing left to train
    assert second["sha256"] == first["sha256"]


@pytest.mark.slow
def test_a_policy_whose_card_was_edited_is_refused(built):
    """The stored policy card (signal scale, limits, tilt: what the backtest and recommendations act
    on beside the zip) is stored by its hash and covered by the policy's signed manifest: tripling
    its tilt in every stored copy is refused."""
    settings, instance, _ = built
    tables = _storage(settings) / "tables"
    paths = [tables / "ppo_policy.json", *sorted((tables / ".versions" / "ppo_policy").glob("*.json"))]
    originals = {path: path.read_text() for path in paths}
    try:
        for path, text in originals.items():
            card = json.loads(text)
            card["tilt"] *= 3
            path.write_text(json.dumps(card))
        result = run_graph(settings, job="portfolio", instance=instance,
                           selection=[dg.AssetKey("backtest"), dg.AssetKey("backtest_metrics")])
        assert not result.success
        errors = " ".join(step_errors(result))
        assert ("no longer hashes to the version it was stored as" in errors
                or "ppo policy: card.json does not match its signed manifest" in errors), errors
    finally:
        for path, text in originals.items():
            path.write_text(text)


@pytest.mark.slow
def test_the_report_renders_its_charts_in_headless_chromium(built):
    settings, _, _ = built
    page_path = _storage(settings) / "reports" / "backtest_report.html"
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
    settings, instance, _ = built
    result = run_graph(settings, job="portfolio", instance=instance, selection=[dg.AssetKey("recommendations")],
                       run_config={"ops": {"recommendations": {"config": {"current_weights": {"AAPL": -0.1, "XYZ": 0.1}}}}})
    assert not result.success
    message = " ".join(step_errors(result))
    assert "unknown ['XYZ']" in message and "invalid {'AAPL': -0.1}" in message
