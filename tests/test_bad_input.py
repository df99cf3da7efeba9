"""Broken input through the csv source: a failing check or an error naming file, column and
lines; downstream assets do not run; what was stored before stays readable and unchanged."""

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from odyssey.sources.csv_source import SourceError, read_csv_folder, write_csv_folder
from tests.dagster_helpers import (failed_checks, materialized, quick_settings, read_previous_version, read_table,
                                  run_graph, step_errors)

DOWNSTREAM = {"features", "dataset_splits", "scaled_features", "feature_exports"}


def csv_settings(home: Path, folder: Path):
    return quick_settings(home, source={"kind": "csv", "csv_path": str(folder)})


@pytest.fixture(scope="module")
def good_run(tmp_path_factory, quick_market):
    folder = write_csv_folder(quick_market.data, tmp_path_factory.mktemp("csv"))
    settings = csv_settings(tmp_path_factory.mktemp("home"), folder)
    result = run_graph(settings, job="market_features")
    assert result.success
    return folder, settings, {a: read_table(settings, a) for a in ("clean_prices", "features")}


@pytest.fixture
def broken(good_run, tmp_path):
    """A copy of the good csv folder to break, and a runner against a copy of the good run's
    storage (so each case starts from the same good state)."""
    folder, settings, before = good_run
    copy = tmp_path / "csv"
    shutil.copytree(folder, copy)
    own = csv_settings(tmp_path / "home", copy)
    shutil.copytree(settings.paths.storage_url, own.paths.storage_url)

    def run():
        return run_graph(own, job="market_features"), own

    return copy, run


def _edit(path: Path, fn) -> None:
    frame = pd.read_csv(path, dtype=str)
    fn(frame)
    frame.to_csv(path, index=False)


def _assert_nothing_downstream_and_old_data_intact(outcome, good_run, *summary: str):
    """Nothing past the failed gate ran; the good data is still readable: in place where the
    asset was not rebuilt, as the kept previous version where it was (the checked asset itself
    is stored even when its check fails). The main command's summary of the run names what
    failed with the `summary` texts (file, line, ticker, date)."""
    from jobs.main import record, summarize

    result, settings = outcome
    before = good_run[2]
    assert not result.success
    text, code = summarize(settings, [record(result)], 1, 0.0)
    assert code in (1, 2)
    for part in summary:
        assert part in text, text
    built = materialized(result)
    assert not (built & DOWNSTREAM)
    for asset, frame in before.items():
        stored = read_previous_version(settings, asset) if asset in built else read_table(settings, asset)
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
    _assert_nothing_downstream_and_old_data_intact(outcome, good_run, "FAILED    raw_prices:raw_prices_schema  (raw_prices: ", "AAPL", "(AAPL.csv line 102) value -5.0")


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
    _assert_nothing_downstream_and_old_data_intact(outcome, good_run, "FAILED    raw_prices:raw_prices_schema", "low <= open, close <= high", "(NVDA.csv line 52)")


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
    _assert_nothing_downstream_and_old_data_intact(outcome, good_run, "FAILED    raw_prices:raw_prices_schema", "(SPY.csv line 12)")


@pytest.mark.slow
def test_missing_run_longer_than_five_sessions(broken, good_run):
    folder, run = broken
    path = folder / "QQQ.csv"
    frame = pd.read_csv(path, dtype=str)
    sessions = good_run[1].profile().sessions
    dates = pd.to_datetime(frame["date"])
    # eight sessions in a row that the file has, with the sessions either side present too
    position = next(i for i in range(200, len(frame) - 10)
                    if (dates.iloc[i - 1:i + 9] == sessions[sessions.get_loc(dates.iloc[i - 1]):][:10]).all())
    removed = dates.iloc[position:position + 8]
    frame.drop(frame.index[position:position + 8]).to_csv(path, index=False)
    outcome = run()
    result = outcome[0]
    failed = failed_checks(result)
    assert "clean_prices_no_long_gaps" in failed
    check = failed["clean_prices_no_long_gaps"]
    assert check.metadata["long_gaps"].value == 1
    gaps = check.metadata["gaps"].value
    row = rf"\|\s*QQQ\s*\|\s*{removed.iloc[0].date()}\s*\|\s*{removed.iloc[-1].date()}\s*\|\s*8\s*\|"
    assert re.search(row, gaps) and "sessions" in gaps, gaps
    _assert_nothing_downstream_and_old_data_intact(
        outcome, good_run, f"FAILED    clean_prices:clean_prices_no_long_gaps  (1 run(s) of missing sessions beyond the fill "
        f"limit: QQQ {removed.iloc[0].date()}..{removed.iloc[-1].date()} (8 sessions))")


@pytest.mark.slow
def test_wrong_dtype_names_file_column_and_line(broken, good_run):
    folder, run = broken
    # data row 30 counted from 0 is the file's line 32: the header is line 1
    _edit(folder / "IEF.csv", lambda f: f.__setitem__("volume", f["volume"].where(f.index != 30, "lots")))
    with pytest.raises(SourceError, match=r"IEF\.csv: column 'volume' is not numeric in line 32 \(e\.g\. 'lots'\)"):
        read_csv_folder(folder, ["IEF"])
    outcome = run()
    result = outcome[0]
    assert any("IEF.csv" in e and "'volume'" in e and "line 32 " in e for e in step_errors(result))
    _assert_nothing_downstream_and_old_data_intact(
        outcome, good_run, "step error  raw_market: SourceError: ", "IEF.csv: column 'volume' is not numeric in line 32 (e.g. 'lots')")


@pytest.mark.slow
def test_volume_no_longer_reported(broken, good_run):
    folder, run = broken
    _edit(folder / "SPY.csv", lambda f: f.__setitem__("volume", f["volume"].where(~f.index.isin(range(300, 312)), "0")))
    dates = pd.read_csv(folder / "SPY.csv", dtype=str)["date"]
    outcome = run()
    failed = failed_checks(outcome[0])
    assert set(failed) == {"raw_prices_volume_reported"}
    reason = failed["raw_prices_volume_reported"].metadata["reason"].value
    assert reason == f"1 run(s) of at least 10 sessions with zero volume, first SPY {dates[300]}..{dates[311]}"
    _assert_nothing_downstream_and_old_data_intact(outcome, good_run, "FAILED    raw_prices:raw_prices_volume_reported  (1 run(s) of at least 10 sessions with zero volume, first SPY")


@pytest.mark.slow
def test_prices_in_another_unit_without_a_corporate_action(broken, good_run):
    """From one day on AAPL is quoted in cents: no split explains the x100 level change."""
    folder, run = broken
    def cents(f):
        later = f.index >= 1000
        for column in ("open", "high", "low", "close"):
            f.loc[later, column] = (f.loc[later, column].astype(float) * 100).astype(str)
    quoted = pd.read_csv(folder / "AAPL.csv")
    day, ratio = quoted["date"][1000], 100 * quoted["close"][1000] / quoted["close"][999]
    _edit(folder / "AAPL.csv", cents)
    outcome = run()
    failed = failed_checks(outcome[0])
    assert set(failed) == {"clean_prices_no_unlisted_split"}
    reason = failed["clean_prices_no_unlisted_split"].metadata["reason"].value
    assert reason.startswith(f"1 unlisted split(s) or level shift(s), none applied: AAPL {day} (AAPL.csv line 1002): "
                             f"close x{ratio:.4f}, "), reason
    assert "(level shift): if it is a split or a change of price unit, list it in " in reason, reason
    _assert_nothing_downstream_and_old_data_intact(outcome, good_run, "FAILED    clean_prices:clean_prices_no_unlisted_split", "(AAPL.csv line 1002)")


@pytest.mark.slow
def test_missing_ticker(broken, good_run):
    folder, run = broken
    (folder / "IEF.csv").unlink()
    outcome = run()
    result = outcome[0]
    failed = failed_checks(result)
    assert failed["raw_prices_all_tickers_present"].metadata["missing_tickers"].value == "IEF"
    _assert_nothing_downstream_and_old_data_intact(outcome, good_run, "FAILED    raw_prices:raw_prices_all_tickers_present  (no bars for IEF")


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
    _assert_nothing_downstream_and_old_data_intact(outcome, good_run, "FAILED    raw_prices:raw_prices_schema", "date must not be in the future", "AAPL.csv line")


@pytest.mark.slow
@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_text(""), r"AAPL\.csv: file is empty"),
    (lambda p: p.write_text("\n".join(p.read_text().splitlines()[:-1] + [p.read_text().splitlines()[-1][:12]])),
     r"AAPL\.csv: line (?P<line>\d+) has a different number of fields than the header \(6\)"),
])
def test_empty_or_truncated_file(broken, good_run, damage, message):
    folder, run = broken
    lines = len((folder / "AAPL.csv").read_text().splitlines())
    damage(folder / "AAPL.csv")
    with pytest.raises(SourceError, match=message) as error:
        read_csv_folder(folder, ["AAPL"])
    if "(?P<line>" in message:     # the truncated line is the file's last
        assert re.search(message, str(error.value))["line"] == str(lines)
    outcome = run()
    result = outcome[0]
    assert step_errors(result)
    _assert_nothing_downstream_and_old_data_intact(outcome, good_run, "step error  raw_market: SourceError: ", "AAPL.csv: ")


@pytest.mark.slow
def test_a_corrupt_parquet_file_is_named_in_the_summary_not_the_library_error_under_it(broken, good_run):
    """The source's error (file and what is wrong) reaches the summary, not pyarrow's error that
    it wraps, nor Dagster's wrapper around both."""
    folder, run = broken
    frame = pd.read_csv(folder / "AAPL.csv")
    (folder / "AAPL.csv").unlink()
    frame.to_parquet(folder / "AAPL.parquet")
    data = (folder / "AAPL.parquet").read_bytes()
    (folder / "AAPL.parquet").write_bytes(data[:len(data) // 2])  # cut in the middle
    outcome = run()
    _assert_nothing_downstream_and_old_data_intact(
        outcome, good_run, "step error  raw_market: SourceError: ", "AAPL.parquet: not a readable Parquet file")


def test_csv_source_round_trips_the_synthetic_market(quick_market, quick_profile, tmp_path):
    write_csv_folder(quick_market.data, tmp_path / "per_ticker")
    write_csv_folder(quick_market.data, tmp_path / "long", per_ticker=False)
    tickers = sorted(quick_market.data.prices["ticker"].unique())
    a = read_csv_folder(tmp_path / "per_ticker", tickers, sessions=quick_profile.sessions)
    b = read_csv_folder(tmp_path / "long", tickers, sessions=quick_profile.sessions)
    assert a.issues.empty and b.issues.empty
    cols = ["date", "ticker", "open", "high", "low", "close", "volume"]
    # the csv source reads volume as float (a blank volume is NaN)
    expected = (quick_market.data.prices[cols].astype({"volume": float}).sort_values(["ticker", "date"])
                .reset_index(drop=True))
    pd.testing.assert_frame_equal(a.prices[cols], expected, check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(b.prices[cols], expected, check_exact=False, rtol=1e-12)
    assert a.actions.equals(b.actions) and len(a.actions) == len(quick_market.data.actions)


def test_missing_column_is_named(tmp_path):
    (tmp_path / "AAPL.csv").write_text("date,open,high,low,volume\n2020-01-02,1,1,1,10\n")
    with pytest.raises(SourceError, match=r"AAPL\.csv: missing column\(s\) \['close'\]"):
        read_csv_folder(tmp_path, ["AAPL"])


def test_bad_date_is_named(tmp_path):
    (tmp_path / "AAPL.csv").write_text("date,open,high,low,close,volume\n2020-01-02,1,1,1,1,10\n2020-13-45,1,1,1,1,10\n")
    with pytest.raises(SourceError, match=r"AAPL\.csv: column 'date' is not an ISO date in line 3 "):
        read_csv_folder(tmp_path, ["AAPL"])
