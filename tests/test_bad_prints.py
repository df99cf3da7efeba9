"""Bad prints are repaired before returns, targets and backtests see them: on the synthetic
market with its planted one-day spikes, every strategy's backtest equals the one on the same
market without them; a large move that does not revert is kept."""

import numpy as np
import pandas as pd
import pytest

from odyssey import backtest as bt
from odyssey.cleaning import clean_prices
from odyssey.fitting import log_returns
from odyssey.portfolio import Constraints, SignalScale, build_panel, policy_market
from odyssey.sources.synthetic import generate_market
from odyssey.splits import forward_returns, target_name


@pytest.fixture(scope="module")
def markets(quick_profile, quick_settings):
    config = quick_settings.source.synthetic
    with_bad, without = (generate_market(quick_profile, config.model_copy(update={"bad_ticks": flag}))
                         for flag in (True, False))
    cleaned = {name: clean_prices(m.data.prices, m.data.actions, list(quick_profile.tickers), quick_profile.start)
               for name, m in (("bad", with_bad), ("clean", without))}
    return with_bad, cleaned


def test_the_planted_bad_prints_are_repaired_and_kept_for_reference(markets):
    market, cleaned = markets
    repaired = cleaned["bad"].prices[cleaned["bad"].prices["repaired"]]
    assert len(repaired) >= 2
    truth = cleaned["clean"].prices.set_index(["ticker", "date"])["close"]
    for row in repaired.itertuples():
        assert row.close == pytest.approx(truth[(row.ticker, row.date)], rel=1e-9)
        assert abs(np.log(row.close_original / row.close)) == pytest.approx(np.log(1.25), abs=0.05) or \
            abs(np.log(row.close_original / row.close)) == pytest.approx(-np.log(0.75), abs=0.05)
    assert not cleaned["clean"].prices["repaired"].any()
    assert not repaired["outlier"].any()


def test_returns_targets_and_every_backtest_equal_the_market_without_bad_prints(markets, quick_profile):
    market, cleaned = markets
    returns = {k: log_returns(c.prices) for k, c in cleaned.items()}
    np.testing.assert_allclose(returns["bad"]["log_return"], returns["clean"]["log_return"], rtol=0, atol=1e-9)
    targets = {k: forward_returns(c.prices, 5)[target_name(5)] for k, c in cleaned.items()}
    np.testing.assert_allclose(targets["bad"], targets["clean"], rtol=0, atol=1e-9)

    forecasts = market.true_signal.rename(columns={"true_signal": "prediction"})
    c = Constraints()
    tickers = quick_profile.tickers
    paths = {}
    for name, r in returns.items():
        panel = build_panel(forecasts, tickers, r)
        scale = SignalScale.fit(panel.forecasts)
        runs = [bt.run_targets("equal_weight", panel, bt.equal_weight_targets(panel, c), c),
                bt.run_targets("inverse_volatility", panel, bt.inverse_vol_targets(panel, r, c), c),
                bt.run_targets("momentum", panel, bt.momentum_targets(panel, r, c, 2), c),
                bt.run_targets("forecast_top_2", panel, bt.forecast_top_k_targets(panel, c, 2), c),
                bt.run_policy("policy", policy_market(panel, scale, bt.equal_weight_targets(panel, c), 5),
                              lambda obs: np.tanh(obs[..., :len(tickers)]), c, tilt=1.0, trade_rate=0.5)]
        paths[name] = runs
    repaired_days = cleaned["bad"].prices.loc[cleaned["bad"].prices["repaired"], "date"]
    assert repaired_days.between(paths["bad"][0].dates[0], paths["bad"][0].dates[-1]).all()
    for bad_run, clean_run in zip(paths["bad"], paths["clean"]):
        np.testing.assert_allclose(bad_run.returns, clean_run.returns, rtol=0, atol=1e-9, err_msg=bad_run.name)
        np.testing.assert_allclose(bad_run.weights, clean_run.weights, rtol=0, atol=1e-9, err_msg=bad_run.name)


def _bars(closes: list[float]) -> pd.DataFrame:
    from odyssey.calendar import sessions

    dates = sessions("2021-01-04", "2021-12-31")[: len(closes)]
    close = np.array(closes)
    return pd.DataFrame({"date": dates, "ticker": "AAA", "open": close, "high": close * 1.001, "low": close * 0.999,
                         "close": close, "volume": 1e6})


def test_a_spike_that_reverts_is_repaired_and_a_move_that_stays_is_kept():
    rng = np.random.default_rng(0)
    base = list(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 80))))
    spike = base[:70] + [base[69] * 1.3] + base[71:]
    step = base[:70] + [b * 1.3 for b in base[70:]]
    none = pd.DataFrame(columns=["date", "ticker", "ratio"])
    repaired = clean_prices(_bars(spike), none, ["AAA"], "2021-01-04").prices
    kept = clean_prices(_bars(step), none, ["AAA"], "2021-01-04").prices
    assert repaired["repaired"].sum() == 1 and repaired.loc[70, "close"] == pytest.approx(
        np.sqrt(base[69] * base[71]), rel=1e-12)
    assert repaired.loc[70, "close_original"] == pytest.approx(base[69] * 1.3)
    assert not kept["repaired"].any() and kept.loc[70, "outlier"]
    assert kept.loc[70, "close"] == pytest.approx(base[70] * 1.3)
