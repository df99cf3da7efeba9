"""The leakage canary: change the future, and nothing a fold learns from or predicts at an
earlier date may move.

For a few walk-forward folds, every input after the fold's first test date c is replaced by a
different value (prices, volumes, alternative series; returns follow). The fold's inputs are then
rebuilt through the same walk-forward code: the training and validation rows (features and
targets) and the test rows dated at or before c must be bit-identical to the unperturbed ones.
Identical inputs train an identical model (training is deterministic), so the fold's predictions
up to c cannot depend on anything after c.

What it catches, each shown by a test: a feature that looks even one day ahead (its value at c
moves), folds without purge or embargo (targets of the last training and validation rows reach
past c), and anything fitted on rows after a fold's training window (a scaler or clip thresholds
fitted on all rows move the training features).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from odyssey.fitting import MarketInputs, log_returns
from odyssey.sources.columns import ADJ_CLOSE
from odyssey.walkforward import FoldData, WalkForward

PRICE_COLUMNS = ("open", "high", "low", "close", ADJ_CLOSE)


def perturb_after(inputs: MarketInputs, t: pd.Timestamp, seed: int = 0) -> MarketInputs:
    """Every price (one random factor per bar, so a bar stays consistent), volume and alternative
    value dated after `t` changed; returns recomputed from the changed prices."""
    rng = np.random.default_rng(seed)
    clean = inputs.clean.copy()
    later = (clean["date"] > t).to_numpy()
    factor = np.exp(rng.normal(0.0, 0.05, later.sum()))
    for column in PRICE_COLUMNS:
        if column in clean.columns:
            clean.loc[later, column] = clean.loc[later, column].to_numpy() * factor
    if "volume" in clean.columns:
        clean.loc[later, "volume"] = clean.loc[later, "volume"].to_numpy() * rng.uniform(0.3, 3.0, later.sum())
    alt = inputs.alt.copy()
    alt_later = (alt["date"] > t).to_numpy()
    for column in [c for c in alt.columns if c != "date"]:
        alt.loc[alt_later, column] = alt.loc[alt_later, column].to_numpy() * np.exp(rng.normal(0.0, 0.05, alt_later.sum()))
    return MarketInputs(clean, log_returns(clean), alt)


def _until(inputs: MarketInputs, end: pd.Timestamp) -> MarketInputs:
    return MarketInputs(inputs.clean[inputs.clean["date"] <= end], inputs.returns[inputs.returns["date"] <= end],
                        inputs.alt[inputs.alt["date"] <= end])


@dataclass
class CanaryResult:
    passed: bool
    reason: str
    table: pd.DataFrame  # fold, cut, part, rows, changed

    def details(self) -> dict:
        return {"folds_checked": int(self.table["fold"].nunique()) if len(self.table) else 0,
                "rows_compared": int(self.table["rows"].sum()) if len(self.table) else 0,
                "rows_changed": int(self.table["changed"].sum()) if len(self.table) else 0}


def _changed_rows(a: np.ndarray, b: np.ndarray) -> int:
    if a.shape != b.shape:
        return int(max(len(a), len(b)))
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return int((~same.reshape(len(a), -1).all(axis=1)).sum()) if len(a) else 0


def _compare(base: FoldData, other: FoldData, cut: pd.Timestamp) -> list[dict]:
    fold = base.fold
    before = fold.test[base.dates[fold.test] <= cut]
    rows = []
    for part, positions, with_target in (("train", fold.train, True), ("validation", fold.val, True),
                                         ("test up to the cut", before, False)):
        changed = _changed_rows(base.x[positions], other.x[positions])
        if with_target:
            changed = max(changed, _changed_rows(base.y[positions, None], other.y[positions, None]))
        rows.append({"fold": fold.k, "cut": str(cut.date()), "part": part, "rows": int(len(positions)),
                     "changed": changed})
    return rows


def leakage_canary(walkforward: WalkForward, inputs: MarketInputs, ticker: str, n_folds: int = 3,
                   cuts_per_fold: int = 1, seed: int = 0) -> CanaryResult:
    """Perturb the future of `n_folds` folds (first, last and evenly between) at `cuts_per_fold`
    dates each (the first test date, then later test dates) and compare their inputs."""
    frame = walkforward.frame(inputs, ticker)
    folds = walkforward.folds(frame)
    chosen = [folds[i] for i in sorted(set(np.linspace(0, len(folds) - 1, min(n_folds, len(folds))).round().astype(int)))]
    rows = []
    for fold in chosen:
        test_dates = pd.DatetimeIndex(frame["date"].iloc[fold.test])
        # the future beyond the fold's last target plays no part: cut it off to save time
        sessions = inputs.dates
        local = _until(inputs, sessions[min(sessions.searchsorted(test_dates[-1]) + walkforward.horizon + 1,
                                            len(sessions) - 1)])
        local_frame = walkforward.frame(local, ticker)
        base = walkforward.prepare(local, ticker, local_frame, fold)
        positions = np.linspace(0, len(test_dates) - 2, max(cuts_per_fold, 1)).round().astype(int)
        for j, position in enumerate(sorted(set(positions))):
            cut = test_dates[position]
            shaken = perturb_after(local, cut, seed=seed + 1000 * fold.k + j)
            other = walkforward.prepare(shaken, ticker, walkforward.frame(shaken, ticker), fold)
            rows += _compare(base, other, cut)
    table = pd.DataFrame(rows, columns=["fold", "cut", "part", "rows", "changed"])
    bad = table[table["changed"] > 0]
    if bad.empty:
        reason = (f"changing every input after each cut left all {int(table['rows'].sum())} earlier training, "
                  f"validation and test rows of {len(chosen)} folds bit-identical")
        return CanaryResult(True, reason, table)
    first = bad.iloc[0]
    reason = (f"suspected leakage: changing inputs after {first['cut']} changed {int(bad['changed'].sum())} earlier rows "
              f"(first: fold {int(first['fold'])}, {first['part']}: {int(first['changed'])} of {int(first['rows'])} rows)")
    return CanaryResult(False, reason, table)
