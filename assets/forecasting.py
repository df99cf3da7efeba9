"""Group `forecasting`, one partition per ticker: purged walk-forward forecasts, the final model
(signed, tracked and registered in MLflow), SHAP importance, deployment, and batch forecasts."""

import dagster as dg
import numpy as np
import pandas as pd

from assets.market import DAILY_FRESHNESS
from assets.metadata import line_plot, md_table, png_bytes_markdown
from odyssey import features as registry
from odyssey import registry as mlreg
from odyssey.explain import shap_importance as compute_shap
from odyssey.models import predict_rows, serialize, train_final_model
from odyssey.walkforward import (WalkForwardConfig, XGBParams, fold_metrics, run_walkforward, summary_metrics,
                                 ticker_frame)
from resources import profile_from_env
from resources.market import MarketSource
from resources.tracking import ArtifactSigner, MlflowTracking

GROUP = "forecasting"
ticker_partitions = dg.StaticPartitionsDefinition(list(profile_from_env().tickers))


class ForecastConfig(dg.Config, XGBParams, WalkForwardConfig):
    """Walk-forward windows and XGBoost hyperparameters (defaults: the seed notebook's values),
    and the trading costs of the sign strategy used in the fold metrics."""

    cost_bps: float = 10.0
    slippage_bps: float = 5.0

    def walkforward(self) -> WalkForwardConfig:
        return WalkForwardConfig(**self.model_dump(include=set(WalkForwardConfig.model_fields)))

    def xgb(self) -> XGBParams:
        return XGBParams(**self.model_dump(include=set(XGBParams.model_fields)))


def _oos_plot(predictions: pd.DataFrame, ticker: str):
    ordered = predictions.sort_values("date").reset_index(drop=True)
    frame = pd.DataFrame({
        "date": ordered["date"],
        "rolling_corr_126d": ordered["prediction"].rolling(126, min_periods=60).corr(ordered["target"]),
        "sign_strategy_equity": np.exp(np.log1p(np.sign(ordered["prediction"]) * ordered["next_return"]).cumsum()),
    })
    return line_plot(frame, "date", ["rolling_corr_126d", "sign_strategy_equity"], f"{ticker}: out-of-sample")


@dg.multi_asset(
    outs={
        "walkforward_forecasts": dg.AssetOut(
            description="Out-of-sample 5-day return predictions from the purged expanding walk-forward.",
            kinds={"xgboost", "pandas"}),
        "walkforward_summary": dg.AssetOut(
            description="Walk-forward config, fold metrics and pooled metrics with bootstrap intervals (JSON).",
            io_manager_key="json_io_manager", kinds={"json"}),
    },
    ins={"features": dg.AssetIn(), "clean_prices": dg.AssetIn()},
    partitions_def=ticker_partitions,
    group_name=GROUP,
)
def walkforward(context: dg.AssetExecutionContext, config: ForecastConfig, features: pd.DataFrame,
                clean_prices: pd.DataFrame):
    """Expanding-window walk-forward for one ticker: 3y min train, 0.5y validation (early stopping),
    0.5y test, stepping 0.5y; purged targets and a 5-day embargo between windows."""
    ticker = context.partition_key
    frame = ticker_frame(features, clean_prices, ticker, registry.FEATURE_NAMES)
    result = run_walkforward(frame, registry.FEATURE_NAMES, config.xgb(), config.walkforward(),
                             cost_bps=config.cost_bps, slippage_bps=config.slippage_bps)
    folds = result.folds
    summary = summary_metrics(result.predictions, config.cost_bps, config.slippage_bps)
    yield dg.Output(result.predictions, "walkforward_forecasts", metadata={
        "ticker": ticker, "folds": len(folds), "oos_rows": len(result.predictions),
        "oos_direction_accuracy": summary["oos_direction_accuracy"], "oos_ic": summary["oos_ic"],
        "oos_sharpe_after_costs": summary["oos_sharpe"],
        "fold_metrics": md_table(folds[["fold", "train_end", "val_end", "test_end", "best_iteration", "rmse", "r2",
                                        "direction_accuracy", "ic", "sharpe"]], rows=40),
        "plot": _oos_plot(result.predictions, ticker),
    })
    intervals = pd.DataFrame([
        {"metric": m, "value": summary[f"oos_{m}"], "ci90_low": summary[f"oos_{m}_ci_low"],
         "ci90_high": summary[f"oos_{m}_ci_high"]} for m in ("direction_accuracy", "ic", "sharpe")])
    yield dg.Output({"ticker": ticker, **result.config, "summary": summary,
                     "folds": folds.to_dict("records"), "registry_version": registry.REGISTRY_VERSION},
                    "walkforward_summary", metadata={"ticker": ticker, "metrics": md_table(intervals)})


@dg.asset(partitions_def=ticker_partitions, group_name=GROUP, kinds={"xgboost", "mlflow"},
          io_manager_key="json_io_manager",
          ins={"dataset_splits": dg.AssetIn(), "walkforward_forecasts": dg.AssetIn(),
               "walkforward_summary": dg.AssetIn()})
def forecast_models(context: dg.AssetExecutionContext, config: ForecastConfig, mlflow: MlflowTracking,
                    signer: ArtifactSigner, dataset_splits: pd.DataFrame, walkforward_forecasts: pd.DataFrame,
                    walkforward_summary: dict) -> dg.MaterializeResult:
    """Final model per ticker: early-stopped on validation, refit on train + validation; saved as
    XGBoost UBJSON with SHA-256 and HMAC; logged to MLflow and registered with alias `candidate`."""
    ticker = context.partition_key
    booster, card = train_final_model(dataset_splits, ticker, registry.FEATURE_NAMES, registry.REGISTRY_VERSION,
                                      config.xgb())
    data, card = serialize(booster, card, signer.key())
    tracker = mlflow.tracker()
    params = {**{f"xgb_{k}": v for k, v in config.xgb().model_dump().items()},
              **{f"wf_{k}": v for k, v in config.walkforward().model_dump().items()},
              "registry_version": registry.REGISTRY_VERSION, "best_iteration": card.best_iteration}
    folds = fold_metrics(walkforward_forecasts, config.cost_bps, config.slippage_bps)
    version = mlreg.log_candidate(tracker, ticker, data, card, walkforward_forecasts, params, folds,
                                  walkforward_summary["summary"], tags={"dagster_run_id": context.run.run_id})
    value = {"ticker": ticker, "version": version.version, "run_id": version.run_id, "source": version.source,
             "sha256": card.sha256, "signature": card.signature, "registry_version": card.registry_version,
             "best_iteration": card.best_iteration, "data_sha256": card.data_sha256,
             "walkforward": walkforward_summary["walkforward"], "xgboost": walkforward_summary["xgboost"],
             "oos": walkforward_summary["summary"]}
    return dg.MaterializeResult(value=value, metadata={
        "ticker": ticker, "mlflow_model": mlreg.model_name(ticker), "mlflow_version": version.version,
        "mlflow_run_id": version.run_id, "alias": mlreg.CANDIDATE, "sha256": card.sha256,
        "best_iteration": card.best_iteration, "model_bytes": len(data),
        "train_rows": card.train_rows, "validation_rows": card.validation_rows,
    })


@dg.asset(partitions_def=ticker_partitions, group_name=GROUP, kinds={"shap", "pandas"},
          ins={"forecast_models": dg.AssetIn(), "dataset_splits": dg.AssetIn()})
def shap_importance(context: dg.AssetExecutionContext, mlflow: MlflowTracking, signer: ArtifactSigner,
                    forecast_models: dict, dataset_splits: pd.DataFrame) -> dg.MaterializeResult:
    """TreeSHAP mean |value| per feature on the test split; the top 20 as a bar plot, logged to MLflow."""
    ticker = context.partition_key
    tracker = mlflow.tracker()
    version = mlreg.registered_version(forecast_models)
    booster, _ = mlreg.load_registered(tracker, version, signer.key(), registry.REGISTRY_VERSION, registry.FEATURE_NAMES)
    rows = dataset_splits[(dataset_splits["ticker"] == ticker) & (dataset_splits["split"] == "test")]
    table, figure_png = compute_shap(booster, rows, registry.FEATURE_NAMES, top=20)
    mlreg.log_table(tracker, version.run_id, table, "shap/top20.csv")
    mlreg.log_figure_bytes(tracker, version.run_id, figure_png, "shap/top20.png")
    plot = png_bytes_markdown(figure_png, "shap")
    return dg.MaterializeResult(value=table, metadata={"ticker": ticker, "rows_explained": len(rows),
                                                       "top20": md_table(table, rows=20, digits=6), "plot": plot})


@dg.asset(partitions_def=ticker_partitions, group_name=GROUP, kinds={"mlflow"}, io_manager_key="json_io_manager",
          ins={"forecast_models": dg.AssetIn()})
def deployed_models(context: dg.AssetExecutionContext, mlflow: MlflowTracking, forecast_models: dict) -> dg.MaterializeResult:
    """Moves the MLflow alias `champion` to this ticker's candidate. Runs only when every blocking
    deployment gate on forecast_models passed; otherwise the previous champion stays."""
    ticker = context.partition_key
    previous = mlreg.promote(mlflow.tracker(), ticker, forecast_models["version"])
    value = {"ticker": ticker, "champion_version": forecast_models["version"], "previous_champion": previous,
             "run_id": forecast_models["run_id"], "sha256": forecast_models["sha256"]}
    return dg.MaterializeResult(value=value, metadata={
        "ticker": ticker, "champion_version": forecast_models["version"],
        "previous_champion": previous or "none", "mlflow_model": mlreg.model_name(ticker)})


@dg.asset(group_name=GROUP, kinds={"xgboost", "pandas"}, deps=["deployed_models"],
          ins={"features": dg.AssetIn()}, freshness_policy=DAILY_FRESHNESS)
def forecasts(market: MarketSource, mlflow: MlflowTracking, signer: ArtifactSigner,
              features: pd.DataFrame) -> dg.MaterializeResult:
    """5-day return forecasts for the latest date, every ticker, from its champion model; each model's
    signature and feature registry version are verified before it predicts."""
    tracker = mlflow.tracker()
    latest = features["date"].max()
    rows, missing = [], []
    for ticker in market.universe().tickers:
        champion = mlreg.version_by_alias(tracker, ticker, mlreg.CHAMPION)
        if champion is None:
            missing.append(ticker)
            continue
        booster, card = mlreg.load_registered(tracker, champion, signer.key(), registry.REGISTRY_VERSION,
                                              registry.FEATURE_NAMES)
        row = features[(features["ticker"] == ticker) & (features["date"] == latest)]
        if row.empty:
            missing.append(ticker)
            continue
        rows.append({"date": latest, "ticker": ticker, "prediction": float(predict_rows(booster, row, registry.FEATURE_NAMES)[0]),
                     "model_version": champion.version, "model_sha256": card.sha256})
    table = pd.DataFrame(rows, columns=["date", "ticker", "prediction", "model_version", "model_sha256"])
    return dg.MaterializeResult(value=table, metadata={
        "date": str(pd.Timestamp(latest).date()), "tickers": len(table),
        "without_champion": ", ".join(missing) or "none", "forecasts": md_table(table, rows=20, digits=5)})
