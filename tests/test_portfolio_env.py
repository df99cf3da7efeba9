"""PortfolioEnv and the shared accounting, against hand-computed cases."""

import warnings

import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from odyssey import backtest as bt
from odyssey.calendar import sessions
from odyssey.portfolio import (Constraints, EnvSettings, Panel, PortfolioEnv, SignalScale, allocate, build_panel,
                               limit_violations, orders, project, rebalance)

C = Constraints()


def test_projection_clips_each_weight_then_scales_the_total_down():
    np.testing.assert_allclose(project(np.array([-0.1, 0.1, 0.3]), C), [0.0, 0.1, 0.2])
    # 0.2 * 5 = 1.0 invested > 0.8: every weight scaled by 0.8
    np.testing.assert_allclose(project(np.full(5, 0.25), C), np.full(5, 0.16))
    # 0.2 + 0.2 + 0.2 + 0.2 + 0.1 = 0.9 -> x 0.8 / 0.9
    np.testing.assert_allclose(project(np.array([0.2, 0.2, 0.2, 0.2, 0.1]), C),
                               np.array([0.2, 0.2, 0.2, 0.2, 0.1]) * 0.8 / 0.9)
    within = np.array([0.05, 0.2, 0.0])
    np.testing.assert_array_equal(project(within, C), within)


def test_allocation_caps_names_and_hands_the_excess_to_the_others():
    # 15 names equally: 0.8 / 15 each
    np.testing.assert_allclose(allocate(np.ones(15), C), np.full(15, 0.8 / 15))
    # scores 8:1:1 -> 0.64 capped at 0.2; the remaining 0.6 split 1:1
    np.testing.assert_allclose(allocate(np.array([8.0, 1.0, 1.0]), C), [0.2, 0.2, 0.2])
    # 6:1:1:1:1 -> first capped at 0.2, 0.6 over four names
    np.testing.assert_allclose(allocate(np.array([6.0, 1, 1, 1, 1]), C), [0.2, 0.15, 0.15, 0.15, 0.15])
    # two names can hold at most 0.4: the rest stays in cash
    np.testing.assert_allclose(allocate(np.array([1.0, 1.0]), C), [0.2, 0.2])
    np.testing.assert_array_equal(allocate(np.array([0.0, -1.0, np.nan]), C), [0.0, 0.0, 0.0])


def test_rebalance_pays_costs_on_traded_value_then_earns_and_drifts():
    current = np.array([0.10, 0.0])
    target = np.array([0.20, 0.10])
    r = np.array([0.05, -0.02])
    net, cost, traded, drifted = rebalance(current, target, r, 0.0015)
    assert traded == pytest.approx(0.20)                   # 0.10 bought + 0.10 bought
    assert cost == pytest.approx(0.20 * 0.0015)            # 3 bps of the portfolio
    assert net == pytest.approx(0.20 * 0.05 + 0.10 * -0.02 - 0.0003)
    np.testing.assert_allclose(drifted, [0.20 * 1.05 / (1 + net), 0.10 * 0.98 / (1 + net)])
    # value is conserved: holdings + cash after the day = 1 + net
    cash = 1 - target.sum() - cost
    assert (target * (1 + r)).sum() + cash == pytest.approx(1 + net)


def _env(days=40, n=3, **settings):
    rng = np.random.default_rng(0)
    return PortfolioEnv(rng.standard_normal((days, n)).astype(np.float32), rng.normal(0, 0.01, (days, n)),
                        settings=EnvSettings(**{"episode_length": 10, **settings}))


def test_env_passes_the_gymnasium_checker():
    check_env(_env(), skip_render_check=True)


def test_env_step_matches_the_hand_computed_accounting_and_reward():
    signals = np.zeros((3, 2), np.float32)
    next_returns = np.array([[0.01, -0.02], [0.03, 0.0], [0.0, 0.0]])
    env = PortfolioEnv(signals, next_returns, settings=EnvSettings(episode_length=None, risk_aversion=2.0,
                                                                    reward_scale=100.0))
    obs, _ = env.reset(seed=1)
    np.testing.assert_array_equal(obs, np.zeros(4))
    # +1 on the first asset = +20 points; -1 on the second cannot go below 0
    obs, reward, terminated, truncated, info = env.step(np.array([1.0, -1.0]))
    net = 0.2 * 0.01 - 0.2 * 0.0015
    assert info["return"] == pytest.approx(net) and info["cost"] == pytest.approx(0.0003)
    assert reward == pytest.approx(100 * (net - 0.5 * 2.0 * net**2))
    np.testing.assert_allclose(obs[2:], [0.2 * 1.01 / (1 + net), 0.0], rtol=1e-6)
    assert not terminated and not truncated
    # asking for +20 points on both: 0.2 * 1.01 / (1 + net) + 0.2 is capped at 0.2 each
    _, _, _, _, info = env.step(np.array([1.0, 1.0]))
    np.testing.assert_allclose(info["target"], [0.2, 0.2])
    _, _, _, truncated, _ = env.step(np.zeros(2))
    assert truncated


def test_env_episodes_are_reproducible_and_resume_where_they_left_off():
    env = _env(days=200)
    starts = [env.reset(seed=5)[1]["day"]] + [env.reset()[1]["day"] for _ in range(4)]
    assert [env.reset(seed=5)[1]["day"]] + [env.reset()[1]["day"] for _ in range(4)] == starts
    assert len(set(starts)) > 1
    resumed = _env(days=200)
    resumed.start_at_episode(3)
    assert resumed.reset(seed=5)[1]["day"] == starts[3]


def test_env_refuses_mismatched_inputs_and_too_short_periods():
    with pytest.raises(ValueError, match="must be equal"):
        PortfolioEnv(np.zeros((5, 2), np.float32), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="episode_length 256 exceeds the 5 days"):
        PortfolioEnv(np.zeros((5, 2), np.float32), np.zeros((5, 2)))


def test_backtest_loop_equals_the_env_for_the_same_actions():
    rng = np.random.default_rng(3)
    forecasts, next_returns = rng.normal(0, 0.01, (30, 3)), rng.normal(0, 0.01, (30, 3))
    panel = Panel(pd.bdate_range("2021-01-01", periods=30), ("A", "B", "C"), forecasts, next_returns)
    scale = SignalScale.fit(forecasts)
    actions = rng.uniform(-1, 1, (30, 3))
    step = iter(actions)
    run = bt.run_policy("p", panel, scale, lambda obs: next(step), C)
    env = PortfolioEnv(scale.apply(forecasts), next_returns, settings=EnvSettings(episode_length=None))
    env.reset(seed=0)
    env_returns = [env.step(a)[4]["return"] for a in actions]
    np.testing.assert_allclose(run.returns, env_returns)


def test_signal_scale_standardises_and_clips():
    scale = SignalScale((0.01, 0.02), clip=5.0)
    np.testing.assert_allclose(scale.apply(np.array([[0.02, -0.2]])), [[2.0, -5.0]])


def _long_returns(dates, tickers, values):
    return pd.DataFrame({"date": np.repeat(dates, len(tickers)), "ticker": np.tile(tickers, len(dates)),
                         "log_return": np.log1p(np.asarray(values, dtype=float)).ravel()})


def test_panel_covers_every_trading_day_and_carries_forecasts_over_embargo_gaps():
    dates = sessions("2021-01-04", "2021-01-11")
    assert len(dates) == 6
    simple = np.arange(12).reshape(6, 2) / 1000.0
    returns = _long_returns(dates, ["A", "B"], simple)
    # B starts a day late; both skip 2021-01-07 (an embargo day)
    rows = pd.DataFrame({"date": dates[[0, 1, 2, 4, 5, 1, 2, 4, 5]], "ticker": list("AAAAABBBB"),
                         "prediction": [0.1, 0.2, 0.3, 0.5, 0.6, 1.2, 1.3, 1.5, 1.6], "next_return": 0.0})
    panel = build_panel(rows, ("A", "B"), returns)
    assert list(panel.dates) == list(dates[1:5])  # from the first day both have one; the last has no next day
    np.testing.assert_array_equal(panel.forecasts, [[0.2, 1.2], [0.3, 1.3], [0.3, 1.3], [0.5, 1.5]])
    np.testing.assert_allclose(panel.next_returns, simple[2:6])  # the next day's return, every day
    with pytest.raises(ValueError, match=r"no out-of-sample predictions for tickers \['C'\]"):
        build_panel(rows, ("A", "C"), returns)
    with pytest.raises(ValueError, match=r"no daily returns for tickers \['B'\]"):
        build_panel(rows, ("A", "B"), returns[returns["ticker"] == "A"])
    with pytest.raises(ValueError, match="forecasts missing for more than 0 days inside the period, first at 2021-01-07"):
        build_panel(rows, ("A", "B"), returns, max_stale_days=0)


def test_orders_hold_inside_the_band_and_never_breach_the_limits():
    current = np.array([0.10, 0.10, 0.30, 0.0])
    target = np.array([0.102, 0.20, 0.20, 0.20])
    final, actions = orders(current, target, C, band=0.005)
    assert actions == ["HOLD", "BUY", "SELL", "BUY"]
    assert not limit_violations(list("ABCD"), final, C)
    # holding 0.1 + buying to 0.2, 0.2 (cut from 0.3) and 0.2: 0.7, within 0.8
    np.testing.assert_allclose(final, [0.10, 0.20, 0.20, 0.20])
    # buys shrink in proportion when they would exceed 80 %
    final, _ = orders(np.array([0.2, 0.2, 0.2, 0.0, 0.0]), np.array([0.2, 0.2, 0.2, 0.2, 0.2]), C)
    np.testing.assert_allclose(final, [0.2, 0.2, 0.2, 0.1, 0.1])


def test_performance_metrics_on_a_known_path():
    r = np.array([0.10, -0.05, 0.02, -0.10, 0.05])
    m = bt.performance(r, traded=np.array([0.2, 0.0, 0.0, 0.0, 0.0]))
    equity = np.cumprod(1 + r)
    assert m["max_drawdown"] == pytest.approx(equity[3] / equity[0] - 1)
    assert m["win_rate"] == pytest.approx(3 / 5)
    assert m["profit_factor"] == pytest.approx(0.17 / 0.15)
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(252))
    assert m["sortino"] == pytest.approx(r.mean() / np.sqrt(np.mean(np.minimum(r, 0) ** 2)) * np.sqrt(252))
    assert m["cagr"] == pytest.approx(equity[-1] ** (252 / 5) - 1)
    assert m["calmar"] == pytest.approx(m["cagr"] / -m["max_drawdown"])
    assert m["turnover"] == pytest.approx(0.2 / 5 * 252)  # traded value per year, buys + sells


def test_baselines_use_only_information_known_at_each_close():
    dates = pd.bdate_range("2019-01-01", periods=400)
    rng = np.random.default_rng(1)
    log_returns = rng.normal(0, [0.01, 0.02, 0.04], (400, 3))
    history = pd.DataFrame({"date": np.repeat(dates, 3), "ticker": np.tile(["A", "B", "C"], 400),
                            "log_return": log_returns.ravel()})
    panel = Panel(dates[300:], ("A", "B", "C"), rng.normal(0, 0.01, (100, 3)), np.zeros((100, 3)))
    wide = Constraints(max_weight=0.5)
    inverse = bt.inverse_vol_targets(panel, history, wide, window=60)
    # weights near 0.8 * (4, 2, 1) / 7 for volatilities 1 : 2 : 4
    assert (inverse[:, 0] > inverse[:, 1]).all() and (inverse[:, 1] > inverse[:, 2]).all()
    np.testing.assert_allclose(inverse.mean(axis=0), np.array([4, 2, 1]) / 7 * 0.8, atol=0.03)
    # pushing C's returns up after day 350 changes no weight decided on or before it; 12-1 momentum
    # skips the last 21 days, so its weights move only from day 372 (panel row 72) on
    later = history.copy()
    later.loc[(later["date"] > dates[350]) & (later["ticker"] == "C"), "log_return"] += 0.2
    np.testing.assert_array_equal(bt.inverse_vol_targets(panel, later, wide)[:51], inverse[:51])
    assert not np.array_equal(bt.inverse_vol_targets(panel, later, wide)[51:], inverse[51:])
    momentum, moved = bt.momentum_targets(panel, history, C, k=1), bt.momentum_targets(panel, later, C, k=1)
    np.testing.assert_array_equal(moved[:72], momentum[:72])
    assert (moved[80:, 2] == 0.2).all()  # once the skip window has passed, C leads
    top = bt.forecast_top_k_targets(panel, C, k=1)
    assert np.all((top > 0).sum(axis=1) <= 1)
    best = panel.forecasts.argmax(axis=1)
    positive = panel.forecasts.max(axis=1) > 0
    np.testing.assert_allclose(top[np.arange(100)[positive], best[positive]], 0.2)


def test_inverse_volatility_gives_no_weight_to_an_asset_that_never_moves():
    dates = pd.bdate_range("2019-01-01", periods=120)
    rng = np.random.default_rng(2)
    log_returns = np.column_stack([rng.normal(0, 0.01, 120), rng.normal(0, 0.02, 120), np.zeros(120)])
    history = pd.DataFrame({"date": np.repeat(dates, 3), "ticker": np.tile(["A", "B", "C"], 120),
                            "log_return": log_returns.ravel()})
    panel = Panel(dates[80:], ("A", "B", "C"), np.zeros((40, 3)), np.zeros((40, 3)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        weights = bt.inverse_vol_targets(panel, history, Constraints(max_weight=0.6), window=60)
    assert np.isfinite(weights).all() and (weights[:, 2] == 0.0).all()
    np.testing.assert_allclose(weights.sum(axis=1), 0.8)
    assert (weights[:, 0] > weights[:, 1]).all()
