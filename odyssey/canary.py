"""The leakage canary: change the future, and nothing a fold learns or predicts at an earlier
date may move.

For a few walk-forward folds, the raw market after a cut date c is changed: every ticker's daily
moves after c reversed and jittered (one factor per bar for its open, high, low, close and
adjusted close, so a bar stays consistent; a move large enough to be clipped at one bound lands
near the other), every later volume and alternative value scaled by a random factor. From those
raw inputs the run's own path is taken again: cleaning (the function the market assets call),
returns, the fold's frame, the feature pipeline fitted on the fold's training rows, and the fold's
model, trained as the walk-forward trains it. Compared bit for bit with the same path on the
unchanged raw inputs, three things must be identical:

* the fold's inputs: training and validation rows (features and targets), and test rows dated at
  or before c (features);
* the fold's model: its trees and its early-stopping record (best iteration and score);
* the fold's predictions for its test rows dated at or before c.

Any difference fails, and the table names the part that moved. The model and the predictions
catch what identical inputs cannot (early stopping on the test rows); starting from raw prices
puts the cleaning inside the changed path (a cleaning rule that reads later sessions moves the
clean prices at or before c).

The cut is the fold's first test session (more cuts per fold add later test sessions): when purge
and embargo are right, the last training and validation targets are realised before it. One thing
the cleaning does by design is not a leak of the model and is kept out of the verdict: repairing a
bad print needs the next session's open and close (odyssey/cleaning.py), so a session with a move
beyond the outlier threshold on any ticker (market-wide features read them all), or right after a
repair, gives way to the next test session as a cut. Splits are applied only when listed, so the
corporate actions carry over to the changed run unchanged.

Cost (bench/canary.py prints it as a share of one ticker's whole walk-forward, measured in the
same process; the aim is under 30 %): each checked fold is built and trained twice (unchanged and
changed) where the walk-forward builds and trains it once, and the changed market is cleaned
again. So the default checks two folds, the first and the middle one, with one cut each: the last
fold, whose history is the whole, costs about as much as those two together (canary_folds = 3
adds it). The unchanged path starts from the run's clean data (the market assets'; cleaned here
if not given) and computes its unfitted features once; each fold takes the part up to the session
its last test target is realised on. The changed path is cut off at that same session: nothing
compared needs later data, so an early fold cleans and builds a short history.

Determinism: XGBoost's hist method with the walk-forward's fixed seed and thread count trains
bit-identical boosters on identical inputs, so the comparison needs no tolerance.

What it catches, each a planted leak in tests/test_canary.py: a feature that looks one day ahead,
folds without purge or embargo, a scaler fitted on all rows, early stopping on the test rows, and
look-ahead in cleaning (moves capped at the whole history's spread; a gap filled towards the next
session).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from odyssey.fitting import MarketInputs
from odyssey.sources.columns import ADJ_CLOSE, MarketData
from odyssey.walkforward import Fold, FoldData, WalkForward, predict

if TYPE_CHECKING:
    import xgboost as xgb

PRICE_FIELDS = ("open", "high", "low", "close", ADJ_CLOSE)
MOVE_NOISE = 0.01  # standard deviation of the jitter added to each reversed daily move (log)
LEVEL_NOISE = 0.3  # log-scale standard deviation of the factor on each later volume
ALT_NOISE = 0.05  # log-scale standard deviation of the factor on each later alternative value

# raw market data -> the features' inputs (the run's: fitting.clean_market_data)
Cleaner = Callable[[MarketData], MarketInputs]


def _reversed_moves(close: np.ndarray, later: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Factors that turn one ticker's closes after the cut (rows sorted by date, `later` marks
    them) into a path whose every daily move is the original one reversed plus a jitter."""
    log_close = np.log(close)
    known = np.where(np.isfinite(log_close), log_close, np.nan)
    filled = pd.Series(known).ffill().to_numpy()
    move = np.diff(filled, prepend=np.nan)
    move = np.where(np.isfinite(move), move, 0.0)
    log_factor = np.cumsum(np.where(later, -2.0 * move + rng.normal(0.0, MOVE_NOISE, len(move)), 0.0))
    return np.exp(log_factor)


def perturb_raw_after(raw: MarketData, t: pd.Timestamp, seed: int = 0) -> MarketData:
    """Every raw bar after `t` changed: each ticker's daily moves after `t` reversed and jittered
    (one factor for the bar's open, high, low, close and adjusted close, so the bar stays
    consistent), its volume scaled by a random factor; every alternative value after `t` scaled
    by a random factor. Corporate actions as they were. A move large enough to be clipped at one
    bound lands near the other, so even a clipped value moves."""
    rng = np.random.default_rng(seed)
    prices = raw.prices.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    later = (prices["date"] > t).to_numpy()
    factor = np.ones(len(prices))
    for rows in prices.groupby("ticker", sort=False).indices.values():
        factor[rows] = _reversed_moves(prices["close"].to_numpy(dtype=float)[rows], later[rows], rng)
    for column in PRICE_FIELDS:
        if column in prices.columns:
            prices[column] = prices[column].to_numpy(dtype=float) * factor
    if "volume" in prices.columns:
        prices["volume"] = prices["volume"].to_numpy(dtype=float) * np.where(
            later, np.exp(rng.normal(0.0, LEVEL_NOISE, len(prices))), 1.0)
    alt = raw.alt.copy()
    alt_later = (alt["date"] > t).to_numpy()
    for column in [c for c in alt.columns if c != "date"]:
        alt[column] = alt[column].to_numpy(dtype=float) * np.where(
            alt_later, np.exp(rng.normal(0.0, ALT_NOISE, len(alt))), 1.0)
    return MarketData(prices, alt, raw.actions, raw.issues)


def raw_until(raw: MarketData, end: pd.Timestamp) -> MarketData:
    """Raw bars and alternative data up to `end`; every corporate action (a split after `end`
    still adjusts the prices before it, as it does in the whole history)."""
    return MarketData(raw.prices[raw.prices["date"] <= end], raw.alt[raw.alt["date"] <= end], raw.actions,
                      raw.issues)


def _inputs_until(inputs: MarketInputs, end: pd.Timestamp) -> MarketInputs:
    return MarketInputs(inputs.clean[inputs.clean["date"] <= end], inputs.returns[inputs.returns["date"] <= end],
                        inputs.alt[inputs.alt["date"] <= end])


@dataclass
class FoldRun:
    """One fold taken from clean inputs to predictions: the inputs, the fold's model inputs and
    its booster."""

    inputs: MarketInputs
    data: FoldData
    booster: xgb.Booster

    @classmethod
    def build(cls, walkforward: WalkForward, inputs: MarketInputs, ticker: str, fold: Fold,
              unfitted: pd.DataFrame | None = None) -> "FoldRun":
        frame = walkforward.frame(inputs, ticker)
        data = walkforward.prepare(inputs, ticker, frame, fold, unfitted)
        return cls(inputs, data, walkforward.train(data))

    def predictions(self, rows: np.ndarray) -> np.ndarray:
        return predict(self.booster, self.data.x[rows])


def hindsight_days(clean: pd.DataFrame) -> set[pd.Timestamp]:
    """Sessions whose clean values the cleaning may change after seeing the next session: a move
    beyond the outlier threshold on any ticker (a bad print if the next session reverts it,
    repaired from the next close), and the session after a repair."""
    if "repaired" not in clean.columns:
        return set()
    days = pd.DatetimeIndex(sorted(clean["date"].unique()))
    flagged = clean["repaired"] | clean["outlier"] if "outlier" in clean.columns else clean["repaired"]
    repaired = pd.DatetimeIndex(clean.loc[clean["repaired"], "date"].unique())
    after = days[np.minimum(days.searchsorted(repaired) + 1, len(days) - 1)]
    return set(clean.loc[flagged, "date"]) | set(after)


INPUT_PARTS = ("training rows", "validation rows", "test rows up to the cut")
MODEL = "model (trees, early stopping)"
PREDICTIONS = "predictions up to the cut"


@dataclass
class CanaryResult:
    """The verdict, its reason, and one row per fold, cut and part compared: how many rows (one
    for the model) and how many of them changed."""

    passed: bool
    reason: str
    table: pd.DataFrame  # fold, cut, part, rows, changed

    def details(self) -> dict:
        table = self.table
        if table.empty:
            return {"folds_checked": 0, "rows_compared": 0, "rows_changed": 0, "models_changed": 0,
                    "predictions_compared": 0, "predictions_changed": 0}
        inputs = table[table["part"].isin(INPUT_PARTS)]
        predictions = table[table["part"] == PREDICTIONS]
        return {"folds_checked": int(table["fold"].nunique()),
                "rows_compared": int(inputs["rows"].sum()), "rows_changed": int(inputs["changed"].sum()),
                "models_changed": int(table.loc[table["part"] == MODEL, "changed"].sum()),
                "predictions_compared": int(predictions["rows"].sum()),
                "predictions_changed": int(predictions["changed"].sum())}


def _changed_rows(a: np.ndarray, b: np.ndarray) -> int:
    if a.shape != b.shape:
        return int(max(len(a), len(b)))
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return int((~same.reshape(len(a), -1).all(axis=1)).sum()) if len(a) else 0


def _compare(base: FoldRun, other: FoldRun, cut: pd.Timestamp) -> list[dict]:
    fold = base.data.fold
    before = fold.test[base.data.dates[fold.test] <= cut]
    row = {"fold": fold.k, "cut": str(cut.date())}
    rows = []
    for part, positions, with_target in zip(INPUT_PARTS, (fold.train, fold.val, before), (True, True, False)):
        a, b = base.data, other.data
        changed = _changed_rows(a.x[positions], b.x[positions])
        if with_target:
            changed = max(changed, _changed_rows(a.y[positions, None], b.y[positions, None]))
        rows.append({**row, "part": part, "rows": int(len(positions)), "changed": changed})
    same_model = base.booster.save_raw("ubj") == other.booster.save_raw("ubj")
    rows.append({**row, "part": MODEL, "rows": 1, "changed": int(not same_model)})
    rows.append({**row, "part": PREDICTIONS, "rows": int(len(before)),
                 "changed": _changed_rows(base.predictions(before)[:, None], other.predictions(before)[:, None])})
    return rows


def _cuts(test_dates: pd.DatetimeIndex, cuts_per_fold: int, skip: set[pd.Timestamp]) -> list[pd.Timestamp]:
    """The first test session, then later ones evenly; a session in `skip` gives way to the next."""
    out = []
    for position in sorted(set(np.linspace(0, len(test_dates) - 2, max(cuts_per_fold, 1)).round().astype(int))):
        while position < len(test_dates) - 2 and test_dates[position] in skip:
            position += 1
        if test_dates[position] not in out:
            out.append(test_dates[position])
    return out


def fold_picks(count: int, n_folds: int) -> list[int]:
    """Which of `count` folds the canary checks: the first, the middle and the last one, in that
    order of preference (the last, whose history is the whole, costs the most), or evenly spaced
    ones from the first to the last when more are asked for."""
    if n_folds > 3:
        return sorted({int(i) for i in np.linspace(0, count - 1, min(n_folds, count)).round()})
    return sorted(set([0, (count - 1) // 2, count - 1][:max(n_folds, 1)]))


def leakage_canary(walkforward: WalkForward, raw: MarketData, ticker: str, clean: Cleaner, n_folds: int = 2,
                   cuts_per_fold: int = 1, seed: int = 0, cleaned: MarketInputs | None = None) -> CanaryResult:
    """Change the raw future of `n_folds` folds (see fold_picks) after
    `cuts_per_fold` dates each (the first test date, then later test dates), clean with `clean`,
    rebuild and retrain each fold, and compare its inputs, model and predictions with those of the
    unchanged data. `cleaned`: `raw` as the run cleaned it with `clean`, if at hand (the market
    assets); cleaned here otherwise."""
    whole = cleaned if cleaned is not None else clean(raw)
    frame = walkforward.frame(whole, ticker)
    folds = walkforward.folds(frame)
    chosen = [folds[i] for i in fold_picks(len(folds), n_folds)]
    sessions = whole.dates
    # the unchanged path: the run's clean data and its unfitted features, each fold's part of them
    unfitted = walkforward.pipeline.unfitted(whole, [ticker])
    skip = hindsight_days(whole.clean)
    rows = []
    for fold in chosen:
        test_dates = pd.DatetimeIndex(frame["date"].iloc[fold.test])
        # nothing compared needs the data after the session the fold's last target is realised on
        end = sessions[min(sessions.searchsorted(test_dates[-1]) + walkforward.horizon + 1, len(sessions) - 1)]
        base = FoldRun.build(walkforward, _inputs_until(whole, end), ticker, fold, unfitted[unfitted["date"] <= end])
        local = raw_until(raw, end)
        for j, cut in enumerate(_cuts(test_dates, cuts_per_fold, skip)):
            shaken = clean(perturb_raw_after(local, cut, seed=seed + 1000 * fold.k + j))
            rows += _compare(base, FoldRun.build(walkforward, shaken, ticker, fold), cut)
    table = pd.DataFrame(rows, columns=["fold", "cut", "part", "rows", "changed"])
    result = CanaryResult(True, "", table)
    details = result.details()
    bad = table[table["changed"] > 0]
    if bad.empty:
        result.reason = (f"changing every raw input after each cut left the {details['rows_compared']} earlier "
                         f"training, validation and test rows, the models and the {details['predictions_compared']} "
                         f"predictions up to the cut of {details['folds_checked']} folds bit-identical")
        return result
    first = bad.iloc[0]
    moved = ", ".join(dict.fromkeys(bad["part"]))
    result.passed = False
    result.reason = (f"suspected leakage: changing raw inputs after {first['cut']} moved {moved} "
                     f"(first: fold {int(first['fold'])}, {first['part']}: {int(first['changed'])} of "
                     f"{int(first['rows'])}; {details['predictions_changed']} of {details['predictions_compared']} "
                     f"predictions up to the cut changed)")
    return result
