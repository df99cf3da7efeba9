"""Expanding-window walk-forward training of per-ticker XGBoost forecasts, with the feature
pipeline fitted inside every fold, purging and an embargo between windows, and a final partial
fold so that out-of-sample history reaches the latest labelled day.

Fold k (k = 0, 1, ...) of a ticker whose labelled rows start at t0: train [t0, t0 + min_train +
k*step), validation the next `val` span, test the next `test` span. Folds run while the test
window ends inside the labelled rows; one more, partial fold tests from its validation end to the
last labelled row. Between consecutive windows the last `purge` rows of the earlier one are
dropped (their h-day target reaches into the next window) and the first `embargo` rows of the
later one are skipped; both are the forecast horizon. Every fold fits the feature pipeline (clip
thresholds, regime model, scaler) on its own training rows only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, Sequence

import numpy as np
import pandas as pd

from odyssey.fitting import FeaturePipeline, MarketInputs, PipelineParams
from odyssey.metrics import forecast_metrics
from odyssey.settings import Costs, Settings, WalkForwardSettings, XGBParams
from odyssey.splits import forward_returns, price_column, target_name

if TYPE_CHECKING:
    import xgboost as xgb

MIN_PARTIAL_TEST_ROWS = 20


@dataclass
class Fold:
    k: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    bounds: dict = field(default_factory=dict)
    partial: bool = False


def _months(years: float) -> pd.DateOffset:
    return pd.DateOffset(months=int(round(years * 12)))


def make_folds(dates: pd.DatetimeIndex | Sequence, config: WalkForwardSettings = WalkForwardSettings(),
               purge: int = 5, embargo: int = 5) -> list[Fold]:
    """Row positions of each fold's windows for one ticker's sorted labelled dates."""
    dates = pd.DatetimeIndex(dates)
    if len(dates) == 0:
        return []
    t0, last = dates[0], dates[-1]
    pos = np.arange(len(dates))
    folds = []
    k = 0
    while True:
        train_end = t0 + _months(config.min_train_years) + _months(config.step_years * k)
        val_end = train_end + _months(config.val_years)
        test_end = val_end + _months(config.test_years)
        partial = test_end > last + pd.Timedelta(days=1)
        tr = pos[dates < train_end]
        va = pos[(dates >= train_end) & (dates < val_end)]
        te = pos[(dates >= val_end) & (dates < test_end)]
        test = te[embargo:]
        if partial and len(test) < MIN_PARTIAL_TEST_ROWS:
            break
        folds.append(Fold(
            k=k, train=tr[: max(len(tr) - purge, 0)], val=va[embargo: max(len(va) - purge, embargo)], test=test,
            bounds={"train_start": t0.date().isoformat(), "train_end": train_end.date().isoformat(),
                    "val_end": val_end.date().isoformat(),
                    "test_end": (min(test_end, last + pd.Timedelta(days=1))).date().isoformat()},
            partial=partial))
        if partial:
            break
        k += 1
    return folds


def fit_booster(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                params: XGBParams, feature_names: Sequence[str] | None = None) -> xgb.Booster:
    """Train with early stopping on the validation window."""
    import xgboost as xgb  # imported when a model trains or loads: loading the code location skips it

    names = list(feature_names) if feature_names else None
    dtrain = xgb.DMatrix(x_train, label=y_train, feature_names=names)
    dval = xgb.DMatrix(x_val, label=y_val, feature_names=names)
    return xgb.train(params.booster_params(), dtrain, num_boost_round=params.n_estimators,
                     evals=[(dval, "validation")], early_stopping_rounds=params.early_stopping_rounds,
                     verbose_eval=False)


def predict(booster: xgb.Booster, x: np.ndarray, feature_names: Sequence[str] | None = None) -> np.ndarray:
    import xgboost as xgb  # imported when a model trains or loads: loading the code location skips it

    best = getattr(booster, "best_iteration", None)
    limit = (0, best + 1) if best is not None else (0, 0)
    dm = xgb.DMatrix(x, feature_names=list(feature_names) if feature_names else None)
    return booster.predict(dm, iteration_range=limit)


@dataclass
class FoldData:
    """A fold's model inputs, built with the pipeline fitted on the fold's training rows."""

    fold: Fold
    params: PipelineParams
    x: np.ndarray  # every labelled row of the ticker, float32
    y: np.ndarray
    dates: pd.DatetimeIndex

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        rows = getattr(self.fold, name)
        return self.x[rows], self.y[rows]


@dataclass
class WalkForwardResult:
    predictions: pd.DataFrame  # date, ticker, fold, prediction, target, next_return, train_mean (naive baseline)
    folds: pd.DataFrame  # per-fold metrics and windows
    config: dict


@dataclass
class WalkForward:
    """The walk-forward of one ticker: labelled rows, folds, fold-local features, models."""

    pipeline: FeaturePipeline
    params: XGBParams = XGBParams()
    config: WalkForwardSettings = WalkForwardSettings()
    horizon: int = 5
    costs: Costs = Costs()
    purge: int | None = None  # None: the horizon
    embargo: int | None = None  # None: the horizon

    @property
    def purge_rows(self) -> int:
        return self.horizon if self.purge is None else self.purge

    @property
    def embargo_rows(self) -> int:
        return self.horizon if self.embargo is None else self.embargo

    def frame(self, inputs: MarketInputs, ticker: str) -> pd.DataFrame:
        """The ticker's labelled rows: date, target (h-session total log return), target_end (the
        session the target is realised on), next_return (simple return to the next session),
        sorted by date."""
        clean = inputs.clean[inputs.clean["ticker"] == ticker]
        if clean.empty:
            raise ValueError(f"no clean prices for ticker {ticker!r}")
        target = forward_returns(clean, self.horizon).rename(columns={target_name(self.horizon): "target"})
        px = clean.sort_values("date")
        column = price_column(px)
        out = target[["date", "ticker", "target", "target_end"]].assign(
            next_return=(px[column].shift(-1) / px[column] - 1.0).to_numpy())
        return out[out["target"].notna()].sort_values("date").reset_index(drop=True)

    def folds(self, frame: pd.DataFrame) -> list[Fold]:
        folds = make_folds(frame["date"], self.config, self.purge_rows, self.embargo_rows)
        if not folds:
            raise ValueError(f"{frame['ticker'].iloc[0] if len(frame) else '?'}: not enough history for one "
                             f"walk-forward fold ({self.config.min_train_years}y train + {self.config.val_years}y "
                             f"validation + {MIN_PARTIAL_TEST_ROWS} test sessions)")
        return folds

    def prepare(self, inputs: MarketInputs, ticker: str, frame: pd.DataFrame, fold: Fold,
                unfitted: pd.DataFrame | None = None) -> FoldData:
        """Fit the feature pipeline on the fold's training rows and build its model inputs."""
        train_rows = frame.iloc[fold.train]
        params, table = self.pipeline.fit_transform(inputs, end=train_rows["date"].max(), tickers=[ticker],
                                                    unfitted=unfitted, scaler_rows=train_rows)
        x = frame[["date"]].merge(table, on="date", how="left")[list(self.pipeline.names)]
        return FoldData(fold, params, x.to_numpy(dtype=np.float32), frame["target"].to_numpy(dtype=float),
                        pd.DatetimeIndex(frame["date"]))

    def train(self, data: FoldData) -> xgb.Booster:
        x_tr, y_tr = data.part("train")
        x_va, y_va = data.part("val")
        return fit_booster(x_tr, y_tr, x_va, y_va, self.params)

    def run(self, inputs: MarketInputs, ticker: str, model: "FoldModel | None" = None) -> WalkForwardResult:
        """Out-of-sample predictions for every fold's test rows, from `model` (the XGBoost booster
        by default) fitted on each fold's rows."""
        return self.run_models(inputs, ticker, {"model": model or XGBoostFolds(self)})["model"]

    def run_models(self, inputs: MarketInputs, ticker: str,
                   models: dict[str, "FoldModel"]) -> dict[str, WalkForwardResult]:
        """Several models on the same folds: each fold's inputs (the feature pipeline fitted on its
        training rows, the costly part) are built once and given to every model."""
        frame = self.frame(inputs, ticker)
        unfitted = self.pipeline.unfitted(inputs, [ticker])
        preds: dict[str, list] = {name: [] for name in models}
        rows: dict[str, list] = {name: [] for name in models}
        for fold in self.folds(frame):
            data = self.prepare(inputs, ticker, frame, fold, unfitted)
            test = frame.iloc[fold.test]
            y_te = data.y[fold.test]
            nxt = test["next_return"].fillna(0.0).to_numpy()
            y_tr = data.y[fold.train]
            for name, model in models.items():
                p, info = model.fit_predict(data, frame)
                preds[name].append(pd.DataFrame({"date": test["date"].to_numpy(), "ticker": ticker, "fold": fold.k,
                                                 "prediction": p.astype(float), "target": y_te, "next_return": nxt,
                                                 "train_mean": float(np.mean(y_tr))}))
                metrics = forecast_metrics(y_te, p, nxt, self.costs.cost_bps, self.costs.slippage_bps)
                rows[name].append({"fold": fold.k, **fold.bounds, "partial": fold.partial,
                                   "train_rows": len(fold.train), "val_rows": len(fold.val),
                                   "test_rows": len(fold.test), **info, **metrics})
        return {name: WalkForwardResult(pd.concat(preds[name], ignore_index=True), pd.DataFrame(rows[name]),
                                        self.describe()) for name in models}

    def describe(self) -> dict:
        return {"walkforward": self.config.model_dump(), "xgboost": self.params.model_dump(), "horizon": self.horizon,
                "purge": self.purge_rows, "embargo": self.embargo_rows}


class FoldModel(Protocol):
    """A forecaster the walk-forward fits and evaluates fold by fold: from a fold's model inputs
    (the feature pipeline already fitted on its training rows) to predictions for its test rows,
    and what to report about the fit."""

    def fit_predict(self, data: FoldData, frame: pd.DataFrame) -> tuple[np.ndarray, dict]: ...


@dataclass
class XGBoostFolds:
    """The walk-forward's default model: a booster early-stopped on the fold's validation rows."""

    walkforward: WalkForward

    def fit_predict(self, data: FoldData, frame: pd.DataFrame) -> tuple[np.ndarray, dict]:
        booster = self.walkforward.train(data)
        return predict(booster, data.part("test")[0]), {"best_iteration": int(booster.best_iteration)}


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
                    reps: int = 500, seed: int = 0, level: float = 0.9) -> dict[str, float]:
    """Pooled out-of-sample metrics with moving-block bootstrap intervals (20-day blocks): IC,
    direction accuracy, its edge over the naive forecast (the sign of the training mean) and the
    costed sign strategy's Sharpe."""
    from odyssey.metrics import block_bootstrap_ci, direction_accuracy, sharpe, sign_strategy_returns, spearman_ic

    ordered = predictions.sort_values("date").reset_index(drop=True)
    y, p, nxt = (ordered[c].to_numpy() for c in ("target", "prediction", "next_return"))
    out = {f"oos_{k}": v for k, v in forecast_metrics(y, p, nxt, cost_bps, slippage_bps).items()}
    out["oos_naive_direction_accuracy"] = direction_accuracy(y, ordered["train_mean"].to_numpy())
    out["oos_accuracy_edge"] = out["oos_direction_accuracy"] - out["oos_naive_direction_accuracy"]
    stats = {
        "direction_accuracy": lambda f: direction_accuracy(f["target"], f["prediction"]),
        "accuracy_edge": lambda f: (direction_accuracy(f["target"], f["prediction"])
                                    - direction_accuracy(f["target"], f["train_mean"])),
        "ic": lambda f: spearman_ic(f["target"], f["prediction"]),
        "sharpe": lambda f: sharpe(sign_strategy_returns(f["prediction"], f["next_return"],
                                                         cost_bps, slippage_bps)),
    }
    for name, fn in stats.items():
        lo, hi = block_bootstrap_ci(ordered, fn, reps=reps, seed=seed, level=level)
        out[f"oos_{name}_ci_low"], out[f"oos_{name}_ci_high"] = lo, hi
    out["oos_start"], out["oos_end"] = str(ordered["date"].min().date()), str(ordered["date"].max().date())
    return out


def walkforward_from_settings(settings: Settings, params: XGBParams | None = None,
                              config: WalkForwardSettings | None = None) -> WalkForward:
    """The run's walk-forward: its pipeline, horizon, costs, and XGBoost / windows (overridable)."""
    from odyssey.fitting import feature_pipeline

    forecast = settings.forecast
    return WalkForward(feature_pipeline(settings), params or forecast.xgboost, config or forecast.walkforward,
                       forecast.horizon, settings.costs)
