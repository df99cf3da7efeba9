"""Read market data from a folder of CSV or Parquet files, naming file, column and lines on error.

Folder layout (CSV or Parquet, `.csv` / `.parquet`):

* prices: either one file per configured ticker, ``<TICKER>.csv`` with columns
  ``date,open,high,low,close,volume``, or one long file ``prices.csv`` with columns
  ``date,ticker,open,high,low,close,volume``; either may add ``adj_close`` (the total-return
  adjusted close), which is then carried in the prices; other extra columns are ignored;
* ``alt_data.csv`` (optional): ``date`` and any of ``VIX,DXY,Gold,Yield_10Y``;
* ``corporate_actions.csv`` (optional): ``date,ticker,ratio`` (stock splits; ratio = new shares
  per old share).

Dates are ISO ``YYYY-MM-DD``. Lines are the file's own line numbers: the header is line 1 and
blank lines count, as in an editor (a Parquet row is numbered as it would be in a CSV file:
the first row is line 2). The `source_row` column of the prices carries that line.

Structural problems raise `SourceError` naming the file, column and lines: a missing column, a
value that is not a number or a date, a blank date or open/high/low/close, a fractional volume,
a truncated line, an empty file. Rows kept out of the prices, and cells the source could not
fill, are listed in `MarketData.issues` (file, line, column, problem, value):

* a row of ``prices.csv`` whose ticker is not configured: "ticker not in the universe";
* a ``<NAME>.csv`` whose name is not a universe ticker (nor a reserved name): "a ticker file
  outside the universe (ignored)", without a line;
* with `sessions` given (the settings' dates), a row dated inside their span on a day that is not
  one of them (a weekend, an exchange holiday): "not a trading session of the exchange"; a price
  or alternative-data row before the first or after the last: "before the settings' dates.start
  (kept out)" / "after the settings' dates.end (kept out)"; a split after the last: "a split
  after the settings' dates.end (not applied)";
* a blank volume (the row stays, its volume NaN): "missing volume"; a file without a volume
  column: "no volume column (volume left empty)", on line 1 (a file without open, high and low
  columns is a market of closes only: they are set to the close);
* an ``alt_data.csv`` column that is not an alternative-data column (ignored): "not an
  alternative-data column (ignored)", on line 1.

Value problems (negative prices, high < low, duplicates, gaps) pass through and are judged by
the checks.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from odyssey.sources.columns import (ADJ_CLOSE, ALT_COLUMNS, ISSUE_COLUMNS, PRICE_COLUMNS, MarketData,
                                     empty_actions, empty_issues)

RESERVED = {"prices", "alt_data", "corporate_actions"}
NUMERIC_PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
REQUIRED_PRICE_FIELDS = ("open", "high", "low", "close")
BLANKS = ("", "nan", "NaN", "None")
UNKNOWN_TICKER = "ticker not in the universe"
OFF_CALENDAR = "not a trading session of the exchange"
MISSING_VOLUME = "missing volume"
BEFORE_START = "before the settings' dates.start (kept out)"
AFTER_END = "after the settings' dates.end (kept out)"
NO_VOLUME_COLUMN = "no volume column (volume left empty)"
UNKNOWN_TICKER_FILE = "a ticker file outside the universe (ignored)"
LATE_SPLIT = "a split after the settings' dates.end (not applied)"
UNKNOWN_ALT_COLUMN = "not an alternative-data column (ignored)"


class SourceError(ValueError):
    """A source file cannot be read; the message names the file, column and lines."""


def _lines(index: Iterable[int], limit: int = 10) -> str:
    lines = sorted(int(i) for i in index)
    shown = ", ".join(str(n) for n in lines[:limit])
    more = f" and {len(lines) - limit} more" if len(lines) > limit else ""
    return f"lines {shown}{more}" if len(lines) != 1 else f"line {shown}"


def _issues(path: Path, lines: Iterable[int], column: str | list[str], problem: str,
            values: str | Iterable[str]) -> pd.DataFrame:
    lines = pd.array(list(lines), dtype="Int64")
    values = list(values) if not isinstance(values, str) else [values] * len(lines)
    frame = pd.DataFrame({"file": path.name, "line": lines, "column": column, "problem": problem, "value": values},
                         index=pd.RangeIndex(len(lines)))
    return frame[list(ISSUE_COLUMNS)].astype({c: object for c in ISSUE_COLUMNS if c != "line"})


def _read_table(path: Path, data: bytes | None = None) -> pd.DataFrame:
    """Read a CSV file as strings, or a Parquet file as stored; the index holds each row's line
    in the file (header = line 1, blank lines counted; Parquet rows from line 2). With `data`,
    those bytes are parsed as the file `path` (already read), and the file is not opened."""
    if (len(data) if data is not None else path.stat().st_size) == 0:
        raise SourceError(f"{path}: file is empty")
    if path.suffix == ".parquet":
        try:
            frame = pd.read_parquet(io.BytesIO(data) if data is not None else path)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise SourceError(f"{path}: not a readable Parquet file ({exc})") from exc
        frame.index = pd.RangeIndex(2, len(frame) + 2)
    else:
        text = data.decode("utf-8-sig") if data is not None else path.read_text(encoding="utf-8-sig")
        reader = csv.reader(io.StringIO(text))
        records, lines, start = [], [], 1
        for record in reader:
            if any(cell.strip() for cell in record):
                records.append(record)
                lines.append(start)
            start = reader.line_num + 1
        if not records:
            raise SourceError(f"{path}: file is empty")
        header, body = records[0], records[1:]
        if not body:
            raise SourceError(f"{path}: file has a header but no data rows")
        bad = [line for line, r in zip(lines[1:], body) if len(r) != len(header)]
        if bad:
            raise SourceError(
                f"{path}: {_lines(bad)} {'has' if len(bad) == 1 else 'have'} a different number of fields than "
                f"the header ({len(header)}): the file is truncated or malformed"
            )
        frame = pd.DataFrame(body, columns=header, index=pd.Index(lines[1:]))
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _require(frame: pd.DataFrame, path: Path, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SourceError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")


def _textual(raw: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(raw) or pd.api.types.is_string_dtype(raw)


def _blank(raw: pd.Series) -> pd.Series:
    return raw.isna() | raw.astype(str).str.strip().isin(BLANKS) if _textual(raw) else raw.isna()


def _to_dates(frame: pd.DataFrame, path: Path) -> pd.Series:
    raw = frame["date"]
    empty = _blank(raw)
    if empty.any():
        raise SourceError(f"{path}: column 'date' is empty in {_lines(frame.index[empty])}")
    if _textual(raw):
        parsed = pd.to_datetime(raw.astype(str).str.strip(), errors="coerce", format="ISO8601")
    else:
        parsed = pd.to_datetime(raw, errors="coerce")
    bad = parsed.isna()
    if bad.any():
        raise SourceError(f"{path}: column 'date' is not an ISO date in {_lines(frame.index[bad])} "
                          f"(e.g. {raw[bad].iloc[0]!r})")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed.dt.normalize().astype("datetime64[ns]")


def _to_numbers(frame: pd.DataFrame, path: Path, column: str) -> pd.Series:
    """The column as floats; a blank cell is NaN, any other non-number raises."""
    raw = frame[column]
    empty = _blank(raw)
    text = raw.astype(str).str.strip().where(~empty) if _textual(raw) else raw
    parsed = pd.to_numeric(text, errors="coerce")
    bad = parsed.isna() & ~empty
    if bad.any():
        raise SourceError(f"{path}: column {column!r} is not numeric in {_lines(frame.index[bad])} "
                          f"(e.g. {raw[bad].iloc[0]!r})")
    return parsed.astype(float)


def _price_frame(frame: pd.DataFrame, path: Path, ticker: str | None) -> pd.DataFrame:
    """Bars of one table: date, ticker, open..volume (float; a blank volume is NaN), adj_close
    when the table has it, source_file and source_row (the line). A table of closes only (no
    open, high and low columns) gets open = high = low = close; one without a volume column gets
    volume NaN (settings universe.bar_fields then leave out the features that need them)."""
    _require(frame, path, ["date", "close"] + ([] if ticker else ["ticker"]))
    range_columns = [c for c in ("open", "high", "low") if c in frame.columns]
    if range_columns and len(range_columns) < 3:
        raise SourceError(f"{path}: has {range_columns} but not all of open, high and low (all three, or none for "
                          f"a market of closes only); found {list(frame.columns)}")
    out = pd.DataFrame({"date": _to_dates(frame, path)})
    out["ticker"] = ticker if ticker else frame["ticker"].astype(str).str.strip()
    present = [c for c in NUMERIC_PRICE_COLUMNS if c in frame.columns]
    for column in present + ([ADJ_CLOSE] if ADJ_CLOSE in frame.columns else []):
        out[column] = _to_numbers(frame, path, column)
    for column in ("open", "high", "low"):
        if column not in out:
            out[column] = out["close"]
    if "volume" not in out:
        out["volume"] = np.nan
    out = out[["date", "ticker", *NUMERIC_PRICE_COLUMNS, *([ADJ_CLOSE] if ADJ_CLOSE in out else [])]]
    empty = [f"column {c!r} is empty in {_lines(frame.index[out[c].isna()])}"
             for c in REQUIRED_PRICE_FIELDS if out[c].isna().any()]
    if empty:
        raise SourceError(f"{path}: " + "; ".join(empty))
    volume = out["volume"]
    fractional = volume.notna() & (volume != np.round(volume))
    if fractional.any():
        raise SourceError(f"{path}: column 'volume' has fractional share counts in "
                          f"{_lines(frame.index[fractional])}")
    out["source_file"] = path.name
    out["source_row"] = frame.index.to_numpy(dtype=np.int64)
    return out


def _read_prices(path: Path, ticker: str | None, tickers: Sequence[str],
                 sessions: pd.DatetimeIndex | None) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """A price file's bars for the configured tickers on sessions, and the issues it raised."""
    table = _read_table(path)
    frame = _price_frame(table, path, ticker)
    has_volume = "volume" in table.columns
    unknown = ~frame["ticker"].isin(list(tickers))
    off = before = after = pd.Series(False, index=frame.index)
    if sessions is not None and len(sessions):
        days = _naive(sessions)
        before = ~unknown & (frame["date"] < days.min())
        # a date in the future is an error in the file, not a day outside the window: the schema names it
        after = ~unknown & (frame["date"] > days.max()) & (frame["date"] <= pd.Timestamp.now().normalize())
        off = ~unknown & frame["date"].between(days.min(), days.max()) & ~frame["date"].isin(days)
    kept = frame[~unknown & ~off & ~before & ~after]
    no_volume = kept["volume"].isna() & has_volume

    def listed(mask: pd.Series, column: str, problem: str, values) -> pd.DataFrame:
        return _issues(path, frame.loc[mask, "source_row"], column, problem, values)

    dates = frame["date"].dt.strftime("%Y-%m-%d")
    issues = [listed(unknown, "ticker", UNKNOWN_TICKER, frame.loc[unknown, "ticker"]),
              listed(off, "date", OFF_CALENDAR, dates[off]),
              listed(before, "date", BEFORE_START, dates[before]),
              listed(after, "date", AFTER_END, dates[after]),
              _issues(path, kept.loc[no_volume, "source_row"], "volume", MISSING_VOLUME, "")]
    if not has_volume:
        issues.append(_issues(path, [1], "volume", NO_VOLUME_COLUMN, ""))
    return kept, issues


def _naive(sessions: pd.DatetimeIndex) -> pd.DatetimeIndex:
    days = pd.DatetimeIndex(sessions)
    return (days.tz_localize(None) if days.tz is not None else days).normalize()


def _files(folder: Path, stem: str) -> list[Path]:
    return [p for p in (folder / f"{stem}.parquet", folder / f"{stem}.csv") if p.exists()]


def read_csv_folder(folder: str | Path, tickers: Sequence[str], sessions: pd.DatetimeIndex | None = None) -> MarketData:
    """Read the configured tickers' bars (and alt data, corporate actions) from a folder.

    `sessions` are the exchange's trading sessions; when given, bars dated inside their span on
    other days are kept out and listed in `issues`. Tickers with no file are simply absent from
    the result: the completeness check names them. The prices carry `source_file` / `source_row`
    (the file's line) so later checks can point at lines.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"{folder}: market data folder does not exist")
    paths = [(p, None) for p in _files(folder, "prices")] + [(p, t) for t in tickers for p in _files(folder, t)]
    if not paths:
        raise SourceError(f"{folder}: no price files found (expected prices.csv or <TICKER>.csv "
                          f"for any of {list(tickers)})")
    frames, issues = [], [empty_issues()]
    named = {p.stem for p in folder.iterdir() if p.suffix in (".csv", ".parquet") and p.is_file()}
    for stem in sorted(named - RESERVED - set(tickers)):
        for path in _files(folder, stem):
            issues.append(_issues(path, [pd.NA], "file", UNKNOWN_TICKER_FILE, stem))
    for path, ticker in paths:
        kept, found = _read_prices(path, ticker, tickers, sessions)
        frames.append(kept)
        issues += found
    prices = pd.concat(frames, ignore_index=True).sort_values(["ticker", "date"], kind="stable")

    alt = pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]")})
    alt_files = _files(folder, "alt_data")
    if alt_files:
        path = alt_files[0]
        table = _read_table(path)
        _require(table, path, ["date"])
        extra = [c for c in table.columns if c not in ALT_COLUMNS]
        alt = pd.DataFrame({"date": _to_dates(table, path),
                            **{c: _to_numbers(table, path, c) for c in ALT_COLUMNS[1:] if c in table.columns}})
        alt = alt.sort_values("date", kind="stable")
        issues.append(_issues(path, [1] * len(extra), extra, UNKNOWN_ALT_COLUMN, extra))
        if sessions is not None and len(sessions):
            days = _naive(sessions)
            for outside, problem in ((alt["date"] < days.min(), BEFORE_START), (alt["date"] > days.max(), AFTER_END)):
                issues.append(_issues(path, alt.index[outside], "date", problem,
                                      alt.loc[outside, "date"].dt.strftime("%Y-%m-%d")))
            alt = alt[alt["date"].between(days.min(), days.max())]

    action_files = _files(folder, "corporate_actions")
    if action_files:
        path = action_files[0]
        table = _read_table(path)
        _require(table, path, ["date", "ticker", "ratio"])
        actions = pd.DataFrame({"date": _to_dates(table, path),
                                "ticker": table["ticker"].astype(str).str.strip(),
                                "ratio": _to_numbers(table, path, "ratio")})
        bad = ~(actions["ratio"] > 0)
        if bad.any():
            raise SourceError(f"{path}: column 'ratio' must be > 0 in {_lines(table.index[bad])}")
        if sessions is not None and len(sessions):
            late = (actions["date"] > _naive(sessions).max()).to_numpy()
            issues.append(_issues(path, table.index[late], "date", LATE_SPLIT,
                                  actions.loc[late, "date"].dt.strftime("%Y-%m-%d")))
            actions = actions[~late]
    else:
        actions = empty_actions()
    issues = pd.concat(issues, ignore_index=True).sort_values(["file", "line"], kind="stable")
    return MarketData(prices=prices.reset_index(drop=True), alt=alt.reset_index(drop=True),
                      actions=actions.reset_index(drop=True), issues=issues.reset_index(drop=True))


def write_csv_folder(data: MarketData, folder: str | Path, per_ticker: bool = True) -> Path:
    """Write market data in the folder format `read_csv_folder` reads (used for examples/tests);
    an empty alt or actions table is written as no file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prices = data.prices[[*PRICE_COLUMNS, *([ADJ_CLOSE] if ADJ_CLOSE in data.prices.columns else [])]].copy()
    prices["date"] = prices["date"].dt.strftime("%Y-%m-%d")
    if (prices["volume"].dropna() % 1 == 0).all():
        prices["volume"] = prices["volume"].astype("Int64")
    if per_ticker:
        for ticker, group in prices.groupby("ticker", sort=True):
            group.drop(columns="ticker").to_csv(folder / f"{ticker}.csv", index=False)
    else:
        prices.to_csv(folder / "prices.csv", index=False)
    alt = data.alt[[c for c in ALT_COLUMNS if c in data.alt.columns]]
    actions = data.actions
    for frame, path in ((alt, folder / "alt_data.csv"), (actions, folder / "corporate_actions.csv")):
        if frame.empty:
            path.unlink(missing_ok=True)
            continue
        frame = frame.copy()
        frame["date"] = pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%d")
        frame.to_csv(path, index=False)
    return folder
