"""Group `forecasting`, one partition per ticker: the purged walk-forward with the feature
pipeline fitted inside each fold, the final model on a rolling window that ends at the latest
labelled day (signed, tracked and registered in MLflow), SHAP importance, gated promotion, and
live forecasts kept by date and model version."""

from typing import Optional

import dagster as dg
import numpy as np
import pandas as pd

from assets.market import DAILY_FRESHNESS
from odyssey import features as registry
from odyssey import registry as mlreg
from odyssey.explain import shap_importance as compute_shap
from odyssey.fitting import market_inputs
from odyssey.live_skill import fit_on_walkforward, judge_champion
from odyssey.models import card_to_json, forecast, serialize, train_final_model
from odyssey.signing import MANIFEST_FILE
from odyssey.skill import daily_simple_returns, skill_evidence, variant_of
from odyssey.outcomes import append_forecasts, unlogged_dates
from odyssey.settings import WalkForwardSettings, XGBParams
from odyssey.memory import AnalogFolds, compare_forecasts
from odyssey.walkforward import XGBoostFolds, fold_metrics, summary_metrics, walkforward_from_settings
from odyssey.lineage import Artifact
from resources.metadata import artifacts_metadata, line_plot, md_table, png_bytes_markdown
from resources.settings import SettingsResource, overrides, ticker_partitions
from resources.storage import Storage
from resources.tracking import ArtifactSigner, MlflowTracking

GROUP = "forecasting"

ForecastConfig = overrides(
    "ForecastConfig",
    "This run's changes to the settings' XGBoost hyperparameters, walk-forward windows and final "
    "training window (empty: the settings file's values).",
    XGBParams, WalkForwardSettings,
    training_years=(Optional[float], None))


def _walkforward(settings: SettingsResource, config: ForecastConfig):
    forecast_settings = settings.value.forecast
    return walkforward_from_settings(settings.value, config.apply(forecast_settings.xgboost),
                                     config.apply(forecast_settings.walkforward))


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
            description="Out-of-sample forward-return predictions from the purged expanding walk-forward, the feature "
                        "pipeline fitted inside every fold; the last, partial fold reaches the latest labelled day.",
            kinds={"xgboost", "pandas"}),
        "walkforward_summary": dg.AssetOut(
            description="Walk-forward config, fold metrics and pooled metrics with bootstrap intervals (JSON).",
            io_manager_key="json_io_manager", kinds={"json"}),
        "analog_forecasts": dg.AssetOut(
            description="Out-of-sample analog forecasts (market memory): the distance-weighted mean forward return "
                        "of the k nearest market states realised by each session, on the same folds.",
            kinds={"qdrant", "pandas"}),
        "analog_summary": dg.AssetOut(
            description="The analog forecast's pooled metrics with intervals, side by side with XGBoost's and the "
                        "naive forecast's (JSON).", io_manager_key="json_io_manager", kinds={"json"}),
    },
    ins={"clean_prices": dg.AssetIn(), "returns": dg.AssetIn(), "clean_alt_data": dg.AssetIn()},
    partitions_def=ticker_partitions,
    group_name=GROUP,
)
def walkforward(context: dg.AssetExecutionContext, config: ForecastConfig, settings: SettingsResource,
                clean_prices: pd.DataFrame, returns: pd.DataFrame, clean_alt_data: pd.DataFrame):
    """Expanding-window walk-forward for one ticker (windows in the settings): each fold fits the
    clip thresholds, regime model and scaler on its own training rows, early-stops on its
    validation window and predicts its test window; purge and embargo are the horizon. The
    analog forecast (market memory) runs on the same fold inputs, fitting its state embedding on
    each fold's training rows."""
    ticker = context.partition_key
    s = settings.value
    wf = _walkforward(settings, config)
    costs = s.costs
    inputs = market_inputs(clean_prices, returns, clean_alt_data)
    results = wf.run_models(inputs, ticker, {"xgboost": XGBoostFolds(wf),
                                             "analog": AnalogFolds(s.memory.dimensions, s.memory.k)})
    result = results["xgboost"]
    folds = result.folds
    summary = summary_metrics(result.predictions, costs.cost_bps, costs.slippage_bps, level=s.gates.skill_level)
    evidence = skill_evidence(result.predictions, daily_simple_returns(returns, ticker), wf.horizon, costs.rate)
    variant = variant_of(result.config, registry.REGISTRY_VERSION)
    yield dg.Output(result.predictions, "walkforward_forecasts", metadata={
        "ticker": ticker, "folds": len(folds), "oos_rows": len(result.predictions),
        "oos_start": summary["oos_start"], "oos_end": summary["oos_end"],
        "oos_direction_accuracy": summary["oos_direction_accuracy"], "oos_ic": summary["oos_ic"],
        "oos_sharpe_after_costs": summary["oos_sharpe"], "skill_p": evidence.p, "excess_ic": evidence.excess_ic,
        "tilt_excess_per_year": evidence.tilt_excess, "variant": variant,
        "fold_metrics": md_table(folds[["fold", "train_end", "val_end", "test_end", "partial", "best_iteration", "rmse",
                                        "r2", "direction_accuracy", "ic", "sharpe"]], rows=40),
        "plot": _oos_plot(result.predictions, ticker),
    })
    intervals = pd.DataFrame([
        {"metric": m, "value": summary[f"oos_{m}"], "ci_low": summary[f"oos_{m}_ci_low"],
         "ci_high": summary[f"oos_{m}_ci_high"]} for m in ("direction_accuracy", "accuracy_edge", "ic", "sharpe")])
    yield dg.Output({"ticker": ticker, **result.config, "summary": summary, "folds": folds.to_dict("records"),
                     "skill": evidence.to_dict(), "variant": variant,
                     "registry_version": registry.REGISTRY_VERSION, "feature_names": list(wf.pipeline.names)},
                    "walkforward_summary", metadata={"ticker": ticker, "metrics": md_table(intervals)})
    analog = results["analog"]
    analog_metrics = summary_metrics(analog.predictions, costs.cost_bps, costs.slippage_bps, level=s.gates.skill_level)
    comparison = compare_forecasts(analog_metrics, summary)
    yield dg.Output(analog.predictions, "analog_forecasts", metadata={
        "ticker": ticker, "folds": len(analog.folds), "oos_rows": len(analog.predictions),
        "oos_ic": analog_metrics["oos_ic"], "oos_direction_accuracy": analog_metrics["oos_direction_accuracy"],
        "k": s.memory.k, "dimensions": s.memory.dimensions})
    yield dg.Output({"ticker": ticker, "k": s.memory.k, "dimensions": s.memory.dimensions, "summary": analog_metrics,
                     "comparison": comparison.to_dict("records"), "folds": analog.folds.to_dict("records")},
                    "analog_summary", metadata={"ticker": ticker, "analog_vs_xgboost_vs_naive": md_table(comparison)})


@dg.asset(partitions_def=ticker_partitions, group_name=GROUP, kinds={"xgboost", "mlflow"},
          io_manager_key="json_io_manager",
          ins={"clean_prices": dg.AssetIn(), "returns": dg.AssetIn(), "clean_alt_data": dg.AssetIn(),
               "walkforward_forecasts": dg.AssetIn(), "walkforward_summary": dg.AssetIn()})
def forecast_models(context: dg.AssetExecutionContext, config: ForecastConfig, settings: SettingsResource,
                    mlflow: MlflowTracking, signer: ArtifactSigner, clean_prices: pd.DataFrame, returns: pd.DataFrame,
                    clean_alt_data: pd.DataFrame, walkforward_forecasts: pd.DataFrame,
                    walkforward_summary: dict) -> dg.MaterializeResult:
    """The candidate: trained on the rolling window that ends `horizon + embargo` sessions before
    the newest data (so a retrain after new days learns them), with the feature pipeline fitted
    on that window and stored in its card; UBJSON with SHA-256 and HMAC; logged to MLflow and
    registered with alias `candidate`, beside a manifest that signs the model and its card as one.
    The deployment gates are its blocking checks."""
    ticker = context.partition_key
    wf = _walkforward(settings, config)
    training_years = config.apply(settings.value.forecast).training_years
    booster, card = train_final_model(wf, market_inputs(clean_prices, returns, clean_alt_data), ticker,
                                      registry.REGISTRY_VERSION, training_years)
    card.walkforward = {k: v for k, v in walkforward_summary["summary"].items()}
    gates = settings.value.gates
    card.live_monitor = fit_on_walkforward(walkforward_forecasts, clean_prices, false_alarm=gates.live_false_alarm,
                                           window=gates.live_window, vol_window=gates.live_vol_window).to_dict()
    data, card = serialize(booster, card, signer.key())
    tracker = mlflow.tracker()
    params = {**{f"xgb_{k}": v for k, v in wf.params.model_dump().items()},
              **{f"wf_{k}": v for k, v in wf.config.model_dump().items()},
              "horizon": wf.horizon, "registry_version": registry.REGISTRY_VERSION, "best_iteration": card.best_iteration,
              "train_start": card.train_start, "train_end": card.train_end, "features": len(card.feature_names)}
    costs = settings.value.costs
    folds = fold_metrics(walkforward_forecasts, costs.cost_bps, costs.slippage_bps)
    version = mlreg.log_candidate(tracker, ticker, data, card, walkforward_forecasts, params, folds,
                                  walkforward_summary["summary"],
                                  tags={"dagster_run_id": context.run.run_id,
                                        mlreg.VARIANT_TAG: walkforward_summary.get("variant", "")},
                                  key=signer.key())
    value = {"ticker": ticker, "version": version.version, "run_id": version.run_id, "source": version.source,
             "sha256": card.sha256, "signature": card.signature, "registry_version": card.registry_version,
             "feature_names": card.feature_names, "best_iteration": card.best_iteration,
             "data_sha256": card.data_sha256, "train_start": card.train_start, "train_end": card.train_end,
             "data_end": card.data_end, "horizon": card.horizon, "walkforward": walkforward_summary["walkforward"],
             "xgboost": walkforward_summary["xgboost"], "oos": walkforward_summary["summary"],
             "skill": walkforward_summary.get("skill"), "variant": walkforward_summary.get("variant")}
    return dg.MaterializeResult(value=value, metadata={
        "ticker": ticker, "mlflow_model": mlreg.model_name(ticker), "mlflow_version": version.version,
        "mlflow_run_id": version.run_id, "alias": mlreg.CANDIDATE, "model_sha256": card.sha256,
        "best_iteration": card.best_iteration, "model_bytes": len(data),
        "training_window": f"{card.train_start} .. {card.train_end} ({card.train_rows + card.validation_rows} rows)",
        "data_end": card.data_end, "features": len(card.feature_names),
        **artifacts_metadata([Artifact(f"{version.source}/{mlreg.MODEL_FILE}", card.sha256, len(data), "model",
                                       card.signature),
                              Artifact.of(f"{version.source}/{mlreg.CARD_FILE}", card_to_json(card).encode(), "card"),
                              Artifact.of(f"{version.source}/{MANIFEST_FILE}", version.manifest.to_json().encode(),
                                          "manifest", version.manifest.signature)]),
    })


@dg.asset(partitions_def=ticker_partitions, group_name=GROUP, kinds={"shap", "pandas"},
          ins={"forecast_models": dg.AssetIn(), "clean_prices": dg.AssetIn(), "returns": dg.AssetIn(),
               "clean_alt_data": dg.AssetIn()})
def shap_importance(context: dg.AssetExecutionContext, mlflow: MlflowTracking, signer: ArtifactSigner,
                    forecast_models: dict, clean_prices: pd.DataFrame, returns: pd.DataFrame,
                    clean_alt_data: pd.DataFrame) -> dg.MaterializeResult:
    """TreeSHAP mean |value| per feature over the candidate's last year of training rows; the top
    20 as a bar plot, logged to MLflow."""
    ticker = context.partition_key
    tracker = mlflow.tracker()
    version = mlreg.registered_version(forecast_models)
    booster, card = mlreg.load_registered(tracker, version, signer.key(), registry.REGISTRY_VERSION,
                                          forecast_models["feature_names"])
    table = card.feature_pipeline().transform(market_inputs(clean_prices, returns, clean_alt_data),
                                              card.pipeline_params(), [ticker])
    rows = table[table["date"] <= pd.Timestamp(card.train_end)].tail(252)
    top, figure_png = compute_shap(booster, rows, card.feature_names, top=20)
    mlreg.log_table(tracker, version.run_id, top, "shap/top20.csv")
    mlreg.log_figure_bytes(tracker, version.run_id, figure_png, "shap/top20.png")
    return dg.MaterializeResult(value=top, metadata={
        "ticker": ticker, "rows_explained": len(rows), "top20": md_table(top, rows=20, digits=6),
        "plot": png_bytes_markdown(figure_png, "shap")})


@dg.asset(partitions_def=ticker_partitions, group_name=GROUP, kinds={"mlflow"}, io_manager_key="json_io_manager",
          ins={"forecast_models": dg.AssetIn()})
def deployed_models(context: dg.AssetExecutionContext, mlflow: MlflowTracking, signer: ArtifactSigner,
                    forecast_models: dict) -> dg.MaterializeResult:
    """Moves the MLflow alias `champion` to this ticker's candidate, only if every deployment gate
    recorded a pass on exactly this candidate version and model, signed (checked here, so
    materializing this asset alone cannot promote a candidate that failed a gate, was never
    gated, or whose gate tags were edited)."""
    ticker = context.partition_key
    tracker = mlflow.tracker()
    gates = mlreg.gate_results(tracker, ticker, forecast_models["version"], signer.key())
    previous = mlreg.promote(tracker, ticker, forecast_models["version"], signer.key())
    value = {"ticker": ticker, "champion_version": forecast_models["version"], "previous_champion": previous,
             "run_id": forecast_models["run_id"], "sha256": forecast_models["sha256"], "gates": gates}
    return dg.MaterializeResult(value=value, metadata={
        "ticker": ticker, "champion_version": forecast_models["version"], "previous_champion": previous or "none",
        "mlflow_model": mlreg.model_name(ticker), "gates": md_table(pd.DataFrame(
            [{"gate": g, "result": r} for g, r in sorted(gates.items())]))})


NO_SKILL = "no model with skill"


@dg.multi_asset(
    outs={
        "forecasts": dg.AssetOut(description="The newest session's forecasts per ticker from its champion, or 'no model "
                                             "with skill' where no model earned deployment or the champion's live "
                                             "skill was lost, or 'champion refused' "
                                             "with the reason where the champion is not gated or not intact.",
                                 kinds={"xgboost", "pandas"}, freshness_policy=DAILY_FRESHNESS),
        "forecast_log": dg.AssetOut(description="Every live forecast by date, ticker and model version: the champion's "
                                                "forecasts of returns it never saw in training.",
                                    kinds={"pandas", "parquet"}),
    },
    ins={"clean_prices": dg.AssetIn(), "returns": dg.AssetIn(), "clean_alt_data": dg.AssetIn()},
    deps=["deployed_models"],
    group_name=GROUP,
)
def forecasts(context: dg.AssetExecutionContext, settings: SettingsResource, mlflow: MlflowTracking,
              signer: ArtifactSigner, storage: Storage, clean_prices: pd.DataFrame, returns: pd.DataFrame,
              clean_alt_data: pd.DataFrame):
    """Each champion's forecasts, from features built with the pipeline parameters it was trained
    with, after its gates (a verified pass of each on exactly its version and model), its signed
    manifest, hashes, signature and features were verified: the newest session for `forecasts`,
    and every session whose target lies beyond its training targets and is not yet logged for
    `forecast_log`. A refused champion serves nothing: its row says why and what to run, and the
    other tickers are served (the check champions_verified fails, naming it). A champion whose
    live-skill monitor alarmed (odyssey/live_skill.py) is demoted: its row says "no model with
    skill" and why, the portfolio has no view on it, and its forecasts are still logged, until a
    retrained candidate passes its gates and becomes champion."""
    tracker = mlflow.tracker()
    inputs = market_inputs(clean_prices, returns, clean_alt_data)
    names = registry.features_of(settings.value.universe)
    gates = settings.value.gates
    latest = clean_prices["date"].max()
    log = storage.stored_table("forecast_log")
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    rows, new, served = [], [], []
    for ticker in settings.value.universe.tickers:
        current = mlreg.champion(tracker, ticker, signer.key(), registry.REGISTRY_VERSION, names)
        if current is None or current.booster is None:
            status = NO_SKILL if current is None else f"{mlreg.REFUSED}: {current.problem}" if current.refused \
                else f"champion needs retraining: {current.problem}"
            if current is not None and current.refused:
                context.log.error(f"{ticker}: {status}")
            rows.append({"date": latest, "ticker": ticker, "prediction": np.nan, "model_version": None,
                         "status": status})
            continue
        champion, booster, card = current.version, current.booster, current.card
        dates = unlogged_dates(log, ticker, champion.version, pd.Timestamp(card.live_after),
                               clean_prices.loc[clean_prices["ticker"] == ticker, "date"].unique())
        wanted = dates.union(pd.DatetimeIndex([latest]))
        made = forecast(booster, card, inputs, wanted)
        new.append(made[made["date"].isin(dates)].assign(model_version=champion.version, horizon=card.horizon,
                                                         made_at=now))
        newest = made[made["date"] == latest]
        served.append((len(rows), card))
        rows.append({"date": latest, "ticker": ticker, "model_version": champion.version, "status": "champion",
                     "prediction": float(newest["prediction"].iloc[0]) if len(newest) else np.nan})
    updated = append_forecasts(log, pd.concat(new, ignore_index=True) if new else None)
    demoted = []
    for index, card in served:
        # a champion whose live skill is lost (judged on the log with this run's forecasts) serves
        # nothing until a candidate passes its gates; its forecasts are still logged, so the monitor
        # and the replay see what it would have said
        row = rows[index]
        live = judge_champion(card.live_monitor, updated, clean_prices, row["ticker"], row["model_version"],
                              gates.live_min_days)
        if live is not None and not live.passed:
            context.log.warning(f"{row['ticker']}: champion v{row['model_version']} demoted: {live.reason}")
            row.update(prediction=np.nan, status=f"{NO_SKILL}: {live.reason}")
            demoted.append(row["ticker"])
    table = pd.DataFrame(rows, columns=["date", "ticker", "prediction", "model_version", "status"])
    without = table.loc[table["status"] != "champion", "ticker"].tolist()
    refused = table.loc[table["status"].str.startswith(mlreg.REFUSED), "ticker"].tolist()
    yield dg.Output(table, "forecasts", metadata={
        "date": str(pd.Timestamp(latest).date()), "tickers": len(table), "with_champion": len(table) - len(without),
        "no_model_with_skill": ", ".join(without) or "none", "champion_refused": ", ".join(refused) or "none",
        "served_by_champion": ", ".join(table.loc[table["status"] == "champion", "ticker"]) or "none",
        "live_skill_lost": ", ".join(demoted) or "none",
        "forecasts": md_table(table, rows=30, digits=5)})
    yield dg.Output(updated, "forecast_log", metadata={
        "rows": len(updated), "new_rows": int(sum(len(n) for n in new)),
        "last_date": str(updated["date"].max().date()) if len(updated) else "none"})
