"""Experiment tracking and the model registry on MLflow: one registered model per ticker,
aliases `candidate` (newest trained) and `champion` (deployed)."""

from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import xgboost as xgb

from odyssey.models import FeatureVersionError, ModelCard, card_from_json, card_to_json, load_verified

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

CANDIDATE, CHAMPION = "candidate", "champion"
MODEL_FILE, CARD_FILE, OOS_FILE = "model.ubj", "card.json", "oos_predictions.parquet"


def model_name(ticker: str) -> str:
    return f"odyssey-forecast-{ticker}"


@dataclass
class Tracker:
    """An MLflow client bound to one experiment."""

    tracking_uri: str
    artifact_root: str
    experiment: str = "odyssey-forecasting"

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def experiment_id(self) -> str:
        client = self.client()
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        try:
            return client.create_experiment(self.experiment, artifact_location=self.artifact_root)
        except MlflowException:  # created concurrently
            return client.get_experiment_by_name(self.experiment).experiment_id


@dataclass
class RegisteredVersion:
    ticker: str
    version: str
    run_id: str
    source: str


def log_candidate(tracker: Tracker, ticker: str, model_bytes: bytes, card: ModelCard, oos: pd.DataFrame,
                  params: dict, fold_metrics: pd.DataFrame, summary_metrics: dict, tags: dict) -> RegisteredVersion:
    """One MLflow run with params, per-fold and summary metrics, the signed model, its card and the
    out-of-sample predictions; registered as a new version with alias `candidate`."""
    client = tracker.client()
    run = client.create_run(tracker.experiment_id(), run_name=f"{ticker}-{card.sha256[:8]}",
                            tags={"ticker": ticker, "registry_version": card.registry_version,
                                  "data_sha256": card.data_sha256, **tags})
    run_id = run.info.run_id
    try:
        for key, value in params.items():
            client.log_param(run_id, key, value)
        for row in fold_metrics.to_dict("records"):
            for metric in ("rmse", "r2", "direction_accuracy", "ic", "sharpe"):
                client.log_metric(run_id, f"fold_{metric}", float(row[metric]), step=int(row["fold"]))
        for key, value in summary_metrics.items():
            if isinstance(value, (int, float)):
                client.log_metric(run_id, key, float(value))
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "model"
            folder.mkdir()
            (folder / MODEL_FILE).write_bytes(model_bytes)
            (folder / CARD_FILE).write_text(card_to_json(card))
            client.log_artifacts(run_id, str(folder), "model")
            oos_path = Path(tmp) / OOS_FILE
            oos.to_parquet(oos_path, index=False)
            client.log_artifact(run_id, str(oos_path), "walkforward")
        client.set_terminated(run_id)
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    version, source = register_version(tracker, model_name(ticker), f"5-day return forecast for {ticker}",
                                       f"{run.info.artifact_uri}/model", run_id,
                                       {"sha256": card.sha256, "registry_version": card.registry_version})
    return RegisteredVersion(ticker, version, run_id, source)


def version_by_alias(tracker: Tracker, ticker: str, alias: str, name: str | None = None) -> RegisteredVersion | None:
    """The version `alias` points at, of the ticker's model (or of the registered model `name`)."""
    try:
        v = tracker.client().get_model_version_by_alias(name or model_name(ticker), alias)
    except MlflowException:
        return None
    return RegisteredVersion(ticker, str(v.version), v.run_id, v.source)


def download_model(tracker: Tracker, version: RegisteredVersion) -> tuple[bytes, ModelCard]:
    client = tracker.client()
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(client.download_artifacts(version.run_id, "model", tmp))
        return (local / MODEL_FILE).read_bytes(), card_from_json((local / CARD_FILE).read_text())


def registered_version(value: dict) -> RegisteredVersion:
    """The registered version a forecast_models value describes."""
    return RegisteredVersion(value["ticker"], value["version"], value["run_id"], value["source"])


def load_registered(tracker: Tracker, version: RegisteredVersion, key: bytes, registry_version: str,
                    feature_names) -> tuple[xgb.Booster, ModelCard]:
    """Download a registered model and load it only if hash, signature and feature registry
    version all verify (SignatureError / FeatureVersionError otherwise)."""
    data, card = download_model(tracker, version)
    return load_verified(data, card, key, registry_version, feature_names), card


@dataclass
class Champion:
    version: RegisteredVersion
    booster: xgb.Booster | None  # None: the champion cannot serve this run (see `problem`)
    card: ModelCard | None
    problem: str | None = None


def champion(tracker: Tracker, ticker: str, key: bytes, registry_version: str, feature_names) -> Champion | None:
    """The ticker's champion, loaded and verified; None when there is none. A champion trained on
    another feature registry or feature list comes back without a model and with the reason, so
    callers can treat it as not comparable (a retrain replaces it). A bad hash or signature raises."""
    version = version_by_alias(tracker, ticker, CHAMPION)
    if version is None:
        return None
    try:
        booster, card = load_registered(tracker, version, key, registry_version, feature_names)
    except FeatureVersionError as error:
        return Champion(version, None, None, str(error))
    return Champion(version, booster, card)


GATE_TAG = "gate."


def record_gate(tracker: Tracker, ticker: str, version: str, gate: str, passed: bool, reason: str,
                run_id: str | None = None, name: str | None = None) -> None:
    """Record a gate's verdict on exactly this registered version (tags gate.<name> = passed |
    failed, with the reason and the Dagster run): what promotion reads, in any process. `name`:
    a registered model other than the ticker's forecast model."""
    client, name = tracker.client(), name or model_name(ticker)
    client.set_model_version_tag(name, version, f"{GATE_TAG}{gate}", "passed" if passed else "failed")
    client.set_model_version_tag(name, version, f"{GATE_TAG}{gate}.reason", reason[:4000])
    if run_id:
        client.set_model_version_tag(name, version, f"{GATE_TAG}{gate}.run_id", run_id)


def gate_results(tracker: Tracker, ticker: str, version: str, name: str | None = None) -> dict[str, str]:
    """gate name -> "passed" | "failed", as recorded on this version."""
    tags = tracker.client().get_model_version(name or model_name(ticker), version).tags
    return {k[len(GATE_TAG):]: v for k, v in tags.items() if k.startswith(GATE_TAG) and k.count(".") == 1}


def promote(tracker: Tracker, ticker: str, version: str, name: str | None = None,
            required: tuple[str, ...] | None = None, retry: str | None = None) -> str | None:
    """Point `champion` at `version` only if every required gate passed for exactly this version
    (GateNotPassed otherwise, and the champion stays); return the previous champion's version."""
    from odyssey.gates import REQUIRED_GATES, RETRY, require_gates

    name = name or model_name(ticker)
    require_gates(gate_results(tracker, ticker, version, name), f"{name} version {version}", required or REQUIRED_GATES,
                  retry or RETRY)
    previous = version_by_alias(tracker, ticker, CHAMPION, name)
    tracker.client().set_registered_model_alias(name, CHAMPION, version)
    return previous.version if previous else None


def register_version(tracker: Tracker, name: str, description: str, source: str, run_id: str,
                     tags: dict[str, str]) -> tuple[str, str]:
    """A new version of registered model `name` (created when new), aliased `candidate`: its
    version and source as the registry records them."""
    client = tracker.client()
    try:
        client.create_registered_model(name, description=description)
    except MlflowException:
        pass  # already registered
    version = client.create_model_version(name, source=source, run_id=run_id, tags=tags)
    client.set_registered_model_alias(name, CANDIDATE, version.version)
    return str(version.version), version.source


def log_figure_bytes(tracker: Tracker, run_id: str, data: bytes, artifact_file: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        path.write_bytes(data)
        tracker.client().log_artifact(run_id, str(path), os.path.dirname(artifact_file) or None)


def log_table(tracker: Tracker, run_id: str, frame: pd.DataFrame, artifact_file: str) -> None:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    log_figure_bytes(tracker, run_id, buffer.getvalue().encode(), artifact_file)


def log_json(tracker: Tracker, run_id: str, payload: dict, artifact_file: str) -> None:
    log_figure_bytes(tracker, run_id, json.dumps(payload, indent=2, sort_keys=True).encode(), artifact_file)


def log_run(tracker: Tracker, run_name: str, params: dict, metrics: dict[str, float],
            step_metrics: dict[str, list[float]], artifacts: dict[str, bytes], tags: dict) -> str:
    """One finished MLflow run with params, metrics (per-step series too) and byte artifacts
    (artifact path -> content); returns the run id."""
    client = tracker.client()
    run_id = client.create_run(tracker.experiment_id(), run_name=run_name, tags=tags).info.run_id
    try:
        for key, value in params.items():
            client.log_param(run_id, key, value)
        for key, value in metrics.items():
            client.log_metric(run_id, key, float(value))
        for key, values in step_metrics.items():
            for step, value in enumerate(values):
                client.log_metric(run_id, key, float(value), step=step)
        for artifact_file, data in artifacts.items():
            log_figure_bytes(tracker, run_id, data, artifact_file)
        client.set_terminated(run_id)
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    return run_id
