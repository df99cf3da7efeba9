"""Blocking deployment gates on forecast_models, per ticker partition. Each gate records its
verdict, signed, on exactly the candidate's MLflow version and model hash, with the thresholds it
judged with; deployed_models promotes only a version whose every gate passed, so a failure stops
promotion in the same run and in any later one. And `champions_verified` on forecasts: no
champion was refused for serving."""

import dagster as dg
import pandas as pd

from odyssey import features as registry
from odyssey import registry as mlreg
from odyssey.canary import leakage_canary as run_canary
from odyssey.fitting import clean_market_data, market_inputs
from odyssey.gates import EVALUABLE_KEY, GateResult, plausibility_gate, regression_gate, skill_gate
from odyssey.models import FeatureVersionError, forecast
from odyssey.settings import WalkForwardSettings, XGBParams
from odyssey.signing import SignatureError
from odyssey.skill import SkillEvidence, family_decision
from odyssey.sources.columns import MarketData
from odyssey.walkforward import walkforward_from_settings
from resources.metadata import md_table
from resources.settings import SettingsResource, ticker_partitions
from resources.storage import Storage
from resources.tracking import ArtifactSigner, MlflowTracking


def _record(context: dg.AssetCheckExecutionContext, mlflow: MlflowTracking, signer: ArtifactSigner, candidate: dict,
            gate: str, result: GateResult, thresholds: dict, **extra) -> dg.AssetCheckResult:
    mlreg.record_gate(mlflow.tracker(), candidate["ticker"], candidate["version"], gate, result.passed, result.reason,
                      key=signer.key(), model_sha256=candidate["sha256"], thresholds=thresholds,
                      run_id=context.run.run_id)
    metadata = {"reason": result.reason, EVALUABLE_KEY: result.evaluable, "candidate_version": candidate["version"],
                **{k: v for k, v in result.details.items() if v is not None}, **extra}
    return dg.AssetCheckResult(passed=result.passed, metadata=metadata)


def _thresholds(gates, *names: str) -> dict:
    """The settings a gate judged with, signed into its verdict."""
    return {name: getattr(gates, name) for name in names}


@dg.asset_check(asset="forecast_models", blocking=True, partitions_def=ticker_partitions,
                additional_ins={"raw_prices": dg.AssetIn(), "raw_alt_data": dg.AssetIn(),
                                "corporate_actions": dg.AssetIn(), "clean_prices": dg.AssetIn(),
                                "returns": dg.AssetIn(), "clean_alt_data": dg.AssetIn()},
                description="change every raw input after a fold's first test date, clean and retrain: nothing "
                            "the fold learns from, its model, or its predictions up to that date may move "
                            "(look-ahead features or cleaning, missing purge, fits or early stopping on future "
                            "rows)")
def leakage_canary(context: dg.AssetCheckExecutionContext, settings: SettingsResource, mlflow: MlflowTracking,
                   signer: ArtifactSigner, forecast_models: dict, raw_prices: pd.DataFrame,
                   raw_alt_data: pd.DataFrame, corporate_actions: pd.DataFrame, clean_prices: pd.DataFrame,
                   returns: pd.DataFrame, clean_alt_data: pd.DataFrame) -> dg.AssetCheckResult:
    gates, profile, rules = settings.value.gates, settings.profile(), settings.value.cleaning
    wf = walkforward_from_settings(settings.value, XGBParams(**forecast_models["xgboost"]),
                                   WalkForwardSettings(**forecast_models["walkforward"]))
    result = run_canary(wf, MarketData(raw_prices, raw_alt_data, corporate_actions), forecast_models["ticker"],
                        lambda raw: clean_market_data(raw, profile, rules).inputs, gates.canary_folds,
                        gates.canary_cuts, gates.canary_seed,
                        # the stored clean data as this run's cleaning leaves them (its alternative series)
                        cleaned=market_inputs(clean_prices, returns, clean_alt_data[
                            [c for c in clean_alt_data.columns if c == "date" or c in profile.alt_series]]))
    return _record(context, mlflow, signer, forecast_models, "leakage_canary",
                   GateResult(result.passed, result.reason, result.details()),
                   _thresholds(gates, "canary_folds", "canary_cuts", "canary_seed"),
                   comparisons=md_table(result.table, rows=30))


@dg.asset_check(asset="forecast_models", blocking=True, partitions_def=ticker_partitions,
                additional_ins={"walkforward_forecasts": dg.AssetIn()},
                description="out-of-sample direction accuracy is below the implausibility bound for forward "
                            "returns (above it: suspected leakage)")
def plausible_accuracy(context: dg.AssetCheckExecutionContext, settings: SettingsResource, mlflow: MlflowTracking,
                       signer: ArtifactSigner, forecast_models: dict,
                       walkforward_forecasts: pd.DataFrame) -> dg.AssetCheckResult:
    gates = settings.value.gates
    result = plausibility_gate(walkforward_forecasts, gates.implausible_direction_accuracy, gates.naive_margin)
    return _record(context, mlflow, signer, forecast_models, "plausible_accuracy", result,
                   _thresholds(gates, "implausible_direction_accuracy", "naive_margin"))


def universe_skill(storage: Storage, tickers, ticker: str, evidence: SkillEvidence | None) -> dict[str, float | None]:
    """Every ticker's skill p-value for the family-wise decision: this candidate's own, and each
    other ticker's from its stored walk-forward summary (None when it has none yet)."""
    out: dict[str, float | None] = {}
    for other in tickers:
        if other == ticker:
            out[other] = evidence.p if evidence is not None else None
            continue
        summary = storage.stored_json("walkforward_summary", other)
        out[other] = summary["skill"]["p"] if summary and summary.get("skill") else None
    return out


@dg.asset_check(asset="forecast_models", blocking=True, partitions_def=ticker_partitions,
                description="the walk-forward shows skill worth deploying, family-wise: the IC of excess returns "
                            "and a long-only tilt's return over holding after costs both reject 'no skill', and "
                            "the ticker survives Holm's (or Benjamini-Hochberg's) adjustment over every ticker's "
                            "p-value times the model variants tried (gates.family_method, family_rate)")
def has_skill(context: dg.AssetCheckExecutionContext, settings: SettingsResource, mlflow: MlflowTracking,
              signer: ArtifactSigner, storage: Storage, forecast_models: dict) -> dg.AssetCheckResult:
    gates = settings.value.gates
    ticker = forecast_models["ticker"]
    evidence = SkillEvidence(**forecast_models["skill"]) if forecast_models.get("skill") else None
    decision = family_decision(universe_skill(storage, settings.value.universe.tickers, ticker, evidence),
                               max(gates.variants_tried, mlreg.variants_tried(mlflow.tracker())),
                               gates.family_method, gates.family_rate)
    result = skill_gate(ticker, evidence, decision, gates.min_skill_days)
    return _record(context, mlflow, signer, forecast_models, "has_skill", result,
                   {**_thresholds(gates, "min_skill_days", "family_method", "family_rate", "variants_tried"),
                    "variants": decision.variants, "hypotheses": decision.hypotheses},
                   best_iteration=forecast_models["best_iteration"], family=md_table(decision.table(), digits=4))


@dg.asset_check(asset="forecast_models", blocking=True, partitions_def=ticker_partitions,
                description="the registered model's signed manifest verifies, with the SHA-256 of the model and "
                            "its card in it, the model's HMAC verifies, and its feature registry version and features "
                            "are this run's")
def signature_and_registry_version(context: dg.AssetCheckExecutionContext, settings: SettingsResource,
                                   mlflow: MlflowTracking, signer: ArtifactSigner,
                                   forecast_models: dict) -> dg.AssetCheckResult:
    version = mlreg.registered_version(forecast_models)
    names = registry.features_of(settings.value.universe)
    try:
        _, card = mlreg.load_registered(mlflow.tracker(), version, signer.key(), registry.REGISTRY_VERSION, names)
    except (SignatureError, FeatureVersionError) as error:
        result = GateResult(False, str(error), {})
    else:
        result = GateResult(True, f"hash, signature, registry {card.registry_version} and {len(names)} features "
                                  "verified", {"sha256": card.sha256})
    return _record(context, mlflow, signer, forecast_models, "signature_and_registry_version", result,
                   {"registry_version": registry.REGISTRY_VERSION, "features": len(names)})


@dg.asset_check(asset="forecast_models", blocking=True, partitions_def=ticker_partitions,
                additional_ins={"walkforward_forecasts": dg.AssetIn(), "clean_prices": dg.AssetIn(),
                                "returns": dg.AssetIn(), "clean_alt_data": dg.AssetIn()},
                description="on the sessions the champion forecast live whose outcome is known, the candidate's "
                            "walk-forward IC is not significantly worse than the champion's")
def no_regression(context: dg.AssetCheckExecutionContext, settings: SettingsResource, mlflow: MlflowTracking,
                  signer: ArtifactSigner, forecast_models: dict, walkforward_forecasts: pd.DataFrame,
                  clean_prices: pd.DataFrame, returns: pd.DataFrame, clean_alt_data: pd.DataFrame) -> dg.AssetCheckResult:
    names = registry.features_of(settings.value.universe)
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
    return _record(context, mlflow, signer, forecast_models, "no_regression", result,
                   _thresholds(gates, "regression_tolerance", "skill_level"),
                   champion_version=current.version.version if current else "none")


@dg.asset_check(asset="forecasts",
                description="no ticker's champion was refused: every `champion` alias points at a version whose "
                            "gates all recorded a verified pass on it and whose files match its signed manifest "
                            "(a refused champion serves nothing; the other tickers are served)")
def champions_verified(forecasts: pd.DataFrame) -> dg.AssetCheckResult:
    refused = forecasts[forecasts["status"].astype(str).str.startswith(mlreg.REFUSED)]
    reason = "; ".join(f"{r.ticker}: {r.status}" for r in refused.itertuples()) or \
        f"no champion refused among {len(forecasts)} tickers"
    return dg.AssetCheckResult(passed=refused.empty, metadata={
        "reason": reason[:4000], "refused": ", ".join(refused["ticker"]) or "none"})


DEPLOYMENT_CHECKS = [leakage_canary, plausible_accuracy, has_skill, signature_and_registry_version, no_regression,
                     champions_verified]
