"""MLflow tracking/registry and the artifact signer, as configurable resources."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from odyssey.registry import Tracker
from odyssey.signing import load_or_create_key


class MlflowTracking(dg.ConfigurableResource):
    """MLflow experiment tracking and model registry (sqlite + local artifacts by default; a
    server URI in MLFLOW_TRACKING_URI switches to a tracking server)."""

    tracking_uri: str = Field(description="MLflow tracking/registry URI")
    artifact_root: str = Field(description="artifact location for the experiment")
    experiment: str = "odyssey-forecasting"

    def tracker(self) -> Tracker:
        return Tracker(self.tracking_uri, self.artifact_root, self.experiment)


class ArtifactSigner(dg.ConfigurableResource):
    """HMAC key for model artifacts: $ODYSSEY_SIGNING_KEY, or a key generated in key_file."""

    key_file: str

    def key(self) -> bytes:
        return load_or_create_key(Path(self.key_file))


class CheckpointStore(dg.ConfigurableResource):
    """Local folder for training checkpoints (one sub-folder per model and input fingerprint)."""

    base_path: str

    def folder(self, *parts: str) -> Path:
        return Path(self.base_path).joinpath(*parts)
