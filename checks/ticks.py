"""Checks of the `ticks` group: pandera schemas, the label that must not read the current
window, the replay that must rebuild the features bit for bit, the tick deployment gates
(recorded on exactly the candidate's MLflow version, which promotion reads) and drift."""

import dagster as dg
import pandas as pd

from checks.data_quality import make_schema_check
from odyssey import registry as mlreg
from odyssey import schemas
from odyssey.gates import GateResult
from odyssey.hashing import frame_sha256
from odyssey.signing import SignatureError
from odyssey.ticks.features import FEATURES, order_ticks, replay
from odyssey.ticks.labels import label_dependence
from odyssey.ticks.training import (TickCandidate, beats_baseline_gate, beats_positive_rate_gate, label_spec,
                                    load_tick_model, windows_of)
from resources.metadata import md_table, present
from resources.settings import SettingsResource
from resources.ticks import download_tick_model, tick_model_name, tick_tracker
from resources.tracking import ArtifactSigner, MlflowTracking

raw_ticks_schema = make_schema_check("raw_ticks", lambda s: schemas.raw_ticks_schema(s.ticks.product),
                                     "positive finite prices, quotes not crossed, the configured product")
tick_features_schema = make_schema_check("tick_features", lambda s: schemas.tick_features_schema(FEATURES),
                                         "finite features within their ranges, in time order")


@dg.asset_check(asset="tick_labels", blocking=True, additional_ins={"raw_ticks": dg.AssetIn()},
                description="the label at a message does not move when the returns up to it change (the seed's "
                            "label on the current window does: its PR-AUC near 1 means nothing)")
def label_is_forward(settings: SettingsResource, tick_labels: pd.DataFrame, raw_ticks: pd.DataFrame) -> dg.AssetCheckResult:
    ticks = settings.value.ticks
    spec = label_spec(ticks)
    result = label_dependence(order_ticks(raw_ticks), spec, windows_of(ticks), ticks.dependence_cuts,
                              stored=tick_labels.set_index("tick")[spec.name])
    return dg.AssetCheckResult(passed=result.passed, metadata={
        "reason": result.reason, "label": ticks.label, "messages_tried": result.tried, "labels_moved": result.changed,
        "cuts": md_table(result.table, rows=20)})


@dg.asset_check(asset="tick_features", blocking=True, additional_ins={"raw_ticks": dg.AssetIn()},
                description="the replay: the features rebuilt from the raw NDJSON files are bit for bit the stored "
                            "ones (SHA-256 of every value equal)")
def replay_identical(settings: SettingsResource, tick_features: pd.DataFrame,
                     raw_ticks: pd.DataFrame) -> dg.AssetCheckResult:
    ticks = settings.value.ticks
    landing, archive, _ = settings.value.paths.tick_landing_dirs
    result = replay(raw_ticks["source_file"].drop_duplicates().tolist(), landing, archive, ticks.product,
                    windows_of(ticks))
    if result.missing:
        return dg.AssetCheckResult(passed=False, metadata={"reason": f"raw files are gone: "
                                                                     f"{[str(p) for p in result.missing[:5]]}"})
    stored = frame_sha256(tick_features)
    passed = result.sha256 == stored
    return dg.AssetCheckResult(passed=passed, metadata={
        "stored_sha256": stored, "replayed_sha256": result.sha256, "files": len(result.paths),
        "rows": len(result.features),
        "reason": f"replay of {len(result.paths)} files " + (
            "is bit-identical" if passed else
            f"differs from the stored features ({len(result.features)} rows against {len(tick_features)})")})


def _record(context: dg.AssetCheckExecutionContext, mlflow: MlflowTracking, signer: ArtifactSigner,
            candidate: TickCandidate, gate: str, result: GateResult, thresholds: dict) -> dg.AssetCheckResult:
    mlreg.record_gate(tick_tracker(mlflow), candidate.product, candidate.version, gate, result.passed,
                      result.reason, key=signer.key(), model_sha256=candidate.card.sha256, thresholds=thresholds,
                      run_id=context.run.run_id, name=tick_model_name(candidate.product))
    return dg.AssetCheckResult(passed=result.passed, metadata={
        "reason": result.reason, "candidate_version": candidate.version,
        **present(result.details)})


@dg.asset_check(asset="tick_models", blocking=True,
                description="the candidate's test PR-AUC beats the threshold rule's by the margin, its paired "
                            "bootstrap interval above 0")
def tick_beats_baseline(context: dg.AssetCheckExecutionContext, settings: SettingsResource, mlflow: MlflowTracking,
                        signer: ArtifactSigner, tick_models: dict) -> dg.AssetCheckResult:
    candidate = TickCandidate.from_value(tick_models)
    ticks = settings.value.ticks
    return _record(context, mlflow, signer, candidate, "tick_beats_baseline",
                   beats_baseline_gate(candidate.card, ticks.baseline_margin),
                   {"baseline_margin": ticks.baseline_margin, "level": ticks.level})


@dg.asset_check(asset="tick_models", blocking=True,
                description="the lower end of the candidate's test PR-AUC interval is above the positive rate")
def tick_beats_positive_rate(context: dg.AssetCheckExecutionContext, settings: SettingsResource,
                             mlflow: MlflowTracking, signer: ArtifactSigner, tick_models: dict) -> dg.AssetCheckResult:
    candidate = TickCandidate.from_value(tick_models)
    return _record(context, mlflow, signer, candidate, "tick_beats_positive_rate",
                   beats_positive_rate_gate(candidate.card), {"level": settings.value.ticks.level})


@dg.asset_check(asset="tick_models", blocking=True,
                description="the registered tick model's signed manifest verifies, with the SHA-256 of the model "
                            "and its card in it, the model's HMAC verifies and it loads")
def tick_model_signature(context: dg.AssetCheckExecutionContext, mlflow: MlflowTracking, signer: ArtifactSigner,
                         tick_models: dict) -> dg.AssetCheckResult:
    tracker = tick_tracker(mlflow)
    candidate = TickCandidate.from_value(tick_models)
    version = mlreg.RegisteredVersion(candidate.product, candidate.version, candidate.run_id, candidate.source)
    try:
        payload, card = download_tick_model(tracker, version, signer.key())
        load_tick_model(payload, card, signer.key())
    except SignatureError as error:
        result = GateResult(False, str(error), {})
    else:
        result = GateResult(True, f"the signed manifest, {card.file} (SHA-256 {card.sha256[:12]}…, HMAC) and its "
                                  "card verify", {"sha256": card.sha256})
    return _record(context, mlflow, signer, candidate, "tick_model_signature", result, {})


@dg.asset_check(asset="tick_drift",
                description="the share of drifted tick features (window-mean z above the threshold, Evidently) and "
                            "the forward volatility's size are under their thresholds")
def tick_drift_check(settings: SettingsResource, tick_drift: pd.DataFrame) -> dg.AssetCheckResult:
    ticks = settings.value.ticks
    limit = settings.value.monitoring.max_share_drifted
    share = float(tick_drift["drifted"].mean())
    target_z = float(tick_drift["target_z"].iloc[0])
    drifted = share > limit or target_z > ticks.drift_z_threshold
    top = tick_drift.sort_values("window_z", ascending=False).head(5)
    reason = (f"{share:.0%} of tick features drifted (threshold {limit:.0%}), forward volatility z {target_z:.1f} "
              f"(threshold {ticks.drift_z_threshold}); most: "
              + ", ".join(f"{r.feature} z {r.window_z:.1f}" for r in top.itertuples()))
    return dg.AssetCheckResult(passed=not drifted, metadata={"share_drifted": share, "target_z": target_z,
                                                             "reason": reason})


TICK_CHECKS = [raw_ticks_schema, tick_features_schema, label_is_forward, replay_identical, tick_beats_baseline,
               tick_beats_positive_rate, tick_model_signature, tick_drift_check]
