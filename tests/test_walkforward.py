"""Walk-forward folds, purging and embargo, fold-local pipelines, metrics, and the gates."""

import numpy as np
import pandas as pd
import pytest

from odyssey.calendar import sessions
from odyssey.fitting import feature_pipeline
from odyssey.gates import plausibility_gate, regression_gate
from odyssey.metrics import direction_accuracy, forecast_metrics, sign_strategy_returns, spearman_ic
from odyssey.settings import WalkForwardSettings, XGBParams
from odyssey.walkforward import MIN_PARTIAL_TEST_ROWS, WalkForward, make_folds, summary_metrics

FAST = XGBParams(max_depth=2, learning_rate=0.1, n_estimators=60, early_stopping_rounds=10, nthread=1)


def test_fold_counts_for_the_profiles():
    full = make_folds(sessions("2010-01-04", "2024-12-31"))
    quick = make_folds(sessions("2015-01-02", "2021-12-31"))
    # 22 full folds each, plus the partial final fold testing from the last validation end to the last row
    assert len(full) == 23 and len(quick) == 7
    assert [f.partial for f in full] == [False] * 22 + [True]
    assert [f.partial for f in quick] == [False] * 6 + [True]
    assert full[0].bounds == {"train_start": "2010-01-04", "train_end": "2013-01-04", "val_end": "2013-07-04",
                              "test_end": "2014-01-04"}
    assert full[-2].bounds["test_end"] == "2024-07-04"
    assert full[-1].bounds == {"train_start": "2010-01-04", "train_end": "2024-01-04", "val_end": "2024-07-04",
                               "test_end": "2025-01-01"}
    assert full[-1].test[-1] == len(sessions("2010-01-04", "2024-12-31")) - 1
    assert quick[-1].test[-1] == len(sessions("2015-01-02", "2021-12-31")) - 1


def test_the_partial_final_fold_needs_enough_test_rows():
    config = WalkForwardSettings()
    # the sixth fold's test window ends 2021-07-02; 5 embargo sessions later the partial fold starts
    short = make_folds(sessions("2015-01-02", "2021-07-20"), config, purge=5, embargo=5)
    assert len(short) == 6 and not short[-1].partial  # 7 partial test rows: too few
    dates = sessions("2015-01-02", "2021-08-13")
    folds = make_folds(dates, config, purge=5, embargo=5)
    assert len(folds) == 7 and folds[-1].partial
    assert len(folds[-1].test) >= MIN_PARTIAL_TEST_ROWS and folds[-1].test[-1] == len(dates) - 1
    assert folds[-1].test[0] == np.searchsorted(dates, pd.Timestamp("2021-07-02")) + 5


@pytest.mark.parametrize("horizon", [5, 10])
def test_windows_are_ordered_purged_and_embargoed(horizon):
    dates = sessions("2010-01-04", "2016-12-30")
    folds = make_folds(dates, WalkForwardSettings(), purge=horizon, embargo=horizon)
    assert len(folds) >= 5
    for fold in folds:
        train_end, val_end = pd.Timestamp(fold.bounds["train_end"]), pd.Timestamp(fold.bounds["val_end"])
        # the h-session target of the last train / validation row ends before the next window starts
        assert fold.train[-1] + horizon < np.searchsorted(dates, train_end)
        assert fold.val[-1] + horizon < np.searchsorted(dates, val_end)
        assert fold.train[-1] + horizon == np.searchsorted(dates, train_end) - 1
        # the first validation / test rows come `embargo` rows after their window starts
        assert fold.val[0] == np.searchsorted(dates, train_end) + horizon
        assert fold.test[0] == np.searchsorted(dates, val_end) + horizon
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


def test_summary_metrics_report_the_accuracy_edge_over_the_naive_forecast():
    rng = np.random.default_rng(4)
    n = 600
    y = rng.normal(0.001, 0.02, n)
    frame = pd.DataFrame({"date": sessions("2019-01-02", "2022-12-30")[:n], "target": y, "prediction": y,
                          "next_return": rng.normal(0, 0.01, n), "train_mean": 0.001})
    perfect = summary_metrics(frame, reps=200)
    # the naive forecast (the sign of the training mean: always up) is right on the rising days
    assert perfect["oos_naive_direction_accuracy"] == pytest.approx(np.mean(y > 0))
    assert perfect["oos_accuracy_edge"] == pytest.approx(1.0 - np.mean(y > 0))
    low, high = perfect["oos_accuracy_edge_ci_low"], perfect["oos_accuracy_edge_ci_high"]
    assert 0.0 < low <= perfect["oos_accuracy_edge"] <= high
    naive = summary_metrics(frame.assign(prediction=0.001), reps=200)
    assert naive["oos_accuracy_edge"] == 0.0
    assert naive["oos_accuracy_edge_ci_low"] == naive["oos_accuracy_edge_ci_high"] == 0.0
    assert perfect["oos_start"] == str(frame["date"].min().date())
    assert perfect["oos_end"] == str(frame["date"].max().date())


@pytest.fixture(scope="module")
def walkforward(quick_settings):
    return WalkForward(feature_pipeline(quick_settings), FAST, WalkForwardSettings(), horizon=5,
                       costs=quick_settings.costs)


@pytest.fixture(scope="module")
def aapl_frame(walkforward, quick_pipeline):
    return walkforward.frame(quick_pipeline.inputs, "AAPL")


def test_the_frame_holds_the_labelled_rows(aapl_frame, quick_pipeline):
    clean = quick_pipeline.clean[quick_pipeline.clean["ticker"] == "AAPL"].sort_values("date").reset_index(drop=True)
    assert len(aapl_frame) == len(clean) - 5  # the last 5 sessions have no realised target yet
    np.testing.assert_array_equal(aapl_frame["date"].to_numpy(), clean["date"].to_numpy()[:-5])
    px = clean["adj_close"].to_numpy()
    np.testing.assert_allclose(aapl_frame["target"].to_numpy(), np.log(px[5:] / px[:-5]), rtol=1e-12)
    np.testing.assert_allclose(aapl_frame["next_return"].to_numpy(), px[1:-4] / px[:-5] - 1.0, rtol=1e-12)


def test_every_fold_fits_the_pipeline_on_its_own_training_rows(walkforward, quick_pipeline, aapl_frame):
    folds = walkforward.folds(aapl_frame)
    prepared = [walkforward.prepare(quick_pipeline.inputs, "AAPL", aapl_frame, f) for f in (folds[0], folds[3])]
    for data in prepared:
        fold = data.fold
        last_train = str(aapl_frame["date"].iloc[fold.train[-1]].date())
        assert data.params.train_end == data.params.clip["train_end"] == data.params.regime["train_end"] == last_train
        assert data.params.scaler["rows"] == len(fold.train) and data.params.scaler["train_end"] == last_train
        x_train, _ = data.part("train")
        x_test, _ = data.part("test")
        # standardised on the training rows: mean 0 there, not on later rows
        means = np.nanmean(x_train.astype(float), axis=0)
        assert np.nanmax(np.abs(means)) < 1e-4
        assert np.nanmax(np.abs(np.nanmean(x_test.astype(float), axis=0))) > 0.1
    first, later = (data.params for data in prepared)
    assert first.clip != later.clip and first.regime != later.regime


def test_walkforward_predictions_are_out_of_sample_and_deterministic(walkforward, quick_pipeline, aapl_frame):
    a = walkforward.run(quick_pipeline.inputs, "AAPL")
    b = walkforward.run(quick_pipeline.inputs, "AAPL")
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    assert a.predictions["date"].is_unique
    assert len(a.folds) == 7 and a.folds["partial"].tolist() == [False] * 6 + [True]
    first_test = pd.Timestamp(a.folds["val_end"].iloc[0])
    assert a.predictions["date"].min() >= first_test
    # the partial final fold reaches the last labelled row
    assert a.predictions["date"].max() == aapl_frame["date"].max()
    for fold, part in a.predictions.groupby("fold"):
        row = a.folds.set_index("fold").loc[fold]
        assert part["date"].min() >= pd.Timestamp(row["val_end"]) and part["date"].max() < pd.Timestamp(row["test_end"])
    assert a.config["purge"] == a.config["embargo"] == 5


def test_the_horizon_sets_the_purge_and_embargo(quick_settings, aapl_frame):
    ten = WalkForward(feature_pipeline(quick_settings), FAST, WalkForwardSettings(), horizon=10)
    got = ten.folds(aapl_frame)
    want = make_folds(aapl_frame["date"], WalkForwardSettings(), purge=10, embargo=10)
    assert [(list(f.train), list(f.val), list(f.test)) for f in got] == \
        [(list(f.train), list(f.val), list(f.test)) for f in want]
    assert ten.describe()["purge"] == ten.describe()["embargo"] == 10


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
