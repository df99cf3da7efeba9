"""Walk-forward folds, purging and embargo, metrics, and the leakage canary."""

import numpy as np
import pandas as pd
import pytest

from odyssey import features as F
from odyssey.gates import canary_gate, plausibility_gate, regression_gate
from odyssey.metrics import direction_accuracy, forecast_metrics, sign_strategy_returns, spearman_ic
from odyssey.walkforward import WalkForwardConfig, XGBParams, make_folds, run_walkforward, ticker_frame

FAST = XGBParams(max_depth=2, learning_rate=0.1, n_estimators=60, early_stopping_rounds=10, nthread=1)


def test_fold_counts_for_the_profiles():
    full = make_folds(pd.bdate_range("2010-01-04", "2024-12-31"))
    quick = make_folds(pd.bdate_range("2015-01-02", "2021-12-31"))
    assert len(full) == 22 and len(quick) == 6
    assert full[0].bounds == {"train_start": "2010-01-04", "train_end": "2013-01-04", "val_end": "2013-07-04",
                              "test_end": "2014-01-04"}
    assert full[-1].bounds["test_end"] == "2024-07-04"


def test_windows_are_ordered_purged_and_embargoed():
    dates = pd.bdate_range("2010-01-04", "2016-12-30")
    cfg = WalkForwardConfig(horizon=5, embargo=5)
    for fold in make_folds(dates, cfg):
        train_end, val_end = pd.Timestamp(fold.bounds["train_end"]), pd.Timestamp(fold.bounds["val_end"])
        # the 5-day target of the last train row ends before validation starts
        assert fold.train[-1] + cfg.horizon < np.searchsorted(dates, train_end)
        assert fold.val[-1] + cfg.horizon < np.searchsorted(dates, val_end)
        # the first validation / test rows come `embargo` rows after their window starts
        assert fold.val[0] == np.searchsorted(dates, train_end) + cfg.embargo
        assert fold.test[0] == np.searchsorted(dates, val_end) + cfg.embargo
        assert fold.train[-1] < fold.val[0] and fold.val[-1] < fold.test[0]
        assert fold.train[0] == 0  # expanding window


def test_metrics_on_known_values():
    y = np.array([0.01, -0.02, 0.03, -0.01])
    p = np.array([0.02, -0.01, -0.01, -0.03])
    assert direction_accuracy(y, p) == 0.75
    assert spearman_ic(y, y * 2) == pytest.approx(1.0)
    r = sign_strategy_returns(np.array([1.0, 1.0, -1.0]), np.array([0.01, 0.02, -0.01]), cost_bps=10, slippage_bps=5)
    # enter long (1 unit traded), hold, flip to short (2 units traded)
    assert np.allclose(r, [0.01 - 0.0015, 0.02, 0.01 - 0.003])
    m = forecast_metrics(y, p, np.zeros(4))
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((y - p) ** 2)))


@pytest.fixture(scope="module")
def aapl_frame(quick_pipeline):
    return ticker_frame(quick_pipeline.features, quick_pipeline.clean, "AAPL", F.FEATURE_NAMES)


def test_walkforward_predictions_are_out_of_sample_and_deterministic(aapl_frame):
    a = run_walkforward(aapl_frame, F.FEATURE_NAMES, FAST)
    b = run_walkforward(aapl_frame, F.FEATURE_NAMES, FAST)
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    assert a.predictions["date"].is_unique
    assert len(a.folds) == 6
    first_test = pd.Timestamp(a.folds["val_end"].iloc[0])
    assert a.predictions["date"].min() >= first_test


def test_canary_passes_for_the_pipeline_and_fails_for_a_memorising_one(aapl_frame):
    shuffled = run_walkforward(aapl_frame, F.FEATURE_NAMES, FAST, shuffle_target_seed=0)
    assert canary_gate(shuffled.predictions).passed
    # a pipeline whose test rows leaked into training predicts (noisy) versions of the labels
    rng = np.random.default_rng(0)
    leaky = shuffled.predictions.assign(prediction=shuffled.predictions["target"] + rng.normal(0, 0.01, len(shuffled.predictions)))
    result = canary_gate(leaky)
    assert not result.passed and "suspected leakage" in result.reason


def test_plausibility_bound_flags_seed_like_accuracy():
    rng = np.random.default_rng(1)
    y = rng.normal(0, 0.03, 1000)
    seed_like = np.where(rng.random(1000) < 0.73, y, -y)  # 73 % direction accuracy
    frame = pd.DataFrame({"target": y, "prediction": seed_like, "train_mean": 0.001})
    assert not plausibility_gate(frame).passed
    assert plausibility_gate(frame.assign(prediction=rng.normal(size=1000))).passed
    # an asset that nearly always rises: high accuracy, but the naive forecast has it too
    rising = pd.DataFrame({"target": np.abs(y) + 0.001, "prediction": 0.002, "train_mean": 0.002})
    assert plausibility_gate(rising).passed


def test_regression_gate_compares_on_common_days():
    dates = pd.bdate_range("2020-01-01", periods=300)
    rng = np.random.default_rng(2)
    y = rng.normal(size=300)
    good = pd.DataFrame({"date": dates, "target": y, "prediction": y + rng.normal(0, 1.0, 300)})
    worse = good.assign(prediction=rng.normal(size=300))
    assert regression_gate(good, None).passed
    assert regression_gate(good, worse).passed
    failed = regression_gate(worse, good)
    assert not failed.passed and failed.details["common_days"] == 300
    assert regression_gate(worse, good.iloc[:30]).passed  # too few common days to judge
