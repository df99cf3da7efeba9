"""Blocking deployment gates on forecast_models, per ticker partition: a failure stops
deployed_models for that ticker in the same run, so the previous champion stays."""

import dagster as dg
import pandas as pd

from assets.forecasting import ticker_partitions
from assets.metadata import md_table
from odyssey import features as registry
from odyssey import registry as mlreg
from odyssey.gates import IMPLAUSIBLE_DIRECTION_ACCURACY, canary_gate, plausibility_gate, regression_gate
from odyssey.models import FeatureVersionError
from odyssey.signing import SignatureError
from odyssey.walkforward import WalkForwardConfig, XGBParams, run_walkforward, ticker_frame
from resources.tracking import ArtifactSigner, MlflowTracking


class GateConfig(dg.Config):
    canary_accuracy_tolerance: float = 0.05
    canary_ic_bound: float = 0.10
    canary_seed: int = 0
    implausible_direction_accuracy: float = IMPLAUSIBLE_DIRECTION_ACCURACY
    naive_margin: float = 0.05  # above the bound is still plausible within this of the naive forecast
    regression_tolerance: float = 0.02


def _result(gate, **extra) -> dg.AssetCheckResult:
    metadata = {"reason": gate.reason, **{k: v for k, v in gate.details.items() if v is not None}, **extra}
    return dg.AssetCheckResult(passed=gate.passed, metadata=metadata)


@dg.asset_check(asset="forecast_models", blocking=True, partitions_def=ticker_partitions,
                additional_ins={"features": dg.AssetIn(), "clean_prices": dg.AssetIn()},
                description="walk-forward with the target shuffled inside each fold scores at chance")
def leakage_canary(context: dg.AssetCheckExecutionContext, config: GateConfig, forecast_models: dict,
                   features: pd.DataFrame, clean_prices: pd.DataFrame) -> dg.AssetCheckResult:
    ticker = forecast_models["ticker"]
    frame = ticker_frame(features, clean_prices, ticker, registry.FEATURE_NAMES)
    shuffled = run_walkforward(frame, registry.FEATURE_NAMES, XGBParams(**forecast_models["xgboost"]),
                               WalkForwardConfig(**forecast_models["walkforward"]),
                               shuffle_target_seed=config.canary_seed)
    return _result(canary_gate(shuffled.predictions, config.canary_accuracy_tolerance, config.canary_ic_bound),
                   ticker=ticker)


@dg.asset_check(asset="forecast_models", blocking=True, partitions_def=ticker_partitions,
                additional_ins={"walkforward_forecasts": dg.AssetIn()},
                description="out-of-sample direction accuracy is below the implausibility bound for "
                            "5-day returns (above it: suspected leakage)")
def plausible_accuracy(config: GateConfig, forecast_models: dict,
                       walkforward_forecasts: pd.DataFrame) -> dg.AssetCheckResult:
    return _result(plausibility_gate(walkforward_forecasts, config.implausible_direction_accuracy, config.naive_margin),
                   ticker=forecast_models["ticker"])


@dg.asset_check(asset="forecast_models", blocking=True, partitions_def=ticker_partitions,
                description="the registered model's SHA-256 and HMAC verify and its feature registry "
                            "version is the current one")
def signature_and_registry_version(mlflow: MlflowTracking, signer: ArtifactSigner,
                                   forecast_models: dict) -> dg.AssetCheckResult:
    version = mlreg.registered_version(forecast_models)
    try:
        _, card = mlreg.load_registered(mlflow.tracker(), version, signer.key(), registry.REGISTRY_VERSION,
                                        registry.FEATURE_NAMES)
    except (SignatureError, FeatureVersionError) as error:
        return dg.AssetCheckResult(passed=False, metadata={"reason": str(error), "version": version.version})
    return dg.AssetCheckResult(passed=True, metadata={
        "reason": "hash, signature and feature registry version verified", "version": version.version,
        "sha256": card.sha256, "registry_version": card.registry_version})


@dg.asset_check(asset="forecast_models", blocking=True, partitions_def=ticker_partitions,
                additional_ins={"walkforward_forecasts": dg.AssetIn()},
                description="the candidate is not worse than the current champion on the same "
                            "out-of-sample days (IC, within a tolerance)")
def no_regression(config: GateConfig, mlflow: MlflowTracking, forecast_models: dict,
                  walkforward_forecasts: pd.DataFrame) -> dg.AssetCheckResult:
    tracker = mlflow.tracker()
    champion = mlreg.version_by_alias(tracker, forecast_models["ticker"], mlreg.CHAMPION)
    champion_oos = mlreg.download_oos(tracker, champion) if champion else None
    gate = regression_gate(walkforward_forecasts, champion_oos, config.regression_tolerance)
    return _result(gate, champion_version=champion.version if champion else "none",
                   candidate_version=forecast_models["version"])


DEPLOYMENT_CHECKS = [leakage_canary, plausible_accuracy, signature_and_registry_version, no_regression]
