"""Train and judge the tick models on the labelled features, pick the candidate, store it
without pickle (signed), and the two deployment gates.

The candidate is the better of the logistic regression and XGBoost on the validation part's
PR-AUC (XGBoost early-stops on the end of the train part, so no model has seen the validation
part before); the gates judge it on the test part, which neither training nor the choice saw:
- `beats_baseline`: its PR-AUC exceeds the threshold rule's by at least the margin, and the
  paired block-bootstrap interval of the difference lies above 0;
- `beats_positive_rate`: the lower end of its PR-AUC's interval is above the positive rate (the
  PR-AUC of a model that knows nothing).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from odyssey.gates import GateResult
from odyssey.hashing import sha256_bytes
from odyssey.settings import TickSettings
from odyssey.signing import sign, verify
from odyssey.ticks.features import MODEL_FEATURES, Windows
from odyssey.ticks.labels import LabelSpec
from odyssey.ticks.models import LogisticModel, Scored, ThresholdRule, XGBoostModel, evaluate, train_xgboost

MODELS = ("baseline", "logistic", "xgboost")
CANDIDATES = ("logistic", "xgboost")
TICK_GATES = ("tick_beats_baseline", "tick_beats_positive_rate", "tick_model_signature")


def windows_of(settings: TickSettings) -> Windows:
    return Windows(settings.window_ticks, settings.short_window_ticks, settings.window_seconds)


def label_spec(settings: TickSettings) -> LabelSpec:
    return LabelSpec(settings.label, settings.horizon_ticks, settings.quantile)


@dataclass
class TickModelCard:
    """What travels with a stored tick model and is checked before it scores."""

    product: str
    kind: str  # "logistic" | "xgboost"
    features: list[str]
    label: str
    horizon_ticks: int
    windows: dict
    tau: float
    best_iteration: int  # XGBoost's boosting rounds kept (0 for the logistic regression)
    train_start: str
    train_end: str
    train_rows: int
    data_sha256: str  # the labelled features it was trained on
    file: str  # model.json | model.ubj
    solver_iterations: int = 0  # the logistic regression's solver iterations
    evaluation: list[dict] = field(default_factory=list)  # per model and split (evaluate's table)
    sha256: str = ""
    signature: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TickModelCard":
        return cls(**json.loads(text))

    def metric(self, model: str, split: str, name: str) -> float:
        row = next(r for r in self.evaluation if r["model"] == model and r["split"] == split)
        return float(row[name])


@dataclass
class TickCandidate:
    """What `tick_models` stores: the registered candidate and its card."""

    product: str
    version: str
    run_id: str
    source: str
    card: TickModelCard

    def to_value(self) -> dict:
        return asdict(self)

    @classmethod
    def from_value(cls, value: dict) -> "TickCandidate":
        return cls(**{**value, "card": TickModelCard(**value["card"])})


@dataclass
class TickTraining:
    models: dict  # name -> ThresholdRule | LogisticModel | XGBoostModel
    evaluation: pd.DataFrame
    candidate: str
    train_rows: int


def _training_rows(train: pd.DataFrame, limit: int) -> pd.DataFrame:
    """At most `limit` rows, an even stride through the train part (neighbouring messages share
    most of their windows, so a stride loses little)."""
    if len(train) <= limit:
        return train
    return train.iloc[::int(np.ceil(len(train) / limit))]


def _early_stopping_split(train: pd.DataFrame, horizon: int, share: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """XGBoost's rows to fit and to early-stop on: the last `share` of the train part, with the
    messages whose forward window reaches into it purged from the rest. The validation part,
    which chooses the candidate, stays unseen by every model."""
    cut = int(len(train) * (1 - share))
    first = int(train["tick"].iloc[cut])
    return train.iloc[:cut][train["tick"].iloc[:cut] < first - horizon], train.iloc[cut:]


def train_tick_models(data: pd.DataFrame, tau: float, settings: TickSettings) -> TickTraining:
    """`data`: the feature rows with `split` and `y`. The threshold rule, the logistic regression
    and XGBoost, each scored on the rows it trained on and on the validation and test parts,
    with block-bootstrap intervals."""
    parts = {s: data[data["split"] == s] for s in ("train", "validation", "test")}
    for name, part in parts.items():
        if part.empty or part["y"].sum() == 0:
            raise ValueError(f"the {name} part has {len(part)} rows and {int(part['y'].sum()) if len(part) else 0} "
                             f"positives: too few messages to train and judge the tick models")
    train = _training_rows(parts["train"], settings.models.max_train_rows)
    fit, stop = _early_stopping_split(train, settings.horizon_ticks)
    features = list(MODEL_FEATURES)
    models = {
        "baseline": ThresholdRule(tau),
        "logistic": LogisticModel.fit(train, train["y"].to_numpy(), features, settings.models),
        "xgboost": train_xgboost(fit, fit["y"].to_numpy(), stop, stop["y"].to_numpy(), features, settings.models),
    }
    scoring = {"train": train, "validation": parts["validation"], "test": parts["test"]}  # train: the rows trained on
    scored = [Scored(name, split, rows["y"].to_numpy(), model.score(rows), model.decide(rows))
              for split, rows in scoring.items() for name, model in models.items()]
    table = evaluate(scored, settings.bootstrap_block_ticks, settings.bootstrap_reps, settings.level,
                     max_rows=settings.bootstrap_max_rows)
    validation = table[table["split"] == "validation"].set_index("model")["pr_auc"]
    candidate = max(CANDIDATES, key=lambda m: (validation[m], m == "logistic"))  # a tie goes to the simpler
    return TickTraining(models, table, candidate, len(train))


def model_bytes(model) -> tuple[bytes, str]:
    """A candidate's stored form and file name: JSON coefficients, or XGBoost's UBJSON."""
    if isinstance(model, LogisticModel):
        return json.dumps(model.to_json(), sort_keys=True).encode(), "model.json"
    return model.to_bytes(), "model.ubj"


def candidate_card(training: TickTraining, settings: TickSettings, data: pd.DataFrame, tau: float,
                   data_sha256: str, key: bytes) -> tuple[bytes, TickModelCard]:
    model = training.models[training.candidate]
    payload, file = model_bytes(model)
    train = data[data["split"] == "train"]
    card = TickModelCard(
        product=settings.product, kind=training.candidate, features=list(model.features), label=settings.label,
        horizon_ticks=settings.horizon_ticks, windows=asdict(windows_of(settings)), tau=tau,
        best_iteration=getattr(model, "best_iteration", 0),
        solver_iterations=getattr(model, "iterations", 0),
        train_start=str(train["timestamp"].min()), train_end=str(train["timestamp"].max()),
        train_rows=training.train_rows, data_sha256=data_sha256, file=file,
        evaluation=json.loads(training.evaluation.to_json(orient="records")),
        sha256=sha256_bytes(payload), signature=sign(payload, key))
    return payload, card


def load_tick_model(payload: bytes, card: TickModelCard, key: bytes):
    """The stored model, only after its SHA-256 and HMAC verify (SignatureError otherwise)."""
    verify(payload, key, card.sha256, card.signature, f"tick model {card.product} ({card.kind})")
    if card.kind == "logistic":
        return LogisticModel.from_json(json.loads(payload))
    return XGBoostModel.from_bytes(payload, card.features, card.best_iteration)


def beats_baseline_gate(card: TickModelCard, margin: float) -> GateResult:
    gain = card.metric(card.kind, "test", "pr_auc_minus_baseline")
    low = card.metric(card.kind, "test", "pr_auc_minus_baseline_ci_low")
    ours, base = card.metric(card.kind, "test", "pr_auc"), card.metric("baseline", "test", "pr_auc")
    passed = bool(gain >= margin and low > 0)
    reason = (f"test PR-AUC {ours:.3f} against the threshold rule's {base:.3f}: +{gain:.3f} (margin {margin}), "
              f"paired interval low {low:+.3f}" + ("" if passed else ": not better than the baseline"))
    return GateResult(passed, reason, {"pr_auc": ours, "baseline_pr_auc": base, "gain": gain, "gain_ci_low": low})


def beats_positive_rate_gate(card: TickModelCard) -> GateResult:
    low = card.metric(card.kind, "test", "pr_auc_ci_low")
    rate = card.metric(card.kind, "test", "positive_rate")
    ours = card.metric(card.kind, "test", "pr_auc")
    passed = bool(np.isfinite(low) and low > rate)
    reason = (f"test PR-AUC {ours:.3f} (interval low {low:.3f}) against the positive rate {rate:.3f}"
              + ("" if passed else ": within noise of a model that knows nothing"))
    return GateResult(passed, reason, {"pr_auc": ours, "pr_auc_ci_low": low, "positive_rate": rate})
