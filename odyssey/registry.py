"""Experiment tracking and the model registry on MLflow: one registered model per ticker,
aliases `candidate` (newest trained) and `champion` (deployed).

What is trusted is signed: each version's model folder holds a signed manifest of its files
(`manifest.json`: model and card), each gate's verdict is a signed record on the version naming
the version and the model's SHA-256, and promotion and every champion load verify both: a
champion whose gates did not all pass with a verified verdict, or whose files do not match its
manifest, is refused ("champion not gated", "not intact")."""

from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from odyssey.gates import (FAILED, PASSED, REQUIRED_GATES, RETRY, GateNotPassed, GateVerdict, require_gates,
                           sign_verdict, verdict_status)
from odyssey.models import FeatureVersionError, ModelCard, card_from_json, card_to_json, load_verified
from odyssey.signing import (MANIFEST_FILE, Manifest, SignatureError, check_manifest, sign_manifest,
                             verify_manifest)

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# MLflow sets its loggers' level when it is imported, which is on first use (Tracker.client): its
# INFO logs of a store's first migrations are nothing a user acts on.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

CANDIDATE, CHAMPION = "candidate", "champion"
MODEL_FILE, CARD_FILE, OOS_FILE = "model.ubj", "card.json", "oos_predictions.parquet"
REFUSED = "champion refused"  # how serving marks a ticker whose champion it refused
MODEL_FOLDER = "model"  # a run's artifact folder with the model, its card and their signed manifest
FORECAST_MODEL = "forecast model"


def model_name(ticker: str) -> str:
    return f"odyssey-forecast-{ticker}"


if TYPE_CHECKING:
    import xgboost as xgb
    from mlflow import MlflowClient


def mlflow_error() -> type[Exception]:
    """MLflow's exception class, for an `except` clause (evaluated only when something was raised,
    by which time a client has imported MLflow)."""
    from mlflow.exceptions import MlflowException

    return MlflowException


@dataclass
class Tracker:
    """An MLflow client bound to one experiment."""

    tracking_uri: str
    artifact_root: str
    experiment: str = "odyssey-forecasting"

    def client(self) -> MlflowClient:
        from mlflow import MlflowClient  # imported on first use: loading the code location skips MLflow

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def experiment_id(self) -> str:
        client = self.client()
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        try:
            return client.create_experiment(self.experiment, artifact_location=self.artifact_root)
        except mlflow_error():  # created concurrently
            return client.get_experiment_by_name(self.experiment).experiment_id


@dataclass
class RegisteredVersion:
    ticker: str
    version: str
    run_id: str
    source: str
    manifest: Manifest | None = None  # the signed manifest of its files, when this process logged them


def log_candidate(tracker: Tracker, ticker: str, model_bytes: bytes, card: ModelCard, oos: pd.DataFrame,
                  params: dict, fold_metrics: pd.DataFrame, summary_metrics: dict, tags: dict,
                  key: bytes) -> RegisteredVersion:
    """One MLflow run with params, per-fold and summary metrics, the model and its card with their
    signed manifest, and the out-of-sample predictions; registered as a new version with alias
    `candidate`."""
    client = tracker.client()
    run = client.create_run(tracker.experiment_id(), run_name=f"{ticker}-{card.sha256[:8]}",
                            tags={"ticker": ticker, "registry_version": card.registry_version,
                                  "data_sha256": card.data_sha256, **tags})
    run_id = run.info.run_id
    try:
        for key_name, value in params.items():
            client.log_param(run_id, key_name, value)
        for row in fold_metrics.to_dict("records"):
            for metric in ("rmse", "r2", "direction_accuracy", "ic", "sharpe"):
                client.log_metric(run_id, f"fold_{metric}", float(row[metric]), step=int(row["fold"]))
        for key_name, value in summary_metrics.items():
            if isinstance(value, (int, float)):
                client.log_metric(run_id, key_name, float(value))
        manifest = log_signed_folder(tracker, run_id, FORECAST_MODEL, model_name(ticker), ticker,
                                     {MODEL_FILE: model_bytes, CARD_FILE: card_to_json(card).encode()}, key, MODEL_FILE)
        with tempfile.TemporaryDirectory() as tmp:
            oos_path = Path(tmp) / OOS_FILE
            oos.to_parquet(oos_path, index=False)
            client.log_artifact(run_id, str(oos_path), "walkforward")
        client.set_terminated(run_id)
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    version, source = register_version(tracker, model_name(ticker), f"5-day return forecast for {ticker}",
                                       f"{run.info.artifact_uri}/{MODEL_FOLDER}", run_id,
                                       {"sha256": card.sha256, "registry_version": card.registry_version})
    return RegisteredVersion(ticker, version, run_id, source, manifest)


def log_signed_folder(tracker: Tracker, run_id: str, kind: str, name: str, subject: str, files: dict[str, bytes],
                      key: bytes, model_file: str) -> Manifest:
    """`files` and their signed manifest into the run's model folder (what a load of the registered
    version reads, and all it reads)."""
    manifest = sign_manifest(kind, name, subject, run_id, files, key, model_file)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / MODEL_FOLDER
        folder.mkdir()
        for file_name, data in {**files, MANIFEST_FILE: manifest.to_json().encode()}.items():
            (folder / file_name).write_bytes(data)
        tracker.client().log_artifacts(run_id, str(folder), MODEL_FOLDER)
    return manifest


VARIANT_TAG = "odyssey.variant"  # a candidate run's model variant (odyssey/skill.py variant_of)


def variants_tried(tracker: Tracker) -> int:
    """How many distinct model variants the experiment has evaluated: the distinct values of the
    candidate runs' variant tag, over the whole tracking store's history."""
    client = tracker.client()
    seen: set[str] = set()
    token = None
    while True:
        page = client.search_runs([tracker.experiment_id()], filter_string=f"tags.`{VARIANT_TAG}` LIKE '%'",
                                  max_results=1000, page_token=token)
        seen.update(run.data.tags[VARIANT_TAG] for run in page if run.data.tags.get(VARIANT_TAG))
        token = page.token
        if not token:
            return len(seen)


def version_by_alias(tracker: Tracker, ticker: str, alias: str, name: str | None = None) -> RegisteredVersion | None:
    """The version `alias` points at, of the ticker's model (or of the registered model `name`)."""
    try:
        v = tracker.client().get_model_version_by_alias(name or model_name(ticker), alias)
    except mlflow_error():
        return None
    return RegisteredVersion(ticker, str(v.version), v.run_id, v.source)


def download_model(tracker: Tracker, version: RegisteredVersion) -> tuple[bytes, ModelCard]:
    """A registered model's bytes and card as stored, NOT verified (to inspect a card; loads go
    through `load_registered`)."""
    client = tracker.client()
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(client.download_artifacts(version.run_id, MODEL_FOLDER, tmp))
        return (local / MODEL_FILE).read_bytes(), card_from_json((local / CARD_FILE).read_text())


def _where(name: str, version: str) -> str:
    return f"{name} version {version}"


def read_manifest(tracker: Tracker, version: RegisteredVersion, name: str, key: bytes) -> Manifest:
    """The version's manifest, its signature and its owner (model name, run) verified."""
    where = _where(name, version.version)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            text = Path(tracker.client().download_artifacts(version.run_id, f"{MODEL_FOLDER}/{MANIFEST_FILE}",
                                                            tmp)).read_text()
        except (mlflow_error(), OSError):
            raise SignatureError(f"{where}: no signed manifest ({MODEL_FOLDER}/{MANIFEST_FILE}) beside the model: it "
                                 "was registered before manifests were signed, or the manifest was removed; "
                                 "retrain it") from None
    manifest = Manifest.from_json(text, where)
    check_manifest(manifest, key, model=name, run_id=version.run_id, where=where)
    return manifest


def verified_files(tracker: Tracker, version: RegisteredVersion, name: str, key: bytes,
                   required: tuple[str, ...] = ()) -> tuple[Manifest, dict[str, bytes]]:
    """The files of a registered version's model folder that its signed manifest names, each
    verified against it (SignatureError naming the file otherwise), the `required` ones among
    them: nothing else in the folder is read."""
    where = _where(name, version.version)
    manifest = read_manifest(tracker, version, name, key)
    missing = [f for f in required if f not in manifest.files]
    if missing:
        raise SignatureError(f"{where}: the signed manifest does not name {missing}")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tracker.client().download_artifacts(version.run_id, MODEL_FOLDER, tmp))
        files = {f: (local / f).read_bytes() for f in manifest.files if (local / f).is_file()}
    verify_manifest(manifest, files, key, model=name, run_id=version.run_id, where=where)
    return manifest, files


def registered_version(value: dict) -> RegisteredVersion:
    """The registered version a forecast_models value describes."""
    return RegisteredVersion(value["ticker"], value["version"], value["run_id"], value["source"])


def load_registered(tracker: Tracker, version: RegisteredVersion, key: bytes, registry_version: str,
                    feature_names) -> tuple[xgb.Booster, ModelCard]:
    """Load a registered model only if its manifest's signature, the model's and card's hashes in
    it, the model's own hash and signature and the feature registry version all verify
    (SignatureError / FeatureVersionError otherwise)."""
    _, files = verified_files(tracker, version, model_name(version.ticker), key, (MODEL_FILE, CARD_FILE))
    card = card_from_json(files[CARD_FILE].decode())
    return load_verified(files[MODEL_FILE], card, key, registry_version, feature_names), card


@dataclass
class Champion:
    version: RegisteredVersion
    booster: xgb.Booster | None  # None: the champion cannot serve this run (see `problem`)
    card: ModelCard | None
    problem: str | None = None
    refused: bool = False  # not gated, or its files do not match its signed manifest (else: trained on other features)


def serve_retry(ticker: str, name: str) -> str:
    return (f"Run the forecasting job for {ticker} (a candidate that passes every gate becomes champion), or point "
            f"the alias `{CHAMPION}` of {name} at a version whose gates all passed.")


def refusal(name: str, version: str, error: Exception, retrain: str = "the forecasting job") -> str:
    """Why a champion is refused, as serving reports it."""
    if isinstance(error, GateNotPassed):
        return f"champion not gated: {error}"
    return (f"champion not intact: {error}. Retrain it ({retrain}), or restore the files of {name} version {version} "
            "as they were signed")


def gated_version(tracker: Tracker, version: RegisteredVersion, name: str, key: bytes, required: tuple[str, ...],
                  retry: str) -> Manifest:
    """The version's verified manifest, if every required gate recorded a verified pass on exactly
    this version and model; GateNotPassed (or SignatureError for the manifest) otherwise."""
    manifest = read_manifest(tracker, version, name, key)
    results = _verified_gates(tracker, name, version.version, manifest.model_sha256, key)
    require_gates(results, f"{_where(name, version.version)}, where the alias `{CHAMPION}` points,", required, retry,
                  refusal="lacks a verified pass")
    return manifest


def champion(tracker: Tracker, ticker: str, key: bytes, registry_version: str, feature_names) -> Champion | None:
    """The ticker's champion, loaded and verified; None when there is none. A champion whose gates
    did not all pass with a verified verdict on exactly its version and model, or whose files do
    not match its signed manifest, comes back refused, without a model and with the reason; one
    trained on another feature registry or feature list comes back without a model and with the
    reason, so callers can treat it as not comparable (a retrain replaces it)."""
    version = version_by_alias(tracker, ticker, CHAMPION)
    if version is None:
        return None
    name = model_name(ticker)
    try:
        gated_version(tracker, version, name, key, REQUIRED_GATES, serve_retry(ticker, name))
        booster, card = load_registered(tracker, version, key, registry_version, feature_names)
    except (GateNotPassed, SignatureError) as error:
        return Champion(version, None, None, refusal(name, version.version, error), refused=True)
    except FeatureVersionError as error:
        return Champion(version, None, None, str(error))
    return Champion(version, booster, card)


GATE_TAG = "gate."
RECORD, SIGNATURE = ".record", ".signature"


def record_gate(tracker: Tracker, ticker: str, version: str, gate: str, passed: bool, reason: str, *, key: bytes,
                model_sha256: str, thresholds: dict, run_id: str | None = None, name: str | None = None) -> None:
    """Record a gate's verdict on exactly this registered version and model file: tags
    gate.<name> = passed | failed (shown), with the reason and the Dagster run, and the signed
    verdict record (gate.<name>.record, gate.<name>.signature: model, version, model SHA-256,
    gate, verdict, thresholds) that promotion and serving read, in any process. `name`: a
    registered model other than the ticker's forecast model."""
    client, name = tracker.client(), name or model_name(ticker)
    verdict = GateVerdict(name, str(version), model_sha256, gate, PASSED if passed else FAILED, thresholds)
    tag = f"{GATE_TAG}{gate}"
    client.set_model_version_tag(name, version, tag, verdict.verdict)
    client.set_model_version_tag(name, version, f"{tag}.reason", reason[:4000])
    if run_id:
        client.set_model_version_tag(name, version, f"{tag}.run_id", run_id)
    client.set_model_version_tag(name, version, tag + RECORD, verdict.to_json())
    client.set_model_version_tag(name, version, tag + SIGNATURE, sign_verdict(verdict, key))


def _verified_gates(tracker: Tracker, name: str, version: str, model_sha256: str, key: bytes) -> dict[str, str]:
    tags = tracker.client().get_model_version(name, version).tags
    gates = {k[len(GATE_TAG):].split(".")[0] for k in tags if k.startswith(GATE_TAG)}
    return {g: verdict_status(tags.get(f"{GATE_TAG}{g}{RECORD}"), tags.get(f"{GATE_TAG}{g}{SIGNATURE}"), key, name,
                              str(version), model_sha256, g) for g in sorted(gates)}


def gate_results(tracker: Tracker, ticker: str, version: str, key: bytes, name: str | None = None) -> dict[str, str]:
    """gate name -> "passed" | "failed" as the signed verdict on exactly this version and its
    model (from its verified manifest) says, or why it does not count: "unsigned", "bad
    signature", "another version or model". The shown tag gate.<name> alone counts for nothing."""
    name = name or model_name(ticker)
    registered = tracker.client().get_model_version(name, version)
    manifest = read_manifest(tracker, RegisteredVersion(ticker, str(version), registered.run_id, registered.source),
                             name, key)
    return _verified_gates(tracker, name, str(version), manifest.model_sha256, key)


def promote(tracker: Tracker, ticker: str, version: str, key: bytes, name: str | None = None,
            required: tuple[str, ...] | None = None, retry: str | None = None) -> str | None:
    """Point `champion` at `version` only if every required gate recorded a verified pass for
    exactly this version and model (GateNotPassed otherwise, SignatureError when its manifest
    does not verify; the champion stays); return the previous champion's version."""
    name = name or model_name(ticker)
    require_gates(gate_results(tracker, ticker, version, key, name), _where(name, version), required or REQUIRED_GATES,
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
    except mlflow_error():
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
