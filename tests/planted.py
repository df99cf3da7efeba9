"""A small panel of forecasts and next-day returns whose answer is known: noise, or a planted
persistent signal the forecasts see."""

import numpy as np
import pandas as pd

from odyssey.portfolio import Panel


def planted_panel(planted: bool, seed: int, days: int, n: int, start: str = "2015-01-01") -> Panel:
    """`n` tickers with a common factor. Planted: each next-day return has a persistent AR(1) part
    mu (daily s.d. about 0.3 %) and the forecast is 5 mu plus noise; else the forecasts are noise."""
    rng = np.random.default_rng(seed)
    mu = np.zeros((days, n))
    for t in range(1, days):
        mu[t] = 0.9 * mu[t - 1] + rng.normal(0, 0.0015, n)
    returns = 0.0003 + rng.normal(0, 0.007, (days, 1)) + rng.normal(0, 0.01, (days, n)) + (mu if planted else 0.0)
    forecasts = 5 * mu + rng.normal(0, 0.002, (days, n)) if planted else rng.normal(0, 0.01, (days, n))
    return Panel(pd.bdate_range(start, periods=days), tuple("ABCDEFGH"[:n]), forecasts, returns)
