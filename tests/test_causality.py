"""No look-ahead: changing every input after date t leaves every feature at or before t
bit-identical. This is the guard against the leakage that produced the seeds' results."""

import numpy as np
import pandas as pd
import pytest

from odyssey import features as F
from odyssey.sources.columns import MarketData
from tests.conftest import run_pipeline


def perturb_after(data: MarketData, t: pd.Timestamp, seed: int = 11) -> MarketData:
    """Every price, volume and alternative-data value after t replaced by a different one."""
    rng = np.random.default_rng(seed)
    prices = data.prices.copy()
    later = prices["date"] > t
    factor = np.exp(rng.normal(0.0, 0.03, later.sum()))
    for column in ("open", "high", "low", "close"):
        prices.loc[later, column] = prices.loc[later, column] * factor
    prices.loc[later, "volume"] = (prices.loc[later, "volume"] * rng.uniform(0.3, 3.0, later.sum())).round().astype(np.int64)
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
        return cut, run_pipeline(quick_profile, perturb_after(quick_market.data, cut))
    return run


def test_every_feature_is_causal_out_of_sample(quick_pipeline, perturbed):
    t, other = perturbed("2020-06-15")  # inside the quick profile's test period
    assert t > pd.Timestamp(quick_pipeline.profile.validation_end)
    assert changed_features(quick_pipeline.features, other.features, t, F.FEATURE_NAMES) == []
    # the perturbation really changed what came after t
    after = changed_features(quick_pipeline.features, other.features, pd.Timestamp.max, F.FEATURE_NAMES)
    assert len(after) == len(F.FEATURE_NAMES)


def test_features_without_train_fitted_parameters_are_causal_everywhere(quick_pipeline, perturbed):
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
