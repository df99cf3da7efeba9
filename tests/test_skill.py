"""Skill worth deploying, decided family-wise (odyssey/skill.py), on data whose answer is known."""

import numpy as np
import pandas as pd
import pytest

from odyssey.skill import family_decision, skill_evidence
from odyssey.walkforward import summary_metrics

HORIZON, COST = 5, 0.0015


def _walkforward(returns: np.ndarray, prediction: np.ndarray, start: int = 300) -> tuple[pd.DataFrame, pd.Series]:
    """A walk-forward's predictions over the days from `start` of a daily simple-return path (the
    5-day log target, the next session's return, the training mean of the target before `start`)."""
    dates = pd.bdate_range("2010-01-04", periods=len(returns))
    log = np.log1p(returns)
    # the return realised on day t+1 .. t+5, seen from day t
    target = pd.Series(log).rolling(HORIZON).sum().shift(-HORIZON).to_numpy()
    nxt = np.r_[returns[1:], np.nan]
    frame = pd.DataFrame({"date": dates, "prediction": prediction, "target": target, "next_return": nxt,
                          "train_mean": np.nanmean(target[:start])}).iloc[start:-HORIZON].reset_index(drop=True)
    return frame, pd.Series(returns, index=dates)


def _vol_regimes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Daily volatility switching between a calm (0.5 %) and a stormy (3 %) regime, each lasting
    about 50 sessions."""
    state, out = 0, np.empty(n)
    for t in range(n):
        if rng.random() < 0.02:
            state = 1 - state
        out[t] = (0.005, 0.03)[state]
    return out


def _skewed(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-variance, mean-zero shocks with a strong negative skew: small gains most days, a fall
    of nine times their size one day in ten; their median, scaled by the volatility, rises with it."""
    u = np.where(rng.random(n) < 0.9, 1.0, -9.0) + 0.3 * rng.standard_normal(n)
    return u / np.sqrt(9.0 + 0.09)


@pytest.mark.parametrize("skew, forecast", [(1.0, 1.0), (-1.0, -1.0)], ids=["falls-sigma2", "rises-minus-sigma2"])
def test_a_volatility_forecast_ranks_log_returns_but_is_not_skill_worth_deploying(skew, forecast):
    """The only predictable thing is the volatility (its regime lasts weeks); every day's simple
    return has mean 0. On 12 such markets a model that forecasts the volatility (centred on the
    drift it was trained on: +sigma^2 where the shocks fall far and rarely, -sigma^2 where they rise
    far and rarely) ranks the 5-day log returns well enough for the raw-IC gate, which deploys it
    every time; the excess IC and the economic test find skill no more often than their 10 % level
    allows (one or two markets in 12 by chance)."""
    raw_passes, found = 0, 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        n = 1800
        sigma = _vol_regimes(rng, n)
        frame, daily = _walkforward(sigma * skew * _skewed(rng, n), forecast * (sigma**2 - np.mean(sigma**2)))
        frame["prediction"] += frame["train_mean"]
        raw = summary_metrics(frame.assign(ticker="X", fold=0), level=0.9)
        raw_passes += raw["oos_ic_ci_low"] > 0  # the rank IC's 90 % interval above 0: the former rule
        found += skill_evidence(frame, daily, HORIZON, COST, reps=300).p < 0.1
    assert raw_passes == 12
    assert found <= 2


def test_a_planted_signal_is_skill_worth_deploying():
    """A signal known the day before moves the next sessions' expected simple return: both tests
    reject "no skill" with a p-value small enough for a family of 60 hypotheses."""
    rng = np.random.default_rng(0)
    n = 1800
    sigma = _vol_regimes(rng, n)
    signal = pd.Series(rng.standard_normal(n)).rolling(10, min_periods=1).mean().to_numpy()
    drift = np.r_[0.0, signal[:-1]] * 0.012  # yesterday's signal, in today's expected return
    returns = drift + sigma * _skewed(rng, n)
    frame, daily = _walkforward(returns, signal)
    evidence = skill_evidence(frame, daily, HORIZON, COST)
    assert evidence.excess_ic > 0.1 and evidence.tilt_excess > 0, evidence
    assert evidence.p < 0.1 / 60, evidence
    assert family_decision({"X": evidence.p, **{f"N{i}": 0.5 for i in range(19)}}, 3, "holm", 0.1).passes("X")


def test_a_forecast_of_nothing_has_p_values_spread_over_the_unit_interval_before_costs():
    """No signal, a forecast that moves slowly and no costs: over 40 markets the p-values of both
    tests spread over (0, 1) (none tiny, about half below one half), neither piled at 0 nor at 1.
    With costs the economic test's p-value leans to 1: a forecast of nothing loses what it trades."""
    p_ic, p_econ, p_costed = [], [], []
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        n = 1000
        returns = 0.0003 + _vol_regimes(rng, n) * rng.standard_normal(n)
        forecast = pd.Series(rng.standard_normal(n)).rolling(10, min_periods=1).mean().to_numpy()
        frame, daily = _walkforward(returns, forecast, start=200)
        evidence = skill_evidence(frame, daily, HORIZON, 0.0, reps=200)
        p_ic.append(evidence.p_ic)
        p_econ.append(evidence.p_economic)
        p_costed.append(skill_evidence(frame, daily, HORIZON, COST, reps=200).p_economic)
    for p in (np.array(p_ic), np.array(p_econ)):
        assert p.min() > 0.1 / 40 and 0.25 < np.mean(p < 0.5) < 0.75, np.sort(p)
    assert np.mean(np.array(p_costed) > np.array(p_econ)) == 1.0


PLANTED = {"A": 0.001, "B": 0.008, "C": 0.012, "D": 0.014, **{f"N{i}": 0.3 + 0.03 * i for i in range(16)}}


def test_holm_deploys_only_what_survives_the_step_down():
    """20 tickers at 10 %: Holm's first threshold is 0.1/20 = 0.005 (A passes), its second
    0.1/19 = 0.00526 (B's 0.008 fails, and the step-down stops)."""
    decision = family_decision(PLANTED, 1, "holm", 0.1)
    assert decision.deploy == ("A",) and decision.hypotheses == 20
    assert decision.adjusted["A"] == pytest.approx(0.02) and decision.adjusted["B"] == pytest.approx(0.152)


def test_benjamini_hochberg_deploys_the_discoveries_at_the_rate():
    """The same p-values at a 10 % false discovery rate: the fourth smallest, 0.014, is under
    4 * 0.1 / 20 = 0.02, so A to D deploy."""
    assert family_decision(PLANTED, 1, "bh", 0.1).deploy == ("A", "B", "C", "D")


def test_variants_tried_and_missing_tickers_count_as_hypotheses():
    """Six variants tried on each of 20 tickers make 120 hypotheses: 0.001 > 0.1/120 no longer
    passes. A ticker with no walk-forward stored counts with p = 1: it never deploys and the
    others' thresholds stay those of the whole universe."""
    assert family_decision(PLANTED, 2, "holm", 0.1).deploy == ("A",)  # 0.001 <= 0.1 / 40
    assert family_decision(PLANTED, 6, "holm", 0.1).deploy == ()  # 0.001 > 0.1 / 120
    missing = family_decision({**PLANTED, "N0": None}, 1, "holm", 0.1)
    assert missing.deploy == ("A",) and missing.hypotheses == 20 and missing.adjusted["N0"] == 1.0
    with pytest.raises(ValueError, match="unknown family method"):
        family_decision(PLANTED, 1, "bonferroni", 0.1)


def test_a_ticker_outside_the_universe_fails_the_gate_instead_of_raising():
    from odyssey.gates import skill_gate
    from odyssey.skill import SkillEvidence

    evidence = SkillEvidence(600, 0.2, 4.0, 1e-5, 0.1, 4.0, 1e-5, 1e-5)
    decision = family_decision({"A": 1e-5, "B": 0.5}, 1, "holm", 0.1)
    assert skill_gate("A", evidence, decision).passed
    result = skill_gate("C", evidence, decision)
    assert not result.passed and "not in the universe" in result.reason
    assert family_decision({"A": 1e-5, "B": 0.5}, 3, "none", 0.1).hypotheses == 2
