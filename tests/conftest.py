"""Shared fixtures: the quick-profile synthetic market and the pure-library pipeline on it."""

import os
from dataclasses import dataclass

# The ticker partitions are fixed when the definitions load: tests run the quick profile.
os.environ["ODYSSEY_PROFILE"] = "quick"
os.environ.pop("ODYSSEY_STORAGE_URL", None)
os.environ.pop("MLFLOW_TRACKING_URI", None)

import pandas as pd
import pytest

from odyssey import features as F
from odyssey.cleaning import clean_alt, clean_prices
from odyssey.returns import clip_returns, fit_clip_thresholds, log_returns
from odyssey.sources.columns import MarketData
from odyssey.sources.synthetic import SyntheticConfig, SyntheticMarket, generate_market
from odyssey.universe import Profile, get_profile


@dataclass
class Pipeline:
    profile: Profile
    data: MarketData
    clean: pd.DataFrame
    alt: pd.DataFrame
    returns: pd.DataFrame
    thresholds: dict
    features: pd.DataFrame
    regime_model: dict


def run_pipeline(profile: Profile, data: MarketData) -> Pipeline:
    """clean -> returns -> features, exactly as the assets chain them."""
    cleaned = clean_prices(data.prices, data.actions, list(profile.tickers), profile.start)
    calendar = pd.DatetimeIndex(sorted(cleaned.prices["date"].unique()), name="date")
    alt = clean_alt(data.alt, calendar)
    raw_returns = log_returns(cleaned.prices)
    thresholds = fit_clip_thresholds(raw_returns, profile.train_end)
    returns = clip_returns(raw_returns, thresholds)
    built = F.build_features(cleaned.prices, returns, alt, profile.train_end)
    return Pipeline(profile, data, cleaned.prices, alt, returns, thresholds, built.table, built.regime_model)


@pytest.fixture(scope="session")
def quick_profile() -> Profile:
    return get_profile("quick")


@pytest.fixture(scope="session")
def quick_market(quick_profile) -> SyntheticMarket:
    return generate_market(quick_profile, SyntheticConfig())


@pytest.fixture(scope="session")
def quick_pipeline(quick_profile, quick_market) -> Pipeline:
    return run_pipeline(quick_profile, quick_market.data)
