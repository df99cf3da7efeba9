"""Shared fixtures: the quick preset's settings and synthetic market, and the pure-library
pipeline on it."""

from dataclasses import dataclass

import pandas as pd

import pytest

from odyssey import features as F
from odyssey.cleaning import clean_alt, clean_prices
from odyssey.fitting import FeaturePipeline, MarketInputs, PipelineParams, log_returns
from odyssey.settings import Profile, Settings, load_settings, preset_path
from odyssey.sources.columns import MarketData
from odyssey.sources.synthetic import SyntheticMarket, generate_market

QUICK: Settings = load_settings(preset_path("quick"), environ={})


@dataclass
class Pipeline:
    profile: Profile
    data: MarketData
    clean: pd.DataFrame
    alt: pd.DataFrame
    returns: pd.DataFrame
    params: PipelineParams
    features: pd.DataFrame

    @property
    def inputs(self) -> MarketInputs:
        return MarketInputs(self.clean, self.returns, self.alt)


def pipeline_for(profile: Profile) -> FeaturePipeline:
    return FeaturePipeline(profile.benchmark, F.feature_names(profile.alt_series), scale=False)


def run_pipeline(profile: Profile, data: MarketData) -> Pipeline:
    """clean -> returns -> features (fitted on the train split), exactly as the assets chain them."""
    cleaned = clean_prices(data.prices, data.actions, list(profile.tickers), profile.start, exchange=profile.exchange)
    calendar = pd.DatetimeIndex(sorted(cleaned.prices["date"].unique()), name="date")
    alt = clean_alt(data.alt, calendar)
    returns = log_returns(cleaned.prices)
    params, table = pipeline_for(profile).fit_transform(MarketInputs(cleaned.prices, returns, alt),
                                                        end=pd.Timestamp(profile.train_end))
    table = table.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    return Pipeline(profile, data, cleaned.prices, alt, returns, params, table)


# The modules that take longest, longest first (measured with --durations): `make test` hands whole
# modules to its two processes in collection order, so starting with these lets both finish
# together. test_main_command reads the build test_lineage starts, so it comes last, when that
# build is done, instead of waiting for it beside test_lineage.
LONGEST_FIRST = ("test_replay.py", "test_lineage.py", "test_honesty.py", "test_browser.py", "test_drift_retrain.py",
                 "test_memory.py", "test_webserver.py",
                 "test_live.py", "test_real_data.py", "test_portfolio_graph.py", "test_postgres.py",
                 "test_distributed.py", "test_landing.py", "test_last_good.py", "test_forecasting_graph.py")
LAST = ("test_main_command.py",)


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        name = item.path.name
        if name in LONGEST_FIRST:
            return LONGEST_FIRST.index(name)
        return len(LONGEST_FIRST) + (1 if name in LAST else 0)

    items.sort(key=rank)  # stable: within a module, and among the others, the order stays


@pytest.fixture(scope="session")
def three_ticker_run(tmp_path_factory, worker_id):
    """`python -m jobs.main` once on a three-ticker settings file (tests/main_run.py), shared by
    the test processes of the session."""
    from tests.main_run import run_main, shared_main_run

    if worker_id == "master":  # one process
        return run_main(tmp_path_factory.mktemp("main_run"))
    return shared_main_run(tmp_path_factory.getbasetemp().parent)


@pytest.fixture(scope="session")
def quick_settings() -> Settings:
    return QUICK


@pytest.fixture(scope="session")
def quick_profile() -> Profile:
    return QUICK.profile()


@pytest.fixture(scope="session")
def quick_market(quick_profile) -> SyntheticMarket:
    return generate_market(quick_profile, QUICK.source.synthetic)


@pytest.fixture(scope="session")
def quick_pipeline(quick_profile, quick_market) -> Pipeline:
    return run_pipeline(quick_profile, quick_market.data)
