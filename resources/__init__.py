"""Configurable resources, all built from one `Settings` (odyssey/settings.py): the settings
themselves, the market-data source, table storage (IO managers), MLflow, the artifact signer and
the checkpoint folder and the market-state index. Switching from the embedded defaults to real data, object storage or an
MLflow server is a settings-file edit or an environment variable the settings loader reads
(see the README's Configuration), never code."""

from __future__ import annotations

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


def build_resources(settings: Settings) -> dict:
    """The resource dict of the Definitions (and the tests)."""
    paths = settings.paths
    home = Path(paths.home)
    config = SettingsResource.of(settings)
    key = dg.EnvVar(paths.signing_key_env) if paths.signing_key_env else None
    return {
        "settings": config,
        "market": MarketSource(settings=config),
        "io_manager": ParquetIOManager(base_path=f"{paths.storage_url}/tables"),
        "json_io_manager": JsonIOManager(base_path=f"{paths.storage_url}/tables"),
        "storage": Storage(base_path=paths.storage_url),
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
