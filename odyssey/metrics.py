"""Forecast metrics: RMSE, R², direction accuracy, Spearman IC, a costed sign strategy's
Sharpe, and block-bootstrap confidence intervals."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

ANNUAL_DAYS = 252


def rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - p) ** 2)))


def r2(y: np.ndarray, p: np.ndarray) -> float:
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return float(1.0 - np.sum((y - p) ** 2) / ss_tot) if ss_tot > 0 else float("nan")


def direction_accuracy(y: np.ndarray, p: np.ndarray) -> float:
    """Share of predictions whose sign matches the realised sign (zeros count as wrong)."""
    return float(np.mean(np.sign(y) == np.sign(p)))


def spearman_ic(y: np.ndarray, p: np.ndarray) -> float:
    if np.all(p == p[0]) or np.all(y == y[0]):
        return 0.0
    from scipy.stats import spearmanr  # imported on first use: loading the code location skips SciPy

    return float(spearmanr(p, y).statistic)


def sign_strategy_returns(prediction: np.ndarray, next_return: np.ndarray, cost_bps: float = 10.0,
                          slippage_bps: float = 5.0) -> np.ndarray:
    """Daily returns of holding sign(prediction) long/short over the next day, after costs of
    (cost + slippage) on every unit of position traded."""
    position = np.sign(prediction)
    traded = np.abs(np.diff(np.r_[0.0, position]))
    return position * next_return - traded * (cost_bps + slippage_bps) / 1e4


def sharpe(returns: np.ndarray) -> float:
    sd = returns.std(ddof=1) if len(returns) > 1 else 0.0
    return float(returns.mean() / sd * np.sqrt(ANNUAL_DAYS)) if sd > 0 else 0.0


def forecast_metrics(y: np.ndarray, p: np.ndarray, next_return: np.ndarray, cost_bps: float = 10.0,
                     slippage_bps: float = 5.0) -> dict[str, float]:
    strategy = sign_strategy_returns(p, next_return, cost_bps, slippage_bps)
    return {
        "rmse": rmse(y, p),
        "r2": r2(y, p),
        "direction_accuracy": direction_accuracy(y, p),
        "ic": spearman_ic(y, p),
        "sharpe": sharpe(strategy),
        "n": int(len(y)),
    }


def block_bootstrap_indices(n: int, block: int = 20, reps: int = 500, seed: int = 0) -> np.ndarray:
    """[reps, n] row positions of a moving-block bootstrap (blocks of `block` consecutive rows),
    which keeps the autocorrelation within each block."""
    rng = np.random.default_rng(seed)
    n_blocks = int(np.ceil(n / block))
    starts = rng.integers(0, n - block + 1, (reps, n_blocks))
    return (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(reps, -1)[:, :n]


def block_bootstrap_ci(frame: pd.DataFrame, statistic: Callable[[dict[str, np.ndarray]], float], block: int = 20,
                       reps: int = 500, level: float = 0.9, seed: int = 0) -> tuple[float, float]:
    """Moving-block bootstrap interval of a statistic over rows in time order (keeps the
    autocorrelation that overlapping 5-day targets create). `statistic` gets each resample as
    column name -> NumPy array (no DataFrame is built per resample)."""
    n = len(frame)
    if n < 2 * block:
        return float("nan"), float("nan")
    columns = {str(c): frame[c].to_numpy() for c in frame.columns}
    values = np.array([statistic({c: v[idx] for c, v in columns.items()})
                       for idx in block_bootstrap_indices(n, block, reps, seed)])
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))
