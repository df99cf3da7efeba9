"""Cleaning rules on small hand-made bars where the right answer is known."""

import numpy as np
import pandas as pd
import pytest

from odyssey.calendar import next_sessions
from odyssey.cleaning import clean_prices
from odyssey.settings import CleaningSettings
from odyssey.sources.columns import empty_actions
from odyssey.sources.synthetic import generate_market


def session_dates(start: str, n: int) -> pd.DatetimeIndex:
    """The first `n` XNYS sessions from `start` (2020-01-01 is a holiday: they start on 01-02)."""
    return next_sessions(pd.Timestamp(start) - pd.Timedelta(days=1), n)


def bars(ticker: str, closes, start="2020-01-01", volume=1000.0) -> pd.DataFrame:
    dates = session_dates(start, len(closes))
    closes = np.asarray(closes, dtype=float)
    frame = pd.DataFrame({"date": dates, "ticker": ticker, "open": closes, "high": closes * 1.01,
                          "low": closes * 0.99, "close": closes, "volume": volume})
    return frame


def test_short_gap_is_filled_and_flagged_long_gap_is_left_empty():
    frame = bars("A", np.linspace(100, 130, 40))
    short = frame.index[10:13]   # 3 sessions
    long = frame.index[20:27]    # 7 sessions
    frame = frame.drop(short.union(long))
    out = clean_prices(frame, empty_actions(), ["A"], "2020-01-01").prices.set_index("date")
    dates = session_dates("2020-01-01", 40)
    assert out.index.equals(pd.DatetimeIndex(dates, name="date"))   # sessions only, holidays are not rows
    assert out.loc[dates[10:13], "filled"].all()
    assert (out.loc[dates[10:13], "close"] == out.loc[dates[9], "close"]).all()
    assert out.loc[dates[20:27], "gap"].all()
    assert out.loc[dates[20:27], "close"].isna().all()
    assert not out.loc[dates[20:27], "filled"].any()
    assert out["filled"].sum() == 3 and out["gap"].sum() == 7


def test_a_holiday_inside_a_missing_run_is_not_a_missing_session():
    frame = bars("A", np.linspace(100, 130, 40))
    dates = session_dates("2020-01-01", 40)
    # five sessions, 2020-01-14 .. 2020-01-21, around Martin Luther King Jr. Day (six weekdays)
    run = (dates >= "2020-01-14") & (dates <= "2020-01-21")
    assert run.sum() == 5
    out = clean_prices(frame[~run], empty_actions(), ["A"], "2020-01-01", CleaningSettings(max_fill_days=5)).prices.set_index("date")
    assert out.loc[dates[run], "filled"].all() and not out["gap"].any()
    assert pd.Timestamp("2020-01-20") not in out.index


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


def _crash(ratio: float, volume_factor: float, n: int = 60, at: int = 40, seed: int = 0) -> pd.DataFrame:
    """Bars with one persistent one-day move to `ratio` times the price on `volume_factor` times
    the volume at row `at`."""
    rng = np.random.default_rng(seed)
    closes = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    closes[at:] *= ratio
    frame = bars("A", closes)
    frame.loc[at, "volume"] = 1000.0 * volume_factor
    return frame


@pytest.mark.parametrize("ratio, volume, suggested", [(0.505, 6.0, 2.0), (0.25, 4.0, 4.0), (0.5, 1.0, 2.0),
                                                      (10.0, 0.5, 0.1)])
def test_an_unlisted_split_like_move_is_never_adjusted_whatever_the_volume_and_is_named(ratio, volume, suggested):
    """A real -49.5 % day on 6x volume, a 4:1 shift on 4x volume, a halving on normal volume and a
    1:10 reverse-split-like jump: each stays as quoted, and the check's detector names it with the
    split ratio to list; a listed split is applied and then nothing is suspected."""
    from odyssey.quality import suspected_splits

    frame = _crash(ratio, volume)
    result = clean_prices(frame, empty_actions(), ["A"], "2020-01-01")
    np.testing.assert_allclose(result.prices["close"], frame["close"], rtol=0, atol=0)
    assert result.report["splits"] == [] and (result.prices["split_factor"] == 1.0).all()
    suspects = suspected_splits(result.prices)
    assert suspects[["ticker", "date", "suggested_ratio", "kind"]].to_dict("records") == [
        {"ticker": "A", "date": frame["date"].iloc[40].date(), "suggested_ratio": suggested, "kind": "split-like"}]
    assert suspects["price_ratio"].iloc[0] == pytest.approx(frame["close"].iloc[40] / frame["close"].iloc[39])
    listed = pd.DataFrame({"date": [frame["date"].iloc[40]], "ticker": ["A"], "ratio": [suggested]})
    assert suspected_splits(clean_prices(frame, listed, ["A"], "2020-01-01").prices).empty
    confirmed = {("A", frame["date"].iloc[40])}
    assert suspected_splits(result.prices, confirmed=confirmed).empty


@pytest.mark.parametrize("at", [57, 59])
def test_an_unlisted_split_in_the_newest_sessions_is_suspected_before_it_can_persist(at):
    """A 2:1 split three sessions before the end, or on the last session: too new to have
    persisted five sessions, still named (a new session is where a split first appears)."""
    from odyssey.quality import suspected_splits

    frame = _crash(0.5, 1.0, n=60, at=at)
    suspects = suspected_splits(clean_prices(frame, empty_actions(), ["A"], "2020-01-01").prices)
    assert suspects[["date", "suggested_ratio"]].to_dict("records") == [
        {"date": frame["date"].iloc[at].date(), "suggested_ratio": 2.0}]


@pytest.mark.parametrize("ratio", [1.5, 1.25, 4.0 / 3.0, 2.5])
def test_a_fractional_split_is_named_where_the_adjusted_close_did_not_move_and_a_crash_is_not(ratio):
    """A 3:2 (5:4, 4:3, 5:2) split the source adjusted for: the close falls to 1/ratio, the
    adjusted close carries on. It is named with its ratio; the same fall in both (a crash) is not."""
    from odyssey.quality import suspected_splits

    frame = _crash(1.0 / ratio, 1.0)
    frame["adj_close"] = frame["close"]
    frame.loc[40:, "adj_close"] *= ratio  # continuous: the source's history adjusted for the split
    suspects = suspected_splits(clean_prices(frame, empty_actions(), ["A"], "2020-01-01").prices)
    assert suspects[["date", "kind"]].to_dict("records") == [
        {"date": frame["date"].iloc[40].date(), "kind": "close moved, adjusted close did not"}]
    assert suspects["suggested_ratio"].iloc[0] == pytest.approx(ratio)
    crash = frame.assign(adj_close=frame["close"])
    if ratio < 1.5:  # a fall of 20-25 % in both: a real move, not named
        assert suspected_splits(clean_prices(crash, empty_actions(), ["A"], "2020-01-01").prices).empty


def test_a_suspected_split_is_named_with_file_line_and_how_to_list_it():
    from odyssey.quality import locate_suspects, suspected_splits, suspects_reason

    frame = _crash(0.505, 6.0).assign(source_file="A.csv", source_row=lambda f: f.index + 2)
    suspects = locate_suspects(suspected_splits(clean_prices(frame.drop(columns=["source_file", "source_row"]),
                                                             empty_actions(), ["A"], "2020-01-01").prices), frame)
    day = frame["date"].iloc[40].date()
    assert suspects[["file", "line"]].to_dict("records") == [{"file": "A.csv", "line": 42}]
    reason = suspects_reason(suspects, "csv", "/data/market")
    assert f"A {day} (A.csv line 42): close x0.49" in reason and "volume x6.0" in reason
    assert f"list `{day},A,2` in /data/market/corporate_actions.csv" in reason
    assert 'add "TICKER YYYY-MM-DD" to [cleaning] confirmed_moves' in reason
    assert "landing file actions_" in suspects_reason(suspects, "yfinance", None)


def test_outlier_is_flagged_and_kept():
    rng = np.random.default_rng(1)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 80)))
    closes[70:] *= 1.3           # a real move: it does not revert
    result = clean_prices(bars("A", closes), empty_actions(), ["A"], "2020-01-01")
    out = result.prices
    assert out["outlier"].iloc[70]
    assert out["close"].iloc[70] == pytest.approx(closes[70])
    assert out["outlier"].iloc[:70].sum() == 0
    assert not out["repaired"].any() and out["close_original"].isna().all()
    assert result.report["repaired"].empty


def test_spike_that_reverts_is_repaired_to_the_midpoint_and_the_quote_kept():
    rng = np.random.default_rng(1)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 80)))
    quoted = closes.copy()
    quoted[70] *= 1.3            # a bad print: back to normal the next session
    frame = bars("A", closes)
    frame.loc[70, "close"] = frame.loc[70, "high"] = quoted[70]   # the bad print is also the day's high
    result = clean_prices(frame, empty_actions(), ["A"], "2020-01-01")
    out = result.prices
    midpoint = np.sqrt(closes[69] * closes[71])
    assert out["repaired"].tolist() == [i == 70 for i in range(80)]
    assert out["close"].iloc[70] == pytest.approx(midpoint)
    assert out["adj_close"].iloc[70] == pytest.approx(midpoint)
    assert out["close_original"].iloc[70] == pytest.approx(quoted[70])
    assert out["close_original"].drop(index=70).isna().all()
    assert out["high"].iloc[70] == pytest.approx(max(closes[70], midpoint))   # the high followed the repair
    assert out["low"].iloc[70] == pytest.approx(0.99 * closes[70])           # the low was not the bad print
    assert not out["outlier"].any()                                          # repaired, not flagged
    np.testing.assert_allclose(out["close"].drop(index=70), np.delete(closes, 70))
    report = result.report["repaired"]
    assert report[["ticker", "date"]].to_dict("records") == [{"ticker": "A", "date": frame["date"].iloc[70]}]
    assert report["close_original"].iloc[0] == pytest.approx(quoted[70])
    assert report["close"].iloc[0] == pytest.approx(midpoint)


def test_downward_bad_print_repairs_the_low_and_keeps_the_high():
    rng = np.random.default_rng(1)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 80)))
    frame = bars("A", closes)
    frame.loc[70, "close"] = frame.loc[70, "low"] = 0.7 * closes[70]
    out = clean_prices(frame, empty_actions(), ["A"], "2020-01-01").prices
    midpoint = np.sqrt(closes[69] * closes[71])
    assert out["repaired"].iloc[70] and out["repaired"].sum() == 1
    assert out["close"].iloc[70] == pytest.approx(midpoint)
    assert out["low"].iloc[70] == pytest.approx(min(closes[70], midpoint))
    assert out["high"].iloc[70] == pytest.approx(1.01 * closes[70])


def test_spike_that_only_partly_reverts_is_an_outlier_not_a_bad_print():
    rng = np.random.default_rng(1)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 80)))
    closes[70] *= 1.3
    closes[71:] *= 1.2           # the next session gives back well under half of the move
    out = clean_prices(bars("A", closes), empty_actions(), ["A"], "2020-01-01").prices
    assert out["outlier"].iloc[70] and not out["repaired"].any()
    assert out["close"].iloc[70] == pytest.approx(closes[70])


def test_the_synthetic_markets_bad_prints_are_repaired_to_the_true_bars(quick_profile, quick_settings,
                                                                        quick_pipeline):
    """Cleaning the market with its planted bad prints gives the cleaning of the same market
    without them, except on the repaired rows' flags and the side of the bar the print was on."""
    p = quick_profile
    truth = generate_market(p, quick_settings.source.synthetic.model_copy(update={"bad_ticks": False}))
    quoted = quick_pipeline.data.prices.set_index(["ticker", "date"])["close"]
    true_quotes = truth.data.prices.set_index(["ticker", "date"])["close"].reindex(quoted.index)
    planted = sorted(quoted.index[~np.isclose(quoted, true_quotes, rtol=1e-12)])
    assert len(planted) >= 2

    got = quick_pipeline.clean.set_index(["ticker", "date"])
    want = clean_prices(truth.data.prices, truth.data.actions, list(p.tickers), p.start,
                        exchange=p.exchange).prices.set_index(["ticker", "date"])
    assert sorted(got.index[got["repaired"]]) == planted and not want["repaired"].any()
    np.testing.assert_allclose(got.loc[planted, "close_original"], quoted.loc[planted] / got.loc[planted, "split_factor"])
    up = [k for k in planted if quoted[k] > true_quotes[k]]
    down = [k for k in planted if quoted[k] < true_quotes[k]]
    assert up and down
    for column in ("open", "high", "low", "close", "volume", "adj_close", "split_factor", "filled", "gap", "outlier"):
        differ = {"high": up, "low": down}.get(column, [])
        keep = got.index.difference(pd.MultiIndex.from_tuples(differ)) if differ else got.index
        pd.testing.assert_series_equal(got.loc[keep, column], want.loc[keep, column], rtol=1e-9, obj=column)
    for k in up:
        assert got.loc[k, "high"] == pytest.approx(max(got.loc[k, "open"], got.loc[k, "close"]))
    for k in down:
        assert got.loc[k, "low"] == pytest.approx(min(got.loc[k, "open"], got.loc[k, "close"]))


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


def test_bar_on_a_holiday_is_kept_out_and_reported():
    frame = bars("A", np.linspace(100, 110, 20))
    holiday = pd.DataFrame({"date": [pd.Timestamp("2020-01-20")], "ticker": ["A"], "open": [999.0],
                            "high": [999.0], "low": [999.0], "close": [999.0], "volume": [1.0]})
    result = clean_prices(pd.concat([frame, holiday], ignore_index=True), empty_actions(), ["A"], "2020-01-01")
    assert pd.Timestamp("2020-01-20") not in set(result.prices["date"])      # Martin Luther King Jr. Day
    assert len(result.prices) == 20 and result.prices["close"].max() == pytest.approx(110.0)
    assert result.report["off_calendar"].to_dict("records") == [{"ticker": "A", "date": pd.Timestamp("2020-01-20")}]


def test_a_sources_adjusted_close_is_kept_and_carried_over_days_without_it():
    from odyssey.calendar import sessions as exchange_sessions

    dates = exchange_sessions("2021-03-01", "2021-03-31")[:8]
    close = np.array([100.0, 101.0, 102.0, 101.5, 103.0, 104.0, 103.0, 105.0])
    adjusted = close * np.r_[[0.98] * 3, [1.0] * 5]  # a dividend went ex on the fourth day
    raw = pd.DataFrame({"date": dates, "ticker": "AAA", "open": close, "high": close, "low": close, "close": close,
                        "volume": 1e6, "adj_close": np.r_[adjusted[:6], [np.nan, np.nan]]})  # two landed days lack it
    none = pd.DataFrame(columns=["date", "ticker", "ratio"])
    out = clean_prices(raw, none, ["AAA"], "2021-03-01").prices
    np.testing.assert_allclose(out["adj_close"].to_numpy()[:6], adjusted[:6], rtol=0, atol=0)
    np.testing.assert_allclose(out["adj_close"].to_numpy()[6:], close[6:] * 1.0, rtol=1e-12)
    assert out["adj_close"].iloc[3] / out["adj_close"].iloc[2] != out["close"].iloc[3] / out["close"].iloc[2]
