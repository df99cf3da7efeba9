"""No look-ahead: changing every input after date t leaves every feature at or before t
bit-identical, and every walk-forward fold, fitted on its own training rows, predicts the same
up to t. This is the guard against the leakage that produced the seeds' results."""

import numpy as np
import pandas as pd
import pytest

from odyssey import features as F
from odyssey.fitting import MarketInputs, PipelineParams, clean_market_data
from odyssey.settings import WalkForwardSettings
from odyssey.sources.columns import MarketData
from odyssey.walkforward import WalkForward, predict
from tests.conftest import QUICK, pipeline_for, run_pipeline
from tests.dagster_helpers import FAST_XGB
from odyssey.settings import XGBParams


def perturb_raw_after(data: MarketData, t: pd.Timestamp, seed: int = 11) -> MarketData:
    """Every raw price, volume and alternative-data value after t replaced by a different one."""
    rng = np.random.default_rng(seed)
    prices = data.prices.copy()
    later = prices["date"] > t
    factor = np.exp(rng.normal(0.0, 0.03, later.sum()))
    for column in ("open", "high", "low", "close"):
        prices.loc[later, column] = prices.loc[later, column] * factor
    prices.loc[later, "volume"] = (prices.loc[later, "volume"] * rng.uniform(0.3, 3.0, later.sum())).round()
    alt = data.alt.copy()
    alt_later = alt["date"] > t
    for column in ("VIX", "DXY", "Gold", "Yield_10Y"):
        alt.loc[alt_later, column] = alt.loc[alt_later, column] * np.exp(rng.normal(0.0, 0.05, alt_later.sum()))
    return MarketData(prices=prices, alt=alt, actions=data.actions)


def changed_features(base: pd.DataFrame, other: pd.DataFrame, t: pd.Timestamp, names) -> list[str]:
    """Features with any value at or before t that is not bit-identical between two tables."""
    a = base[base["date"] <= t].reset_index(drop=True)
    b = other[other["date"] <= t].reset_index(drop=True)
    assert a[["date", "ticker"]].equals(b[["date", "ticker"]])
    return [n for n in names if not np.array_equal(a[n].to_numpy(), b[n].to_numpy(), equal_nan=True)]


@pytest.fixture(scope="module")
def perturbed(quick_profile, quick_market):
    def run(t: str):
        cut = pd.Timestamp(t)
        return cut, run_pipeline(quick_profile, perturb_raw_after(quick_market.data, cut))
    return run


def test_every_feature_is_causal_after_the_fitting_window(quick_pipeline, perturbed):
    t, other = perturbed("2020-06-15")  # inside the quick profile's test period
    assert t > pd.Timestamp(quick_pipeline.profile.validation_end)
    names = F.feature_names(quick_pipeline.profile.alt_series)
    assert changed_features(quick_pipeline.features, other.features, t, names) == []
    # the perturbation really changed what came after t
    after = changed_features(quick_pipeline.features, other.features, pd.Timestamp.max, names)
    assert len(after) == len(names)


def test_features_without_fitted_parameters_are_causal_everywhere(quick_pipeline, perturbed):
    t, other = perturbed("2016-09-15")  # inside the train period
    unfitted = [f.name for f in F.REGISTRY if not f.fitted]
    assert len(unfitted) > 40
    assert changed_features(quick_pipeline.features, other.features, t, unfitted) == []


def test_the_comparison_catches_a_leaky_feature(quick_pipeline, perturbed):
    t, other = perturbed("2020-06-15")

    def leaky(table):  # a centred moving average looks 2 days ahead
        out = table[["date", "ticker"]].copy()
        out["leaky"] = table.groupby("ticker")["ROC_5"].transform(lambda s: s.rolling(5, center=True).mean())
        return out
    assert changed_features(leaky(quick_pipeline.features), leaky(other.features), t, ["leaky"]) == ["leaky"]


# --- walk-forward folds ------------------------------------------------------------------------
class TrainSplitFit:
    """The old pipeline: clip thresholds and regimes fitted once on the data layer's train split,
    whatever the fold (what early folds used before fold-local fitting)."""

    def __init__(self, pipeline, train_end: pd.Timestamp):
        self.pipeline, self.train_end = pipeline, train_end
        self.names, self.benchmark = pipeline.names, pipeline.benchmark

    def unfitted(self, inputs, tickers=None):
        return self.pipeline.unfitted(inputs, tickers)

    def fit_transform(self, inputs, end, start=None, tickers=None, unfitted=None, scaler_rows=None):
        clip, regime = self.pipeline.fit_clip_and_regime(inputs, None, self.train_end, tickers)
        base = self.pipeline.unfitted(inputs, tickers)
        table = base.merge(self.pipeline.fitted(inputs, clip, regime, tickers), on=["date", "ticker"])
        return PipelineParams(None, str(self.train_end.date()), list(self.names), clip, regime), table[
            ["date", "ticker", *self.names]]


def _fold_predictions(wf: WalkForward, inputs: MarketInputs, ticker: str, k: int) -> pd.Series:
    frame = wf.frame(inputs, ticker)
    fold = wf.folds(frame)[k]
    data = wf.prepare(inputs, ticker, frame, fold)
    x_test, _ = data.part("test")
    return pd.Series(predict(wf.train(data), x_test), index=pd.DatetimeIndex(frame["date"].iloc[fold.test]))


@pytest.mark.parametrize("fold_pipeline, expect_identical", [("fold-local", True), ("train split", False)])
def test_a_fold_predicts_identically_when_everything_after_its_cut_changes(quick_pipeline, fold_pipeline,
                                                                          expect_identical):
    """Fold 0 of the quick profile tests before the data layer's train_end: its predictions up to a
    date inside its test window must not move when every raw input after that date changes (and
    is cleaned again). With parameters fitted on the train split (the old way) they do."""
    inputs = quick_pipeline.inputs
    pipeline = pipeline_for(quick_pipeline.profile)
    if fold_pipeline == "train split":
        pipeline = TrainSplitFit(pipeline, pd.Timestamp(quick_pipeline.profile.train_end))
    wf = WalkForward(pipeline, XGBParams(**FAST_XGB), WalkForwardSettings(), horizon=5)
    base = _fold_predictions(wf, inputs, "AAPL", 0)
    cut = base.index[len(base) // 2]
    assert cut < pd.Timestamp(quick_pipeline.profile.train_end)
    shaken = clean_market_data(perturb_raw_after(quick_pipeline.data, cut, seed=3), quick_pipeline.profile,
                               QUICK.cleaning).inputs
    other = _fold_predictions(wf, shaken, "AAPL", 0)
    same = np.array_equal(base[base.index <= cut].to_numpy(), other[other.index <= cut].to_numpy())
    assert same is expect_identical
    assert not np.array_equal(base[base.index > cut].to_numpy(), other[other.index > cut].to_numpy())
