"""Deployment gates for forecast models: leakage canary, implausibility bound, no regression."""

from __future__ import annotations

from dataclasses import dataclass, asdict

import numpy as np
import pandas as pd

from odyssey.metrics import direction_accuracy, spearman_ic

# Daily-sampled 5-day direction accuracy above this, over hundreds of out-of-sample days, has not
# been seen from honest forecasts of liquid assets; the seed system's 73 % was leakage.
IMPLAUSIBLE_DIRECTION_ACCURACY = 0.60


@dataclass
class GateResult:
    passed: bool
    reason: str
    details: dict

    def as_dict(self) -> dict:
        return asdict(self)


def within_fold_ic(predictions: pd.DataFrame) -> float:
    """Size-weighted mean of the per-fold Spearman IC."""
    parts = [(len(g), spearman_ic(g["target"].to_numpy(), g["prediction"].to_numpy()))
             for _, g in predictions.groupby("fold") if len(g) > 2]
    total = sum(n for n, _ in parts)
    return float(sum(n * ic for n, ic in parts) / total) if total else 0.0


def canary_gate(shuffled: pd.DataFrame, accuracy_tolerance: float = 0.05, ic_bound: float = 0.1) -> GateResult:
    """With the target shuffled across the ticker's history, the walk-forward must score at chance.

    A pipeline that lets test rows reach training (overlap, unpurged windows, fitting on all
    data) memorises the shuffled labels and scores far above chance here. Chance for direction
    is the naive forecast (the sign of each fold's training mean: shuffling keeps the drift), so
    accuracy is compared with that baseline; the rank IC is taken within folds and compared with
    zero.
    """
    y, p = shuffled["target"].to_numpy(), shuffled["prediction"].to_numpy()
    acc, ic = direction_accuracy(y, p), within_fold_ic(shuffled)
    baseline = direction_accuracy(y, shuffled["train_mean"].to_numpy())
    passed = acc <= baseline + accuracy_tolerance and abs(ic) <= ic_bound
    reason = (f"shuffled-target walk-forward scores at chance (accuracy {acc:.3f} vs naive {baseline:.3f}, "
              f"IC {ic:.3f})" if passed else
              f"shuffled-target walk-forward scores above chance (accuracy {acc:.3f} vs naive {baseline:.3f}, "
              f"IC {ic:.3f}): suspected leakage")
    return GateResult(passed, reason, {"shuffled_direction_accuracy": acc, "naive_direction_accuracy": baseline,
                                       "shuffled_ic": ic, "n": int(len(y)),
                                       "accuracy_tolerance": accuracy_tolerance, "ic_bound": ic_bound})


def plausibility_gate(predictions: pd.DataFrame, bound: float = IMPLAUSIBLE_DIRECTION_ACCURACY,
                      margin: float = 0.05) -> GateResult:
    """Out-of-sample direction accuracy above `bound` is suspected leakage, unless the naive
    forecast (the sign of the training mean) is about as accurate: an asset that nearly always
    rises, like a T-bill fund, is predictable without any leak."""
    y = predictions["target"].to_numpy()
    acc = direction_accuracy(y, predictions["prediction"].to_numpy())
    naive = direction_accuracy(y, predictions["train_mean"].to_numpy()) if "train_mean" in predictions else 0.5
    passed = acc <= bound or acc <= naive + margin
    reason = (f"out-of-sample direction accuracy {acc:.3f} is plausible (bound {bound}, naive forecast {naive:.3f})"
              if passed else
              f"out-of-sample direction accuracy {acc:.3f} exceeds {bound} and the naive forecast's {naive:.3f} "
              f"by more than {margin}: suspected leakage")
    return GateResult(passed, reason, {"direction_accuracy": acc, "naive_direction_accuracy": naive, "bound": bound})


def regression_gate(candidate: pd.DataFrame, champion: pd.DataFrame | None, tolerance: float = 0.02,
                    min_common: int = 60) -> GateResult:
    """The candidate's out-of-sample IC on the dates both models forecast must not fall more than
    `tolerance` below the champion's."""
    if champion is None:
        return GateResult(True, "no champion yet: first deployment", {})
    common = candidate[["date", "target", "prediction"]].merge(
        champion[["date", "prediction"]].rename(columns={"prediction": "champion"}), on="date")
    if len(common) < min_common:
        return GateResult(True, f"only {len(common)} common out-of-sample days (< {min_common}): not comparable",
                          {"common_days": int(len(common))})
    y = common["target"].to_numpy()
    cand_ic = spearman_ic(y, common["prediction"].to_numpy())
    champ_ic = spearman_ic(y, common["champion"].to_numpy())
    passed = bool(cand_ic >= champ_ic - tolerance) or bool(np.isclose(cand_ic, champ_ic))
    reason = (f"candidate IC {cand_ic:.4f} vs champion {champ_ic:.4f} on {len(common)} common days"
              + ("" if passed else f": worse by more than {tolerance}"))
    return GateResult(passed, reason, {"candidate_ic": cand_ic, "champion_ic": champ_ic,
                                       "common_days": int(len(common)), "tolerance": tolerance})
