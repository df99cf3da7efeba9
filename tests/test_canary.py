"""The leakage canary passes the honest walk-forward and fails on each planted leak: a feature
that looks one day ahead, folds with no purge or embargo, a scaler fitted on all rows, early
stopping on the test rows, and look-ahead in cleaning (a step that reads the whole history, a gap
filled towards the next session). What the cleaning does by design (a bad print repaired from the
next session) is no leak."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from odyssey import features as F
from odyssey.canary import MODEL, hindsight_days, leakage_canary, perturb_raw_after
from odyssey.fitting import FeaturePipeline, MarketInputs, clean_market_data, log_returns
from odyssey.settings import GateSettings, WalkForwardSettings, XGBParams
from odyssey.sources.columns import ADJ_CLOSE, MarketData
from odyssey.walkforward import WalkForward, fit_booster
from tests.conftest import QUICK
from tests.dagster_helpers import FAST_XGB

TICKER = "NVDA"


@dataclasses.dataclass(frozen=True)
class LookAheadPipeline(FeaturePipeline):
    """Return_1d replaced by the next session's return: one day into the future."""

    def fit_transform(self, *args, **kwargs):
        params, table = super().fit_transform(*args, **kwargs)
        table = table.sort_values(["ticker", "date"]).copy()
        table["Return_1d"] = table.groupby("ticker")["Return_1d"].shift(-1)
        return params, table


@dataclasses.dataclass(frozen=True)
class ScalerOnAllRows(FeaturePipeline):
    """The scaler fitted on every row, the future included."""

    def fit_transform(self, inputs, end, start=None, tickers=None, unfitted=None, scaler_rows=None):
        return super().fit_transform(inputs, end, start, tickers, unfitted, scaler_rows=pd.DataFrame(
            {"date": inputs.clean["date"], "ticker": inputs.clean["ticker"]}))


@dataclasses.dataclass
class EarlyStopOnTest(WalkForward):
    """Each fold's booster early-stopped on its test rows instead of its validation rows."""

    def train(self, data):
        x_train, y_train = data.part("train")
        x_test, y_test = data.part("test")
        return fit_booster(x_train, y_train, x_test, y_test, self.params)


def honest_cleaning(raw: MarketData) -> MarketInputs:
    return clean_market_data(raw, QUICK.profile(), QUICK.cleaning).inputs


def capped_on_whole_history(raw: MarketData, n_sd: float = 4.0) -> MarketInputs:
    """The cleaning followed by a step that pulls every close whose move exceeds `n_sd` standard
    deviations of the ticker's daily moves back to that bound; the standard deviation is taken
    over the whole history, later sessions included."""
    cleaned = honest_cleaning(raw)
    prices = cleaned.clean.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    for column in ("close", ADJ_CLOSE):
        log_price = np.log(prices[column])
        move = log_price.groupby(prices["ticker"]).diff()
        bound = n_sd * move.groupby(prices["ticker"]).transform("std")
        capped = move.clip(-bound, bound)
        previous = log_price.groupby(prices["ticker"]).shift(1)
        prices[column] = np.where(move.abs() > bound, np.exp(previous + capped), prices[column])
    return MarketInputs(prices, log_returns(prices), cleaned.alt)


def gaps_filled_from_the_next_session(raw: MarketData) -> MarketInputs:
    """The cleaning with each filled session's prices interpolated (in log) between the sessions
    around the gap instead of carried forward: the fill reads the session after the gap."""
    cleaned = honest_cleaning(raw)
    prices = cleaned.clean.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    for column in ("open", "high", "low", "close", ADJ_CLOSE):
        log_price = np.log(prices[column].where(~prices["filled"]))
        prices[column] = np.exp(log_price.groupby(prices["ticker"]).transform(
            lambda s: s.interpolate(limit_area="inside")))
    return MarketInputs(prices, log_returns(prices), cleaned.alt)


@pytest.fixture(scope="module")
def pipeline(quick_profile):
    return dict(benchmark=quick_profile.benchmark, names=F.feature_names(quick_profile.alt_series))


def _walkforward(pipeline_class, pipeline, walkforward_class=WalkForward, **folds) -> WalkForward:
    return walkforward_class(pipeline_class(**pipeline), XGBParams(**FAST_XGB), WalkForwardSettings(), horizon=5,
                             **folds)


@pytest.mark.parametrize("case, walkforward, cleaning, moved", [
    ("honest", lambda p: _walkforward(FeaturePipeline, p), honest_cleaning, None),
    ("feature one day ahead", lambda p: _walkforward(LookAheadPipeline, p), honest_cleaning,
     "test rows up to the cut"),
    ("folds without purge or embargo", lambda p: _walkforward(FeaturePipeline, p, purge=0, embargo=0),
     honest_cleaning, "validation rows"),
    ("scaler fitted on all rows", lambda p: _walkforward(ScalerOnAllRows, p), honest_cleaning, "training rows"),
    ("early stopping on the test rows", lambda p: _walkforward(FeaturePipeline, p, EarlyStopOnTest),
     honest_cleaning, MODEL),
    ("cleaning capped at the whole history's spread", lambda p: _walkforward(FeaturePipeline, p),
     capped_on_whole_history, "validation rows"),
])
def test_the_canary_fails_every_planted_leak_and_passes_the_honest_pipeline(quick_market, pipeline, case,
                                                                            walkforward, cleaning, moved):
    # the honest pipeline on the gate's folds (the first and the middle one); a planted leak shows
    # on the first fold already
    folds = 1 if moved else GateSettings().canary_folds
    result = leakage_canary(walkforward(pipeline), quick_market.data, TICKER, cleaning, n_folds=folds)
    assert result.passed is (moved is None), (case, result.reason)
    details = result.details()
    assert details["folds_checked"] == folds and details["predictions_compared"] >= folds
    changed = result.table.groupby("part")["changed"].sum()
    if moved is None:
        assert changed.sum() == 0
    else:
        assert "suspected leakage" in result.reason and moved in result.reason
        assert changed[moved] > 0


def test_early_stopping_on_the_test_rows_moves_the_predictions_up_to_the_cut(quick_market, pipeline):
    """Not only the booster's record: what it forecasts before the cut depends on the future."""
    result = leakage_canary(_walkforward(FeaturePipeline, pipeline, EarlyStopOnTest), quick_market.data, TICKER,
                            honest_cleaning, n_folds=2)
    details = result.details()
    assert not result.passed and details["rows_changed"] == 0
    assert details["models_changed"] == 2 and details["predictions_changed"] > 0


def test_the_change_reaches_every_later_bar_and_nothing_before(quick_market):
    raw = quick_market.data
    cut = pd.Timestamp("2018-07-10")
    shaken = perturb_raw_after(raw, cut, seed=1)
    before, after = (raw.prices.sort_values(["ticker", "date"]).reset_index(drop=True),
                     shaken.prices.sort_values(["ticker", "date"]).reset_index(drop=True))
    early = before["date"] <= cut
    columns = ["open", "high", "low", "close", "volume"]
    assert np.array_equal(before.loc[early, columns].to_numpy(float), after.loc[early, columns].to_numpy(float),
                          equal_nan=True)
    present = ~early & before["close"].notna()
    assert (before.loc[present, columns] != after.loc[present, columns]).all().all()
    # one factor per bar: its shape is kept
    ratio = after.loc[present, ["open", "high", "low"]].div(after.loc[present, "close"], axis=0)
    assert np.allclose(ratio, before.loc[present, ["open", "high", "low"]].div(before.loc[present, "close"], axis=0))
    # the move into the next session is reversed (up to a small jitter)
    for ticker, rows in before.groupby("ticker"):
        first = rows.index[rows["date"] > cut][0]
        move = np.log(rows.loc[first, "close"] / rows.loc[first - 1, "close"])
        new_move = np.log(after.loc[first, "close"] / after.loc[first - 1, "close"])
        assert abs(new_move + move) < 0.05, ticker
    alt_later = shaken.alt["date"] > cut
    assert (shaken.alt.loc[alt_later, "VIX"] != raw.alt.loc[alt_later, "VIX"]).all()
    assert shaken.alt.loc[~alt_later].equals(raw.alt.loc[~alt_later])


def _clean_until(inputs: MarketInputs, cut: pd.Timestamp) -> pd.DataFrame:
    clean = inputs.clean
    return clean[clean["date"] <= cut].reset_index(drop=True)


def test_the_cleaning_up_to_the_cut_only_moves_on_a_bad_print_the_next_session_confirms(quick_market):
    """The honest cleaning leaves every clean value at or before the cut as it was, except where
    a move needs the next session to be judged (a bad print): the canary moves its cut past such a
    session."""
    raw = quick_market.data
    cut = pd.Timestamp("2018-07-10")
    base = honest_cleaning(raw)
    assert _clean_until(honest_cleaning(perturb_raw_after(raw, cut)), cut).equals(_clean_until(base, cut))
    # a bad print on the cut: the quoted close 30 % low, the next session back where it was
    prices = raw.prices.copy()
    spike = (prices["ticker"] == TICKER) & (prices["date"] == cut)
    prices.loc[spike, "close"] = prices.loc[spike, "close"] * 0.7
    prices.loc[spike, "low"] = np.minimum(prices.loc[spike, "low"], prices.loc[spike, "close"])
    planted = MarketData(prices, raw.alt, raw.actions)
    base = honest_cleaning(planted)
    assert bool(base.clean.loc[(base.clean["ticker"] == TICKER) & (base.clean["date"] == cut), "repaired"].iloc[0])
    moved = _clean_until(honest_cleaning(perturb_raw_after(planted, cut)), cut)
    assert not moved.equals(_clean_until(base, cut))
    hindsight = hindsight_days(base.clean)
    assert cut in hindsight and cut + pd.offsets.BDay(1) in hindsight


def test_the_honest_pipeline_passes_with_a_bad_print_on_a_cut(quick_market, pipeline):
    """A bad print planted on the first fold's cut (its repair reads the next session: the cut
    moves to a later session): still no leak."""
    raw = quick_market.data
    cut = pd.Timestamp("2018-07-10")  # the first test session of NVDA's first fold
    prices = raw.prices.copy()
    spike = (prices["ticker"] == TICKER) & (prices["date"] == cut)
    prices.loc[spike, "close"] = prices.loc[spike, "close"] * 0.7
    prices.loc[spike, "low"] = np.minimum(prices.loc[spike, "low"], prices.loc[spike, "close"])
    planted = MarketData(prices, raw.alt, raw.actions)
    # three folds: the first, the middle and the last (2021-07-12 to the end)
    result = leakage_canary(_walkforward(FeaturePipeline, pipeline), planted, TICKER, honest_cleaning, n_folds=3)
    assert result.passed, result.reason
    cuts = result.table.groupby("fold")["cut"].first()
    assert cuts.iloc[0] > str(cut.date())


def test_a_gap_filled_from_the_next_session_fails_and_one_carried_forward_passes(quick_market, pipeline):
    """NVDA's bar missing on its first fold's cut: the honest cleaning carries the last close
    forward and passes; a fill interpolated towards the next session reads past the cut."""
    raw = quick_market.data
    cut = pd.Timestamp("2018-07-10")  # the first test session of NVDA's first fold
    prices = raw.prices[~((raw.prices["ticker"] == TICKER) & (raw.prices["date"] == cut))]
    gapped = MarketData(prices.reset_index(drop=True), raw.alt, raw.actions)
    wf = _walkforward(FeaturePipeline, pipeline)
    honest = leakage_canary(wf, gapped, TICKER, honest_cleaning, n_folds=1)
    assert honest.passed, honest.reason
    leaky = leakage_canary(wf, gapped, TICKER, gaps_filled_from_the_next_session, n_folds=1)
    assert not leaky.passed and leaky.table["cut"].iloc[0] == str(cut.date())
    assert "test rows up to the cut" in leaky.reason
