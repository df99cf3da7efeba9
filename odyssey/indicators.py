"""Vectorised rolling indicators on dates x tickers frames (every value uses rows <= t only)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

Frame = pd.DataFrame


def sma(x: Frame, n: int) -> Frame:
    return x.rolling(n, min_periods=n).mean()


def rstd(x: Frame, n: int) -> Frame:
    return x.rolling(n, min_periods=n).std()


def ema(x: Frame, span: int) -> Frame:
    """Exponential moving average, alpha = 2/(span+1), started at the first value."""
    return x.ewm(span=span, adjust=False, min_periods=span).mean()


def wilder(x: Frame, n: int) -> Frame:
    """Wilder's smoothing (alpha = 1/n), started at the first value."""
    return x.ewm(alpha=1.0 / n, adjust=False, min_periods=n).mean()


def safe_div(a: Frame, b: Frame, fill: float = 0.0) -> Frame:
    """a / b with `fill` where b is zero (NaN stays NaN)."""
    out = a / b
    return out.mask(np.isinf(out), fill).mask((b == 0) & a.notna(), fill)


def rsi(close: Frame, n: int) -> Frame:
    """Wilder RSI; 100 when there were only gains, 50 on a flat window."""
    delta = close.diff()
    gain = wilder(delta.clip(lower=0.0), n)
    loss = wilder((-delta).clip(lower=0.0), n)
    value = 100.0 - 100.0 / (1.0 + gain / loss.where(loss != 0.0))
    value = value.mask((loss == 0.0) & (gain > 0.0), 100.0)
    return value.mask((loss == 0.0) & (gain == 0.0), 50.0)


def true_range(high: Frame, low: Frame, close: Frame) -> Frame:
    prev = close.shift(1)
    tr = np.maximum(high - low, np.maximum((high - prev).abs(), (low - prev).abs()))
    return tr.where(prev.notna())


def atr(high: Frame, low: Frame, close: Frame, n: int) -> Frame:
    return wilder(true_range(high, low, close), n)


def windows(x: Frame, n: int) -> np.ndarray:
    """(T, N, n) view of trailing windows; rows before n-1 are padded with NaN."""
    values = x.to_numpy(dtype=float)
    pad = np.full((n - 1, values.shape[1]), np.nan)
    return sliding_window_view(np.vstack([pad, values]), n, axis=0)


def mean_abs_dev(x: Frame, n: int) -> Frame:
    """Rolling mean absolute deviation from the window mean."""
    w = windows(x, n)
    m = w.mean(axis=2, keepdims=True)
    return pd.DataFrame(np.abs(w - m).mean(axis=2), index=x.index, columns=x.columns)


def slope(x: Frame, n: int) -> Frame:
    """Least-squares slope of the last n values against time (per step)."""
    t = np.arange(n, dtype=float) - (n - 1) / 2.0
    weights = t / (t**2).sum()
    w = windows(x, n)
    return pd.DataFrame(w @ weights, index=x.index, columns=x.columns)


def rolling_corr(x: Frame, y: pd.Series | Frame, n: int) -> Frame:
    """Rolling correlation over complete windows of both series; 0 where one side is constant."""
    if isinstance(y, pd.Series):
        y = pd.DataFrame({c: y for c in x.columns}, index=x.index)
    corr = x.rolling(n, min_periods=n).corr(y)
    complete = (x.rolling(n).count() >= n) & (y.rolling(n).count() >= n)
    return corr.fillna(0.0).where(complete)


def rolling_beta(x: Frame, y: pd.Series, n: int) -> Frame:
    yy = pd.DataFrame({c: y for c in x.columns}, index=x.index)
    cov = x.rolling(n, min_periods=n).cov(yy)
    var = y.rolling(n, min_periods=n).var()
    return cov.div(var, axis=0)
