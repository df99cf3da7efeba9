"""Configurable resources, all built from one `Settings` (odyssey/settings.py): the settings
themselves, the market-data source, table storage (IO managers), MLflow, the artifact signer and
the checkpoint folder and the market-state index. Switching from the embedded defaults to real data, object storage or an
MLflow server is a settings-file edit or an environment variable the settings loader reads
(see the README's Configuration), never code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import dagster as dg

from odyssey.settings import Settings
from resources.market import MarketSource
from resources.memory import QdrantIndex
from resources.settings import SettingsResource, sync_ticker_partitions, ticker_partitions
from resources.storage import JsonIOManager, ParquetIOManager, Storage
from resources.tracking import ArtifactSigner, CheckpointStore, MlflowTracking


def mlflow_resource(settings: Settings) -> MlflowTracking:
    """MLflow at the settings' URI; one with credentials is read from its environment variable,
    which the UI shows by name."""
    paths = settings.paths
    uri = dg.EnvVar(paths.mlflow_tracking_uri_env) if paths.mlflow_tracking_uri_env else paths.mlflow_tracking_uri
    return MlflowTracking(tracking_uri=uri, artifact_root=paths.mlflow_artifacts)


def build_resources(settings: Settings, blocking_checks: Mapping[str, Sequence[str]] | None = None) -> dict:
    """The resource dict of the Definitions (and the tests). `blocking_checks` (each asset's
    blocking checks, graph.BLOCKING_CHECKS) tell the readers which version of a table they may load."""
    paths = settings.paths
    home = Path(paths.home)
    config = SettingsResource.of(settings)
    key = dg.EnvVar(paths.signing_key_env) if paths.signing_key_env else None
    checks = {asset: list(names) for asset, names in blocking_checks.items()} if blocking_checks is not None else None
    tables = {"base_path": f"{paths.storage_url}/tables", "blocking_checks": checks,
              "keep_versions": paths.keep_versions}
    return {
        "settings": config,
        "market": MarketSource(settings=config),
        "io_manager": ParquetIOManager(**tables),
        "json_io_manager": JsonIOManager(**tables),
        "storage": Storage(base_path=paths.storage_url, blocking_checks=checks),
        "mlflow": mlflow_resource(settings),
        "signer": ArtifactSigner(key_file=str(home / "signing.key"), key_value=key),
        "checkpoints": CheckpointStore(base_path=str(home / "checkpoints")),
        "memory": memory_resource(settings),
    }


def memory_resource(settings: Settings) -> QdrantIndex:
    memory = settings.memory
    key = dg.EnvVar(memory.qdrant_api_key_env) if memory.qdrant_api_key_env else None
    return QdrantIndex(path=settings.paths.qdrant, url=memory.qdrant_url, api_key=key, collection=memory.collection)


__all__ = ["MarketSource", "ParquetIOManager", "JsonIOManager", "Storage", "MlflowTracking", "ArtifactSigner",
           "CheckpointStore", "QdrantIndex", "SettingsResource", "build_resources", "memory_resource", "mlflow_resource", "sync_ticker_partitions",
           "ticker_partitions"]
