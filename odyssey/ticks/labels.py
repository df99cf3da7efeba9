"""The volatility-spike label, the chronological purged split, and the test that a label does
not depend on the window it is predicted from.

The honest label: y = 1 when the realised volatility of the *next* H messages (the standard
deviation of their midprice returns) is at or above tau, the 95th percentile of that forward
volatility on the training part only. At a message, everything the label reads comes after it.

The seed's label, kept as the counter-example: y = 1 when the *current* window's rolling_vol is
at or above tau. Its threshold rule on rolling_vol "predicts" it perfectly (PR-AUC 1) because
the label is the feature; `label_dependence` finds this by changing the returns of the current
window and watching the label move.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from odyssey.ticks.features import Windows, _rolling_std, tick_features

SPLITS = ("train", "validation", "test")
PURGED = "purged"
UNLABELLED = "unlabelled"


@dataclass(frozen=True)
class LabelSpec:
    kind: Literal["forward", "contemporaneous"] = "forward"
    horizon: int = 60
    quantile: float = 0.95

    def quantity(self, features: pd.DataFrame) -> np.ndarray:
        """What tau thresholds, per feature row: the next `horizon` returns' volatility (NaN where
        fewer are left), or the current window's rolling_vol for the seed's label."""
        if self.kind == "contemporaneous":
            return features["rolling_vol"].to_numpy(float)
        r = features["midprice_return"].to_numpy(float)
        out = np.full(len(r), np.nan)
        if len(r) <= self.horizon:
            return out
        # rolling std ending at row j covers returns j-h+1..j; the forward window of row i ends at i+h
        vol = _rolling_std(np.concatenate([[np.nan], r]), self.horizon)[1:]
        out[:len(r) - self.horizon] = vol[self.horizon:]
        return out

    @property
    def name(self) -> str:
        return "forward_vol" if self.kind == "forward" else "current_vol"


@dataclass(frozen=True)
class Threshold:
    """tau, the label's threshold: the `quantile` of the label quantity over the training rows
    (the fit/apply interface of odyssey/fitting.py, on the messages' times)."""

    spec: LabelSpec
    name: str = "tau"

    def fit(self, table: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp) -> dict:
        stamps = table["timestamp"]
        inside = (stamps <= end) & ((stamps >= start) if start is not None else True)
        values = table.loc[inside, self.spec.name].to_numpy(float)
        values = values[np.isfinite(values)]
        if len(values) == 0:
            raise ValueError("no labelled training rows to fit tau on")
        return {"tau": float(np.quantile(values, self.spec.quantile)), "quantile": self.spec.quantile,
                "rows": int(len(values)), "label": self.spec.kind, "horizon": self.spec.horizon}

    def apply(self, table: pd.DataFrame, params: dict) -> pd.DataFrame:
        values = table[self.spec.name].to_numpy(float)
        y = np.where(np.isfinite(values), (values >= params["tau"]).astype(float), np.nan)
        return table.assign(y=y)


def split_labels(n: int, labelled: np.ndarray, train_share: float, validation_share: float, purge: int) -> np.ndarray:
    """Chronological split of `n` rows over the labelled ones: train / validation / test by
    share, and the `purge` rows before each boundary marked `purged` (their forward window
    reaches into the next part). Unlabelled rows (the last ones) are `unlabelled`."""
    out = np.full(n, UNLABELLED, dtype=object)
    m = int(labelled.sum())
    positions = np.flatnonzero(labelled)
    first_val, first_test = int(round(train_share * m)), int(round((train_share + validation_share) * m))
    part = np.empty(m, dtype=object)
    part[:first_val], part[first_val:first_test], part[first_test:] = SPLITS
    for boundary in (first_val, first_test):
        part[max(0, boundary - purge):boundary] = PURGED
    out[positions] = part
    return out


def label_table(features: pd.DataFrame, spec: LabelSpec, train_share: float, validation_share: float
                ) -> tuple[pd.DataFrame, dict]:
    """The labels of every feature row: tick, timestamp, the label quantity, split and y (NaN where
    unlabelled), with tau fitted on the train rows only; and tau's parameters."""
    table = features[["tick", "timestamp"]].copy()
    table[spec.name] = spec.quantity(features)
    labelled = np.isfinite(table[spec.name].to_numpy())
    purge = spec.horizon if spec.kind == "forward" else 0
    table["split"] = split_labels(len(table), labelled, train_share, validation_share, purge)
    train = table[table["split"] == "train"]
    if train.empty:
        raise ValueError(f"{len(table)} feature rows leave no training rows for the label")
    threshold = Threshold(spec)
    params = threshold.fit(train, None, train["timestamp"].max())
    return threshold.apply(table, params), params


def labelled(features: pd.DataFrame, labels: pd.DataFrame, columns=("split", "y")) -> pd.DataFrame:
    """The feature rows with the label table's `columns`, matched by tick."""
    return features.merge(labels[["tick", *columns]], on="tick", validate="one_to_one")


@dataclass
class DependenceResult:
    passed: bool
    reason: str
    changed: int  # perturbed messages whose label quantity moved at or after them
    tried: int
    table: pd.DataFrame  # per cut: tick, the label quantity before and after, later rows that moved


def label_dependence(ticks: pd.DataFrame, spec: LabelSpec, windows: Windows, cuts: int = 20, factor: float = 8.0,
                     seed: int = 0, stored: pd.Series | None = None, rtol: float = 1e-7) -> DependenceResult:
    """Does the label at a message depend on the messages up to it? At `cuts` messages, scale the
    midprice returns of the window that ends there by `factor` (later returns unchanged), rebuild
    the features and the label quantity, and compare it at that message and after: an honest
    forward label's cannot move (beyond rounding, `rtol`); the seed's contemporaneous one does.
    The quantity itself is compared, not the 0/1 label, so a leak shows even where it does not
    cross tau. `stored` (the label quantity by tick, as the asset stored it) must equal this
    definition's at every tested message: the check is about the labels the models train on."""
    n = len(ticks)
    span = 4 * (windows.ticks + spec.horizon)
    if n < 2 * span:
        return DependenceResult(False, f"{n} messages are too few to test the label (need {2 * span})", 0, 0,
                                pd.DataFrame())
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(np.arange(span, n - span), size=min(cuts, n - 2 * span), replace=False))
    mid = ((ticks["best_bid"] + ticks["best_ask"]) / 2).to_numpy(float)
    rows, changed, unlike = [], 0, []
    for cut in chosen:
        lo, hi = cut - span, cut + span
        local = ticks.iloc[lo:hi].reset_index(drop=True)
        before = _quantity_after(local, spec, windows, cut - lo)
        if stored is not None and not np.isclose(stored.get(int(cut), np.nan), before[0], rtol=rtol, equal_nan=True):
            unlike.append(int(cut))
        log_mid = np.log(mid[lo:hi])
        r = np.diff(log_mid)
        r[cut - lo - windows.ticks:cut - lo] *= factor  # the returns into messages cut-N+1 .. cut
        scale = np.exp(np.concatenate([[log_mid[0]], log_mid[0] + np.cumsum(r)]) - log_mid)
        perturbed = local.assign(best_bid=local["best_bid"] * scale, best_ask=local["best_ask"] * scale,
                                 price=local["price"] * scale)
        after = _quantity_after(perturbed, spec, windows, cut - lo)
        moved = ~np.isclose(before, after, rtol=rtol, atol=0.0, equal_nan=True)
        changed += bool(moved.any())
        rows.append({"tick": int(cut), f"{spec.name}_before": before[0], f"{spec.name}_after": after[0],
                     "rows_moved": int(moved.sum())})
    table = pd.DataFrame(rows)
    if unlike:
        return DependenceResult(False, f"the stored labels differ from the label definition at messages {unlike[:5]}",
                                changed, len(chosen), table)
    passed = changed == 0
    reason = (f"the label at a message and after it never moved when the {windows.ticks} returns up to it changed "
              f"(x{factor:g}) at {len(chosen)} messages" if passed else
              f"the label moved at {changed} of {len(chosen)} messages when only returns up to them changed: it "
              f"depends on the current window (look-ahead by construction)")
    return DependenceResult(passed, reason, changed, len(chosen), table)


def _quantity_after(ticks: pd.DataFrame, spec: LabelSpec, windows: Windows, position: int) -> np.ndarray:
    """The label quantity at tick `position` of `ticks` and at every later one with a feature row."""
    features = tick_features(ticks, windows)
    return spec.quantity(features)[features["tick"].to_numpy() >= position]
