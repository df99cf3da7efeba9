"""The column format every source delivers (and the CSV source reads)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

PRICE_COLUMNS: tuple[str, ...] = ("date", "ticker", "open", "high", "low", "close", "volume")
ALT_COLUMNS: tuple[str, ...] = ("date", "VIX", "DXY", "Gold", "Yield_10Y")
ACTION_COLUMNS: tuple[str, ...] = ("date", "ticker", "ratio")


@dataclass
class MarketData:
    """What a source returns.

    prices: one row per (ticker, date): date, ticker, open, high, low, close, volume; prices as
        quoted on the day (not split-adjusted).
    alt: one row per date: date, VIX, DXY, Gold, Yield_10Y.
    actions: stock splits: date (first day quoted after the split), ticker, ratio (new shares
        per old share, e.g. 4.0 for a 4-for-1 split).
    """

    prices: pd.DataFrame
    alt: pd.DataFrame
    actions: pd.DataFrame


def empty_actions() -> pd.DataFrame:
    return pd.DataFrame(
        {"date": pd.Series(dtype="datetime64[ns]"), "ticker": pd.Series(dtype=object),
         "ratio": pd.Series(dtype=float)}
    )
