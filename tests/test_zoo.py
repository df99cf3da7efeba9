"""The model zoo (odyssey/zoo.py): its table on forecasts whose answer is known, and its models on
the walk-forward's folds of a small planted market."""

import numpy as np
import pandas as pd
import pytest

from odyssey.memory import AnalogFolds
from odyssey.walkforward import XGBoostFolds, walkforward_from_settings
from odyssey.zoo import (LIGHTGBM_PARAMS, FoldCollector, LightGBMFolds, NaiveFolds, RidgeFolds, daily_ic, pooled_ranker,
                         top_k_returns, zoo_table)
from odyssey.sources.synthetic import generate_market
from tests.conftest import QUICK, run_pipeline


def _predictions(forecast: np.ndarray, target: np.ndarray, next_return: np.ndarray) -> pd.DataFrame:
    days, n = target.shape
    dates = pd.bdate_range("2020-01-01", periods=days)
    return pd.DataFrame({"date": np.repeat(dates, n), "ticker": np.tile([f"T{i}" for i in range(n)], days),
                         "prediction": forecast.ravel(), "target": target.ravel(),
                         "next_return": next_return.ravel()})


def test_a_perfect_forecast_has_an_ic_of_one_and_its_top_k_holds_the_best_names():
    rng = np.random.default_rng(0)
    nxt = rng.normal(0, 0.01, (300, 6))
    perfect = _predictions(nxt, nxt, nxt)
    pearson, spearman = daily_ic(perfect)
    assert pearson.min() == pytest.approx(1.0) and spearman.min() == pytest.approx(1.0)
    top, equal = top_k_returns(perfect, k=2, cost_rate=0.0)
    np.testing.assert_allclose(top, np.sort(nxt, axis=1)[:, -2:].mean(axis=1))
    np.testing.assert_allclose(equal[1:], nxt[1:].mean(axis=1), atol=0.002)  # near equal weight, drifting
    reversed_ = _predictions(-nxt, nxt, nxt)
    table = zoo_table({"perfect": perfect, "reversed": reversed_}, k=2, cost_rate=0.0015)
    row = table.set_index("model")
    assert row.loc["perfect", "ic"] == pytest.approx(1.0) and row.loc["reversed", "rank_ic"] == pytest.approx(-1.0)
    assert row.loc["perfect", "information_ratio"] > 5 > 0 > row.loc["reversed", "information_ratio"]


def test_costs_are_paid_on_what_the_top_k_trades():
    nxt = np.zeros((4, 3))
    flip = np.array([[3, 2, 1], [1, 2, 3], [3, 2, 1], [1, 2, 3]], dtype=float)
    top, _ = top_k_returns(_predictions(flip, nxt, nxt), k=1, cost_rate=0.001)
    # day 1 buys one name (1.0 traded), then each day sells it and buys another (2.0 traded)
    np.testing.assert_allclose(top, [-0.001, -0.002, -0.002, -0.002])


FAST = {**LIGHTGBM_PARAMS, "n_estimators": 150, "learning_rate": 0.1}


@pytest.fixture(scope="module")
def small_market():
    settings = QUICK.updated({"universe": {"tickers": ["AAPL", "SPY", "QQQ"]}})
    profile = settings.profile()
    pipe = run_pipeline(profile, generate_market(profile, settings.source.synthetic).data)
    return settings, pipe.inputs


def test_every_model_of_the_zoo_predicts_the_same_rows_of_the_same_folds_and_finds_the_planted_signal(small_market):
    settings, inputs = small_market
    wf = walkforward_from_settings(settings, settings.forecast.xgboost.model_copy(update={"n_estimators": 100}))
    collector = FoldCollector()
    frames, per_model = {}, {}
    for ticker in settings.universe.tickers:
        frames[ticker] = wf.frame(inputs, ticker)
        results = wf.run_models(inputs, ticker, {"xgboost": XGBoostFolds(wf), "lightgbm": LightGBMFolds(params=FAST),
                                                 "ridge": RidgeFolds(), "naive": NaiveFolds(),
                                                 "analog": AnalogFolds(8, 10), "collect": collector})
        for name, result in results.items():
            per_model.setdefault(name, []).append(result.predictions)
    per_model.pop("collect")
    predictions = {name: pd.concat(frames_, ignore_index=True) for name, frames_ in per_model.items()}
    predictions["pooled"] = pooled_ranker(collector.folds, frames, params=FAST)
    keys = {name: set(zip(p["date"], p["ticker"], p["fold"])) for name, p in predictions.items()}
    assert all(k == keys["xgboost"] for k in keys.values())  # the same test rows of the same folds
    table = zoo_table(predictions, k=1, cost_rate=settings.costs.rate).set_index("model")
    # the quick market plants a signal every learned model finds, well above the naive forecast's
    for name in ("xgboost", "lightgbm", "ridge", "pooled", "analog"):
        assert table.loc[name, "rank_ic"] > max(0.1, table.loc["naive", "rank_ic"] + 0.05), table
    # the same seed gives the same numbers
    again = pooled_ranker(collector.folds, frames, params=FAST)
    pd.testing.assert_frame_equal(again, predictions["pooled"])
