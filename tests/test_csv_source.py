"""The csv source on small hand-made folders: line numbers as an editor shows them, blank cells,
rows kept out (unknown tickers, off-calendar days) listed as issues, adj_close, partial alt data,
and the writer reading back."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from odyssey.calendar import sessions
from odyssey.sources.columns import ISSUE_COLUMNS, MarketData
from odyssey.sources.csv_source import (SourceError, _price_frame, _read_table, _require, _to_dates, _to_numbers,
                                        read_csv_folder, write_csv_folder)

HEADER = "date,open,high,low,close,volume"
LONG_HEADER = "date,ticker,open,high,low,close,volume"
DECEMBER = sessions("2024-12-01", "2024-12-31")


def _write(folder: Path, name: str, *lines: str) -> Path:
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _issues(data: MarketData) -> list[tuple]:
    return [tuple(r) for r in data.issues[list(ISSUE_COLUMNS)].itertuples(index=False)]


def test_line_numbers_are_the_files_own_blank_lines_included(tmp_path):
    _write(tmp_path, "AAA.csv", HEADER, "2024-12-02,1,2,0.5,1.5,10", "", "2024-12-03,1,2,0.5,1.5,10",
           "", "", "2024-12-04,1,2,0.5,1.5,10")
    data = read_csv_folder(tmp_path, ["AAA"])
    assert data.prices["source_row"].tolist() == [2, 4, 7]
    assert set(data.prices["source_file"]) == {"AAA.csv"}
    assert data.issues.empty and list(data.issues.columns) == list(ISSUE_COLUMNS)

    _write(tmp_path, "AAA.csv", HEADER, "2024-12-02,1,2,0.5,1.5,10", "", "2024-12-03,1,2,0.5,x,10")
    with pytest.raises(SourceError, match=r"AAA\.csv: column 'close' is not numeric in line 4 \(e\.g\. 'x'\)"):
        read_csv_folder(tmp_path, ["AAA"])
    _write(tmp_path, "AAA.csv", HEADER, "2024-12-02,1,2,0.5,1.5,10", "2024-13-45,1,2,0.5,1.5,10")
    with pytest.raises(SourceError, match=r"AAA\.csv: column 'date' is not an ISO date in line 3 "):
        read_csv_folder(tmp_path, ["AAA"])
    _write(tmp_path, "AAA.csv", HEADER, "", "2024-12-02,1,2,0.5,1.5,10", "2024-12-03,1,2")
    with pytest.raises(SourceError, match=r"AAA\.csv: line 4 has a different number of fields than the header"):
        read_csv_folder(tmp_path, ["AAA"])


def test_parquet_rows_are_numbered_as_their_csv_lines(tmp_path):
    pd.DataFrame({"date": ["2024-12-02", "2024-12-03"], "open": [1.0, 1.0], "high": [2.0, 2.0],
                  "low": [0.5, 0.5], "close": [1.5, 1.5], "volume": [10.0, np.nan]}).to_parquet(tmp_path / "AAA.parquet")
    data = read_csv_folder(tmp_path, ["AAA"])
    assert data.prices["source_row"].tolist() == [2, 3]
    assert _issues(data) == [("AAA.parquet", 3, "volume", "missing volume", "")]


def test_blank_prices_and_dates_are_errors_naming_file_column_and_lines(tmp_path):
    _write(tmp_path, "AAA.csv", HEADER, "2024-12-02,1,2,0.5,,10", "2024-12-03, ,2,0.5,1.5,10",
           "", "2024-12-04,1,2,0.5,,10")
    with pytest.raises(SourceError, match=r"AAA\.csv: column 'open' is empty in line 3; "
                                          r"column 'close' is empty in lines 2, 5$"):
        read_csv_folder(tmp_path, ["AAA"])
    _write(tmp_path, "AAA.csv", HEADER, "2024-12-02,1,2,0.5,1.5,10", ",1,2,0.5,1.5,10")
    with pytest.raises(SourceError, match=r"AAA\.csv: column 'date' is empty in line 3$"):
        read_csv_folder(tmp_path, ["AAA"])


def test_blank_volume_is_nan_and_an_issue(tmp_path):
    _write(tmp_path, "AAA.csv", HEADER, "2024-12-02,1,2,0.5,1.5,10", "2024-12-03,1,2,0.5,1.5,",
           "", "2024-12-04,1,2,0.5,1.5,  ")
    data = read_csv_folder(tmp_path, ["AAA"])
    assert data.prices["volume"].dtype == float
    assert data.prices["volume"].tolist()[0] == 10.0 and data.prices["volume"].iloc[1:].isna().all()
    assert _issues(data) == [("AAA.csv", 3, "volume", "missing volume", ""),
                             ("AAA.csv", 5, "volume", "missing volume", "")]
    assert data.issues["line"].dtype == "Int64"


def test_unknown_tickers_of_the_long_file_are_issues_not_prices(tmp_path):
    _write(tmp_path, "prices.csv", LONG_HEADER, "2024-12-02,AAA,1,2,0.5,1.5,10", "2024-12-02,ZZZ,1,2,0.5,1.5,10",
           "2024-12-02,BBB,1,2,0.5,1.5,10", "", "2024-12-03,ZZZ,1,2,0.5,1.5,")
    data = read_csv_folder(tmp_path, ["AAA", "BBB"])
    assert data.prices[["ticker", "source_row"]].values.tolist() == [["AAA", 2], ["BBB", 4]]
    assert _issues(data) == [("prices.csv", 3, "ticker", "ticker not in the universe", "ZZZ"),
                             ("prices.csv", 6, "ticker", "ticker not in the universe", "ZZZ")]


def test_off_calendar_dates_are_issues_when_sessions_are_given(tmp_path):
    _write(tmp_path, "AAA.csv", HEADER, "2024-11-29,1,2,0.5,1.5,10", "2024-12-24,1,2,0.5,1.5,10",
           "2024-12-25,1,2,0.5,1.5,10", "2024-12-28,1,2,0.5,1.5,10", "2024-12-30,1,2,0.5,1.5,",
           "2025-01-01,1,2,0.5,1.5,10", "2025-01-02,1,2,0.5,1.5,10")
    assert pd.Timestamp("2024-12-25") not in DECEMBER and pd.Timestamp("2024-12-24") in DECEMBER
    data = read_csv_folder(tmp_path, ["AAA"], DECEMBER)
    kept = data.prices["date"].dt.strftime("%Y-%m-%d").tolist()
    assert kept == ["2024-12-24", "2024-12-30"]
    assert _issues(data) == [("AAA.csv", 2, "date", "before the settings' dates.start (kept out)", "2024-11-29"),
                             ("AAA.csv", 4, "date", "not a trading session of the exchange", "2024-12-25"),
                             ("AAA.csv", 5, "date", "not a trading session of the exchange", "2024-12-28"),
                             ("AAA.csv", 6, "volume", "missing volume", ""),
                             ("AAA.csv", 7, "date", "after the settings' dates.end (kept out)", "2025-01-01"),
                             ("AAA.csv", 8, "date", "after the settings' dates.end (kept out)", "2025-01-02")]
    assert len(read_csv_folder(tmp_path, ["AAA"]).prices) == 7


def test_a_ragged_folder_keeps_to_the_settings_dates_and_universe_and_lists_the_rest(tmp_path):
    """One ticker's file runs past dates.end, a file of a ticker outside the universe lies beside
    them, the alternative data and a split reach past the end: nothing outside the settings
    reaches the prices, and each is listed with its file (and line)."""
    _write(tmp_path, "AAA.csv", HEADER, "2024-12-30,1,2,0.5,1.5,10", "2024-12-31,1,2,0.5,1.5,10",
           "2025-01-02,1,2,0.5,1.5,10")
    _write(tmp_path, "BBB.csv", HEADER, "2024-12-30,1,2,0.5,1.5,10", "2024-12-31,1,2,0.5,1.5,10")
    _write(tmp_path, "ZZZ.csv", HEADER, "2024-12-30,1,2,0.5,1.5,10")
    _write(tmp_path, "alt_data.csv", "date,VIX", "2024-12-31,15", "2025-01-02,16")
    _write(tmp_path, "corporate_actions.csv", "date,ticker,ratio", "2024-12-31,AAA,2", "2025-01-02,BBB,4")
    data = read_csv_folder(tmp_path, ["AAA", "BBB"], DECEMBER)
    assert data.prices.groupby("ticker")["date"].max().dt.strftime("%Y-%m-%d").to_dict() == {
        "AAA": "2024-12-31", "BBB": "2024-12-31"}
    assert data.alt["date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-12-31"]
    assert data.actions["ticker"].tolist() == ["AAA"]
    issues = [(f, None if pd.isna(n) else n, c, p, v) for f, n, c, p, v in _issues(data)]
    assert issues == [("AAA.csv", 4, "date", "after the settings' dates.end (kept out)", "2025-01-02"),
                      ("ZZZ.csv", None, "file", "a ticker file outside the universe (ignored)", "ZZZ"),
                      ("alt_data.csv", 3, "date", "after the settings' dates.end (kept out)", "2025-01-02"),
                      ("corporate_actions.csv", 3, "date", "a split after the settings' dates.end (not applied)",
                       "2025-01-02")]


def test_adj_close_is_read_when_present_and_absent_otherwise(tmp_path):
    _write(tmp_path, "AAA.csv", HEADER + ",adj_close", "2024-12-02,1,2,0.5,1.5,10,1.25", "2024-12-03,1,2,0.5,1.5,10,1.3")
    _write(tmp_path, "BBB.csv", HEADER, "2024-12-02,1,2,0.5,1.5,10")
    with_adj = read_csv_folder(tmp_path, ["AAA"])
    assert with_adj.prices["adj_close"].tolist() == [1.25, 1.3] and with_adj.prices["adj_close"].dtype == float
    assert "adj_close" not in read_csv_folder(tmp_path, ["BBB"]).prices.columns
    _write(tmp_path, "AAA.csv", HEADER + ",adj_close", "2024-12-02,1,2,0.5,1.5,10,n/a")
    with pytest.raises(SourceError, match=r"AAA\.csv: column 'adj_close' is not numeric in line 2"):
        read_csv_folder(tmp_path, ["AAA"])


def test_alt_data_is_optional_and_may_have_any_of_its_columns(tmp_path):
    _write(tmp_path, "AAA.csv", HEADER, "2024-12-02,1,2,0.5,1.5,10")
    absent = read_csv_folder(tmp_path, ["AAA"]).alt
    assert list(absent.columns) == ["date"] and absent.empty and absent["date"].dtype == "datetime64[ns]"

    _write(tmp_path, "alt_data.csv", "date,Gold,Extra,VIX,Other", "2024-12-03,2600,x,,1", "2024-12-02,2610,y,14.5,2")
    data = read_csv_folder(tmp_path, ["AAA"])
    assert list(data.alt.columns) == ["date", "VIX", "Gold"]
    assert data.alt["date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-12-02", "2024-12-03"]
    assert data.alt["Gold"].tolist() == [2610.0, 2600.0] and np.isnan(data.alt["VIX"].iloc[1])
    problem = "not an alternative-data column (ignored)"
    assert _issues(data) == [("alt_data.csv", 1, "Extra", problem, "Extra"), ("alt_data.csv", 1, "Other", problem, "Other")]

    _write(tmp_path, "alt_data.csv", "VIX", "15")
    with pytest.raises(SourceError, match=r"alt_data\.csv: missing column\(s\) \['date'\]"):
        read_csv_folder(tmp_path, ["AAA"])


@pytest.mark.parametrize("per_ticker", [True, False])
def test_write_csv_folder_reads_back(tmp_path, per_ticker):
    prices = pd.DataFrame({
        "date": pd.to_datetime(["2024-12-02", "2024-12-03", "2024-12-02"]), "ticker": ["AAA", "AAA", "BBB"],
        "open": [1.0, 1.1, 5.0], "high": [2.0, 2.1, 6.0], "low": [0.5, 0.6, 4.0], "close": [1.5, 1.6, 5.5],
        "volume": [10.0, np.nan, 7.0], "adj_close": [1.4, 1.6, 5.5]})
    alt = pd.DataFrame({"date": pd.to_datetime(["2024-12-02"]), "DXY": [106.0]})
    actions = pd.DataFrame({"date": pd.to_datetime(["2024-12-03"]), "ticker": ["AAA"], "ratio": [2.0]})
    folder = write_csv_folder(MarketData(prices, alt, actions), tmp_path / "out", per_ticker=per_ticker)
    back = read_csv_folder(folder, ["AAA", "BBB"])
    pd.testing.assert_frame_equal(back.prices[prices.columns], prices)
    pd.testing.assert_frame_equal(back.alt, alt)
    pd.testing.assert_frame_equal(back.actions, actions)
    assert _issues(back) == [("AAA.csv" if per_ticker else "prices.csv", 3, "volume", "missing volume", "")]

    empty_alt = MarketData(prices, alt.iloc[0:0][["date"]], actions.iloc[0:0])
    folder = write_csv_folder(empty_alt, tmp_path / "out", per_ticker=per_ticker)
    assert not (folder / "alt_data.csv").exists() and not (folder / "corporate_actions.csv").exists()
    assert list(read_csv_folder(folder, ["AAA", "BBB"]).alt.columns) == ["date"]


def test_helpers_used_by_landing_keep_their_signatures(tmp_path):
    path = _write(tmp_path, "bars_x.csv", LONG_HEADER, "", "2024-12-02,AAA,1,2,0.5,1.5,")
    table = _read_table(path)
    _require(table, path, ["date", "ticker"])
    assert table.index.tolist() == [3]
    assert _to_dates(table, path).tolist() == [pd.Timestamp("2024-12-02")]
    assert np.isnan(_to_numbers(table, path, "volume").iloc[0])
    frame = _price_frame(table, path, ticker=None)
    assert frame["source_row"].tolist() == [3] and frame["volume"].isna().all()
