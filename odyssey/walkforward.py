"""Expanding-window walk-forward training of per-ticker XGBoost forecasts, with purging and
an embargo between every train / validation / test window.

Fold k (k = 0, 1, ...) of a ticker whose data starts at t0:
train [t0, t0 + min_train + k*step), validation the next `val` span, test the next `test` span;
only folds whose test window ends inside the data are used. Between consecutive windows the last
`horizon` rows of the earlier one are purged (their 5-day target reaches into the next window)
and the first `embargo` rows of the later one are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import xgboost as xgb
from pydantic import BaseModel, ConfigDict

from odyssey.metrics import forecast_metrics
from odyssey.splits import TARGET, forward_returns


class WalkForwardConfig(BaseModel):
    """Walk-forward windows (years) and the purge horizon / embargo (trading days)."""

    model_config = ConfigDict(frozen=True)

    min_train_years: float = 3.0
    val_years: float = 0.5
    test_years: float = 0.5
    step_years: float = 0.5
    horizon: int = 5
    embargo: int = 5


class XGBParams(BaseModel):
    """XGBoost hyperparameters; defaults are the seed notebook's (max_bin and threads are ours)."""

    model_config = ConfigDict(frozen=True)

    objective: str = "reg:squarederror"
    learning_rate: float = 0.01
    max_depth: int = 6
    n_estimators: int = 1000
    early_stopping_rounds: int = 50
    seed: int = 42
    tree_method: str = "hist"
    nthread: int = 2
    subsample: float = 1.0
    colsample_bytree: float = 1.0
    min_child_weight: float = 1.0
    max_bin: int = 64

    def booster_params(self) -> dict:
        return {"objective": self.objective, "eta": self.learning_rate, "max_depth": self.max_depth,
                "seed": self.seed, "tree_method": self.tree_method, "nthread": self.nthread,
                "subsample": self.subsample, "colsample_bytree": self.colsample_bytree,
                "min_child_weight": self.min_child_weight, "max_bin": self.max_bin}


@dataclass
class Fold:
    k: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    bounds: dict = field(default_factory=dict)


def _months(years: float) -> pd.DateOffset:
    return pd.DateOffset(months=int(round(years * 12)))


def make_folds(dates: pd.DatetimeIndex | Sequence, config: WalkForwardConfig = WalkForwardConfig()) -> list[Fold]:
    """Row positions of each fold's windows for one ticker's sorted dates."""
    dates = pd.DatetimeIndex(dates)
    t0, last = dates[0], dates[-1]
    folds = []
    k = 0
    while True:
        train_end = t0 + _months(config.min_train_years) + _months(config.step_years * k)
        val_end = train_end + _months(config.val_years)
        test_end = val_end + _months(config.test_years)
        if test_end > last + pd.Timedelta(days=1):
            break
        pos = np.arange(len(dates))
        tr = pos[dates < train_end]
        va = pos[(dates >= train_end) & (dates < val_end)]
        te = pos[(dates >= val_end) & (dates < test_end)]
        h, e = config.horizon, config.embargo
        folds.append(Fold(
            k=k,
            train=tr[: max(len(tr) - h, 0)],
            val=va[e: max(len(va) - h, e)],
            test=te[e:],
            bounds={"train_start": t0.date().isoformat(), "train_end": train_end.date().isoformat(),
                    "val_end": val_end.date().isoformat(), "test_end": test_end.date().isoformat()},
        ))
        k += 1
    return folds


def ticker_frame(features: pd.DataFrame, clean: pd.DataFrame, ticker: str, feature_names: Sequence[str],
                 horizon: int = 5) -> pd.DataFrame:
    """One ticker's features, 5-day target and next-day simple return, sorted by date."""
    rows = features[features["ticker"] == ticker]
    if rows.empty:
        raise ValueError(f"no feature rows for ticker {ticker!r}")
    target = forward_returns(clean[clean["ticker"] == ticker], horizon)[["date", TARGET]]
    px = clean.loc[clean["ticker"] == ticker, ["date", "close"]].sort_values("date")
    px["next_return"] = px["close"].shift(-1) / px["close"] - 1.0
    out = rows[["date", "ticker", *feature_names]].merge(target, on="date", how="left")
    out = out.merge(px[["date", "next_return"]], on="date", how="left")
    return out.sort_values("date").reset_index(drop=True)


def fit_booster(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                params: XGBParams, feature_names: Sequence[str] | None = None) -> xgb.Booster:
    """Train with early stopping on the validation window."""
    dtrain = xgb.DMatrix(x_train, label=y_train, feature_names=list(feature_names) if feature_names else None)
    dval = xgb.DMatrix(x_val, label=y_val, feature_names=list(feature_names) if feature_names else None)
    return xgb.train(params.booster_params(), dtrain, num_boost_round=params.n_estimators,
                     evals=[(dval, "validation")], early_stopping_rounds=params.early_stopping_rounds,
                     verbose_eval=False)


def predict(booster: xgb.Booster, x: np.ndarray, feature_names: Sequence[str] | None = None) -> np.ndarray:
    best = getattr(booster, "best_iteration", None)
    limit = (0, best + 1) if best is not None else (0, 0)
    dm = xgb.DMatrix(x, feature_names=list(feature_names) if feature_names else None)
    return booster.predict(dm, iteration_range=limit)


@dataclass
class WalkForwardResult:
    predictions: pd.DataFrame  # date, ticker, fold, prediction, target, next_return, train_mean (naive baseline)
    folds: pd.DataFrame  # per-fold metrics and windows
    config: dict


def run_walkforward(frame: pd.DataFrame, feature_names: Sequence[str], params: XGBParams = XGBParams(),
                    config: WalkForwardConfig = WalkForwardConfig(), shuffle_target_seed: int | None = None,
                    cost_bps: float = 10.0, slippage_bps: float = 5.0) -> WalkForwardResult:
    """Walk-forward out-of-sample predictions for one ticker's frame (see `ticker_frame`).

    ``shuffle_target_seed``: permute the target once, across the ticker's whole history, before
    the folds are cut (the leakage canary). A sound pipeline then scores at chance; one whose
    test rows also reach training sees the same shuffled label twice and memorises it.
    """
    usable = frame[frame[TARGET].notna()].reset_index(drop=True)
    x = usable[list(feature_names)].to_numpy(dtype=np.float32)
    y = usable[TARGET].to_numpy(dtype=float)
    folds = make_folds(usable["date"], config)
    if not folds:
        raise ValueError(f"{usable['ticker'].iloc[0] if len(usable) else '?'}: not enough history for one "
                         f"walk-forward fold ({config.min_train_years}y train + {config.val_years}y val + "
                         f"{config.test_years}y test)")
    if shuffle_target_seed is not None:
        y = np.random.default_rng(shuffle_target_seed).permutation(y)
    preds, rows = [], []
    for fold in folds:
        y_tr, y_va, y_te = y[fold.train], y[fold.val], y[fold.test]
        booster = fit_booster(x[fold.train], y_tr, x[fold.val], y_va, params)
        p = predict(booster, x[fold.test])
        test = usable.iloc[fold.test]
        nxt = test["next_return"].fillna(0.0).to_numpy()
        preds.append(pd.DataFrame({"date": test["date"].to_numpy(), "ticker": test["ticker"].to_numpy(),
                                   "fold": fold.k, "prediction": p.astype(float), "target": y_te,
                                   "next_return": nxt, "train_mean": float(np.mean(y_tr))}))
        metrics = forecast_metrics(y_te, p, nxt, cost_bps, slippage_bps)
        rows.append({"fold": fold.k, **fold.bounds, "train_rows": len(fold.train), "val_rows": len(fold.val),
                     "test_rows": len(fold.test), "best_iteration": int(booster.best_iteration), **metrics})
    return WalkForwardResult(pd.concat(preds, ignore_index=True), pd.DataFrame(rows),
                             {"walkforward": config.model_dump(), "xgboost": params.model_dump()})


def fold_metrics(predictions: pd.DataFrame, cost_bps: float = 10.0, slippage_bps: float = 5.0) -> pd.DataFrame:
    """Metrics per fold from stored out-of-sample predictions."""
    rows = []
    for fold, part in predictions.groupby("fold", sort=True):
        rows.append({"fold": int(fold), "start": part["date"].min().date().isoformat(),
                     "end": part["date"].max().date().isoformat(),
                     **forecast_metrics(part["target"].to_numpy(), part["prediction"].to_numpy(),
                                        part["next_return"].to_numpy(), cost_bps, slippage_bps)})
    return pd.DataFrame(rows)


def summary_metrics(predictions: pd.DataFrame, cost_bps: float = 10.0, slippage_bps: float = 5.0,
                    reps: int = 500, seed: int = 0) -> dict[str, float]:
    """Pooled out-of-sample metrics with 90 % moving-block bootstrap intervals (20-day blocks)."""
    from odyssey.metrics import block_bootstrap_ci, direction_accuracy, sharpe, sign_strategy_returns, spearman_ic

    ordered = predictions.sort_values("date").reset_index(drop=True)
    y, p, nxt = (ordered[c].to_numpy() for c in ("target", "prediction", "next_return"))
    out = {f"oos_{k}": v for k, v in forecast_metrics(y, p, nxt, cost_bps, slippage_bps).items()}
    stats = {
        "direction_accuracy": lambda f: direction_accuracy(f["target"].to_numpy(), f["prediction"].to_numpy()),
        "ic": lambda f: spearman_ic(f["target"].to_numpy(), f["prediction"].to_numpy()),
        "sharpe": lambda f: sharpe(sign_strategy_returns(f["prediction"].to_numpy(), f["next_return"].to_numpy(),
                                                         cost_bps, slippage_bps)),
    }
    for name, fn in stats.items():
        lo, hi = block_bootstrap_ci(ordered, fn, reps=reps, seed=seed)
        out[f"oos_{name}_ci_low"], out[f"oos_{name}_ci_high"] = lo, hi
    return out


# Shallow, subsampled trees with patient early stopping: on the full synthetic profile with a
# planted signal this recovers ~60 % of the true signal's IC where the seed notebook's values
# (the defaults above) recover ~30 %, and trains ~6x faster (bench/forecasting.py, README).
REGULARIZED = XGBParams(max_depth=2, learning_rate=0.05, subsample=0.5, colsample_bytree=0.5,
                        min_child_weight=100.0, early_stopping_rounds=100)
