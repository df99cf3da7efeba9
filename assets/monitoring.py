"""Group `monitoring`: data-quality scoring, per-ticker feature drift (Evidently) and forecast quality."""

import dagster as dg
import pandas as pd

from assets.forecasting import ticker_partitions
from assets.metadata import md_table
from odyssey import features as registry
from odyssey.drift import evidently_drift, forecast_decay
from odyssey.quality import quality_scores
from odyssey.splits import TARGET, forward_returns
from resources.market import MarketSource
from resources.storage import Storage

GROUP = "monitoring"
# Market-wide features (regimes, VIX, rates) move for every ticker at once: a regime change, not
# a ticker's drift; they are left out of the per-ticker drift test.
TICKER_FEATURES = [f.name for f in registry.REGISTRY if not f.market_wide]


@dg.asset(group_name=GROUP, kinds={"pandas", "parquet"})
def data_quality_report(market: MarketSource, raw_prices: pd.DataFrame, clean_prices: pd.DataFrame) -> dg.MaterializeResult:
    """Completeness, accuracy, consistency, timeliness and uniqueness of the market data (0-1)."""
    profile = market.universe()
    scores = quality_scores(raw_prices, clean_prices, profile.tickers, profile.start)
    overall = float(scores.loc[scores["dimension"] == "overall", "score"].iloc[0])
    return dg.MaterializeResult(value=scores, metadata={"overall": overall, "scores": md_table(scores, digits=4)})


class DriftConfig(dg.Config):
    window_days: int = 126
    z_threshold: float = 3.0
    psi_threshold: float = 0.2


@dg.asset(partitions_def=ticker_partitions, group_name=GROUP, kinds={"evidently", "pandas"},
          ins={"features": dg.AssetIn(), "clean_prices": dg.AssetIn()})
def feature_drift(context: dg.AssetExecutionContext, config: DriftConfig, market: MarketSource, storage: Storage,
                  features: pd.DataFrame, clean_prices: pd.DataFrame) -> dg.MaterializeResult:
    """Evidently data-drift report of the model's training window (train + validation) against the
    most recent window: per feature the window-mean z-score (the drift decision), PSI and KL; and
    the PSI of the 5-day target."""
    ticker = context.partition_key
    profile = market.universe()
    rows = features[features["ticker"] == ticker].merge(
        forward_returns(clean_prices[clean_prices["ticker"] == ticker])[["date", TARGET]], on="date")
    reference = rows[rows["date"] <= pd.Timestamp(profile.validation_end)]
    current = rows.tail(config.window_days)
    report = evidently_drift(reference, current, TICKER_FEATURES, TARGET, config.z_threshold,
                             config.psi_threshold)
    folder = storage.path("reports", "drift", ticker)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "feature_drift.html").write_bytes(report.html)
    (folder / "feature_drift.json").write_bytes(report.json)
    value = report.table.assign(ticker=ticker, target_psi=report.target_psi)
    return dg.MaterializeResult(value=value, metadata={
        "ticker": ticker, "share_drifted": report.share_drifted, "target_psi": report.target_psi,
        "reference": f"{reference['date'].min().date()}..{reference['date'].max().date()} ({len(reference)} rows)",
        "current": f"{current['date'].min().date()}..{current['date'].max().date()} ({len(current)} rows)",
        "html_report": dg.MetadataValue.path(str(folder / "feature_drift.html")),
        "json_report": dg.MetadataValue.path(str(folder / "feature_drift.json")),
        "psi_kl": md_table(report.table, rows=94, digits=4),
    })


@dg.asset(partitions_def=ticker_partitions, group_name=GROUP, kinds={"pandas"}, io_manager_key="json_io_manager",
          ins={"walkforward_forecasts": dg.AssetIn()})
def forecast_quality(context: dg.AssetExecutionContext, config: DriftConfig,
                     walkforward_forecasts: pd.DataFrame) -> dg.MaterializeResult:
    """Realized versus predicted once targets are known: the recent window's IC and direction
    accuracy against the long run."""
    result = {"ticker": context.partition_key, **forecast_decay(walkforward_forecasts, config.window_days)}
    return dg.MaterializeResult(value=result, metadata={k: v for k, v in result.items() if v is not None})
