"""PortfolioEnv and the shared accounting, against hand-computed cases."""

import warnings

import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from odyssey import backtest as bt
from odyssey.calendar import sessions
from odyssey.portfolio import (Constraints, EnvSettings, Panel, PolicyMarket, PortfolioEnv, SignalScale, allocate,
                               baseline_targets, build_panel, forecast_context, limit_violations, orders,
                               policy_market, policy_periods, project, rebalance, tilt_target)
from tests.planted import planted_panel

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


def _market(signals, next_returns, baseline=None, context=None) -> PolicyMarket:
    days, n = signals.shape
    baseline = np.tile(allocate(np.ones(n), C), (days, 1)) if baseline is None else baseline
    context = np.zeros((days, 2), np.float32) if context is None else context
    return PolicyMarket(pd.bdate_range("2021-01-01", periods=days), tuple("ABCDEFGH"[:n]),
                        np.asarray(signals, np.float32), context, baseline, next_returns)


def _env(days=40, n=3, **settings):
    rng = np.random.default_rng(0)
    return PortfolioEnv(_market(rng.standard_normal((days, n)), rng.normal(0, 0.01, (days, n))),
                        settings=EnvSettings(**{"episode_length": 10, **settings}))


def test_env_passes_the_gymnasium_checker():
    check_env(_env(), skip_render_check=True)


def test_a_constant_action_holds_the_baseline_and_a_tilt_moves_money_between_names():
    baseline = np.array([0.2, 0.4, 0.2])
    np.testing.assert_allclose(tilt_target(baseline, baseline, np.full(3, 0.7), tilt=1.0), baseline)
    # aim: each weight times 1 + (a - baseline-weighted mean of a); the total stays invested
    aim = tilt_target(baseline, baseline, np.array([1.0, 0.0, -1.0]), tilt=0.5)
    np.testing.assert_allclose(aim, [0.2 * 1.5, 0.4, 0.2 * 0.5])
    # trading a quarter of the way from cash to that aim
    np.testing.assert_allclose(tilt_target(np.zeros(3), baseline, np.array([1.0, 0.0, -1.0]), 0.5, 0.25), aim / 4)


def test_env_step_matches_the_hand_computed_accounting_and_excess_reward():
    signals = np.zeros((3, 2), np.float32)
    next_returns = np.array([[0.01, -0.02], [0.03, 0.0], [0.0, 0.0]])
    baseline = np.full((3, 2), 0.1)
    env = PortfolioEnv(_market(signals, next_returns, baseline),
                       settings=EnvSettings(episode_length=None, risk_aversion=2.0, reward_scale=100.0, tilt=1.0,
                                            trade_rate=0.5))
    obs, _ = env.reset(seed=1)
    np.testing.assert_array_equal(obs, np.zeros(6))  # starts holding the baseline
    # aim [0.2, 0.0]; half way from [0.1, 0.1]: [0.15, 0.05], trading 0.1 at 15 bps
    obs, reward, terminated, truncated, info = env.step(np.array([1.0, -1.0]))
    np.testing.assert_allclose(info["target"], [0.15, 0.05])
    net = 0.15 * 0.01 + 0.05 * -0.02 - 0.1 * 0.0015
    base = 0.1 * 0.01 + 0.1 * -0.02
    assert info["return"] == pytest.approx(net) and info["cost"] == pytest.approx(0.00015)
    assert info["baseline_return"] == pytest.approx(base)
    excess = net - base
    assert reward == pytest.approx(100 * (excess - 0.5 * 2.0 * excess**2))
    held = np.array([0.15 * 1.01, 0.05 * 0.98]) / (1 + net)
    np.testing.assert_allclose(obs[2:4], (held - 0.1) / 0.1, rtol=1e-5)
    assert not terminated and not truncated
    _, _, _, _, info = env.step(np.zeros(2))
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
        PortfolioEnv(_market(np.zeros((5, 2)), np.zeros((5, 3))))
    with pytest.raises(ValueError, match="episode_length 256 exceeds the 5 days"):
        PortfolioEnv(_market(np.zeros((5, 2)), np.zeros((5, 2))))


def test_backtest_loop_equals_the_env_for_the_same_actions():
    rng = np.random.default_rng(3)
    forecasts, next_returns = rng.normal(0, 0.01, (30, 3)), rng.normal(0, 0.01, (30, 3))
    panel = Panel(pd.bdate_range("2021-01-01", periods=30), ("A", "B", "C"), forecasts, next_returns)
    market = policy_market(panel, SignalScale.fit(forecasts), bt.equal_weight_targets(panel, C), horizon=2,
                           skill_window=6)
    actions = rng.uniform(-1, 1, (30, 3))
    step = iter(actions)
    # the env starts each episode holding the baseline; so does this run
    seen = []
    run = bt.run_policy("p", market, lambda obs: seen.append(obs) or next(step), C, tilt=1.0, trade_rate=0.3,
                        initial=market.baseline[0])
    env = PortfolioEnv(market, settings=EnvSettings(episode_length=None, tilt=1.0, trade_rate=0.3))
    obs, _ = env.reset(seed=0)
    env_returns, env_obs = [], [obs]
    for a in actions:
        obs, _, _, _, info = env.step(a)
        env_returns.append(info["return"])
        env_obs.append(obs)
    np.testing.assert_allclose(run.returns, env_returns)
    # the env's observation (built from precomputed parts) is the backtest's `observation`
    np.testing.assert_allclose(np.stack(env_obs[:-1]), np.stack(seen), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.stack(env_obs[:-1])[:, 6:], market.context)


def test_the_forecast_context_uses_only_returns_realised_by_each_close():
    rng = np.random.default_rng(4)
    days, n, horizon = 200, 4, 5
    next_returns = rng.normal(0, 0.01, (days, n))
    realised = pd.DataFrame(np.log1p(next_returns)).rolling(horizon).sum().shift(-(horizon - 1)).to_numpy()
    signals = (np.expm1(np.nan_to_num(realised)) * 100 + rng.normal(0, 0.5, (days, n))).astype(np.float32)
    context = forecast_context(signals, next_returns, horizon, window=20)
    # the first skill needs half a window (10) of forecasts whose 5-day return was realised
    assert (context[:horizon + 9, 0] == 0).all() and context[horizon + 9, 0] != 0
    assert context[60:, 0].mean() > 0.5            # forecasts that saw the future have skill
    cut = 120  # changing returns from day `cut` on changes no skill before cut + 1
    changed = next_returns.copy()
    changed[cut:] = rng.normal(0, 0.05, (days - cut, n))
    np.testing.assert_array_equal(forecast_context(signals, changed, horizon, 20)[:cut + 1, 0], context[:cut + 1, 0])
    np.testing.assert_allclose(context[:, 1], signals.std(axis=1), rtol=1e-6)


def test_policy_periods_never_overlap_and_leave_the_horizon_between_them():
    dates = pd.bdate_range("2019-01-01", periods=400)
    p = policy_periods(dates, dates[349], horizon=5, validation_fraction=0.3)
    usable = dates[:345]
    assert p.train_start == usable[0] and p.validation_end == usable[-1]
    assert p.validation_start == usable[-round(345 * 0.3)]
    assert dates.get_loc(p.validation_start) - dates.get_loc(p.train_end) == 6
    assert p.test_start > dates[349] > p.validation_end
    with pytest.raises(ValueError, match="cannot hold a training period"):
        policy_periods(dates[:8], dates[7], horizon=5, validation_fraction=0.3)


def test_the_policy_walks_forward_over_held_out_blocks_each_trained_only_on_days_before_it():
    dates = pd.bdate_range("2019-01-01", periods=400)
    p = policy_periods(dates, dates[349], horizon=5, validation_fraction=0.5, folds=3)
    usable = dates[:345]
    held_out = usable[-round(345 * 0.5):]
    assert len(p.folds) == 3 and p.validation_start == held_out[0] and p.validation_end == usable[-1]
    blocks = [dates[dates.get_loc(f.start):dates.get_loc(f.end) + 1] for f in p.folds]
    assert sum(len(b) for b in blocks) == len(held_out) and max(map(len, blocks)) - min(map(len, blocks)) <= 1
    for before, after in zip(p.folds[:-1], p.folds[1:]):
        assert dates.get_loc(after.start) == dates.get_loc(before.end) + 1  # consecutive, never overlapping
    for fold in p.folds:
        assert fold.train_start == usable[0]  # expanding
        assert dates.get_loc(fold.start) - dates.get_loc(fold.train_end) == 6  # the horizon between
    assert (p.train_start, p.train_end) == (p.folds[-1].train_start, p.folds[-1].train_end)  # the served policy's
    with pytest.raises(ValueError, match="of 200 blocks"):
        policy_periods(dates, dates[349], horizon=5, validation_fraction=0.5, folds=200)


def test_baselines_are_equal_weight_or_inverse_volatility_and_refuse_others():
    dates = pd.bdate_range("2021-01-01", periods=80)
    rng = np.random.default_rng(0)
    daily = pd.DataFrame(rng.normal(0, 1, (80, 2)) * [0.01, 0.02], index=dates, columns=["A", "B"])
    np.testing.assert_allclose(baseline_targets("equal_weight", daily, dates, C), 0.2)
    w = baseline_targets("inverse_volatility", daily, dates[-1:], Constraints(max_weight=0.6))[0]
    vol = daily.iloc[-60:].std()
    assert w.sum() == pytest.approx(0.8) and w[0] / w[1] == pytest.approx(vol["B"] / vol["A"])
    with pytest.raises(ValueError, match="unknown baseline 'momentum'"):
        baseline_targets("momentum", daily, dates, C)


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


def _random_policy_market(days: int, n: int, seed: int):
    """A policy market of `n` tickers over `days` sessions of noise, with equal weight as baseline."""
    rng = np.random.default_rng(seed)
    panel = Panel(pd.bdate_range("2021-01-01", periods=days), tuple("ABCD"[:n]), rng.normal(0, 0.01, (days, n)),
                  rng.normal(0.0004, 0.01, (days, n)))
    return policy_market(panel, SignalScale.fit(panel.forecasts), bt.equal_weight_targets(panel, C), horizon=5)


def _judge(market, act, margin: float = 0.01, blocks: int = 3, block: int = 20,
           trade_rate: float = 1.0) -> bt.PolicyVerdict:
    """The gate's rule over `blocks` consecutive held-out blocks of `market`, one decider for all."""
    edges = np.linspace(0, len(market), blocks + 1).astype(int)
    parts = [(market.between(market.dates[a], market.dates[b - 1]), act) for a, b in zip(edges[:-1], edges[1:])]
    policies, baselines = bt.walk_forward_runs(parts, C, 1.0, trade_rate)
    return bt.judge_policy(bt.concatenate("policy", policies), bt.concatenate("baseline", baselines), margin,
                           block=block, blocks=blocks)


def test_the_policy_gate_passes_a_policy_that_holds_its_baseline_and_fails_one_that_churns():
    days, n = 300, 4
    market = _random_policy_market(days, n, seed=6)
    holds = _judge(market, lambda obs: np.zeros(n))
    assert holds.passed and holds.excess_return == 0.0 and holds.ci_low == holds.ci_high == 0.0
    assert holds.policy_turnover == pytest.approx(holds.baseline_turnover) and holds.blocks == 3
    flip = iter(np.tile([[1.0, -1.0, 1.0, -1.0], [-1.0, 1.0, -1.0, 1.0]], (days, 1)))
    churns = _judge(market, lambda obs: next(flip))
    # baseline 20 % each; the aim doubles two names (capped at 20 %) and empties the others, then
    # swaps them: 0.8 of the portfolio traded every day at 15 bps, about -30 %/yr in costs alone
    assert not churns.passed and churns.ci_low < churns.ci_high < 0
    assert churns.policy_turnover == pytest.approx(0.8 * 252, rel=0.02)
    assert churns.excess_return < -0.8 * 0.0015 * 252 * 0.9
    assert "cannot rule out losing more than the 1.00%/yr margin" in churns.reason


def _forecast_market(planted: bool, seed: int):
    """900 sessions of 4 tickers (tests/planted.py) as a policy market around equal weight."""
    panel = planted_panel(planted, seed, days=900, n=4, start="2016-01-01")
    return policy_market(panel, SignalScale.fit(panel.forecasts), bt.equal_weight_targets(panel, C), horizon=5)


def _follows_its_forecasts(obs: np.ndarray) -> np.ndarray:
    """A policy that tilts toward its scaled forecasts (the first N entries of the observation)."""
    return np.clip(obs[:4] / 2, -1.0, 1.0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_non_inferiority_fails_a_policy_trading_noise_and_passes_one_trading_a_planted_signal(seed):
    noise = _judge(_forecast_market(planted=False, seed=seed), _follows_its_forecasts)
    assert not noise.passed and noise.ci_low < -0.01, noise.reason
    planted = _judge(_forecast_market(planted=True, seed=seed), _follows_its_forecasts)
    assert planted.passed and planted.ci_low >= -0.01, planted.reason


def test_a_slow_noise_trader_the_former_rule_passed_fails_non_inferiority():
    # trading a tenth of the way each day, its loss to costs is not significant: the former rule
    # (the interval's upper bound >= 0) passed it; it cannot show it loses less than 1 %/yr
    verdict = _judge(_forecast_market(planted=False, seed=1), _follows_its_forecasts, trade_rate=0.1)
    assert verdict.ci_high >= 0.0 and verdict.ci_low < -0.01 and not verdict.passed, verdict.reason


def test_too_few_held_out_days_to_judge_the_policy_is_not_yet_evaluable_and_not_a_pass():
    n = 4
    market = _random_policy_market(35, n, seed=7)
    verdict = _judge(market, lambda obs: np.zeros(n), blocks=1)
    assert not verdict.passed and not verdict.evaluable and verdict.days == len(market) < 40
    assert verdict.reason.startswith(f"not yet evaluable: {len(market)} held-out days, fewer than the 40")
