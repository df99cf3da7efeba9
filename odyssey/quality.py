"""Data-quality rules beyond the schemas, and the five-dimension quality score (seed 004)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from odyssey.features import REGISTRY
from odyssey.schemas import _ohlc_consistent


def missing_tickers(frame: pd.DataFrame, tickers: Sequence[str]) -> list[str]:
    present = set(frame["ticker"].unique())
    return [t for t in tickers if t not in present]


def long_gaps(clean: pd.DataFrame) -> pd.DataFrame:
    """Runs of business days left empty after cleaning (longer than the fill limit)."""
    rows = []
    for ticker, group in clean.sort_values(["ticker", "date"]).groupby("ticker", sort=True):
        gap = group["gap"].to_numpy()
        dates = group["date"].to_numpy()
        i = 0
        while i < len(gap):
            if gap[i]:
                j = i
                while j < len(gap) and gap[j]:
                    j += 1
                rows.append({"ticker": ticker, "start": pd.Timestamp(dates[i]).date(),
                             "end": pd.Timestamp(dates[j - 1]).date(), "business_days": j - i})
                i = j
            else:
                i += 1
    return pd.DataFrame(rows, columns=["ticker", "start", "end", "business_days"])


def nan_outside_warmup(features: pd.DataFrame) -> pd.DataFrame:
    """(feature, ticker, count, first date) for NaNs after each feature's warm-up window."""
    position = features.groupby("ticker", sort=False).cumcount().to_numpy()
    rows = []
    for feature in REGISTRY:
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
                   freshness_days: int = 5) -> pd.DataFrame:
    """Completeness, accuracy, consistency, timeliness and uniqueness, each in [0, 1].

    completeness: share of expected (ticker, business day) cells with a close in the raw data;
    accuracy: share of raw rows with positive finite prices, non-negative volume, a date not in
        the future and no +-5 sigma outlier flag;
    consistency: share of raw rows with low <= open, close <= high;
    timeliness: share of tickers whose last bar is within `freshness_days` business days of the
        newest bar in the data;
    uniqueness: share of raw rows that are not duplicates of an earlier (ticker, date).
    """
    end = raw["date"].max()
    calendar = pd.bdate_range(start, end)
    expected = len(calendar) * len(tickers)
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
    lag = last.apply(lambda d: len(pd.bdate_range(d, end)) - 1 if pd.notna(d) else np.inf)
    timeliness = float((lag <= freshness_days).mean()) if len(tickers) else 0.0

    uniqueness = float(1.0 - raw.duplicated(["ticker", "date"]).mean()) if len(raw) else 0.0
    scores = {"completeness": completeness, "accuracy": accuracy, "consistency": consistency,
              "timeliness": timeliness, "uniqueness": uniqueness}
    frame = pd.DataFrame({"dimension": list(scores), "score": [float(v) for v in scores.values()]})
    overall = pd.DataFrame({"dimension": ["overall"], "score": [float(np.mean(list(scores.values())))]})
    return pd.concat([frame, overall], ignore_index=True)
