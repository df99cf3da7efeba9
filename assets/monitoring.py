"""Group `monitoring`: data-quality scoring."""

import dagster as dg
import pandas as pd

from assets.metadata import md_table
from odyssey.quality import quality_scores
from resources.market import MarketSource

@dg.asset(group_name="monitoring", kinds={"pandas", "parquet"})
def data_quality_report(market: MarketSource, raw_prices: pd.DataFrame, clean_prices: pd.DataFrame) -> dg.MaterializeResult:
    """Completeness, accuracy, consistency, timeliness and uniqueness of the market data (0-1)."""
    profile = market.universe()
    scores = quality_scores(raw_prices, clean_prices, profile.tickers, profile.start)
    overall = float(scores.loc[scores["dimension"] == "overall", "score"].iloc[0])
    return dg.MaterializeResult(value=scores, metadata={"overall": overall, "scores": md_table(scores, digits=4)})
