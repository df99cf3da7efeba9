"""Blocking deployment gates on forecast_models, per ticker partition. Each gate records its
verdict on exactly the candidate's MLflow version; deployed_models promotes only a version whose
every gate passed, so a failure stops promotion in the same run and in any later one."""

import dagster as dg
import pandas as pd

from odyssey import features as registry
from odyssey import registry as mlreg
from odyssey.canary import leakage_canary as run_canary
from odyssey.fitting import clean_market_data, market_inputs
from odyssey.gates import GateResult, plausibility_gate, regression_gate, skill_gate
from odyssey.models import FeatureVersionError, forecast
from odyssey.settings import WalkForwardSettings, XGBParams
from odyssey.signing import SignatureError
from odyssey.sources.columns import MarketData
from odyssey.walkforward import walkforward_from_settings
from resources.metadata import md_table
from resources.settings import SettingsResource, ticker_partitions
from resources.tracking import ArtifactSigner, MlflowTracking


def _record(context: dg.AssetCheckExecutionContext, mlflow: MlflowTracking, candidate: dict, gate: str,
            result: GateResult, **extra) -> dg.AssetCheckResult:
    mlreg.record_gate(mlflow.tracker(), candidate["ticker"], candidate["version"], gate, result.passed, result.reason,
                      context.run.run_id)
    metadata = {"reason": result.reason, "candidate_version": candidate["version"],
                **{k: v for k, v in result.details.items() if v is not None}, **extra}
    return dg.AssetCheckResult(passed=result.passed, metadata=metadata)


@dg.asset_check(asset="forecast_models", blocking=True, partitions_def=ticker_partitions,
                additional_ins={"raw_prices": dg.AssetIn(), "raw_alt_data": dg.AssetIn(),
                                "corporate_actions": dg.AssetIn(), "clean_prices": dg.AssetIn(),
                                "returns": dg.AssetIn(), "clean_alt_data": dg.AssetIn()},
                description="change every raw input after a fold's first test date, clean and retrain: nothing "
                            "the fold learns from, its model, or its predictions up to that date may move "
                            "(look-ahead features or cleaning, missing purge, fits or early stopping on future "
                            "rows)")
def leakage_canary(context: dg.AssetCheckExecutionContext, settings: SettingsResource, mlflow: MlflowTracking,
                   forecast_models: dict, raw_prices: pd.DataFrame, raw_alt_data: pd.DataFrame,
                   corporate_actions: pd.DataFrame, clean_prices: pd.DataFrame, returns: pd.DataFrame,
                   clean_alt_data: pd.DataFrame) -> dg.AssetCheckResult:
    gates, profile, rules = settings.value.gates, settings.profile(), settings.value.cleaning
    wf = walkforward_from_settings(settings.value, XGBParams(**forecast_models["xgboost"]),
                                   WalkForwardSettings(**forecast_models["walkforward"]))
    result = run_canary(wf, MarketData(raw_prices, raw_alt_data, corporate_actions), forecast_models["ticker"],
                        lambda raw: clean_market_data(raw, profile, rules).inputs, gates.canary_folds,
                        gates.canary_cuts, gates.canary_seed,
                        cleaned=market_inputs(clean_prices, returns, clean_alt_data))
    return _record(context, mlflow, forecast_models, "leakage_canary", GateResult(result.passed, result.reason,
                   result.details()), comparisons=md_table(result.table, rows=30))


@dg.asset_check(asset="forecast_models", blocking=True, partitions_def=ticker_partitions,
                additional_ins={"walkforward_forecasts": dg.AssetIn()},
                description="out-of-sample direction accuracy is below the implausibility bound for forward "
                            "returns (above it: suspected leakage)")
def plausible_accuracy(context: dg.AssetCheckExecutionContext, settings: SettingsResource, mlflow: MlflowTracking,
                       forecast_models: dict, walkforward_forecasts: pd.DataFrame) -> dg.AssetCheckResult:
    gates = settings.value.gates
    result = plausibility_gate(walkforward_forecasts, gates.implausible_direction_accuracy, gates.naive_margin)
    return _record(context, mlflow, forecast_models, "plausible_accuracy", result)


@dg.asset_check(asset="forecast_models", blocking=True, partitions_def=ticker_partitions,
                description="the walk-forward shows skill: the IC's interval lies above 0, or direction accuracy "
                            "beats the naive forecast beyond its interval; a constant model has neither")
def has_skill(context: dg.AssetCheckExecutionContext, settings: SettingsResource, mlflow: MlflowTracking,
              forecast_models: dict) -> dg.AssetCheckResult:
    result = skill_gate(forecast_models["oos"], settings.value.gates.min_skill_days)
    return _record(context, mlflow, forecast_models, "has_skill", result, best_iteration=forecast_models["best_iteration"])


@dg.asset_check(asset="forecast_models", blocking=True, partitions_def=ticker_partitions,
                description="the registered model's SHA-256 and HMAC verify, and its feature registry version and "
                            "features are this run's")
def signature_and_registry_version(context: dg.AssetCheckExecutionContext, settings: SettingsResource,
                                   mlflow: MlflowTracking, signer: ArtifactSigner,
                                   forecast_models: dict) -> dg.AssetCheckResult:
    version = mlreg.registered_version(forecast_models)
    names = registry.feature_names(settings.value.universe.alt_series)
    try:
        _, card = mlreg.load_registered(mlflow.tracker(), version, signer.key(), registry.REGISTRY_VERSION, names)
    except (SignatureError, FeatureVersionError) as error:
        result = GateResult(False, str(error), {})
    else:
        result = GateResult(True, f"hash, signature, registry {card.registry_version} and {len(names)} features "
                                  "verified", {"sha256": card.sha256})
    return _record(context, mlflow, forecast_models, "signature_and_registry_version", result)


@dg.asset_check(asset="forecast_models", blocking=True, partitions_def=ticker_partitions,
                additional_ins={"walkforward_forecasts": dg.AssetIn(), "clean_prices": dg.AssetIn(),
                                "returns": dg.AssetIn(), "clean_alt_data": dg.AssetIn()},
                description="on the sessions the champion forecast live whose outcome is known, the candidate's "
                            "walk-forward IC is not significantly worse than the champion's")
def no_regression(context: dg.AssetCheckExecutionContext, settings: SettingsResource, mlflow: MlflowTracking,
                  signer: ArtifactSigner, forecast_models: dict, walkforward_forecasts: pd.DataFrame,
                  clean_prices: pd.DataFrame, returns: pd.DataFrame, clean_alt_data: pd.DataFrame) -> dg.AssetCheckResult:
    names = registry.feature_names(settings.value.universe.alt_series)
    current = mlreg.champion(mlflow.tracker(), forecast_models["ticker"], signer.key(), registry.REGISTRY_VERSION, names)
    gates = settings.value.gates
    if current is not None and current.booster is None:
        result = GateResult(True, f"the champion cannot be compared ({current.problem}): it is replaced", {})
    else:
        live = None
        if current is not None:
            card = current.card
            dates = walkforward_forecasts.loc[walkforward_forecasts["date"] > pd.Timestamp(card.live_after), "date"]
            live = forecast(current.booster, card, market_inputs(clean_prices, returns, clean_alt_data), dates)
        result = regression_gate(walkforward_forecasts, live, gates.regression_tolerance, level=gates.skill_level)
    return _record(context, mlflow, forecast_models, "no_regression", result,
                   champion_version=current.version.version if current else "none")


DEPLOYMENT_CHECKS = [leakage_canary, plausible_accuracy, has_skill, signature_and_registry_version, no_regression]
