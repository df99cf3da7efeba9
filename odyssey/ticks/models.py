"""The tick models and how they are judged.

- `ThresholdRule`: the seed's baseline, y_hat = 1 when the current rolling_vol >= tau; its
  ranking score is rolling_vol itself.
- `LogisticModel`: the seed's logistic regression (scikit-learn, balanced classes, max_iter
  1000) on standardised features; stored as JSON (means, scales, coefficients, intercept) and
  scored with numpy, never pickled.
- XGBoost (`train_xgboost`): a binary classifier weighted to balance the classes, early-stopped
  on the PR-AUC of the rows it is given to stop on; stored as UBJSON. `TreeTable` scores one message from the
  same trees in flat numpy arrays (a live consumer's path), equal to XGBoost's own prediction.

Metrics: PR-AUC (average precision, equal to scikit-learn's), the positive rate a PR-AUC must
beat, and precision, recall and F1 of the 0/1 decision, each with a moving-block bootstrap
interval (blocks of consecutive messages keep the overlap of forward windows); the difference
between two models' PR-AUC on the same resampled blocks (paired).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from odyssey.settings import TickModelSettings

if TYPE_CHECKING:
    import xgboost as xgb


# --- models ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ThresholdRule:
    tau: float
    feature: str = "rolling_vol"

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[self.feature].to_numpy(float)

    def decide(self, frame: pd.DataFrame) -> np.ndarray:
        return (self.score(frame) >= self.tau).astype(np.int8)


@dataclass(frozen=True)
class LogisticModel:
    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    iterations: int = 0

    @classmethod
    def fit(cls, frame: pd.DataFrame, y: np.ndarray, features: Sequence[str], config: TickModelSettings) -> "LogisticModel":
        from sklearn.linear_model import LogisticRegression

        x = frame[list(features)].to_numpy(float)
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale == 0] = 1.0
        model = LogisticRegression(class_weight="balanced", max_iter=config.logistic_max_iter)
        model.fit((x - mean) / scale, y.astype(int))
        return cls(tuple(features), tuple(map(float, mean)), tuple(map(float, scale)),
                   tuple(map(float, model.coef_[0])), float(model.intercept_[0]), int(model.n_iter_[0]))

    @cached_property
    def _weights(self) -> tuple[np.ndarray, float]:
        # folding the standardisation into the weights: w.(x - m)/s + b = (w/s).x + (b - w.m/s)
        w = np.asarray(self.coef) / np.asarray(self.scale)
        return w, self.intercept - float(w @ np.asarray(self.mean))

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        w, b = self._weights
        return 1.0 / (1.0 + np.exp(-(frame[list(self.features)].to_numpy(float) @ w + b)))

    def score_row(self, x: np.ndarray) -> float:
        w, b = self._weights
        return 1.0 / (1.0 + np.exp(-(float(x @ w) + b)))

    def decide(self, frame: pd.DataFrame) -> np.ndarray:
        return (self.score(frame) >= 0.5).astype(np.int8)

    def to_json(self) -> dict:
        return {"kind": "logistic", **asdict(self)}

    @classmethod
    def from_json(cls, payload: dict) -> "LogisticModel":
        fields = {k: v for k, v in payload.items() if k != "kind"}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


@dataclass
class XGBoostModel:
    booster: xgb.Booster
    features: tuple[str, ...]
    best_iteration: int

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return self.booster.inplace_predict(frame[list(self.features)].to_numpy(np.float32),
                                            iteration_range=(0, self.best_iteration + 1))

    def decide(self, frame: pd.DataFrame) -> np.ndarray:
        return (self.score(frame) >= 0.5).astype(np.int8)

    def to_bytes(self) -> bytes:
        return bytes(self.booster.save_raw("ubj"))

    @classmethod
    def from_bytes(cls, data: bytes, features: Sequence[str], best_iteration: int) -> "XGBoostModel":
        import xgboost as xgb  # imported when a model trains or loads: loading the code location skips it

        booster = xgb.Booster()
        booster.load_model(bytearray(data))
        return cls(booster, tuple(features), best_iteration)


def train_xgboost(train: pd.DataFrame, y_train: np.ndarray, stop: pd.DataFrame, y_stop: np.ndarray,
                  features: Sequence[str], config: TickModelSettings) -> XGBoostModel:
    """Fit on `train`, early-stopping on the PR-AUC of `stop` (rows later than the training ones)."""
    import xgboost as xgb  # imported when a model trains or loads: loading the code location skips it

    positives = max(float(y_train.sum()), 1.0)
    params = {"objective": "binary:logistic", "eval_metric": "aucpr", "eta": config.xgb_learning_rate,
              "max_depth": config.xgb_max_depth, "min_child_weight": config.xgb_min_child_weight,
              "scale_pos_weight": (len(y_train) - positives) / positives, "tree_method": "hist",
              "nthread": config.nthread, "seed": config.seed}
    dtrain = xgb.DMatrix(train[list(features)].to_numpy(np.float32), label=y_train, feature_names=list(features))
    # early stopping reads the PR-AUC of the stopping rows every round: on at most 200,000 evenly spaced rows
    stride = max(1, int(np.ceil(len(stop) / 200_000)))
    dstop = xgb.DMatrix(stop[list(features)].to_numpy(np.float32)[::stride], label=y_stop[::stride],
                        feature_names=list(features))
    booster = xgb.train(params, dtrain, config.xgb_rounds, evals=[(dstop, "stop")],
                        early_stopping_rounds=config.xgb_early_stopping_rounds, verbose_eval=False)
    return XGBoostModel(booster, tuple(features), int(booster.best_iteration))


@dataclass
class TreeTable:
    """An XGBoost binary classifier's trees as flat arrays, scored for one message at a time in
    a few numpy steps (all trees advance one level per step)."""

    feature: np.ndarray  # [trees, nodes] split feature (-1 at a leaf)
    threshold: np.ndarray  # [trees, nodes] (float32, as XGBoost compares)
    left: np.ndarray
    right: np.ndarray
    missing: np.ndarray  # child taken for a missing value
    value: np.ndarray  # leaf value at leaves
    depth: int
    base_margin: float

    @classmethod
    def of(cls, model: XGBoostModel) -> "TreeTable":
        booster = model.booster
        names = list(model.features)
        config = json.loads(booster.save_config())
        base_score = float(config["learner"]["learner_model_param"]["base_score"].strip("[]"))
        dumps = [json.loads(t) for t in booster.get_dump(dump_format="json")][:model.best_iteration + 1]
        nodes = max(_max_node(t) for t in dumps) + 1
        shape = (len(dumps), nodes)
        table = cls(np.full(shape, -1, np.int64), np.zeros(shape, np.float32), np.zeros(shape, np.int64),
                    np.zeros(shape, np.int64), np.zeros(shape, np.int64), np.zeros(shape, np.float64), 0,
                    float(np.log(base_score / (1 - base_score))))
        for i, tree in enumerate(dumps):
            table.depth = max(table.depth, _fill(table, i, tree, names, 0))
        return table

    def score_row(self, x: np.ndarray) -> float:
        """Probability for one message's features (in the model's order; NaN = missing)."""
        x = np.asarray(x, np.float32)
        rows = np.arange(self.feature.shape[0])
        node = np.zeros(len(rows), np.int64)
        for _ in range(self.depth):
            f = self.feature[rows, node]
            leaf = f < 0
            value = x[np.where(leaf, 0, f)]
            nxt = np.where(np.isnan(value), self.missing[rows, node],
                           np.where(value < self.threshold[rows, node], self.left[rows, node], self.right[rows, node]))
            node = np.where(leaf, node, nxt)
        margin = self.base_margin + float(self.value[rows, node].sum())
        return 1.0 / (1.0 + np.exp(-margin))


def _max_node(tree: dict) -> int:
    return max([tree["nodeid"]] + [_max_node(c) for c in tree.get("children", [])])


def _fill(table: TreeTable, i: int, node: dict, names: list[str], depth: int) -> int:
    k = node["nodeid"]
    if "leaf" in node:
        table.value[i, k] = node["leaf"]
        return depth
    table.feature[i, k] = names.index(node["split"])
    table.threshold[i, k] = np.float32(node["split_condition"])
    table.left[i, k], table.right[i, k], table.missing[i, k] = node["yes"], node["no"], node["missing"]
    return max(_fill(table, i, child, names, depth + 1) for child in node["children"])


# --- metrics --------------------------------------------------------------------------------------
def average_precision(y: np.ndarray, score: np.ndarray, weights: np.ndarray | None = None) -> float:
    """PR-AUC as average precision (scikit-learn's definition, ties counted together), with
    optional row weights (a bootstrap's multiplicities)."""
    order = np.argsort(-score, kind="stable")
    return _ap_sorted(y[order], score[order], None if weights is None else weights[order])


def _tie_ends(sorted_score: np.ndarray) -> np.ndarray:
    return np.r_[np.flatnonzero(np.diff(sorted_score)), len(sorted_score) - 1]


def _ap_sorted(y: np.ndarray, score: np.ndarray | None, weights: np.ndarray | None, ends: np.ndarray | None = None
               ) -> float:
    """Average precision of rows sorted by descending score; `ends`: where each group of tied
    scores ends (from `score` when not given)."""
    w = np.ones(len(y)) if weights is None else weights
    ends = _tie_ends(score) if ends is None else ends
    tps, total = np.cumsum(w * y), np.cumsum(w)
    if len(ends) < len(y):  # ties: precision and recall only where the threshold passes a whole group
        tps, total = tps[ends], total[ends]
    if len(tps) == 0 or tps[-1] <= 0:
        return float("nan")
    precision = tps / np.where(total > 0, total, 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _decision_counts(tp: float, fp: float, fn: float) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def block_weights(n: int, block: int, reps: int, seed: int = 0):
    """Moving-block bootstrap multiplicities of n rows, one rep at a time (an array of n counts;
    never the reps x n index matrix, which does not fit for millions of messages)."""
    rng = np.random.default_rng(seed)
    block = max(1, min(block, n))
    n_blocks = int(np.ceil(n / block))
    for _ in range(reps):
        starts = np.bincount(rng.integers(0, n - block + 1, n_blocks), minlength=n).astype(float)
        covered = np.cumsum(starts)
        covered[block:] -= covered[:-block].copy()
        yield covered


@dataclass
class Scored:
    """One model's scores and decisions on one split."""

    model: str
    split: str
    y: np.ndarray
    score: np.ndarray
    decided: np.ndarray
    order: np.ndarray = field(init=False)
    ends: np.ndarray = field(init=False)
    y_sorted: np.ndarray = field(init=False)
    outcomes: tuple[np.ndarray, ...] = field(init=False)  # 0/1 per row: true positive, false positive, false negative

    def __post_init__(self):
        self.order = np.argsort(-self.score, kind="stable")
        self.ends = _tie_ends(self.score[self.order])
        self.y_sorted = self.y[self.order]
        hit, positive = (self.decided == 1).astype(float), (self.y == 1).astype(float)
        self.outcomes = (hit * positive, hit * (1 - positive), (1 - hit) * positive)

    def pr_auc(self, weights: np.ndarray | None = None) -> float:
        return _ap_sorted(self.y_sorted, None, None if weights is None else weights[self.order], self.ends)

    def every(self, stride: int) -> "Scored":
        """Every `stride`-th row, in time order."""
        return Scored(self.model, self.split, self.y[::stride], self.score[::stride], self.decided[::stride])

    def metrics(self, weights: np.ndarray | None = None) -> dict[str, float]:
        w = np.ones(len(self.y)) if weights is None else weights
        tp, fp, fn = (float(w @ outcome) for outcome in self.outcomes)
        return {"pr_auc": self.pr_auc(weights), "positive_rate": float(w @ self.y / w.sum()),
                **_decision_counts(tp, fp, fn)}


METRICS = ("pr_auc", "positive_rate", "precision", "recall", "f1")


def evaluate(scored: Sequence[Scored], block: int, reps: int, level: float, seed: int = 0,
             baseline: str = "baseline", max_rows: int = 200_000) -> pd.DataFrame:
    """Per model and split: each metric on all rows with its block-bootstrap interval, and the
    PR-AUC's paired difference to the baseline's on the same split (same resampled blocks).
    Beyond `max_rows` rows, the intervals resample every k-th row (blocks of block/k rows):
    neighbouring messages share almost all of their windows, so little is lost, and millions of
    messages stay fast."""
    alpha = (1 - level) / 2
    rows = []
    for split in dict.fromkeys(s.split for s in scored):
        group = [s for s in scored if s.split == split]
        n = len(group[0].y)
        stride = max(1, int(np.ceil(n / max_rows)))
        resampled = [s.every(stride) if stride > 1 else s for s in group]
        base = next((s for s in group if s.model == baseline), None)
        draws: dict[str, list[dict]] = {s.model: [] for s in group}
        for weights in block_weights(len(resampled[0].y), max(1, block // stride), reps, seed):
            for s in resampled:
                draws[s.model].append(s.metrics(weights))
        for s in group:
            point = s.metrics()
            row = {"model": s.model, "split": split, "rows": n, "resampled_every": stride}
            for metric in METRICS:
                values = np.array([d[metric] for d in draws[s.model]], float)
                row[metric] = point[metric]
                row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = _interval(values, alpha)
            if base is not None:
                diff = np.array([d["pr_auc"] for d in draws[s.model]]) - np.array([d["pr_auc"] for d in draws[baseline]])
                row["pr_auc_minus_baseline"] = point["pr_auc"] - base.pr_auc()
                row["pr_auc_minus_baseline_ci_low"], row["pr_auc_minus_baseline_ci_high"] = _interval(diff, alpha)
            rows.append(row)
    return pd.DataFrame(rows)


def _interval(values: np.ndarray, alpha: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))
