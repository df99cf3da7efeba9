"""Clean raw bars: the exchange's sessions, split adjustment, gap filling, bad-print repair and
outlier flags.

Rules (seed 002's preprocessing step, made explicit):

* every ticker is put on the exchange's session calendar from the profile's start to the last
  date seen in the data (holidays are not rows); a session with no bar (or no close) is missing,
  and a bar dated on a non-session is kept out and reported;
* splits are adjusted from the corporate-actions table: prices before the split date are divided
  by the ratio and volume multiplied by it; a jump matching a split ratio (2, 3, 4, 5, 7, 8, 10,
  15, 20 or their inverses, within 3 %, with volume at least half the ratio above its 20-day
  median) that the table does not list is adjusted too, and reported as detected;
* runs of at most ``max_fill_days`` missing sessions are forward-filled and flagged ``filled``;
  longer runs are left empty and flagged ``gap`` (days before a ticker's first bar are not a gap);
* a bad print, a close-to-close move beyond ``outlier_sigma`` times the trailing 60-day standard
  deviation (days before t only) that the next session undoes by at least ``revert_share`` of it,
  is repaired: the close (and the adjusted close) becomes the geometric midpoint of its
  neighbours, a high or low that was the bad print follows it, the quoted close is kept in
  ``close_original`` and the row is flagged ``repaired``. Returns, targets and backtests only see
  the repaired value;
* any other move beyond the threshold is flagged ``outlier``; the value is kept (a real move);
* ``adj_close`` is the source's close adjusted for splits and distributions when it has one
  (yfinance, a CSV column), otherwise the split-adjusted close; returns are taken from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from odyssey.calendar import DEFAULT_EXCHANGE, sessions
from odyssey.sources.columns import ADJ_CLOSE

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


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, end exclusive) of each run of True in a 1-D boolean array."""
    padded = np.r_[False, flags, False].astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2], edges[1::2]))


def _run_lengths(missing: np.ndarray) -> np.ndarray:
    """For a 1-D boolean array, the length of the missing run each element belongs to (0 if present)."""
    out = np.zeros(len(missing), dtype=np.int64)
    for i, j in runs(missing):
        out[i:j] = j - i
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


def _trailing_sigma(close: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Close-to-close log returns and the 60-session standard deviation of the returns before each."""
    log_close = np.log(close)
    ret = log_close - log_close.shift(1)
    return ret, ret.rolling(60, min_periods=20).std().shift(1)


def repair_bad_prints(frames: dict[str, pd.DataFrame], outlier_sigma: float,
                      revert_share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Repair one-session spikes that revert (see module doc) in place; returns the `repaired`
    mask and the original closes where repaired (NaN elsewhere)."""
    close = frames["close"]
    ret, sigma = _trailing_sigma(close)
    nxt = ret.shift(-1)
    spike = (ret.abs() > outlier_sigma * sigma) & (np.sign(nxt) == -np.sign(ret))
    bad = (spike & ((ret + nxt).abs() <= (1.0 - revert_share) * ret.abs())).fillna(False).astype(bool)
    original = close.where(bad)
    if bad.to_numpy().any():
        for column in ("close", ADJ_CLOSE):
            series = frames[column]
            midpoint = np.exp(0.5 * (np.log(series.shift(1)) + np.log(series.shift(-1))))
            frames[column] = series.where(~bad, midpoint)
        new_close = frames["close"]
        was_high = bad & (original > new_close) & (frames["high"] >= original * (1 - 1e-12))
        was_low = bad & (original < new_close) & (frames["low"] <= original * (1 + 1e-12))
        frames["high"] = frames["high"].where(~was_high, np.fmax(frames["open"], new_close))
        frames["low"] = frames["low"].where(~was_low, np.fmin(frames["open"], new_close))
    return bad, original


def clean_prices(raw: pd.DataFrame, actions: pd.DataFrame, tickers: list[str], start: str,
                 max_fill_days: int = 5, outlier_sigma: float = 5.0, revert_share: float = 0.5,
                 exchange: str = DEFAULT_EXCHANGE) -> CleaningResult:
    """Clean long raw bars into a long table on the exchange's sessions (see module doc)."""
    duplicated = raw.duplicated(["ticker", "date"], keep=False)
    if duplicated.any():
        rows = raw.loc[duplicated, ["ticker", "date"]].head(5).to_dict("records")
        raise ValueError(f"raw prices have {int(duplicated.sum())} duplicated (ticker, date) rows, e.g. {rows}")
    present_tickers = [t for t in tickers if t in set(raw["ticker"])]
    end = raw["date"].max()
    calendar = sessions(start, end, exchange)
    outside = ~raw["date"].isin(calendar) & (raw["date"] >= pd.Timestamp(start))
    off_calendar = raw.loc[outside, ["ticker", "date"]]
    frames = {f: wide(raw, f, present_tickers, calendar) for f in FIELDS}
    has_adj = ADJ_CLOSE in raw.columns
    adjusted = wide(raw, ADJ_CLOSE, present_tickers, calendar) if has_adj else None

    factor, splits = _split_factors(frames["close"], frames["volume"], actions)
    for f in ("open", "high", "low", "close"):
        frames[f] = frames[f] / factor
    frames["volume"] = frames["volume"] * factor
    if adjusted is None or adjusted.isna().all().all():
        frames[ADJ_CLOSE] = frames["close"].copy()
    else:
        # the source's adjusted close where it has one; on days without it (a landed day, a
        # ticker without) the split-adjusted close carried on the last known adjustment ratio
        ratio = (adjusted / frames["close"]).ffill().fillna(1.0)
        frames[ADJ_CLOSE] = adjusted.where(adjusted.notna(), frames["close"] * ratio)

    missing = frames["close"].isna().to_numpy()
    started = np.maximum.accumulate(~missing, axis=0)
    runs = np.column_stack([_run_lengths(missing[:, j]) for j in range(missing.shape[1])]) if missing.size else missing
    fillable = missing & started & (runs <= max_fill_days)
    gap = missing & started & (runs > max_fill_days)
    filled = {}
    for f in (*FIELDS, ADJ_CLOSE):
        table = frames[f]
        # a missing volume stays missing (never 0); filled days carry the last known one
        filled[f] = table.where(~fillable, table.ffill())
    repaired, original = repair_bad_prints(filled, outlier_sigma, revert_share)
    ret, sigma = _trailing_sigma(filled["close"])
    outlier = (ret.abs() > outlier_sigma * sigma).fillna(False) & ~repaired

    out = long(
        {**filled, "split_factor": factor,
         "filled": pd.DataFrame(fillable, index=calendar, columns=present_tickers),
         "gap": pd.DataFrame(gap, index=calendar, columns=present_tickers),
         "outlier": outlier.astype(bool), "repaired": repaired, "close_original": original},
        present_tickers,
    )
    out = out[started.T.reshape(-1)]
    for f in ("filled", "gap", "outlier", "repaired"):
        out[f] = out[f].astype(bool)
    out = out.reset_index(drop=True)
    report = {
        "rows": int(len(out)),
        "tickers": present_tickers,
        "missing_tickers": [t for t in tickers if t not in present_tickers],
        "filled_cells": int(fillable.sum()),
        "gap_cells": int(gap.sum()),
        "outliers": int(outlier.to_numpy().sum()),
        "repaired": out.loc[out["repaired"], ["ticker", "date", "close_original", "close"]].reset_index(drop=True),
        "off_calendar": off_calendar.reset_index(drop=True),
        "splits": splits,
        "start": str(calendar[0].date()) if len(calendar) else None,
        "end": str(calendar[-1].date()) if len(calendar) else None,
    }
    return CleaningResult(prices=out, report=report)


def clean_alt(alt: pd.DataFrame, calendar: pd.DatetimeIndex, max_fill_days: int = 5) -> pd.DataFrame:
    """Alternative data on the price calendar; a missing day takes the last value seen within
    ``max_fill_days`` sessions (causal), otherwise stays empty."""
    table = alt.set_index("date").sort_index().reindex(calendar)
    return table.ffill(limit=max_fill_days).rename_axis("date").reset_index()
