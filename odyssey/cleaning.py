"""Clean raw bars: business-day calendar, split adjustment, gap filling and outlier flags.

Rules (seed 002's preprocessing step, made explicit):

* every ticker is put on the business-day calendar from the profile's start to the last date
  seen in the data; a day with no bar (or no close) is missing;
* splits are adjusted from the corporate-actions table: prices before the split date are divided
  by the ratio and volume multiplied by it; a jump matching a split ratio (2, 3, 4, 5, 7, 8, 10,
  15, 20 or their inverses, within 3 %, with volume at least half the ratio above its 20-day
  median) that the table does not list is adjusted too, and reported as detected;
* runs of at most ``max_fill_days`` missing business days are forward-filled and flagged
  ``filled``; longer runs are left empty and flagged ``gap`` (days before a ticker's first bar are
  not a gap);
* a close-to-close log return beyond ``outlier_sigma`` times the trailing 60-day standard
  deviation (days before t only) is flagged ``outlier``; the value is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

FIELDS = ("open", "high", "low", "close", "volume")
SPLIT_RATIOS = (2.0, 3.0, 4.0, 5.0, 7.0, 8.0, 10.0, 15.0, 20.0)


@dataclass
class CleaningResult:
    prices: pd.DataFrame
    report: dict = field(default_factory=dict)


def wide(frame: pd.DataFrame, column: str, tickers: list[str], index: pd.DatetimeIndex) -> pd.DataFrame:
    """One column of a long (date, ticker) table as a dates x tickers frame."""
    table = frame.pivot(index="date", columns="ticker", values=column)
    return table.reindex(index=index, columns=tickers).astype(float)


def long(frames: dict[str, pd.DataFrame], tickers: list[str]) -> pd.DataFrame:
    """Dates x tickers frames (same shape) back to one long table sorted by ticker, date."""
    first = next(iter(frames.values()))
    dates = first.index
    n_days, n_tk = len(dates), len(tickers)
    out = {
        "date": np.tile(dates.values, n_tk),
        "ticker": np.repeat(np.array(tickers, dtype=object), n_days),
    }
    for name, table in frames.items():
        out[name] = table[tickers].to_numpy().T.reshape(-1)
    return pd.DataFrame(out)


def _run_lengths(missing: np.ndarray) -> np.ndarray:
    """For a 1-D boolean array, the length of the missing run each element belongs to (0 if present)."""
    out = np.zeros(len(missing), dtype=np.int64)
    i = 0
    n = len(missing)
    while i < n:
        if missing[i]:
            j = i
            while j < n and missing[j]:
                j += 1
            out[i:j] = j - i
            i = j
        else:
            i += 1
    return out


def _split_factors(close: pd.DataFrame, volume: pd.DataFrame, actions: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """Cumulative divisor per (date, ticker): the product of ratios of splits after that date."""
    factor = pd.DataFrame(1.0, index=close.index, columns=close.columns)
    applied: list[dict] = []
    listed = {(t, pd.Timestamp(d)) for d, t in zip(actions["date"], actions["ticker"])}
    for day, ticker, ratio in zip(actions["date"], actions["ticker"], actions["ratio"]):
        if ticker in factor.columns:
            factor.loc[factor.index < pd.Timestamp(day), ticker] *= float(ratio)
            applied.append({"ticker": ticker, "date": str(pd.Timestamp(day).date()), "ratio": float(ratio),
                            "source": "corporate_actions"})
    # Detect unlisted splits on the table-adjusted series.
    adj_close = close / factor
    jump = adj_close / adj_close.ffill().shift(1)
    vol_ratio = volume / volume.rolling(20, min_periods=5).median().shift(1)
    for ticker in close.columns:
        series = jump[ticker].to_numpy()
        for i in np.flatnonzero(np.isfinite(series) & ((series < 0.55) | (series > 1.8))):
            value = series[i]
            for k in SPLIT_RATIOS:
                for ratio, target in ((k, 1.0 / k), (1.0 / k, k)):
                    day = close.index[i]
                    near = any((ticker, day + pd.Timedelta(days=s)) in listed for s in range(-3, 4))
                    if abs(value / target - 1.0) < 0.03 and not near and vol_ratio[ticker].iloc[i] >= 0.5 * ratio:
                        factor.loc[factor.index < day, ticker] *= ratio
                        applied.append({"ticker": ticker, "date": str(day.date()), "ratio": float(ratio),
                                        "source": "detected"})
    return factor, applied


def clean_prices(raw: pd.DataFrame, actions: pd.DataFrame, tickers: list[str], start: str,
                 max_fill_days: int = 5, outlier_sigma: float = 5.0) -> CleaningResult:
    """Clean long raw bars into a long table on the business-day calendar (see module doc)."""
    duplicated = raw.duplicated(["ticker", "date"], keep=False)
    if duplicated.any():
        rows = raw.loc[duplicated, ["ticker", "date"]].head(5).to_dict("records")
        raise ValueError(f"raw prices have {int(duplicated.sum())} duplicated (ticker, date) rows, e.g. {rows}")
    present_tickers = [t for t in tickers if t in set(raw["ticker"])]
    end = raw["date"].max()
    calendar = pd.bdate_range(start, end, name="date")
    off_calendar = int((~raw["date"].isin(calendar)).sum())
    frames = {f: wide(raw, f, present_tickers, calendar) for f in FIELDS}

    factor, splits = _split_factors(frames["close"], frames["volume"], actions)
    for f in ("open", "high", "low", "close"):
        frames[f] = frames[f] / factor
    frames["volume"] = frames["volume"] * factor

    missing = frames["close"].isna().to_numpy()
    started = np.maximum.accumulate(~missing, axis=0)
    runs = np.column_stack([_run_lengths(missing[:, j]) for j in range(missing.shape[1])]) if missing.size else missing
    fillable = missing & started & (runs <= max_fill_days)
    gap = missing & started & (runs > max_fill_days)
    filled = {}
    for f in FIELDS:
        table = frames[f]
        ff = table.ffill()
        filled[f] = table.where(~fillable, ff)
    log_close = np.log(filled["close"])
    ret = log_close - log_close.shift(1)
    sigma = ret.rolling(60, min_periods=20).std().shift(1)
    outlier = (ret.abs() > outlier_sigma * sigma).fillna(False)

    out = long(
        {**filled, "split_factor": factor,
         "filled": pd.DataFrame(fillable, index=calendar, columns=present_tickers),
         "gap": pd.DataFrame(gap, index=calendar, columns=present_tickers),
         "outlier": outlier.astype(bool)},
        present_tickers,
    )
    out = out[started.T.reshape(-1)]
    for f in ("filled", "gap", "outlier"):
        out[f] = out[f].astype(bool)
    out = out.reset_index(drop=True)
    report = {
        "rows": int(len(out)),
        "tickers": present_tickers,
        "missing_tickers": [t for t in tickers if t not in present_tickers],
        "filled_cells": int(fillable.sum()),
        "gap_cells": int(gap.sum()),
        "outliers": int(outlier.to_numpy().sum()),
        "off_calendar_rows_dropped": off_calendar,
        "splits": splits,
        "start": str(calendar[0].date()) if len(calendar) else None,
        "end": str(calendar[-1].date()) if len(calendar) else None,
    }
    return CleaningResult(prices=out, report=report)


def clean_alt(alt: pd.DataFrame, calendar: pd.DatetimeIndex, max_fill_days: int = 5) -> pd.DataFrame:
    """Alternative data on the price calendar; a missing day takes the last value seen within
    ``max_fill_days`` business days (causal), otherwise stays empty."""
    table = alt.set_index("date").sort_index().reindex(calendar)
    return table.ffill(limit=max_fill_days).rename_axis("date").reset_index()
