"""Group `monitoring`: data-quality scoring, per-ticker feature drift against the champion's
training window (Evidently), and live forecasts scored against what happened."""

from typing import Optional

import dagster as dg
import pandas as pd

from odyssey import features as registry
from odyssey import registry as mlreg
from odyssey.drift import evidently_drift
from odyssey.outcomes import empty_log, realised, score
from odyssey.quality import quality_scores
from odyssey.settings import MonitoringSettings
from odyssey.splits import forward_returns, target_name
from odyssey.lineage import Artifact
from resources.metadata import artifacts_metadata, md_table
from resources.settings import SettingsResource, overrides, ticker_partitions
from resources.storage import Storage
from resources.tracking import ArtifactSigner, MlflowTracking

GROUP = "monitoring"


@dg.asset(group_name=GROUP, kinds={"pandas", "parquet"})
def data_quality_report(settings: SettingsResource, raw_prices: pd.DataFrame,
                        clean_prices: pd.DataFrame) -> dg.MaterializeResult:
    """Completeness (sessions from each ticker's first bar), accuracy, consistency, timeliness and
    uniqueness of the market data (0-1)."""
    profile = settings.profile()
    scores = quality_scores(raw_prices, clean_prices, profile.tickers, profile.start, exchange=profile.exchange)
    overall = float(scores.loc[scores["dimension"] == "overall", "score"].iloc[0])
    return dg.MaterializeResult(value=scores, metadata={"overall": overall, "scores": md_table(scores, digits=4)})


DriftConfig = overrides("DriftConfig", "This run's changes to the settings' drift monitoring (empty: the file's).",
                        MonitoringSettings)


def _champion_card(mlflow: MlflowTracking, signer: ArtifactSigner, ticker: str, names):
    """The champion's version and card; (None, None) without a champion this run can use."""
    current = mlreg.champion(mlflow.tracker(), ticker, signer.key(), registry.REGISTRY_VERSION, names)
    if current is None or current.card is None:
        return None, None
    return current.version, current.card


@dg.asset(partitions_def=ticker_partitions, group_name=GROUP, kinds={"evidently", "pandas"},
          ins={"features": dg.AssetIn(), "clean_prices": dg.AssetIn()}, deps=["deployed_models"])
def feature_drift(context: dg.AssetExecutionContext, config: DriftConfig, settings: SettingsResource,
                  storage: Storage, mlflow: MlflowTracking, signer: ArtifactSigner, features: pd.DataFrame,
                  clean_prices: pd.DataFrame) -> dg.MaterializeResult:
    """Evidently data-drift report of the champion's training window (the train and validation
    splits while there is no champion) against the most recent window: per feature the
    window-mean z-score (the drift decision), PSI and KL; and for the forward-return target the
    window-mean z-score of its absolute size (its volatility, the decision) and its PSI.
    When a retrained champion has learnt the new regime, its window holds it and drift clears."""
    ticker = context.partition_key
    monitoring = config.apply(settings.value.monitoring)
    horizon = settings.value.forecast.horizon
    target = target_name(horizon)
    profile = settings.profile()
    names = registry.feature_names(profile.alt_series)
    rows = features[features["ticker"] == ticker].merge(
        forward_returns(clean_prices[clean_prices["ticker"] == ticker], horizon)[["date", target]], on="date")
    champion, card = _champion_card(mlflow, signer, ticker, names)
    if card is not None:
        start, end, source = pd.Timestamp(card.train_start), pd.Timestamp(card.train_end), f"champion v{champion.version}"
    else:
        start, end, source = rows["date"].min(), pd.Timestamp(profile.validation_end), "train + validation splits"
    reference = rows[(rows["date"] >= start) & (rows["date"] <= end)]
    current = rows.tail(monitoring.window_days)
    ticker_features = [n for n in names if not registry.BY_NAME[n].market_wide]
    report = evidently_drift(reference, current, ticker_features, target, monitoring.z_threshold,
                             monitoring.psi_threshold)
    folder = storage.path("reports", "drift", ticker)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "feature_drift.html").write_bytes(report.html)
    (folder / "feature_drift.json").write_bytes(report.json)
    value = report.table.assign(ticker=ticker, target_psi=report.target_psi, target_z=report.target_z)
    return dg.MaterializeResult(value=value, metadata={
        "ticker": ticker, "share_drifted": report.share_drifted, "target_psi": report.target_psi,
        "target_z": report.target_z,
        "reference": f"{reference['date'].min().date()}..{reference['date'].max().date()} ({len(reference)} rows, "
                     f"{source})",
        "current": f"{current['date'].min().date()}..{current['date'].max().date()} ({len(current)} rows)",
        **artifacts_metadata([Artifact.of(str(folder / "feature_drift.html"), report.html, "report"),
                              Artifact.of(str(folder / "feature_drift.json"), report.json, "report")]),
        "html_report": dg.MetadataValue.path(str(folder / "feature_drift.html")),
        "json_report": dg.MetadataValue.path(str(folder / "feature_drift.json")),
        "psi_kl": md_table(report.table, rows=94, digits=4),
    })


OutcomesConfig = overrides("OutcomesConfig", "This run's changes to the live-skill scoring (empty: the settings').",
                           window=(Optional[int], None))


@dg.asset(partitions_def=ticker_partitions, group_name=GROUP, kinds={"pandas"}, io_manager_key="json_io_manager",
          ins={"clean_prices": dg.AssetIn()}, deps=["forecast_log"])
def forecast_outcomes(context: dg.AssetExecutionContext, config: OutcomesConfig, settings: SettingsResource,
                      storage: Storage, mlflow: MlflowTracking, signer: ArtifactSigner,
                      clean_prices: pd.DataFrame) -> dg.MaterializeResult:
    """The champion's live forecasts against the returns that later happened: IC and hit rate over
    the last N realised forecasts with block-bootstrap intervals, beside the walk-forward skill
    the model was deployed on (the forecast log as stored; none before the first batch forecasts)."""
    ticker = context.partition_key
    gates = settings.value.gates
    window = config.window or gates.live_window
    names = registry.feature_names(settings.value.universe.alt_series)
    champion, card = _champion_card(mlflow, signer, ticker, names)
    if card is None:
        value = {"ticker": ticker, "champion": None, "realised": 0, "walkforward_ic": None,
                 "reason": "no champion: nothing live to score"}
        return dg.MaterializeResult(value=value, metadata={"ticker": ticker, "reason": value["reason"]})
    forecast_log = storage.stored_table("forecast_log")
    outcomes = realised(forecast_log if forecast_log is not None else empty_log(), clean_prices, ticker,
                        champion.version, card.horizon)
    scored = score(outcomes, window, gates.live_level)
    value = {"ticker": ticker, "champion": champion.version, "walkforward_ic": float(card.walkforward["oos_ic"]),
             "walkforward_ic_ci_low": float(card.walkforward["oos_ic_ci_low"]), "window": window, **scored}
    shown = {k: v for k, v in value.items() if v is not None and not (isinstance(v, float) and pd.isna(v))}
    return dg.MaterializeResult(value=value, metadata={**shown, "recent": md_table(outcomes.tail(10), digits=5)})
