"""Clean raw bars: the exchange's sessions, split adjustment, gap filling, bad-print repair and
outlier flags. Real moves are never rewritten.

Rules (seed 002's preprocessing step, made explicit; thresholds in settings [cleaning]):

* every ticker is put on the exchange's session calendar from the profile's start to the last
  date seen in the data (holidays are not rows); a session with no bar (or no close) is missing,
  and a bar dated on a non-session is kept out and reported;
* splits are adjusted from the corporate-actions table only: prices before the split date are
  divided by the ratio and volume multiplied by it. A jump that looks like a split but is not
  listed is left as quoted; the blocking check `clean_prices_no_unlisted_split` names it
  (odyssey/quality.py: suspected_splits) and says how to list it;
* runs of at most ``max_fill_days`` missing sessions are forward-filled and flagged ``filled``;
  longer runs are left empty and flagged ``gap`` (days before a ticker's first bar are not a gap);
* a bad print is a close-to-close move beyond ``outlier_sigma`` times the trailing 60-day
  standard deviation (days before t only) after which the next session both opens and closes
  back within ``revert_band`` of the move's size from the previous close (see `bad_prints`). It is
  repaired: the close (and the adjusted close) becomes the geometric midpoint of its neighbours,
  the bar's high or low that was the print follows it (the whole bar when its open was part of
  the print), the repaired bar stays consistent (low <= open, close <= high), the quoted open,
  high, low and close are kept in ``*_original`` columns and the row is flagged ``repaired``.
  Returns, targets and backtests only see the repaired value. The repair of a session is known
  once the next session has traded: the newest session is never repaired;
* any other move beyond the threshold is flagged ``outlier``; the value is kept (a real move);
* ``adj_close`` is the source's close adjusted for splits and distributions when it has one
  (yfinance, a CSV column), otherwise the split-adjusted close; returns are taken from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from odyssey.calendar import DEFAULT_EXCHANGE, sessions
from odyssey.settings import CleaningSettings
from odyssey.sources.columns import ADJ_CLOSE

FIELDS = ("open", "high", "low", "close", "volume")


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


def _split_factors(close: pd.DataFrame, actions: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """Cumulative divisor per (date, ticker): the product of the ratios of the listed splits after
    that date. Only listed splits are applied: a jump that looks like a split but is not listed is
    left as quoted, for the check to name (odyssey/quality.py: suspected_splits)."""
    factor = pd.DataFrame(1.0, index=close.index, columns=close.columns)
    applied: list[dict] = []
    for day, ticker, ratio in zip(actions["date"], actions["ticker"], actions["ratio"]):
        if ticker in factor.columns:
            factor.loc[factor.index < pd.Timestamp(day), ticker] *= float(ratio)
            applied.append({"ticker": ticker, "date": str(pd.Timestamp(day).date()), "ratio": float(ratio),
                            "source": "corporate_actions"})
    return factor, applied


def _trailing_sigma(close: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Close-to-close log returns and the 60-session standard deviation of the returns before each."""
    log_close = np.log(close)
    ret = log_close - log_close.shift(1)
    return ret, ret.rolling(60, min_periods=20).std().shift(1)


ORIGINALS = {f: f"{f}_original" for f in ("open", "high", "low", "close")}


def bad_prints(frames: dict[str, pd.DataFrame], outlier_sigma: float, revert_band: float) -> pd.DataFrame:
    """Where a session's close is a bad print: a move beyond `outlier_sigma` trailing sigmas after
    which the next session both opens and closes back within `revert_band` of the move's size from
    the previous close. A real move leaves the next session trading near it (in 25 years of the
    S&P 500 and the Nasdaq and ten years of six large stocks, no move beyond 5 sigmas came back
    nearer than 0.28 of its size by the next close, nor nearer than 0.74 by the next open)."""
    close = frames["close"]
    log_close = np.log(close)
    ret, sigma = _trailing_sigma(close)
    band = revert_band * ret.abs()
    previous = log_close.shift(1)
    back_close = (log_close.shift(-1) - previous).abs() <= band
    back_open = (np.log(frames["open"].shift(-1)) - previous).abs() <= band
    bad = (ret.abs() > outlier_sigma * sigma) & back_close & back_open
    return bad.fillna(False).astype(bool)


def repair_bad_prints(frames: dict[str, pd.DataFrame], bad: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Repair the `bad` sessions in place and return their original open, high, low and close (NaN
    elsewhere). The close (and the adjusted close) becomes the geometric midpoint of its
    neighbours. When the open was part of the print too (nearer the bad close than the previous
    close), the whole bar is scaled with the close; otherwise a high or low that was the bad print
    follows the repaired close. The repaired bar always has low <= open, close <= high."""
    originals = {f: frames[f].where(bad) for f in ORIGINALS}
    if not bad.to_numpy().any():
        return originals
    old_close = frames["close"]
    for column in ("close", ADJ_CLOSE):
        series = frames[column]
        midpoint = np.exp(0.5 * (np.log(series.shift(1)) + np.log(series.shift(-1))))
        frames[column] = series.where(~bad, midpoint)
    close = frames["close"]
    log_previous = np.log(old_close.shift(1))
    whole_bar = bad & ((np.log(frames["open"]) - np.log(old_close)).abs()
                       < (np.log(frames["open"]) - log_previous).abs())
    scale = close / old_close
    for column in ("open", "high", "low"):
        frames[column] = frames[column].where(~whole_bar, frames[column] * scale)
    part = bad & ~whole_bar
    was_high = part & (old_close > close) & (frames["high"] >= old_close * (1 - 1e-12))
    was_low = part & (old_close < close) & (frames["low"] <= old_close * (1 + 1e-12))
    top, bottom = np.fmax(frames["open"], close), np.fmin(frames["open"], close)
    frames["high"] = frames["high"].where(~was_high, top).where(~bad, lambda h: np.fmax(h, top))
    frames["low"] = frames["low"].where(~was_low, bottom).where(~bad, lambda low: np.fmin(low, bottom))
    return originals


def clean_prices(raw: pd.DataFrame, actions: pd.DataFrame, tickers: list[str], start: str,
                 rules: CleaningSettings | None = None, exchange: str = DEFAULT_EXCHANGE) -> CleaningResult:
    """Clean long raw bars into a long table on the exchange's sessions (see module doc)."""
    rules = rules or CleaningSettings()
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

    factor, splits = _split_factors(frames["close"], actions)
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
    fillable = missing & started & (runs <= rules.max_fill_days)
    gap = missing & started & (runs > rules.max_fill_days)
    filled = {}
    for f in (*FIELDS, ADJ_CLOSE):
        table = frames[f]
        # a missing volume stays missing (never 0); filled days carry the last known one
        filled[f] = table.where(~fillable, table.ffill())
    repaired = (bad_prints(filled, rules.outlier_sigma, rules.revert_band) if rules.repair_bad_prints
                else pd.DataFrame(False, index=calendar, columns=present_tickers))
    originals = repair_bad_prints(filled, repaired)
    ret, sigma = _trailing_sigma(filled["close"])
    outlier = (ret.abs() > rules.outlier_sigma * sigma).fillna(False) & ~repaired

    out = long(
        {**filled, "split_factor": factor,
         "filled": pd.DataFrame(fillable, index=calendar, columns=present_tickers),
         "gap": pd.DataFrame(gap, index=calendar, columns=present_tickers),
         "outlier": outlier.astype(bool), "repaired": repaired,
         **{ORIGINALS[f]: originals[f] for f in ORIGINALS}},
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
