"""The tick models in MLflow: their experiment, registered model and stored files (shared by
the ticks assets, their checks and the replay command)."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from odyssey import registry as mlreg
from odyssey.registry import RegisteredVersion, Tracker
from odyssey.ticks.training import TickModelCard
from resources.tracking import MlflowTracking

EXPERIMENT = "odyssey-ticks"


def tick_model_name(product: str) -> str:
    return f"odyssey-ticks-{product}"


def tick_tracker(mlflow: MlflowTracking) -> Tracker:
    return dataclasses.replace(mlflow.tracker(), experiment=EXPERIMENT)


def download_tick_card(tracker: Tracker, version: RegisteredVersion) -> TickModelCard:
    """A registered tick model's card alone (its training window, its evaluation)."""
    with tempfile.TemporaryDirectory() as tmp:
        return TickModelCard.from_json(Path(tracker.client().download_artifacts(version.run_id, "model/card.json",
                                                                                tmp)).read_text())


def download_tick_model(tracker: Tracker, version: RegisteredVersion) -> tuple[bytes, TickModelCard]:
    """A registered tick model's bytes and card, as stored (verify before loading)."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tracker.client().download_artifacts(version.run_id, "model", tmp))
        card = TickModelCard.from_json((local / "card.json").read_text())
        return (local / card.file).read_bytes(), card


def tick_version(tracker: Tracker, product: str, alias: str) -> RegisteredVersion | None:
    return mlreg.version_by_alias(tracker, product, alias, tick_model_name(product))
