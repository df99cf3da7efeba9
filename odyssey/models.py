"""Per-ticker forecast models: final training, safe persistence (XGBoost UBJSON, never pickle)
with hash, signature and feature-registry version, and verified loading for inference."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import xgboost as xgb

from odyssey.hashing import sha256_bytes
from odyssey.signing import sign, verify
from odyssey.splits import TARGET
from odyssey.walkforward import XGBParams, fit_booster


class FeatureVersionError(ValueError):
    """A model was trained on a different feature registry version or feature list."""


@dataclass
class ModelCard:
    """What travels with a model file and is checked before it predicts."""

    ticker: str
    registry_version: str
    feature_names: list[str]
    best_iteration: int
    train_rows: int
    validation_rows: int
    train_end: str
    validation_end: str
    data_sha256: str
    params: dict
    sha256: str = ""
    signature: str = ""


def data_fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of a table's values (stable across runs for the same data)."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return sha256_bytes(hashed.tobytes())


def train_final_model(dataset: pd.DataFrame, ticker: str, feature_names: Sequence[str], registry_version: str,
                      params: XGBParams) -> tuple[xgb.Booster, ModelCard]:
    """Early-stop on the validation split, then refit on train + validation with that many rounds."""
    rows = dataset[dataset["ticker"] == ticker]
    train, val = rows[rows["split"] == "train"], rows[rows["split"] == "validation"]
    if train.empty or val.empty:
        raise ValueError(f"{ticker}: needs train and validation rows (got {len(train)} and {len(val)})")
    names = list(feature_names)
    probe = fit_booster(train[names].to_numpy(np.float32), train[TARGET].to_numpy(), val[names].to_numpy(np.float32),
                        val[TARGET].to_numpy(), params, names)
    rounds = int(probe.best_iteration) + 1
    both = pd.concat([train, val])
    booster = xgb.train(params.booster_params(), xgb.DMatrix(both[names].to_numpy(np.float32), label=both[TARGET].to_numpy(),
                                                              feature_names=names), num_boost_round=rounds)
    card = ModelCard(ticker=ticker, registry_version=registry_version, feature_names=names,
                     best_iteration=rounds - 1, train_rows=len(train), validation_rows=len(val),
                     train_end=str(train["date"].max().date()), validation_end=str(val["date"].max().date()),
                     data_sha256=data_fingerprint(both[["date", *names, TARGET]]), params=params.model_dump())
    return booster, card


def serialize(booster: xgb.Booster, card: ModelCard, key: bytes) -> tuple[bytes, ModelCard]:
    """The model as UBJSON bytes, and its card with SHA-256 and HMAC signature filled in."""
    data = bytes(booster.save_raw(raw_format="ubj"))
    card.sha256 = sha256_bytes(data)
    card.signature = sign(data, key)
    return data, card


def card_to_json(card: ModelCard) -> str:
    return json.dumps(asdict(card), indent=2, sort_keys=True)


def card_from_json(text: str) -> ModelCard:
    return ModelCard(**json.loads(text))


def load_verified(data: bytes, card: ModelCard, key: bytes, registry_version: str,
                  feature_names: Sequence[str]) -> xgb.Booster:
    """Load a model only if its hash, signature and feature registry version all match."""
    verify(data, key, card.sha256, card.signature, name=f"{card.ticker} model")
    if card.registry_version != registry_version or list(card.feature_names) != list(feature_names):
        raise FeatureVersionError(
            f"{card.ticker} model was trained on feature registry {card.registry_version} "
            f"({len(card.feature_names)} features); the current registry is {registry_version} "
            f"({len(feature_names)} features): retrain before predicting")
    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    return booster


def predict_rows(booster: xgb.Booster, frame: pd.DataFrame, feature_names: Sequence[str]) -> np.ndarray:
    names = list(feature_names)
    return booster.predict(xgb.DMatrix(frame[names].to_numpy(np.float32), feature_names=names))
