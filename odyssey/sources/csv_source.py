"""Read market data from a folder of CSV or Parquet files, naming file, column and rows on error.

Folder layout (CSV or Parquet, `.csv` / `.parquet`):

* prices: either one file per ticker, ``<TICKER>.csv`` with columns
  ``date,open,high,low,close,volume``, or one long file ``prices.csv`` with columns
  ``date,ticker,open,high,low,close,volume``;
* ``alt_data.csv`` (optional): ``date,VIX,DXY,Gold,Yield_10Y``;
* ``corporate_actions.csv`` (optional): ``date,ticker,ratio`` (stock splits; ratio = new shares
  per old share).

Dates are ISO ``YYYY-MM-DD``. Structural problems (a missing column, a value that is not a
number or a date, a truncated line, an empty file) raise `SourceError`; value problems
(negative prices, high < low, duplicates, gaps) pass through and are judged by the checks.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from odyssey.sources.columns import ALT_COLUMNS, MarketData, empty_actions

RESERVED = {"prices", "alt_data", "corporate_actions"}
NUMERIC_PRICE_COLUMNS = ("open", "high", "low", "close", "volume")


class SourceError(ValueError):
    """A source file cannot be read; the message names the file, column and rows."""


def _rows(index: Iterable[int], limit: int = 10) -> str:
    rows = sorted(int(i) for i in index)
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"rows {shown}{more}" if len(rows) != 1 else f"row {shown}"


def _read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file as strings (CSV) or as stored (Parquet); rows are 1-based
    data-row numbers (the header is row 0) kept in the index for error messages."""
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: file is empty")
    if path.suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise SourceError(f"{path}: not a readable Parquet file ({exc})") from exc
    else:
        text = path.read_text()
        records = list(csv.reader(io.StringIO(text)))
        records = [r for r in records if r]
        if not records:
            raise SourceError(f"{path}: file is empty")
        header, body = records[0], records[1:]
        if not body:
            raise SourceError(f"{path}: file has a header but no data rows")
        bad = [i + 1 for i, r in enumerate(body) if len(r) != len(header)]
        if bad:
            raise SourceError(
                f"{path}: {_rows(bad)} have a different number of fields than the header "
                f"({len(header)}): the file is truncated or malformed"
            )
        frame = pd.DataFrame(body, columns=[h.strip() for h in header])
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _require(frame: pd.DataFrame, path: Path, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SourceError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")


def _to_dates(frame: pd.DataFrame, path: Path) -> pd.Series:
    raw = frame["date"]
    parsed = pd.to_datetime(raw, errors="coerce", format="ISO8601") if raw.dtype == object else pd.to_datetime(raw)
    bad = parsed.isna() & raw.notna()
    if bad.any():
        raise SourceError(f"{path}: column 'date' is not an ISO date in {_rows(frame.index[bad])} "
                          f"(e.g. {raw[bad].iloc[0]!r})")
    if parsed.isna().any():
        raise SourceError(f"{path}: column 'date' is empty in {_rows(frame.index[parsed.isna()])}")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed.dt.normalize().astype("datetime64[ns]")


def _to_numbers(frame: pd.DataFrame, path: Path, column: str) -> pd.Series:
    raw = frame[column]
    if raw.dtype == object:
        stripped = raw.astype(str).str.strip()
        empty = stripped.isin(["", "nan", "NaN", "None"])
        parsed = pd.to_numeric(stripped.where(~empty), errors="coerce")
        bad = parsed.isna() & ~empty
    else:
        parsed = pd.to_numeric(raw, errors="coerce")
        bad = parsed.isna() & raw.notna()
    if bad.any():
        example = raw[bad].iloc[0]
        raise SourceError(f"{path}: column {column!r} is not numeric in {_rows(frame.index[bad])} "
                          f"(e.g. {example!r})")
    return parsed.astype(float)


def _price_frame(frame: pd.DataFrame, path: Path, ticker: str | None) -> pd.DataFrame:
    needed = ["date", *NUMERIC_PRICE_COLUMNS] + ([] if ticker else ["ticker"])
    _require(frame, path, needed)
    out = pd.DataFrame({"date": _to_dates(frame, path)})
    out["ticker"] = ticker if ticker else frame["ticker"].astype(str).str.strip()
    for column in NUMERIC_PRICE_COLUMNS:
        out[column] = _to_numbers(frame, path, column)
    volume = out["volume"]
    fractional = volume.notna() & (volume != np.round(volume))
    if fractional.any():
        raise SourceError(f"{path}: column 'volume' has fractional share counts in "
                          f"{_rows(frame.index[fractional])}")
    out["source_file"] = path.name
    out["source_row"] = frame.index.to_numpy()
    return out


def _files(folder: Path, stem: str) -> list[Path]:
    return [p for p in (folder / f"{stem}.parquet", folder / f"{stem}.csv") if p.exists()]


def read_csv_folder(folder: str | Path, tickers: Sequence[str]) -> MarketData:
    """Read the configured tickers' bars (and alt data, corporate actions) from a folder.

    Tickers with no file are simply absent from the result: the completeness check names them.
    The result carries `source_file` / `source_row` columns so later checks can point at rows.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"{folder}: market data folder does not exist")
    frames = []
    long_files = _files(folder, "prices")
    for path in long_files:
        frame = _price_frame(_read_table(path), path, ticker=None)
        frames.append(frame[frame["ticker"].isin(tickers)])
    for ticker in tickers:
        for path in _files(folder, ticker):
            frames.append(_price_frame(_read_table(path), path, ticker=ticker))
    if not frames:
        raise SourceError(f"{folder}: no price files found (expected prices.csv or <TICKER>.csv "
                          f"for any of {list(tickers)})")
    prices = pd.concat(frames, ignore_index=True)
    prices["volume"] = prices["volume"].astype("Int64") if prices["volume"].isna().any() else prices["volume"].astype(np.int64)
    prices = prices.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)

    alt_files = _files(folder, "alt_data")
    if alt_files:
        path = alt_files[0]
        table = _read_table(path)
        _require(table, path, ALT_COLUMNS)
        alt = pd.DataFrame({"date": _to_dates(table, path)})
        for column in ALT_COLUMNS[1:]:
            alt[column] = _to_numbers(table, path, column)
        alt = alt.sort_values("date").reset_index(drop=True)
    else:
        alt = pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c == "date" else float) for c in ALT_COLUMNS})

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
            raise SourceError(f"{path}: column 'ratio' must be > 0 in {_rows(table.index[bad])}")
    else:
        actions = empty_actions()
    return MarketData(prices=prices, alt=alt, actions=actions.reset_index(drop=True))


def write_csv_folder(data: MarketData, folder: str | Path, per_ticker: bool = True) -> Path:
    """Write market data in the folder format `read_csv_folder` reads (used for examples/tests)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prices = data.prices[["date", "ticker", "open", "high", "low", "close", "volume"]].copy()
    prices["date"] = prices["date"].dt.strftime("%Y-%m-%d")
    if per_ticker:
        for ticker, group in prices.groupby("ticker", sort=True):
            group.drop(columns="ticker").to_csv(folder / f"{ticker}.csv", index=False)
    else:
        prices.to_csv(folder / "prices.csv", index=False)
    alt = data.alt.copy()
    alt["date"] = alt["date"].dt.strftime("%Y-%m-%d")
    alt.to_csv(folder / "alt_data.csv", index=False)
    actions = data.actions.copy()
    actions["date"] = pd.to_datetime(actions["date"]).dt.strftime("%Y-%m-%d")
    actions.to_csv(folder / "corporate_actions.csv", index=False)
    return folder
