"""Per-ticker forecast models: the final model on a rolling window that ends at the latest
labelled day, safe persistence (XGBoost UBJSON, never pickle) with hash, signature, the feature
pipeline parameters it was trained with and the features it used, and verified loading.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from odyssey.fitting import FeaturePipeline, MarketInputs, PipelineParams
from odyssey.hashing import sha256_bytes
from odyssey.signing import sign, verify
from odyssey.walkforward import WalkForward, _months, fit_booster

if TYPE_CHECKING:
    import xgboost as xgb


class FeatureVersionError(ValueError):
    """A model was trained on a different feature registry version or feature list."""


@dataclass
class ModelCard:
    """What travels with a model file and is checked before it predicts."""

    ticker: str
    registry_version: str
    feature_names: list[str]
    horizon: int
    best_iteration: int
    train_start: str
    train_end: str  # the last training row (its target ends `horizon` sessions later)
    data_end: str  # the last session of data when the model was trained
    live_after: str  # `horizon` sessions after train_end: later forecasts look at returns it never saw
    train_rows: int
    validation_rows: int
    data_sha256: str
    params: dict
    pipeline_config: dict  # benchmark, clip_sigma, regime_seed, scale
    pipeline: dict  # PipelineParams fitted on the training window
    walkforward: dict = field(default_factory=dict)  # out-of-sample summary (skill the live check compares with)
    live_monitor: dict = field(default_factory=dict)  # the live-skill monitor fitted on the walk-forward
    sha256: str = ""
    signature: str = ""

    def feature_pipeline(self) -> FeaturePipeline:
        return FeaturePipeline(names=tuple(self.feature_names), **self.pipeline_config)

    def pipeline_params(self) -> PipelineParams:
        return PipelineParams.from_dict(self.pipeline)


def data_fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of a table's values (stable across runs for the same data)."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return sha256_bytes(hashed.tobytes())


def training_cutoff(dates: pd.DatetimeIndex, horizon: int, embargo: int) -> pd.Timestamp:
    """The last row a model trained now may learn from: `horizon + embargo` sessions before the
    last one, so its target is realised and an embargo separates it from the newest data."""
    if len(dates) <= horizon + embargo:
        raise ValueError(f"{len(dates)} sessions: not enough to leave a {horizon}-session horizon and embargo")
    return pd.DatetimeIndex(dates)[-1 - horizon - embargo]


def train_final_model(walkforward: WalkForward, inputs: MarketInputs, ticker: str, registry_version: str,
                      training_years: float = 0.0) -> tuple[xgb.Booster, ModelCard]:
    """Train on the window that ends at `training_cutoff` (and spans `training_years`, 0 = all
    labelled rows): the pipeline is fitted on the window, XGBoost early-stops on its last
    validation span (purged) and is refit on the whole window with that many rounds."""
    import xgboost as xgb  # imported when a model trains or loads: loading the code location skips it

    horizon, embargo = walkforward.horizon, walkforward.embargo_rows
    sessions = pd.DatetimeIndex(sorted(inputs.clean.loc[inputs.clean["ticker"] == ticker, "date"].unique()))
    cutoff = training_cutoff(sessions, horizon, embargo)
    frame = walkforward.frame(inputs, ticker)
    window = frame[frame["date"] <= cutoff]
    if training_years > 0:
        window = window[window["date"] >= cutoff - _months(training_years)]
    val_start = cutoff - _months(walkforward.config.val_years)
    train = window[window["date"] < val_start].iloc[:-walkforward.purge_rows or None]
    val = window[window["date"] >= val_start]
    if len(train) < 100 or len(val) < 20:
        raise ValueError(f"{ticker}: the training window ending {cutoff.date()} has {len(train)} training and "
                         f"{len(val)} validation rows; needs at least 100 and 20")
    pipeline = walkforward.pipeline
    start = window["date"].min() if training_years > 0 else None
    params, table = pipeline.fit_transform(inputs, end=cutoff, start=start, tickers=[ticker], scaler_rows=window)
    x = window[["date"]].merge(table, on="date", how="left")[list(pipeline.names)].to_numpy(dtype=np.float32)
    y = window["target"].to_numpy(dtype=float)
    in_train = window["date"].isin(train["date"]).to_numpy()
    in_val = window["date"].isin(val["date"]).to_numpy()
    names = list(pipeline.names)
    probe = fit_booster(x[in_train], y[in_train], x[in_val], y[in_val], walkforward.params, names)
    rounds = int(probe.best_iteration) + 1
    booster = xgb.train(walkforward.params.booster_params(), xgb.DMatrix(x, label=y, feature_names=names),
                        num_boost_round=rounds)
    card = ModelCard(
        ticker=ticker, registry_version=registry_version, feature_names=names, horizon=horizon,
        best_iteration=rounds - 1, train_start=str(window["date"].min().date()), train_end=str(cutoff.date()),
        data_end=str(sessions[-1].date()), live_after=str(sessions[sessions.searchsorted(cutoff) + horizon].date()),
        train_rows=int(in_train.sum()), validation_rows=int(in_val.sum()),
        data_sha256=data_fingerprint(pd.DataFrame(x, columns=names).assign(target=y, date=window["date"].to_numpy())),
        params=walkforward.params.model_dump(),
        pipeline_config={"benchmark": pipeline.benchmark, "clip_sigma": pipeline.clip_sigma,
                         "regime_seed": pipeline.regime_seed, "scale": pipeline.scale},
        pipeline=json.loads(params.to_json()))
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
    payload = json.loads(text)
    try:
        return ModelCard(**payload)
    except TypeError as error:  # a card written by another version of Odyssey
        raise FeatureVersionError(f"{payload.get('ticker', '?')} model card is from another registry version "
                                  f"({payload.get('registry_version', '?')}: {error}): retrain before predicting") from None


def check_compatible(card: ModelCard, registry_version: str, feature_names: Sequence[str]) -> None:
    """The model's registry version and features must be the current run's (alternative series
    present or not)."""
    if card.registry_version != registry_version or list(card.feature_names) != list(feature_names):
        missing = sorted(set(card.feature_names) - set(feature_names))
        extra = sorted(set(feature_names) - set(card.feature_names))
        raise FeatureVersionError(
            f"{card.ticker} model was trained on feature registry {card.registry_version} with "
            f"{len(card.feature_names)} features; this run has registry {registry_version} with {len(feature_names)} "
            f"features (the model's missing now: {missing[:6]}; new: {extra[:6]}): retrain before predicting")


def load_verified(data: bytes, card: ModelCard, key: bytes, registry_version: str,
                  feature_names: Sequence[str]) -> xgb.Booster:
    """Load a model only if its hash, signature, feature registry version and features all match."""
    import xgboost as xgb  # imported when a model trains or loads: loading the code location skips it

    verify(data, key, card.sha256, card.signature, name=f"{card.ticker} model")
    check_compatible(card, registry_version, feature_names)
    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    return booster


def forecast(booster: xgb.Booster, card: ModelCard, inputs: MarketInputs, dates: Sequence | None = None) -> pd.DataFrame:
    """The model's forecasts for its ticker on `dates` (default: every date), from features built
    with the pipeline parameters the model was trained with."""
    pipeline = card.feature_pipeline()
    table = pipeline.transform(inputs, card.pipeline_params(), [card.ticker])
    if dates is not None:
        table = table[table["date"].isin(pd.DatetimeIndex(dates))]
    prediction = booster.inplace_predict(table[list(card.feature_names)].to_numpy(np.float32))
    return pd.DataFrame({"date": table["date"].to_numpy(), "ticker": card.ticker, "prediction": prediction.astype(float)})
