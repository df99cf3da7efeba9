"""Real markets are the judge of the data layer: every real bar in tests/data, over its whole range
(the 2000-2002 bear market, the 2008 crash, 2011-08-08, the 2020 crash), passes cleaning and the
schemas with no move rewritten; planted bad prints in the same bars are repaired."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from odyssey import schemas
from odyssey.cleaning import clean_prices
from odyssey.quality import suspected_splits
from odyssey.sources.csv_source import read_csv_folder
from odyssey.sources.columns import empty_actions

DATA = Path(__file__).parent / "data"
MARKETS = {"crash_bars": ["SPX", "COMP"], "real_bars": ["AAPL", "GOOG", "NVDA"]}
PRICES = ["open", "high", "low", "close"]


@pytest.fixture(scope="module", params=sorted(MARKETS))
def real(request):
    tickers = MARKETS[request.param]
    raw = read_csv_folder(DATA / request.param, tickers).prices
    start = str(raw["date"].min().date())
    return raw, tickers, start


def _clean(raw: pd.DataFrame, tickers: list[str], start: str, **rules) -> pd.DataFrame:
    from odyssey.settings import CleaningSettings

    bare = raw.drop(columns=["source_file", "source_row"])
    return clean_prices(bare, empty_actions(), tickers, start, CleaningSettings(**rules)).prices


def test_every_real_bar_passes_the_data_layer_as_quoted(real):
    raw, tickers, start = real
    assert schemas.validate(schemas.RAW_PRICES, raw).passed
    clean = _clean(raw, tickers, start)
    outcome = schemas.validate(schemas.CLEAN_PRICES, clean)
    assert outcome.passed, outcome.failure_cases.head()
    assert not clean["repaired"].any() and clean[[f"{f}_original" for f in PRICES]].isna().all().all()
    merged = raw.merge(clean, on=["ticker", "date"], suffixes=("_raw", ""))
    assert len(merged) == len(raw)  # every real session kept, none added off the calendar
    for field in [*PRICES, "volume", "adj_close"]:
        np.testing.assert_array_equal(merged[field].to_numpy(), merged[f"{field}_raw"].to_numpy(), err_msg=field)
    assert clean["outlier"].sum() > 0  # the big real days are there, flagged and kept
    assert suspected_splits(clean).empty


def test_real_crash_days_are_kept_and_flagged():
    raw = read_csv_folder(DATA / "crash_bars", ["SPX", "COMP"]).prices
    clean = _clean(raw, ["SPX", "COMP"], "1999-01-04").set_index(["ticker", "date"])
    for ticker, day, close in (("COMP", "2011-08-08", 2357.6899), ("SPX", "2011-08-08", 1119.46),
                               ("COMP", "2008-09-29", 1983.73)):
        row = clean.loc[(ticker, pd.Timestamp(day))]
        assert row["close"] == pytest.approx(close) and row["outlier"] and not row["repaired"], (ticker, day)


def test_a_real_partial_reversal_is_kept():
    """-8 % then +4.5 % is a real day and its partial rebound, not a bad print."""
    from odyssey.calendar import sessions

    rng = np.random.default_rng(3)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 80)))
    closes[70:] *= 0.92
    closes[71:] *= 1.045
    dates = sessions("2021-01-04", "2021-12-31")[:80]
    raw = pd.DataFrame({"date": dates, "ticker": "AAA", "open": closes, "high": closes * 1.005,
                        "low": closes * 0.995, "close": closes, "volume": 1e6})
    raw.loc[70, "open"], raw.loc[71, "open"] = closes[69] * 0.97, closes[70] * 1.01  # the next day opens near the low
    clean = clean_prices(raw, empty_actions(), ["AAA"], "2021-01-04").prices
    assert not clean["repaired"].any() and clean.loc[70, "outlier"]
    np.testing.assert_array_equal(clean["close"].to_numpy(), closes)


@pytest.mark.parametrize("whole_bar", [False, True])
def test_a_bad_print_planted_in_real_bars_is_repaired_and_the_bar_stays_consistent(whole_bar):
    raw = read_csv_folder(DATA / "crash_bars", ["SPX"]).prices.drop(columns=["source_file", "source_row"])
    i = int(np.flatnonzero(raw["date"] == pd.Timestamp("2014-05-14"))[0])  # a calm day
    quoted = raw.loc[i, PRICES].astype(float).copy()
    if whole_bar:  # the whole bar printed at 0.7 times the price
        raw.loc[i, PRICES] = quoted.to_numpy() * 0.7
    else:  # only the close printed at 1.3 times, the high with it
        raw.loc[i, ["close", "adj_close"]] = quoted["close"] * 1.3
        raw.loc[i, "high"] = quoted["close"] * 1.3
    clean = clean_prices(raw, empty_actions(), ["SPX"], "1999-01-04").prices
    assert clean["repaired"].sum() == 1 and clean.loc[i, "repaired"]
    midpoint = np.sqrt(raw.loc[i - 1, "close"] * raw.loc[i + 1, "close"])
    assert clean.loc[i, "close"] == pytest.approx(midpoint, rel=1e-12)
    for field in PRICES:
        assert clean.loc[i, f"{field}_original"] == pytest.approx(raw.loc[i, field])
    assert schemas.validate(schemas.CLEAN_PRICES, clean).passed
    row = clean.loc[i]
    assert row["low"] <= min(row["open"], row["close"]) and row["high"] >= max(row["open"], row["close"])
    # the repaired bar is within a percent of the true one
    assert abs(np.log(row["close"] / quoted["close"])) < 0.01
    if whole_bar:
        assert abs(np.log(row["open"] / quoted["open"])) < 0.01
    else:
        # the open was not the print; the low moves only as far as the repaired close needs
        assert row["open"] == quoted["open"] and row["low"] == min(quoted["low"], row["close"])


def test_the_repair_can_be_switched_off():
    raw = read_csv_folder(DATA / "crash_bars", ["SPX"]).prices.drop(columns=["source_file", "source_row"])
    i = int(np.flatnonzero(raw["date"] == pd.Timestamp("2014-05-14"))[0])
    raw.loc[i, ["close", "high", "adj_close"]] = raw.loc[i, "close"] * 1.3
    kept = _clean(raw.assign(source_file="", source_row=0), ["SPX"], "1999-01-04", repair_bad_prints=False)
    assert not kept["repaired"].any() and kept.loc[i, "close"] == raw.loc[i, "close"] and kept.loc[i, "outlier"]


@pytest.fixture(scope="module")
def closes_only(tmp_path_factory):
    """The two indices 2005-2012 as a user with closes only has them: date and close columns."""
    folder = tmp_path_factory.mktemp("closes")
    for ticker in MARKETS["crash_bars"]:
        frame = pd.read_csv(DATA / "crash_bars" / f"{ticker}.csv")
        frame = frame[(frame["date"] >= "2005-01-01") & (frame["date"] <= "2012-12-31")]
        frame[["date", "close"]].to_csv(folder / f"{ticker}.csv", index=False)
    return folder


def _closes_settings(home: Path, folder: Path, **universe):
    from tests.dagster_helpers import quick_settings

    return quick_settings(home, source={"kind": "csv", "csv_path": str(folder)},
                          universe={"tickers": ["SPX", "COMP"], "benchmark": "SPX", "alt_series": [], **universe},
                          dates={"start": "2005-01-03", "end": "2012-12-31", "train_end": 0.6, "validation_end": 0.8})


@pytest.mark.slow
def test_a_closes_only_market_is_named_at_the_source_and_runs_with_its_setting(closes_only, tmp_path):
    from odyssey.features import feature_names
    from tests.dagster_helpers import check_results, failed_checks, materialized, read_table, run_graph

    default = run_graph(_closes_settings(tmp_path / "a", closes_only))
    failed = failed_checks(default)
    assert set(failed) == {"raw_prices_bar_fields"} and "features" not in materialized(default)
    reason = failed["raw_prices_bar_fields"].metadata["reason"].value
    assert "SPX (SPX.csv): volume blank in 100% of bars; SPX (SPX.csv): open = high = low = close in 100%" in reason
    assert 'Set [universe] bar_fields = ["close"]' in reason

    settings = _closes_settings(tmp_path / "b", closes_only, bar_fields=["close"])
    result = run_graph(settings)
    assert result.success and all(check_results(result).values()), failed_checks(result)
    features = read_table(settings, "features")
    assert list(features.columns[2:]) == list(feature_names((), ("close",)))
    clean = read_table(settings, "clean_prices")
    assert len(clean) == 2 * 2013 and not clean["repaired"].any()  # 2005-2012: 2013 sessions of the exchange


def test_a_real_adjusted_close_carries_the_dividends():
    raw = read_csv_folder(DATA / "real_bars", ["AAPL"]).prices
    clean = _clean(raw, ["AAPL"], "2013-01-02")
    assert (clean["adj_close"] / clean["close"]).round(6).nunique() > 10  # AAPL paid dividends every quarter
