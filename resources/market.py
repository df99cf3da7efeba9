"""The market-data source resource: synthetic (default), a CSV/Parquet folder, or yfinance."""

from __future__ import annotations

from typing import Optional

import dagster as dg
from pydantic import Field

from odyssey.sources.columns import MarketData
from odyssey.sources.csv_source import read_csv_folder
from odyssey.sources.synthetic import SyntheticConfig, generate_market
from odyssey.universe import Profile, get_profile


class MarketSource(dg.ConfigurableResource):
    """Where bars come from, and which profile (tickers, dates, split boundaries) a run uses."""

    source: str = Field(default="synthetic", description="synthetic | csv | yfinance")
    profile: str = Field(default="full", description="full (15 tickers, 2010-2024) | quick")
    seed: int = Field(default=7, description="synthetic market seed")
    signal_strength: float = Field(default=0.05, description="planted predictable share of returns (0: none)")
    drift_date: Optional[str] = Field(default=None, description="synthetic distribution shift from this date")
    drift_tickers: Optional[list[str]] = Field(default=None, description="tickers that drift (default: all)")
    csv_path: Optional[str] = Field(default=None, description="folder of CSV/Parquet bars for the csv source")
    tickers: Optional[list[str]] = Field(default=None, description="override the profile's tickers")

    def universe(self) -> Profile:
        base = get_profile(self.profile)
        return base.with_tickers(tuple(self.tickers)) if self.tickers else base

    def synthetic_config(self) -> SyntheticConfig:
        return SyntheticConfig(seed=self.seed, signal_strength=self.signal_strength, drift_date=self.drift_date,
                               drift_tickers=tuple(self.drift_tickers) if self.drift_tickers else None)

    def load(self) -> MarketData:
        profile = self.universe()
        if self.source == "synthetic":
            return generate_market(profile, self.synthetic_config()).data
        if self.source == "csv":
            if not self.csv_path:
                raise ValueError("the csv source needs csv_path (env ODYSSEY_CSV_PATH)")
            return read_csv_folder(self.csv_path, profile.tickers)
        if self.source == "yfinance":
            from odyssey.sources.yfinance_source import fetch_yfinance

            return fetch_yfinance(profile.tickers, profile.start, profile.end)
        raise ValueError(f"unknown market source {self.source!r}: use synthetic, csv or yfinance")
