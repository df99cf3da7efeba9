"""Who advises (odyssey/selection.py): the deflated Sharpe ratio and the probability of backtest
overfitting on series whose answer is known, and the advisor falling back to the baseline when
either guard fails."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from odyssey.selection import (choose_advisor, deflated_sharpe, expected_max_sharpe, information_ratios,
                               pbo_cscv)

DAYS = pd.bdate_range("2017-01-02", periods=960)


def _frame(values: np.ndarray, names=None) -> pd.DataFrame:
    names = names or [f"c{i}" for i in range(values.shape[1])]
    return pd.DataFrame(values, index=DAYS[:len(values)], columns=names)


def _choose(frame: pd.DataFrame, eligible=None):
    return choose_advisor(frame, "equal_weight", eligible or {}, min_dsr=0.95, max_pbo=0.5, partitions=16)


def test_one_trial_deflates_to_the_probabilistic_sharpe_ratio_and_more_trials_raise_the_bar():
    rng = np.random.default_rng(0)
    r = rng.normal(0.001, 0.01, 5000)
    sharpe = r.mean() / r.std(ddof=1)
    # near-normal returns: PSR = Phi(SR * sqrt(n - 1)) against a benchmark of 0
    assert deflated_sharpe(r, 1, 0.0) == pytest.approx(stats.norm.cdf(sharpe * math.sqrt(len(r) - 1)), abs=0.01)
    assert expected_max_sharpe(1, 0.01) == 0.0
    bars = [expected_max_sharpe(n, 1 / 1000) for n in (2, 5, 20, 100)]
    assert bars == sorted(bars) and bars[0] > 0
    # the expected best of 100 unskilled Sharpe ratios, each with s.d. 1/sqrt(1000): about 2.5 s.d.
    assert bars[-1] * math.sqrt(1000) == pytest.approx(2.5, abs=0.1)
    assert deflated_sharpe(r, 100, 1 / 1000) < deflated_sharpe(r, 2, 1 / 1000)


def test_pbo_is_zero_for_a_dominant_candidate_and_near_one_for_candidates_that_take_turns():
    rng = np.random.default_rng(1)
    dominant = rng.normal(0, 0.002, (960, 5))
    dominant[:, 0] += 0.0008
    assert pbo_cscv(dominant, 16) == 0.0
    # each candidate earns in its own quarter of the blocks and loses elsewhere: whichever did best
    # in-sample did so because its good blocks were there, and does worse out of sample
    turns = _taking_turns(rng)
    assert pbo_cscv(turns, 16) > 0.8
    with pytest.raises(ValueError, match="even"):
        pbo_cscv(dominant, 15)


def _taking_turns(rng, n: int = 4) -> np.ndarray:
    block = np.repeat(np.arange(16), 60)
    x = rng.normal(0, 0.002, (960, n))
    for j in range(n):
        mine = block % n == j
        x[mine, j] += 0.004
        x[~mine, j] -= 0.0008
    return x


def test_the_advisor_falls_back_to_the_baseline_when_the_overfitting_guard_fails():
    choice = _choose(_frame(_taking_turns(np.random.default_rng(0))))
    # every candidate earned +11 %/yr over the baseline on these sessions, and the deflated Sharpe
    # ratio passes; but the best in-sample is usually below the median out of sample
    assert choice.deflated_sharpe >= 0.95 and choice.pbo >= 0.5
    assert choice.advisor == "equal_weight" and choice.best != "equal_weight"
    assert "the selection overfits" in choice.reason and "PBO 0.9" in choice.reason


def test_the_advisor_falls_back_when_the_best_may_be_the_luckiest():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.003, (960, 5))
    x[:, 2] += 0.0002  # about 1.1 a year of information ratio: real, but not clear of the best of five by luck
    choice = _choose(_frame(x))
    assert choice.best == "c2" and choice.deflated_sharpe < 0.95 and choice.advisor == "equal_weight"
    assert "deflated Sharpe ratio is too low" in choice.reason


def test_a_strong_candidate_advises_and_an_ineligible_one_never_does_but_counts_as_a_trial():
    rng = np.random.default_rng(4)
    x = rng.normal(0, 0.003, (960, 5))
    x[:, 1] += 0.0008  # an information ratio of about 4 a year
    choice = _choose(_frame(x, ["ppo", "momentum_12_1", "inverse_volatility", "xgboost_top_5", "analog_top_5"]))
    assert choice.advisor == "momentum_12_1" and choice.deflated_sharpe >= 0.95 and choice.pbo < 0.5
    assert choice.reason.endswith("it advises")
    # the same strong series as the policy's, whose gate failed: it may not advise, and still counts
    refused = _choose(_frame(x, ["c0", "ppo", "c2", "c3", "c4"]), {"ppo": "its gate failed"})
    assert refused.best != "ppo" and refused.advisor == "equal_weight" and refused.trials == 5
    assert not next(c for c in refused.candidates if c.name == "ppo").eligible


def test_no_candidate_beating_the_baseline_leaves_the_baseline_advising():
    rng = np.random.default_rng(5)
    x = rng.normal(-0.0004, 0.003, (960, 5))
    choice = _choose(_frame(x))
    assert choice.advisor == "equal_weight" and "no candidate beat the equal_weight baseline" in choice.reason


def test_on_candidates_without_skill_something_other_than_the_baseline_rarely_advises():
    advised = 0
    for seed in range(100):
        rng = np.random.default_rng([seed, 11])
        x = rng.normal(0, 0.002, (960, 1)) + rng.normal(0, 0.002, (960, 5))
        advised += _choose(_frame(x)).advisor != "equal_weight"
    assert advised <= 5  # measured in bench/advice.py: 5 of 400 on 940 sessions


def test_information_ratios_of_a_flat_column_are_zero():
    x = np.column_stack([np.zeros(100), np.linspace(-1, 1, 100)])
    np.testing.assert_allclose(information_ratios(x), [0.0, 0.0], atol=1e-12)


def test_pbo_judges_the_rule_as_applied_a_blocked_candidate_is_never_the_in_sample_choice():
    turns = _taking_turns(np.random.default_rng(0))
    dominant = np.random.default_rng(1).normal(0.003, 0.001, (960, 1))
    # a dominant candidate that may not advise would be the in-sample best every time (PBO 0) and
    # hide that the rule actually applied, among the others, overfits
    frame = _frame(np.column_stack([turns, dominant]), ["c0", "c1", "c2", "c3", "ppo"])
    choice = _choose(frame, {"ppo": "its gate failed"})
    assert choice.pbo > 0.8 and choice.advisor == "equal_weight"
    assert pbo_cscv(np.column_stack([turns, dominant, np.zeros(960)]), 16) < 0.05


def test_too_few_held_out_sessions_for_the_overfitting_test_is_not_yet_evaluable():
    rng = np.random.default_rng(6)
    x = rng.normal(0.002, 0.003, (20, 3))
    choice = _choose(_frame(x))
    assert choice.advisor == "equal_weight" and choice.reason.startswith("not yet evaluable: 20 held-out sessions")
