"""The column format every source delivers (and the CSV source reads)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

PRICE_COLUMNS: tuple[str, ...] = ("date", "ticker", "open", "high", "low", "close", "volume")
# Optional price column: the close adjusted for splits and cash distributions (dividends), on
# any constant basis per ticker; returns and targets are taken from it when a source has it.
ADJ_CLOSE = "adj_close"
ALT_COLUMNS: tuple[str, ...] = ("date", "VIX", "DXY", "Gold", "Yield_10Y")
ACTION_COLUMNS: tuple[str, ...] = ("date", "ticker", "ratio")
ISSUE_COLUMNS: tuple[str, ...] = ("file", "line", "column", "problem", "value")


def empty_issues() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="Int64" if c == "line" else object) for c in ISSUE_COLUMNS})


@dataclass
class MarketData:
    """What a source returns.

    prices: one row per (ticker, date): date, ticker, open, high, low, close, volume; prices as
        quoted on the day (not split-adjusted). A missing volume is NaN, never 0. Optionally
        `adj_close` (see ADJ_CLOSE), and `source_file` / `source_row` where rows came from files.
    alt: one row per date: date and any of VIX, DXY, Gold, Yield_10Y (the columns a source has;
        an empty frame when there is no alternative data).
    actions: stock splits: date (first day quoted after the split), ticker, ratio (new shares
        per old share, e.g. 4.0 for a 4-for-1 split).
    issues: rows the source kept out or could not judge alone, each named where it is: file,
        line (the file's own line number, the header being line 1), column, problem, value.
        Shown in the run's metadata; never silently dropped.
    """

    prices: pd.DataFrame
    alt: pd.DataFrame
    actions: pd.DataFrame
    issues: pd.DataFrame = field(default_factory=empty_issues)


def empty_actions() -> pd.DataFrame:
    return pd.DataFrame(
        {"date": pd.Series(dtype="datetime64[ns]"), "ticker": pd.Series(dtype=object),
         "ratio": pd.Series(dtype=float)}
    )
