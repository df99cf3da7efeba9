"""The synthetic market is deterministic and has the structure of a market."""

import numpy as np
import pandas as pd
import pytest

from odyssey.calendar import sessions
from odyssey.settings import SyntheticSettings as SyntheticConfig
from odyssey.settings import load_settings, preset_path
from odyssey.sources.synthetic import SPLITS, generate_market


def _returns(market) -> pd.DataFrame:
    return np.log(market.adjusted_close).diff().iloc[1:]


def test_same_seed_same_market_other_seed_other_market(quick_profile):
    a = generate_market(quick_profile, SyntheticConfig(seed=3))
    b = generate_market(quick_profile, SyntheticConfig(seed=3))
    c = generate_market(quick_profile, SyntheticConfig(seed=4))
    pd.testing.assert_frame_equal(a.data.prices, b.data.prices)
    pd.testing.assert_frame_equal(a.data.alt, b.data.alt)
    assert not np.allclose(a.adjusted_close.to_numpy(), c.adjusted_close.to_numpy())


def test_full_profile_covers_universe_and_sessions():
    full = load_settings(preset_path("full"), environ={})
    profile = full.profile()
    market = generate_market(profile, full.source.synthetic)
    prices = market.data.prices
    assert sorted(prices["ticker"].unique()) == sorted(profile.tickers)
    assert prices["date"].min() == pd.Timestamp("2010-01-04")
    assert prices["date"].max() == pd.Timestamp("2024-12-31")
    nyse = sessions("2010-01-04", "2024-12-31", "XNYS")
    assert prices["date"].isin(nyse).all()
    assert pd.Timestamp("2024-12-25") not in set(market.data.alt["date"])   # holidays are not rows
    assert market.regimes.index.equals(nyse)
    assert list(market.data.alt.columns) == ["date", "VIX", "DXY", "Gold", "Yield_10Y"]
    assert len(market.data.actions) == len(SPLITS)


def test_market_factor_sectors_and_volatility_clustering(quick_market):
    r = _returns(quick_market)
    corr = r.corr()
    assert corr.loc["SPY", "QQQ"] > 0.8          # common market factor
    assert corr.loc["AAPL", "NVDA"] > 0.3        # tech / semis loadings
    assert corr.loc["IEF", "SPY"] < 0.1          # rates move against risk
    abs_r = r["AAPL"].abs()
    assert abs_r.autocorr(1) > 0.1               # volatility clusters


def test_vix_follows_regimes(quick_market):
    vix = quick_market.data.alt.set_index("date")["VIX"]
    regimes = quick_market.regimes.reindex(vix.index)
    by_regime = vix.groupby(regimes).mean()
    assert set(regimes.unique()) == {0, 1, 2}
    assert by_regime[0] < by_regime[1] < by_regime[2]


def test_volume_rises_with_absolute_returns(quick_market):
    r = _returns(quick_market)["NVDA"]
    prices = quick_market.data.prices
    volume = prices[prices["ticker"] == "NVDA"].set_index("date")["volume"].astype(float)
    joined = pd.concat([r.abs(), np.log(volume)], axis=1, join="inner").dropna()
    assert joined.corr().iloc[0, 1] > 0.3


def test_missing_days_bad_ticks_and_splits_in_quotes(quick_profile, quick_market):
    prices = quick_market.data.prices
    n_days = len(quick_profile.sessions)
    counts = prices.groupby("ticker").size()
    assert (counts <= n_days).all() and (counts < n_days).any()
    # NVDA's 4:1 split in 2021 shows as a quote jump of ~1/4
    nvda = prices[prices["ticker"] == "NVDA"].set_index("date")["close"]
    after = nvda.index.searchsorted(pd.Timestamp("2021-07-20"))
    jump = nvda.iloc[after] / nvda.iloc[after - 1]
    assert 0.2 < jump < 0.3
    assert ((quick_market.data.actions["ticker"] == "NVDA") & (quick_market.data.actions["ratio"] == 4.0)).any()


def test_signal_strength_zero_has_no_planted_signal(quick_profile):
    flat = generate_market(quick_profile, SyntheticConfig(signal_strength=0.0))
    assert (flat.true_signal["true_signal"] == 0.0).all()
    planted = generate_market(quick_profile, SyntheticConfig(signal_strength=0.2))
    # The knob changes only the signal: regimes and VIX draw the same randomness.
    assert (flat.regimes == planted.regimes).all()


def test_planted_signal_predicts_forward_returns(quick_profile):
    market = generate_market(quick_profile, SyntheticConfig(signal_strength=0.2))
    close = market.adjusted_close
    fwd = np.log(close.shift(-5) / close)
    signal = market.true_signal.pivot(index="date", columns="ticker", values="true_signal")[close.columns]
    ics = [pd.concat([signal[t], fwd[t]], axis=1).dropna().corr(method="spearman").iloc[0, 1] for t in close.columns
           if t != "BIL"]
    assert np.mean(ics) > 0.1


def test_drift_changes_only_the_drifted_tickers_after_the_date(quick_profile):
    base = generate_market(quick_profile, SyntheticConfig())
    drifted = generate_market(quick_profile, SyntheticConfig(drift_date="2020-01-02", drift_tickers=("AAPL",)))
    rb, rd = _returns(base), _returns(drifted)
    before = rb.index < pd.Timestamp("2020-01-02")
    pd.testing.assert_frame_equal(rb[before], rd[before])
    pd.testing.assert_series_equal(rb["SPY"], rd["SPY"])
    assert rd.loc[~before, "AAPL"].std() > 1.4 * rb.loc[~before, "AAPL"].std()


def _ic(driver: pd.Series, returns: pd.Series) -> float:
    """Rank correlation of a driver known at t with the next day's return."""
    from scipy.stats import spearmanr

    nxt = returns.shift(-1).reindex(driver.index)
    ok = driver.notna() & nxt.notna()
    return float(spearmanr(driver[ok], nxt[ok])[0])


def test_a_gold_driven_signal_never_runs_away_and_its_events_keep_each_days_size(quick_profile):
    day = pd.Timestamp("2017-01-03")
    strong = dict(signal_strength=3.0, signal_source="gold", signal_tickers=("AAPL",))
    market = generate_market(quick_profile, SyntheticConfig(**strong))
    base = _returns(market)
    gold = np.log(market.data.alt.set_index("date")["Gold"]).diff(20).reindex(base.index)  # the feature
    # nothing feeds back: trends do not run away, whatever the strength
    up = (base.rolling(5).sum() > 0).mean()
    assert up.between(0.4, 0.65).all(), up
    before, after = base.index < day, base.index >= day
    assert _ic(gold[before], base.loc[before, "AAPL"]) > 0.7
    for knob, skill in (("signal_death_date", (-0.08, 0.08)), ("signal_flip_date", (-1.0, -0.7))):
        changed = _returns(generate_market(quick_profile, SyntheticConfig(**strong, **{knob: str(day.date())})))
        pd.testing.assert_frame_equal(base[before], changed[before])
        pd.testing.assert_series_equal(base["SPY"], changed["SPY"])
        lo, hi = skill
        assert lo < _ic(gold[after], changed.loc[after, "AAPL"]) < hi, knob
        # the volatility of a day stays: a monitor of skill, not of size, has to find the event
        ratio = changed.loc[after, "AAPL"].abs().mean() / base.loc[after, "AAPL"].abs().mean()
        assert 0.9 < ratio < 1.1, (knob, ratio)


def test_signal_death_and_flip_change_only_the_chosen_tickers_after_the_date(quick_profile):
    base = generate_market(quick_profile, SyntheticConfig())
    day = pd.Timestamp("2020-01-02")
    for knob, sign in (("signal_death_date", 0.0), ("signal_flip_date", -1.0)):
        changed = generate_market(quick_profile, SyntheticConfig(**{knob: str(day.date())}, signal_tickers=("AAPL",)))
        rb, rc = _returns(base), _returns(changed)
        before = rb.index < day
        pd.testing.assert_frame_equal(rb[before], rc[before])
        pd.testing.assert_series_equal(rb["SPY"], rc["SPY"])  # the other tickers keep their market
        assert not np.allclose(rb.loc[~before, "AAPL"], rc.loc[~before, "AAPL"])
        signal = changed.true_signal.pivot(index="date", columns="ticker", values="true_signal")
        planted = base.true_signal.pivot(index="date", columns="ticker", values="true_signal")
        after = signal.index >= day
        if sign == 0.0:
            assert (signal.loc[after, "AAPL"] == 0.0).all()
        else:  # reversed: the planted part has the opposite sign of the momentum it follows
            assert (np.sign(signal.loc[after, "AAPL"]) != np.sign(planted.loc[after, "AAPL"])).mean() > 0.3
        pd.testing.assert_series_equal(signal["SPY"], planted["SPY"])


def test_a_longer_range_extends_the_same_market(quick_profile):
    base = generate_market(quick_profile)
    longer = generate_market(quick_profile.with_end("2022-03-31"))
    cut = pd.Timestamp(quick_profile.end)
    old = longer.data.prices[longer.data.prices["date"] <= cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, base.data.prices)
    alt = longer.data.alt[longer.data.alt["date"] <= cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(alt, base.data.alt)
    assert longer.data.prices["date"].max() == pd.Timestamp("2022-03-31")


def test_extending_past_a_bad_print_that_ended_the_market_moves_only_its_true_close(quick_profile):
    """The true close of a bad-print day is the midpoint of its neighbours: with the next day, it
    moves there; nothing else before the cut changes."""
    day = quick_profile.end
    planted = SyntheticConfig(bad_prints=(f"AAPL {day}",))
    ending, longer = (generate_market(p, planted) for p in (quick_profile, quick_profile.with_end("2022-01-31")))
    before = ending.adjusted_close
    after = longer.adjusted_close.loc[before.index]
    changed = (~np.isclose(before, after, rtol=1e-12, atol=0)).nonzero()
    assert [(before.index[r], before.columns[c]) for r, c in zip(*changed)] == [(pd.Timestamp(day), "AAPL")]
    around = longer.adjusted_close["AAPL"].loc[:"2022-01-31"].iloc[len(before) - 2:len(before) + 1].to_numpy()
    assert np.isclose(around[1], np.sqrt(around[0] * around[2]), rtol=1e-12)


def test_bad_prints_are_one_session_spikes_around_the_true_midpoint(quick_profile, quick_settings, quick_market):
    """Each planted bad print quotes the close 25 % off for one session; the market's true close
    that day is the geometric midpoint of its neighbours, so a repair can restore it exactly."""
    truth = generate_market(quick_profile, quick_settings.source.synthetic.model_copy(update={"bad_ticks": False}))
    quoted = quick_market.data.prices.set_index(["ticker", "date"])
    honest = truth.data.prices.set_index(["ticker", "date"])
    pd.testing.assert_frame_equal(quoted.drop(columns=["close", "high", "low"]), honest.drop(columns=["close", "high", "low"]))
    ratio = quoted["close"] / honest["close"]
    bad = ratio[~np.isclose(ratio, 1.0, rtol=1e-12)]
    assert len(bad) >= 2
    np.testing.assert_allclose(np.abs(bad.to_numpy() - 1.0), 0.25)
    true_close = quick_market.adjusted_close
    pd.testing.assert_frame_equal(true_close, truth.adjusted_close)   # bad prints change quotes only
    for ticker, day in bad.index:
        i = true_close.index.get_loc(day)
        series = true_close[ticker]
        assert series.iloc[i] == pytest.approx(np.sqrt(series.iloc[i - 1] * series.iloc[i + 1]), rel=1e-12)
        assert quoted.loc[(ticker, day), "high"] >= quoted.loc[(ticker, day), "close"] >= quoted.loc[(ticker, day), "low"]
