"""Live forecasts, kept by date and model version, scored against the returns that later happen."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from odyssey.metrics import block_bootstrap_ci, direction_accuracy, spearman_ic
from odyssey.splits import forward_returns, target_name

LOG_COLUMNS: tuple[str, ...] = ("date", "ticker", "model_version", "prediction", "horizon", "made_at")
KEYS = ["date", "ticker", "model_version"]


def empty_log() -> pd.DataFrame:
    return pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]"), "ticker": pd.Series(dtype=object),
                         "model_version": pd.Series(dtype=object), "prediction": pd.Series(dtype=float),
                         "horizon": pd.Series(dtype="int64"), "made_at": pd.Series(dtype="datetime64[ns]")})


def append_forecasts(log: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """The log with new forecasts added; a (date, ticker, model version) already logged keeps its
    first forecast (it was made then, and is never rewritten)."""
    frames = [f for f in (log, new) if f is not None and len(f)]
    if not frames:
        return empty_log()
    combined = pd.concat(frames, ignore_index=True)[list(LOG_COLUMNS)]
    combined = combined.drop_duplicates(KEYS, keep="first")
    return combined.sort_values(["ticker", "date", "model_version"], kind="stable").reset_index(drop=True)


def unlogged_dates(log: pd.DataFrame | None, ticker: str, version: str, after: pd.Timestamp,
                   dates: Sequence) -> pd.DatetimeIndex:
    """Sessions after `after` (the model's `live_after`) that this model version has not forecast yet."""
    candidates = pd.DatetimeIndex(dates)
    candidates = candidates[candidates > pd.Timestamp(after)]
    if log is None or log.empty:
        return candidates
    done = log.loc[(log["ticker"] == ticker) & (log["model_version"] == str(version)), "date"]
    return candidates[~candidates.isin(pd.DatetimeIndex(done))]


def realised(log: pd.DataFrame, clean: pd.DataFrame, ticker: str, version: str, horizon: int) -> pd.DataFrame:
    """The version's logged forecasts of `ticker` whose target has been realised, with the target."""
    rows = log[(log["ticker"] == ticker) & (log["model_version"] == str(version))]
    target = forward_returns(clean[clean["ticker"] == ticker], horizon).rename(columns={target_name(horizon): "target"})
    joined = rows.merge(target[["date", "target"]], on="date", how="inner")
    return joined[joined["target"].notna()].sort_values("date").reset_index(drop=True)


def score(outcomes: pd.DataFrame, window: int = 126, level: float = 0.9, block: int = 10,
          reps: int = 1000, seed: int = 0) -> dict:
    """IC and hit rate of the last `window` realised forecasts, with moving-block bootstrap intervals."""
    recent = outcomes.tail(window).reset_index(drop=True)
    n = len(recent)
    out = {"realised": n, "start": str(recent["date"].min().date()) if n else None,
           "end": str(recent["date"].max().date()) if n else None}
    if n < 3:
        return {**out, "ic": float("nan"), "ic_ci_low": float("nan"), "ic_ci_high": float("nan"),
                "hit_rate": float("nan"), "hit_rate_ci_low": float("nan"), "hit_rate_ci_high": float("nan")}
    y, p = recent["target"].to_numpy(), recent["prediction"].to_numpy()
    out["ic"], out["hit_rate"] = spearman_ic(y, p), direction_accuracy(y, p)
    size = max(2, min(block, n // 4))
    for name, fn in (("ic", lambda f: spearman_ic(f["target"], f["prediction"])),
                     ("hit_rate", lambda f: direction_accuracy(f["target"], f["prediction"]))):
        lo, hi = block_bootstrap_ci(recent, fn, block=size, reps=reps, level=level, seed=seed)
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = lo, hi
    return out
