"""Configurable resources: the market-data source, table storage (IO managers) and paths.

Everything is configured from environment variables with embedded defaults, so switching
from the offline defaults to real data or object storage is configuration, never code:

ODYSSEY_HOME           root of local state (default: <repo>/.odyssey)
ODYSSEY_STORAGE_URL    base path/URL for tables and exports (default: $ODYSSEY_HOME/storage;
                       any fsspec URL such as s3://bucket/odyssey works the same way)
ODYSSEY_LANDING        landing folder for new days (default: $ODYSSEY_HOME/landing)
ODYSSEY_PROFILE        full | quick
ODYSSEY_SOURCE         synthetic | csv | yfinance
ODYSSEY_CSV_PATH       folder for the csv source
ODYSSEY_SEED, ODYSSEY_SIGNAL_STRENGTH, ODYSSEY_DRIFT_DATE, ODYSSEY_DRIFT_TICKERS  synthetic knobs
MLFLOW_TRACKING_URI    MLflow tracking server (default: sqlite under $ODYSSEY_HOME/mlflow)
ODYSSEY_SIGNING_KEY    HMAC key for model artifacts (default: generated in $ODYSSEY_HOME)
"""

from __future__ import annotations

import os
from pathlib import Path

from resources.market import MarketSource
from resources.storage import JsonIOManager, ParquetIOManager, Storage
from resources.tracking import ArtifactSigner, CheckpointStore, MlflowTracking
from odyssey.universe import Profile, get_profile

REPO_ROOT = Path(__file__).resolve().parent.parent


def odyssey_home() -> Path:
    return Path(os.environ.get("ODYSSEY_HOME", REPO_ROOT / ".odyssey")).resolve()


def landing_dirs() -> tuple[Path, Path, Path]:
    """The landing folder (ODYSSEY_LANDING), and its archive and quarantine beside it."""
    landing = Path(os.environ.get("ODYSSEY_LANDING", odyssey_home() / "landing")).resolve()
    return landing, landing.with_name(landing.name + "_archive"), landing.with_name(landing.name + "_quarantine")


def storage_url() -> str:
    return os.environ.get("ODYSSEY_STORAGE_URL", str(odyssey_home() / "storage"))


def _optional(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def market_from_env() -> MarketSource:
    drift_tickers = _optional("ODYSSEY_DRIFT_TICKERS")
    return MarketSource(
        source=os.environ.get("ODYSSEY_SOURCE", "synthetic"),
        profile=os.environ.get("ODYSSEY_PROFILE", "full"),
        seed=int(os.environ.get("ODYSSEY_SEED", "7")),
        signal_strength=float(os.environ.get("ODYSSEY_SIGNAL_STRENGTH", "0.05")),
        drift_date=_optional("ODYSSEY_DRIFT_DATE"),
        drift_tickers=drift_tickers.split(",") if drift_tickers else None,
        csv_path=_optional("ODYSSEY_CSV_PATH"),
    )


def profile_from_env() -> Profile:
    """The profile named by ODYSSEY_PROFILE: it fixes the ticker partitions when the code loads."""
    return get_profile(os.environ.get("ODYSSEY_PROFILE", "full"))


def mlflow_from_env(home: Path | None = None) -> MlflowTracking:
    root = (home or odyssey_home()) / "mlflow"
    return MlflowTracking(
        tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}"),
        artifact_root=os.environ.get("ODYSSEY_MLFLOW_ARTIFACTS", (root / "artifacts").as_uri()),
    )


def build_resources(market: MarketSource | None = None, base_url: str | None = None,
                    home: Path | None = None) -> dict:
    """The resource dict Definitions (and tests) use; `home` relocates MLflow and the signing key."""
    base = base_url or storage_url()
    state = home or odyssey_home()
    return {
        "market": market or market_from_env(),
        "io_manager": ParquetIOManager(base_path=f"{base}/tables"),
        "json_io_manager": JsonIOManager(base_path=f"{base}/tables"),
        "storage": Storage(base_path=base),
        "mlflow": mlflow_from_env(home) if home else mlflow_from_env(),
        "signer": ArtifactSigner(key_file=str(state / "signing.key")),
        "checkpoints": CheckpointStore(base_path=str(state / "checkpoints")),
    }


__all__ = ["MarketSource", "ParquetIOManager", "JsonIOManager", "Storage", "MlflowTracking", "ArtifactSigner", "CheckpointStore",
           "build_resources", "odyssey_home", "profile_from_env"]
