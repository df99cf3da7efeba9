"""Data-quality rules beyond the schemas, and the five-dimension quality score (seed 004)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from odyssey.calendar import DEFAULT_EXCHANGE, sessions
from odyssey.cleaning import runs
from odyssey.features import BY_NAME
from odyssey.schemas import _ohlc_consistent


def missing_tickers(frame: pd.DataFrame, tickers: Sequence[str]) -> list[str]:
    present = set(frame["ticker"].unique())
    return [t for t in tickers if t not in present]


def long_gaps(clean: pd.DataFrame) -> pd.DataFrame:
    """Runs of sessions left empty after cleaning (longer than the fill limit)."""
    rows = []
    for ticker, group in clean.sort_values(["ticker", "date"]).groupby("ticker", sort=True):
        dates = group["date"].to_numpy()
        for i, j in runs(group["gap"].to_numpy()):
            rows.append({"ticker": ticker, "start": pd.Timestamp(dates[i]).date(),
                         "end": pd.Timestamp(dates[j - 1]).date(), "sessions": j - i})
    return pd.DataFrame(rows, columns=["ticker", "start", "end", "sessions"])


def stale_volume(raw: pd.DataFrame, min_sessions: int = 10) -> pd.DataFrame:
    """Runs of at least `min_sessions` bars in a row with zero volume, per ticker (a feed that
    stopped reporting volume, or a halted line): ticker, start, end, sessions."""
    rows = []
    for ticker, group in raw.sort_values(["ticker", "date"]).groupby("ticker", sort=True):
        dates = group["date"].to_numpy()
        for i, j in runs((group["volume"].astype(float) == 0).to_numpy()):
            if j - i >= min_sessions:
                rows.append({"ticker": ticker, "start": pd.Timestamp(dates[i]).date(),
                             "end": pd.Timestamp(dates[j - 1]).date(), "sessions": int(j - i)})
    return pd.DataFrame(rows, columns=["ticker", "start", "end", "sessions"])


def level_shifts(clean: pd.DataFrame, sigma: float = 15.0, min_move: float = 0.4, persist: int = 5) -> pd.DataFrame:
    """Persistent one-session level changes no corporate action explains: after cleaning (listed
    and detected splits adjusted, bad prints repaired), a close-to-close log move beyond `sigma`
    trailing standard deviations and beyond `min_move` in size (x1.5 or /1.5), still at least half
    there `persist` sessions later. An unlisted split of an unusual ratio or a change of price unit
    looks like this; it is never a market move to learn from."""
    rows = []
    for ticker, group in clean.sort_values(["ticker", "date"]).groupby("ticker", sort=True):
        log_close = np.log(group["close"].astype(float).ffill()).to_numpy()
        move = np.r_[np.nan, np.diff(log_close)]
        trailing = pd.Series(move).rolling(60, min_periods=20).std().shift(1).to_numpy()
        later = np.r_[log_close[persist:], np.full(persist, np.nan)] - np.r_[np.nan, log_close[:-1]]
        hit = ((np.abs(move) > sigma * trailing) & (np.abs(move) > min_move)
               & (np.sign(later) == np.sign(move)) & (np.abs(later) >= 0.5 * np.abs(move)))
        for i in np.flatnonzero(hit):
            rows.append({"ticker": ticker, "date": pd.Timestamp(group["date"].iloc[i]).date(),
                         "ratio": float(np.exp(move[i])), "sigmas": float(abs(move[i]) / trailing[i])})
    return pd.DataFrame(rows, columns=["ticker", "date", "ratio", "sigmas"])


def nan_outside_warmup(features: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """(feature, ticker, count, first date) for NaNs after each feature's warm-up window."""
    position = features.groupby("ticker", sort=False).cumcount().to_numpy()
    rows = []
    for feature in (BY_NAME[n] for n in names):
        bad = features[feature.name].isna().to_numpy() & (position >= feature.lookback)
        if bad.any():
            hit = features.loc[bad, ["ticker", "date"]]
            for ticker, group in hit.groupby("ticker", sort=True):
                rows.append({"feature": feature.name, "ticker": ticker, "rows": len(group),
                             "first_date": group["date"].min().date(), "lookback": feature.lookback})
    return pd.DataFrame(rows, columns=["feature", "ticker", "rows", "first_date", "lookback"])


def scaled_train_moments(scaled: pd.DataFrame, columns: Sequence[str], mean_tol: float = 1e-6,
                         std_tol: float = 1e-6) -> pd.DataFrame:
    """Features whose train-row mean is not ~0 or whose std (ddof=0) is not ~1 (constant features
    must be exactly 0)."""
    train = scaled.loc[scaled["split"] == "train", list(columns)]
    mean = train.mean()
    std = train.std(ddof=0)
    ok = (mean.abs() <= mean_tol) & (((std - 1.0).abs() <= std_tol) | (std <= std_tol))
    out = pd.DataFrame({"feature": mean.index, "train_mean": mean.to_numpy(), "train_std": std.to_numpy()})
    return out[~ok.to_numpy()].reset_index(drop=True)


def quality_scores(raw: pd.DataFrame, clean: pd.DataFrame, tickers: Sequence[str], start: str,
                   freshness_days: int = 5, exchange: str = DEFAULT_EXCHANGE) -> pd.DataFrame:
    """Completeness, accuracy, consistency, timeliness and uniqueness, each in [0, 1].

    completeness: share of the exchange's sessions, from each ticker's first bar on, that have a
        close in the raw data;
    accuracy: share of raw rows with positive finite prices, non-negative volume, a date not in
        the future and no +-5 sigma outlier flag;
    consistency: share of raw rows with low <= open, close <= high;
    timeliness: share of tickers whose last bar is within `freshness_days` sessions of the
        newest bar in the data;
    uniqueness: share of raw rows that are not duplicates of an earlier (ticker, date).
    """
    end = raw["date"].max()
    calendar = sessions(start, end, exchange)
    first = raw.groupby("ticker")["date"].min().reindex(list(tickers))
    expected = int(sum(len(calendar) - calendar.searchsorted(d) for d in first.dropna()))
    expected += int(first.isna().sum()) * len(calendar)  # a ticker with no bar at all misses every session
    have = raw[raw["ticker"].isin(tickers) & raw["date"].isin(calendar) & raw["close"].notna()]
    completeness = have.drop_duplicates(["ticker", "date"]).shape[0] / expected if expected else 0.0

    prices = raw[["open", "high", "low", "close"]].astype(float)
    valid = (prices > 0).all(axis=1) & np.isfinite(prices).all(axis=1)
    valid &= raw["volume"].astype(float).fillna(0) >= 0
    valid &= raw["date"] <= pd.Timestamp.now().normalize()
    flagged = clean.loc[clean["outlier"], ["ticker", "date"]]
    is_outlier = pd.MultiIndex.from_frame(raw[["ticker", "date"]]).isin(pd.MultiIndex.from_frame(flagged))
    accuracy = float((valid & ~is_outlier).mean()) if len(raw) else 0.0

    consistency = float(_ohlc_consistent(raw).mean()) if len(raw) else 0.0

    last = raw.groupby("ticker")["date"].max().reindex(list(tickers))
    lag = last.apply(lambda d: len(calendar) - 1 - calendar.searchsorted(d) if pd.notna(d) else np.inf)
    timeliness = float((lag <= freshness_days).mean()) if len(tickers) else 0.0

    uniqueness = float(1.0 - raw.duplicated(["ticker", "date"]).mean()) if len(raw) else 0.0
    scores = {"completeness": completeness, "accuracy": accuracy, "consistency": consistency,
              "timeliness": timeliness, "uniqueness": uniqueness}
    frame = pd.DataFrame({"dimension": list(scores), "score": [float(v) for v in scores.values()]})
    overall = pd.DataFrame({"dimension": ["overall"], "score": [float(np.mean(list(scores.values())))]})
    return pd.concat([frame, overall], ignore_index=True)
