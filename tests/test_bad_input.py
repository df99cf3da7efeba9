"""Broken input through the csv source: a failing check or an error naming file, column and
rows; downstream assets do not run; what was stored before stays readable and unchanged."""

from pathlib import Path

import shutil

import numpy as np
import pandas as pd
import pytest

from odyssey.sources.csv_source import SourceError, read_csv_folder, write_csv_folder
from tests.dagster_helpers import (failed_checks, materialized, quick_source, read_previous_version, read_table,
                                  run_graph, step_errors)

DOWNSTREAM = {"features", "dataset_splits", "scaled_features", "feature_exports"}


@pytest.fixture(scope="module")
def good_run(tmp_path_factory, quick_market):
    folder = write_csv_folder(quick_market.data, tmp_path_factory.mktemp("csv"))
    storage = tmp_path_factory.mktemp("storage")
    result = run_graph(storage, quick_source(source="csv", csv_path=str(folder)), job="market_features")
    assert result.success
    return folder, storage, {a: read_table(storage, a) for a in ("clean_prices", "features")}


@pytest.fixture
def broken(good_run, tmp_path):
    """A copy of the good csv folder to break, and a runner against a copy of the good run's
    storage (so each case starts from the same good state)."""
    folder, storage, before = good_run
    copy = tmp_path / "csv"
    shutil.copytree(folder, copy)
    own_storage = tmp_path / "storage"
    shutil.copytree(storage, own_storage)

    def run():
        result = run_graph(own_storage, quick_source(source="csv", csv_path=str(copy)), job="market_features")
        return result, own_storage

    return copy, run


def _edit(path: Path, fn) -> None:
    frame = pd.read_csv(path, dtype=str)
    fn(frame)
    frame.to_csv(path, index=False)


def _assert_nothing_downstream_and_old_data_intact(outcome, good_run):
    """Nothing past the failed gate ran; the good data is still readable: in place where the
    asset was not rebuilt, as the kept previous version where it was (the checked asset itself
    is stored even when its check fails)."""
    result, storage = outcome
    before = good_run[2]
    assert not result.success
    built = materialized(result)
    assert not (built & DOWNSTREAM)
    for asset, frame in before.items():
        stored = read_previous_version(storage, asset) if asset in built else read_table(storage, asset)
        pd.testing.assert_frame_equal(stored, frame)


def _failure_text(check) -> str:
    return " ".join(str(v.value) for v in check.metadata.values())


@pytest.mark.slow
def test_negative_and_zero_prices(broken, good_run):
    folder, run = broken
    def negative(f):
        f.loc[100, "close"] = "-5.0"
        f.loc[101, "close"] = "0"
    _edit(folder / "AAPL.csv", negative)
    outcome = run()
    result = outcome[0]
    check = failed_checks(result)["raw_prices_schema"]
    text = _failure_text(check)
    assert "close must be > 0" in text and "AAPL.csv" in text and "-5.0" in text
    _assert_nothing_downstream_and_old_data_intact(outcome, good_run)


@pytest.mark.slow
def test_high_below_low(broken, good_run):
    folder, run = broken
    def swap(f):
        f.loc[50, ["high", "low"]] = [f.loc[50, "low"], f.loc[50, "high"]]
    _edit(folder / "NVDA.csv", swap)
    outcome = run()
    result = outcome[0]
    text = _failure_text(failed_checks(result)["raw_prices_schema"])
    assert "low <= open, close <= high" in text and "NVDA.csv" in text
    _assert_nothing_downstream_and_old_data_intact(outcome, good_run)


@pytest.mark.slow
def test_duplicate_rows(broken, good_run):
    folder, run = broken
    path = folder / "SPY.csv"
    frame = pd.read_csv(path, dtype=str)
    pd.concat([frame, frame.iloc[[10, 11]]]).to_csv(path, index=False)
    outcome = run()
    result = outcome[0]
    failed = failed_checks(result)
    assert "raw_prices_schema" in failed
    assert "SPY" in _failure_text(failed["raw_prices_schema"])
    _assert_nothing_downstream_and_old_data_intact(outcome, good_run)


@pytest.mark.slow
def test_nan_burst_longer_than_five_days(broken, good_run):
    folder, run = broken
    _edit(folder / "QQQ.csv", lambda f: f.__setitem__("close", f["close"].where(~f.index.isin(range(200, 208)), "")))
    outcome = run()
    result = outcome[0]
    failed = failed_checks(result)
    assert "clean_prices_no_long_gaps" in failed
    text = _failure_text(failed["clean_prices_no_long_gaps"])
    assert "QQQ" in text and "8" in text
    _assert_nothing_downstream_and_old_data_intact(outcome, good_run)


@pytest.mark.slow
def test_wrong_dtype_names_file_column_and_row(broken, good_run):
    folder, run = broken
    _edit(folder / "IEF.csv", lambda f: f.__setitem__("volume", f["volume"].where(f.index != 30, "lots")))
    with pytest.raises(SourceError, match=r"IEF\.csv: column 'volume' is not numeric in row 31"):
        read_csv_folder(folder, ["IEF"])
    outcome = run()
    result = outcome[0]
    assert any("IEF.csv" in e and "'volume'" in e and "row 31" in e for e in step_errors(result))
    _assert_nothing_downstream_and_old_data_intact(outcome, good_run)


@pytest.mark.slow
def test_missing_ticker(broken, good_run):
    folder, run = broken
    (folder / "IEF.csv").unlink()
    outcome = run()
    result = outcome[0]
    failed = failed_checks(result)
    assert failed["raw_prices_all_tickers_present"].metadata["missing_tickers"].value == "IEF"
    _assert_nothing_downstream_and_old_data_intact(outcome, good_run)


@pytest.mark.slow
def test_dates_in_the_future(broken, good_run):
    folder, run = broken
    path = folder / "AAPL.csv"
    frame = pd.read_csv(path, dtype=str)
    extra = frame.iloc[[-1]].copy()
    extra["date"] = (pd.Timestamp.now() + pd.offsets.BDay(30)).strftime("%Y-%m-%d")
    pd.concat([frame, extra]).to_csv(path, index=False)
    outcome = run()
    result = outcome[0]
    text = _failure_text(failed_checks(result)["raw_prices_schema"])
    assert "date must not be in the future" in text
    _assert_nothing_downstream_and_old_data_intact(outcome, good_run)


@pytest.mark.slow
@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_text(""), r"AAPL\.csv: file is empty"),
    (lambda p: p.write_text("\n".join(p.read_text().splitlines()[:-1] + [p.read_text().splitlines()[-1][:12]])),
     r"AAPL\.csv: row \d+ have a different number of fields"),
])
def test_empty_or_truncated_file(broken, good_run, damage, message):
    folder, run = broken
    damage(folder / "AAPL.csv")
    with pytest.raises(SourceError, match=message):
        read_csv_folder(folder, ["AAPL"])
    outcome = run()
    result = outcome[0]
    assert step_errors(result)
    _assert_nothing_downstream_and_old_data_intact(outcome, good_run)


def test_csv_source_round_trips_the_synthetic_market(quick_market, tmp_path):
    write_csv_folder(quick_market.data, tmp_path / "per_ticker")
    write_csv_folder(quick_market.data, tmp_path / "long", per_ticker=False)
    tickers = sorted(quick_market.data.prices["ticker"].unique())
    a = read_csv_folder(tmp_path / "per_ticker", tickers)
    b = read_csv_folder(tmp_path / "long", tickers)
    cols = ["date", "ticker", "open", "high", "low", "close", "volume"]
    expected = quick_market.data.prices[cols].sort_values(["ticker", "date"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a.prices[cols], expected, check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(b.prices[cols], expected, check_exact=False, rtol=1e-12)
    assert a.actions.equals(b.actions) and len(a.actions) == len(quick_market.data.actions)


def test_missing_column_is_named(tmp_path):
    (tmp_path / "AAPL.csv").write_text("date,open,high,low,volume\n2020-01-02,1,1,1,10\n")
    with pytest.raises(SourceError, match=r"AAPL\.csv: missing column\(s\) \['close'\]"):
        read_csv_folder(tmp_path, ["AAPL"])


def test_bad_date_is_named(tmp_path):
    (tmp_path / "AAPL.csv").write_text("date,open,high,low,close,volume\n2020-01-02,1,1,1,1,10\n2020-13-45,1,1,1,1,10\n")
    with pytest.raises(SourceError, match=r"AAPL\.csv: column 'date' is not an ISO date in row 2"):
        read_csv_folder(tmp_path, ["AAPL"])
