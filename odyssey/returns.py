"""Daily log returns, clipped at +-n sigma with thresholds fit on the train period only."""

from __future__ import annotations

import numpy as np
import pandas as pd


def fit_clip_thresholds(returns: pd.DataFrame, train_end: str, n_sigma: float = 3.0) -> dict:
    """Per-ticker mean +- n_sigma * std of log returns on dates <= train_end (JSON-ready)."""
    train = returns[returns["date"] <= pd.Timestamp(train_end)]
    stats = train.groupby("ticker")["log_return"].agg(["mean", "std", "count"])
    return {
        "train_end": str(pd.Timestamp(train_end).date()),
        "n_sigma": float(n_sigma),
        "tickers": {
            t: {"mean": float(row["mean"]), "std": float(row["std"]), "n_train": int(row["count"]),
                "lower": float(row["mean"] - n_sigma * row["std"]),
                "upper": float(row["mean"] + n_sigma * row["std"])}
            for t, row in stats.iterrows()
        },
    }


def log_returns(clean: pd.DataFrame) -> pd.DataFrame:
    """Close-to-close log returns per ticker from a long clean-price table (ticker, date order)."""
    ordered = clean.sort_values(["ticker", "date"], kind="stable")
    log_close = np.log(ordered["close"].to_numpy())
    ret = np.empty_like(log_close)
    ret[1:] = log_close[1:] - log_close[:-1]
    first = np.r_[True, ordered["ticker"].to_numpy()[1:] != ordered["ticker"].to_numpy()[:-1]]
    ret[first] = np.nan
    return pd.DataFrame({"date": ordered["date"].to_numpy(), "ticker": ordered["ticker"].to_numpy(),
                         "log_return": ret})


def clip_returns(returns: pd.DataFrame, thresholds: dict) -> pd.DataFrame:
    """Add `log_return_clipped` and `clipped` using stored thresholds."""
    out = returns.copy()
    lower = out["ticker"].map({t: v["lower"] for t, v in thresholds["tickers"].items()})
    upper = out["ticker"].map({t: v["upper"] for t, v in thresholds["tickers"].items()})
    if lower.isna().any():
        missing = sorted(out.loc[lower.isna(), "ticker"].unique())
        raise ValueError(f"no clip thresholds for tickers {missing}: they have no train-period returns")
    out["log_return_clipped"] = out["log_return"].clip(lower, upper)
    out["clipped"] = (out["log_return"] < lower) | (out["log_return"] > upper)
    return out
