"""Group `ticks`: the tick-level volatility-spike pipeline for one product (settings [ticks]).

raw_ticks (NDJSON ticker messages: the archive, plus a landing run's new files) -> tick_features
(windows of messages and of seconds) -> tick_labels (the honest forward label, tau fitted on the
train part, 60/20/20 purged split) -> tick_models (threshold rule, logistic regression,
XGBoost; the candidate in MLflow, signed, gated) -> tick_champion (alias `champion`, only after
every gate passed) -> tick_drift (Evidently, recent messages against the training window).
"""

from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from odyssey import registry as mlreg
from odyssey.drift import evidently_drift
from odyssey.hashing import frame_sha256
from odyssey.lineage import Artifact
from odyssey.signing import MANIFEST_FILE
from odyssey.ticks import features as tf
from odyssey.ticks.labels import label_table, labelled
from odyssey.ticks.source import generate_ticks, read_tick_files, tick_files, write_days
from odyssey.ticks.training import (TICK_GATES, TickCandidate, candidate_card, label_spec, train_tick_models,
                                    windows_of)
from resources.metadata import artifacts_metadata, describe_table, md_table
from resources.settings import SettingsResource
from resources.storage import Storage
from resources.ticks import CARD_FILE, TICK_MODEL, tick_model_name, tick_tracker
from resources.ticks import tick_champion as tick_champion_card
from resources.tracking import ArtifactSigner, MlflowTracking

GROUP = "ticks"


class LandedTickFiles(dg.Config):
    files: list[str] = Field(default_factory=list, description="landing files to ingest with the archive (the tick "
                                                               "landing sensor fills this)")


@dg.asset(group_name=GROUP, kinds={"pandas", "parquet"})
def raw_ticks(context: dg.AssetExecutionContext, config: LandedTickFiles, settings: SettingsResource) -> dg.MaterializeResult:
    """Every ticker message of the product: the archived NDJSON files (one per day) and, in a
    landing run, the new files the sensor judged good (it archives them once the run succeeded).
    With an empty archive and no files, the synthetic market's first days are written to the
    archive first (the embedded default; settings ticks.source_kind = "files" never does)."""
    ticks = settings.value.ticks
    landing, archive, _ = settings.value.paths.tick_landing_dirs
    if not tick_files(archive) and not config.files:
        if ticks.source_kind != "synthetic":
            raise FileNotFoundError(f"no tick files in {archive}: put NDJSON files of ticker messages there, or in "
                                    f"{landing} for tick_landing_sensor to ingest (settings ticks.source_kind = "
                                    f"'files')")
        write_days(generate_ticks(ticks.source, ticks.product), archive)
        context.log.info(f"wrote {ticks.source.days} synthetic days of {ticks.product} ticks to {archive}")
    archived = tick_files(archive)
    archived_names = {p.name for p in archived}
    landed = [Path(f) for f in config.files if Path(f).name not in archived_names]
    frame, files = read_tick_files([*archived, *landed], ticks.product)
    if frame.empty:
        raise ValueError(f"no {ticks.product} ticker messages in {[str(p) for p in archived + landed]}")
    return dg.MaterializeResult(value=frame, metadata={
        **describe_table(frame, ["timestamp", "price", "best_bid", "best_ask", "source_file"]),
        "product": ticks.product, "files": len(files), "landed_files": len(landed),
        "first": str(frame["timestamp"].min()), "last": str(frame["timestamp"].max()),
        "skipped_messages": sum(f.skipped for f in files),
        "file_list": md_table(pd.DataFrame([{"file": f.path.name, "messages": len(f.ticks), "sha256": f.sha256[:16]}
                                            for f in files]), rows=60),
        **artifacts_metadata([Artifact(str(f.path), f.sha256, f.path.stat().st_size, "raw")
                              for f in files if f.path.parent == archive]),
    })


@dg.asset(group_name=GROUP, kinds={"pandas", "parquet"})
def tick_features(settings: SettingsResource, raw_ticks: pd.DataFrame) -> dg.MaterializeResult:
    """Per message, over the last N messages and the last S seconds: the seed's midprice,
    midprice_return, rolling_vol, spread and trade_intensity (messages per second), plus the
    spread in bps, messages and realised volatility in S seconds, the short/long volatility
    ratio, trade-side and tick-rule imbalances and the gap since the last message."""
    ticks = settings.value.ticks
    table = tf.tick_features(tf.order_ticks(raw_ticks), windows_of(ticks))
    return dg.MaterializeResult(value=table, metadata={
        **describe_table(table, ["timestamp", "midprice", "rolling_vol", "trade_intensity", "trade_imbalance"]),
        "window_ticks": ticks.window_ticks, "window_seconds": ticks.window_seconds,
        "content_sha256": frame_sha256(table)})


@dg.asset(group_name=GROUP, kinds={"pandas", "parquet"})
def tick_labels(settings: SettingsResource, tick_features: pd.DataFrame) -> dg.MaterializeResult:
    """y = 1 when the volatility of the next H messages reaches tau, the 95th percentile of that
    forward volatility on the train part only; the chronological 60/20/20 split with H messages
    purged before each boundary (settings ticks.label = "contemporaneous" builds the seed's label
    instead, which the check label_is_forward rejects)."""
    ticks = settings.value.ticks
    spec = label_spec(ticks)
    table, params = label_table(tick_features, spec, ticks.train_share, ticks.validation_share)
    table["tau"] = params["tau"]
    counts = table.groupby("split")["y"].agg(["size", "mean"]).rename(columns={"size": "rows", "mean": "positive_rate"})
    return dg.MaterializeResult(value=table, metadata={
        "label": spec.kind, "horizon_ticks": spec.horizon, "tau": params["tau"], "quantile": spec.quantile,
        "splits": md_table(counts.reset_index(), digits=4)})


@dg.asset(group_name=GROUP, kinds={"xgboost", "mlflow"}, io_manager_key="json_io_manager")
def tick_models(context: dg.AssetExecutionContext, settings: SettingsResource, mlflow: MlflowTracking,
                signer: ArtifactSigner, tick_features: pd.DataFrame, tick_labels: pd.DataFrame) -> dg.MaterializeResult:
    """The seed's threshold rule and logistic regression (balanced, max_iter 1000) and XGBoost,
    with PR-AUC, F1, precision and recall on the train, validation and test parts (block-bootstrap
    intervals) logged to MLflow; the better learnt model on validation is registered as the
    `candidate`: coefficients as JSON or XGBoost UBJSON, SHA-256 and HMAC, never pickled. Its
    gates are this asset's blocking checks."""
    ticks = settings.value.ticks
    data = labelled(tick_features, tick_labels)
    tau = float(tick_labels["tau"].iloc[0])
    training = train_tick_models(data, tau, ticks)
    payload, card = candidate_card(training, ticks, data, tau, frame_sha256(data), signer.key())
    tracker = tick_tracker(mlflow)
    evaluation = training.evaluation
    metrics = {f"{r.model}_{r.split}_{m}": float(getattr(r, m)) for r in evaluation.itertuples()
               for m in ("pr_auc", "pr_auc_ci_low", "pr_auc_ci_high", "positive_rate", "precision", "recall", "f1")}
    run_id = mlreg.log_run(
        tracker, f"{ticks.product}-{card.sha256[:8]}",
        params={"candidate": card.kind, "label": card.label, "horizon_ticks": card.horizon_ticks, "tau": tau,
                "window_ticks": ticks.window_ticks, "window_seconds": ticks.window_seconds,
                "train_rows": card.train_rows, "bootstrap_reps": ticks.bootstrap_reps,
                "bootstrap_block_ticks": ticks.bootstrap_block_ticks,
                **{f"model_{k}": v for k, v in ticks.models.model_dump().items()}},
        metrics=metrics, step_metrics={},
        artifacts={"evaluation/metrics.csv": evaluation.to_csv(index=False).encode()},
        tags={"product": ticks.product, "dagster_run_id": context.run.run_id, "data_sha256": card.data_sha256})
    name = tick_model_name(ticks.product)
    card_bytes = card.to_json().encode()
    manifest = mlreg.log_signed_folder(tracker, run_id, TICK_MODEL, name, ticks.product,
                                       {card.file: payload, CARD_FILE: card_bytes}, signer.key(), card.file)
    source = f"{tracker.client().get_run(run_id).info.artifact_uri}/{mlreg.MODEL_FOLDER}"
    version, source = mlreg.register_version(tracker, name, f"volatility-spike classifier for {ticks.product} ticks",
                                             source, run_id, {"sha256": card.sha256, "kind": card.kind})
    value = TickCandidate(ticks.product, version, run_id, source, card).to_value()
    shown = evaluation[["model", "split", "pr_auc", "pr_auc_ci_low", "pr_auc_ci_high", "positive_rate", "precision",
                        "recall", "f1", "pr_auc_minus_baseline"]]
    return dg.MaterializeResult(value=value, metadata={
        "product": ticks.product, "candidate": card.kind, "mlflow_model": tick_model_name(ticks.product),
        "mlflow_version": version,
        "mlflow_run_id": run_id, "alias": mlreg.CANDIDATE, "model_sha256": card.sha256, "tau": tau,
        "train_rows": card.train_rows, "evaluation": md_table(shown, rows=18, digits=4),
        **artifacts_metadata([Artifact(f"{source}/{card.file}", card.sha256, len(payload), "model", card.signature),
                              Artifact.of(f"{source}/{CARD_FILE}", card_bytes, "card"),
                              Artifact.of(f"{source}/{MANIFEST_FILE}", manifest.to_json().encode(), "manifest",
                                          manifest.signature)]),
    })


@dg.asset(group_name=GROUP, kinds={"mlflow"}, io_manager_key="json_io_manager")
def tick_champion(context: dg.AssetExecutionContext, settings: SettingsResource, mlflow: MlflowTracking,
                  signer: ArtifactSigner, tick_models: dict) -> dg.MaterializeResult:
    """Moves the MLflow alias `champion` to the tick candidate only if every tick gate recorded a
    signed pass on exactly this version and model (read back here, so materializing this asset
    alone cannot promote a candidate that failed, was never gated, or whose gate tags were
    edited)."""
    tracker = tick_tracker(mlflow)
    candidate = TickCandidate.from_value(tick_models)
    name = tick_model_name(candidate.product)
    gates = mlreg.gate_results(tracker, candidate.product, candidate.version, signer.key(), name)
    previous = mlreg.promote(tracker, candidate.product, candidate.version, signer.key(), name, TICK_GATES,
                             "Materialize tick_models with its checks (the tick_training job) and promote a candidate "
                             "that passes them all.")
    value = {"product": candidate.product, "champion_version": candidate.version, "previous_champion": previous,
             "kind": candidate.card.kind, "gates": gates}
    return dg.MaterializeResult(value=value, metadata={
        "champion_version": candidate.version, "previous_champion": previous or "none",
        "kind": value["kind"], "mlflow_model": name,
        "gates": md_table(pd.DataFrame([{"gate": g, "result": r} for g, r in sorted(gates.items())]))})


@dg.asset(group_name=GROUP, kinds={"evidently", "pandas"}, deps=["tick_champion"])
def tick_drift(context: dg.AssetExecutionContext, settings: SettingsResource, storage: Storage, mlflow: MlflowTracking,
               signer: ArtifactSigner, tick_features: pd.DataFrame, tick_labels: pd.DataFrame) -> dg.MaterializeResult:
    """Evidently data-drift report (HTML + JSON) of the most recent messages against the end of
    the champion's training window (the train part while there is no champion, or the champion is
    refused: not gated, or its card or model does not match its signed manifest): per model
    feature the window-mean z-score (the decision), PSI and KL, and the forward volatility's.
    Its check feeds the retraining sensor. The split is chronological, so a retraining right after
    a change trains on the old regime; the new one enters training as more days land."""
    ticks = settings.value.ticks
    spec = label_spec(ticks)
    data = labelled(tick_features, tick_labels, ("split", spec.name))
    champion = tick_champion_card(tick_tracker(mlflow), ticks.product, signer.key())
    if champion.card is not None:
        card = champion.card
        stamps = data["timestamp"]
        window = (stamps >= pd.Timestamp(card.train_start)) & (stamps <= pd.Timestamp(card.train_end))
        reference, source = data[window], f"champion v{champion.version.version}"
    else:
        reference, source = data[data["split"] == "train"], "train part"
        if champion.refused:
            context.log.error(f"{ticks.product}: {champion.refused}")
            source += f"; champion v{champion.version.version} refused: {champion.refused}"
    reference = reference.tail(ticks.drift_reference_ticks)
    current = data.tail(ticks.drift_window_ticks)
    columns = [c for c in tf.MODEL_FEATURES if c != "midprice_return"]
    report = evidently_drift(reference, current, columns, spec.name, ticks.drift_z_threshold)
    folder = storage.path("reports", "ticks")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tick_drift.html").write_bytes(report.html)
    (folder / "tick_drift.json").write_bytes(report.json)
    value = report.table.assign(target_psi=report.target_psi, target_z=report.target_z)
    return dg.MaterializeResult(value=value, metadata={
        "share_drifted": report.share_drifted, "target_z": report.target_z, "target_psi": report.target_psi,
        "reference": f"{reference['timestamp'].min()} .. {reference['timestamp'].max()} ({len(reference)} messages, "
                     f"{source})",
        "current": f"{current['timestamp'].min()} .. {current['timestamp'].max()} ({len(current)} messages)",
        "html_report": dg.MetadataValue.path(str(folder / "tick_drift.html")),
        "json_report": dg.MetadataValue.path(str(folder / "tick_drift.json")),
        "psi_kl": md_table(report.table, rows=20, digits=4),
        **artifacts_metadata([Artifact.of(str(folder / "tick_drift.html"), report.html, "report"),
                              Artifact.of(str(folder / "tick_drift.json"), report.json, "report")]),
    })
