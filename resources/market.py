"""The market-data source resource: synthetic (default), a CSV/Parquet folder, or yfinance, for
the universe and dates of the run's settings."""

from __future__ import annotations

import dagster as dg

from odyssey.settings import Profile
from odyssey.sources.columns import MarketData
from resources.settings import SettingsResource


class MarketSource(dg.ConfigurableResource):
    """Where bars come from (settings section `source`)."""

    settings: SettingsResource

    @property
    def kind(self) -> str:
        return self.settings.value.source.kind

    def load(self, profile: Profile | None = None) -> MarketData:
        settings = self.settings.value
        profile = profile or settings.profile()
        source = settings.source
        if source.kind == "synthetic":
            from odyssey.sources.synthetic import generate_market

            return generate_market(profile, source.synthetic).data
        if source.kind == "csv":
            from odyssey.sources.csv_source import read_csv_folder

            return read_csv_folder(source.csv_path, profile.tickers, sessions=profile.sessions)
        if source.kind == "yfinance":
            from odyssey.sources.yfinance_source import fetch_yfinance

            return fetch_yfinance(profile.tickers, profile.start, profile.end, alt_series=profile.alt_series)
        raise ValueError(f"unknown market source {source.kind!r}: use synthetic, csv or yfinance")
