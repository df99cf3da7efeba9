"""The trading universe, the alternative-data series and the two run profiles."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

TICKERS: tuple[str, ...] = (
    "AAPL", "NVDA", "TSLA", "MSFT", "GOOGL", "AMZN", "META",
    "SPY", "QQQ", "EFA", "IEF", "HYG", "BIL", "INTC", "AMD",
)
ALT_SERIES: tuple[str, ...] = ("VIX", "DXY", "Gold", "Yield_10Y")
BENCHMARK = "SPY"
SPLIT_NAMES: tuple[str, ...] = ("train", "validation", "test")


@dataclass(frozen=True)
class Profile:
    """Which tickers and dates a run covers, and where the splits fall.

    Profiles change data size (and, in later stages, hyperparameters), never code paths.
    """

    name: str
    tickers: tuple[str, ...]
    start: str
    end: str
    train_end: str
    validation_end: str
    extras: dict = field(default_factory=dict)

    @property
    def business_days(self) -> pd.DatetimeIndex:
        return pd.bdate_range(self.start, self.end, name="date")

    def split_of(self, dates: pd.Series | pd.DatetimeIndex) -> pd.Series:
        """'train' / 'validation' / 'test' for each date (by the profile's boundaries)."""
        d = pd.Series(pd.DatetimeIndex(dates))
        out = pd.Series("test", index=d.index, dtype=object)
        out[d <= pd.Timestamp(self.validation_end)] = "validation"
        out[d <= pd.Timestamp(self.train_end)] = "train"
        return out

    def with_tickers(self, tickers: tuple[str, ...]) -> "Profile":
        return replace(self, tickers=tuple(tickers))

    def with_end(self, end: str | pd.Timestamp) -> "Profile":
        return replace(self, end=str(pd.Timestamp(end).date()))


PROFILES: dict[str, Profile] = {
    "full": Profile(
        name="full",
        tickers=TICKERS,
        start="2010-01-04",
        end="2024-12-31",
        train_end="2017-12-29",
        validation_end="2020-12-31",
    ),
    "quick": Profile(
        name="quick",
        tickers=("AAPL", "NVDA", "SPY", "QQQ", "IEF"),
        start="2015-01-02",
        end="2021-12-31",
        train_end="2018-12-31",
        validation_end="2019-12-31",
    ),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}") from None
