"""The tick models in MLflow: their experiment, registered model and stored files (shared by
the ticks assets, their checks and the replay command)."""

from __future__ import annotations

import dataclasses

from odyssey import registry as mlreg
from odyssey.gates import GateNotPassed
from odyssey.registry import RegisteredVersion, Tracker
from odyssey.signing import SignatureError
from odyssey.ticks.training import TICK_GATES, TickModelCard
from resources.tracking import MlflowTracking

EXPERIMENT = "odyssey-ticks"
CARD_FILE = "card.json"
TICK_MODEL = "tick model"


def tick_model_name(product: str) -> str:
    return f"odyssey-ticks-{product}"


def tick_tracker(mlflow: MlflowTracking) -> Tracker:
    return dataclasses.replace(mlflow.tracker(), experiment=EXPERIMENT)


def download_tick_model(tracker: Tracker, version: RegisteredVersion, key: bytes) -> tuple[bytes, TickModelCard]:
    """A registered tick model's bytes and card, each verified against the version's signed
    manifest (SignatureError naming the file otherwise; load the model with load_tick_model)."""
    name = tick_model_name(version.ticker)
    _, files = mlreg.verified_files(tracker, version, name, key, (CARD_FILE,))
    card = TickModelCard.from_json(files[CARD_FILE].decode())
    if card.file not in files:
        raise SignatureError(f"{name} version {version.version}: the signed manifest does not name {card.file}")
    return files[card.file], card


@dataclasses.dataclass(frozen=True)
class TickChampion:
    """The tick champion a reader may use (its card verified, every tick gate passed on exactly
    it), or why it is refused."""

    version: RegisteredVersion | None
    card: TickModelCard | None
    refused: str | None = None


def tick_champion(tracker: Tracker, product: str, key: bytes) -> TickChampion:
    """The product's champion, only if every tick gate recorded a verified pass on exactly its
    version and model and its files match its signed manifest; else refused with the reason."""
    version = tick_version(tracker, product, mlreg.CHAMPION)
    if version is None:
        return TickChampion(None, None)
    name = tick_model_name(product)
    try:
        mlreg.gated_version(tracker, version, name, key, TICK_GATES,
                            f"Run the tick_training job (a candidate that passes every gate becomes champion), or "
                            f"point the alias `{mlreg.CHAMPION}` of {name} at a version whose gates all passed.")
        _, card = download_tick_model(tracker, version, key)
    except (GateNotPassed, SignatureError) as error:
        return TickChampion(version, None, mlreg.refusal(name, version.version, error, "the tick_training job"))
    return TickChampion(version, card)


def tick_version(tracker: Tracker, product: str, alias: str) -> RegisteredVersion | None:
    return mlreg.version_by_alias(tracker, product, alias, tick_model_name(product))
