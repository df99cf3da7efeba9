"""MLflow tracking/registry, the artifact signer and the checkpoint folder, as configurable resources."""

from pathlib import Path
from typing import Optional

import dagster as dg
from pydantic import Field

from odyssey.registry import Tracker
from odyssey.signing import existing_key, load_or_create_key


class MlflowTracking(dg.ConfigurableResource):
    """MLflow experiment tracking and model registry (sqlite + local artifacts by default; a
    server URI in MLFLOW_TRACKING_URI switches to a tracking server)."""

    tracking_uri: str = Field(description="MLflow tracking/registry URI (one with credentials: the environment "
                                          "variable that holds it)")
    artifact_root: str = Field(description="artifact location for the experiment")
    experiment: str = "odyssey-forecasting"

    def tracker(self) -> Tracker:
        uri = self.tracking_uri
        if isinstance(uri, dg.EnvVar):  # used without Dagster having started the resource
            uri = uri.get_value()
        return Tracker(uri, self.artifact_root, self.experiment)


class ArtifactSigner(dg.ConfigurableResource):
    """HMAC key for model artifacts: `key` (set from the ODYSSEY_SIGNING_KEY environment variable,
    which the UI shows by name only), or a key generated in key_file."""

    key_file: str
    key_value: Optional[str] = Field(default=None, description="the HMAC key (from an environment variable)")

    def key(self) -> bytes:
        return load_or_create_key(Path(self.key_file), self.key_value)

    def existing_key(self) -> bytes | None:
        """The key if there is one; an audit must not create one."""
        return existing_key(Path(self.key_file), self.key_value)


class CheckpointStore(dg.ConfigurableResource):
    """Local folder for training checkpoints (one sub-folder per model and input fingerprint)."""

    base_path: str

    def folder(self, *parts: str) -> Path:
        return Path(self.base_path).joinpath(*parts)
