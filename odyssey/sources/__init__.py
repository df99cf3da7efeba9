"""Market-data sources: a seeded synthetic market, a folder of CSV/Parquet files, yfinance.

Every source returns a `MarketData`: long OHLCV bars, the alternative-data series and the
corporate-actions (splits) table, in the column format documented in `columns.py`.
"""

from odyssey.sources.columns import MarketData

__all__ = ["MarketData"]
