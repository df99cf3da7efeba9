"""Cleaning rules on small hand-made bars where the right answer is known."""

import numpy as np
import pandas as pd
import pytest

from odyssey.cleaning import clean_prices
from odyssey.sources.columns import empty_actions


def bars(ticker: str, closes, start="2020-01-01", volume=1000.0) -> pd.DataFrame:
    dates = pd.bdate_range(start, periods=len(closes))
    closes = np.asarray(closes, dtype=float)
    frame = pd.DataFrame({"date": dates, "ticker": ticker, "open": closes, "high": closes * 1.01,
                          "low": closes * 0.99, "close": closes, "volume": volume})
    return frame


def test_short_gap_is_filled_and_flagged_long_gap_is_left_empty():
    frame = bars("A", np.linspace(100, 130, 40))
    short = frame.index[10:13]   # 3 business days
    long = frame.index[20:27]    # 7 business days
    frame = frame.drop(short.union(long))
    out = clean_prices(frame, empty_actions(), ["A"], "2020-01-01").prices.set_index("date")
    dates = pd.bdate_range("2020-01-01", periods=40)
    assert out.loc[dates[10:13], "filled"].all()
    assert (out.loc[dates[10:13], "close"] == out.loc[dates[9], "close"]).all()
    assert out.loc[dates[20:27], "gap"].all()
    assert out.loc[dates[20:27], "close"].isna().all()
    assert not out.loc[dates[20:27], "filled"].any()
    assert out["filled"].sum() == 3 and out["gap"].sum() == 7


def test_split_from_corporate_actions_is_adjusted_exactly():
    closes = np.r_[np.full(10, 400.0), np.full(10, 100.0)]
    frame = bars("A", closes)
    actions = pd.DataFrame({"date": [frame["date"].iloc[10]], "ticker": ["A"], "ratio": [4.0]})
    result = clean_prices(frame, actions, ["A"], "2020-01-01")
    out = result.prices
    assert np.allclose(out["close"], 100.0)
    assert np.allclose(out["volume"].iloc[:10], 4000.0) and np.allclose(out["volume"].iloc[10:], 1000.0)
    assert result.report["splits"] == [{"ticker": "A", "date": str(frame["date"].iloc[10].date()), "ratio": 4.0,
                                        "source": "corporate_actions"}]


def test_unlisted_split_is_detected_from_the_jump_and_volume():
    rng = np.random.default_rng(0)
    closes = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, 60)))
    closes[40:] /= 2.0
    frame = bars("A", closes)
    frame.loc[40:, "volume"] = 2000.0
    result = clean_prices(frame, empty_actions(), ["A"], "2020-01-01")
    detected = [s for s in result.report["splits"] if s["source"] == "detected"]
    assert detected == [{"ticker": "A", "date": str(frame["date"].iloc[40].date()), "ratio": 2.0, "source": "detected"}]
    ret = np.log(result.prices["close"]).diff().abs()
    assert ret.max() < 0.06


def test_outlier_is_flagged_and_kept():
    rng = np.random.default_rng(1)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 80)))
    closes[70] *= 1.3
    out = clean_prices(bars("A", closes), empty_actions(), ["A"], "2020-01-01").prices
    assert out["outlier"].iloc[70]
    assert out["close"].iloc[70] == pytest.approx(closes[70])
    assert out["outlier"].iloc[:70].sum() == 0


def test_duplicates_are_refused_with_the_rows_named():
    frame = bars("A", np.linspace(1, 2, 10))
    frame = pd.concat([frame, frame.iloc[[3]]])
    with pytest.raises(ValueError, match="duplicated"):
        clean_prices(frame, empty_actions(), ["A"], "2020-01-01")


def test_outlier_flags_use_only_past_data():
    rng = np.random.default_rng(2)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 100)))
    base = clean_prices(bars("A", closes), empty_actions(), ["A"], "2020-01-01").prices
    changed = closes.copy()
    changed[60:] *= np.exp(rng.normal(0, 0.2, 40))
    other = clean_prices(bars("A", changed), empty_actions(), ["A"], "2020-01-01").prices
    pd.testing.assert_frame_equal(base.iloc[:60], other.iloc[:60])
