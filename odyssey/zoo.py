"""A model zoo on the walk-forward's folds (`walkforward.FoldModel`): ridge, LightGBM and the naive
forecast per ticker beside XGBoost and the analog forecast, and one pooled LightGBM ranker that
learns to order every ticker on each day from all tickers' rows of the fold. Every model sees the
same fold inputs (the feature pipeline fitted on the fold's training rows) and predicts the same
test rows, and `zoo_table` scores them as a cross-sectional research table does: daily IC and
rank IC across tickers, their ratio to their spread (ICIR), and a top-k long-only portfolio after
costs against equal weight."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from odyssey.metrics import ANNUAL_DAYS
from odyssey.walkforward import FoldData


@dataclass
class NaiveFolds:
    """The training rows' mean target: what the ticker has drifted by, as its forecast."""

    def fit_predict(self, data: FoldData, frame: pd.DataFrame) -> tuple[np.ndarray, dict]:
        return np.full(len(data.fold.test), float(np.mean(data.part("train")[1]))), {}


@dataclass
class RidgeFolds:
    """Ridge regression (scikit-learn) on the fold's scaled features; the penalty is the one of
    `alphas` with the least squared error on the fold's validation rows."""

    alphas: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0, 10000.0)

    def fit_predict(self, data: FoldData, frame: pd.DataFrame) -> tuple[np.ndarray, dict]:
        from sklearn.linear_model import Ridge

        (x_tr, y_tr), (x_va, y_va) = _finite(*data.part("train")), _finite(*data.part("val"))
        fits = [Ridge(alpha=a).fit(x_tr, y_tr) for a in self.alphas]
        errors = [float(np.mean((m.predict(x_va) - y_va) ** 2)) for m in fits]
        best = int(np.argmin(errors))
        return fits[best].predict(np.nan_to_num(data.part("test")[0])), {"alpha": self.alphas[best]}


def _finite(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.nan_to_num(x), y


LIGHTGBM_PARAMS = {"n_estimators": 500, "learning_rate": 0.03, "num_leaves": 15, "min_child_samples": 50,
                   "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 1.0,
                   "verbose": -1}


@dataclass
class LightGBMFolds:
    """A LightGBM regressor early-stopped on the fold's validation rows."""

    seed: int = 0
    threads: int = 2
    params: dict = field(default_factory=lambda: dict(LIGHTGBM_PARAMS))

    def fit_predict(self, data: FoldData, frame: pd.DataFrame) -> tuple[np.ndarray, dict]:
        import lightgbm as lgb

        model = lgb.LGBMRegressor(**self.params, random_state=self.seed, n_jobs=self.threads, deterministic=True,
                                  force_row_wise=True)
        (x_tr, y_tr), (x_va, y_va) = data.part("train"), data.part("val")
        model.fit(x_tr, y_tr, eval_X=(x_va,), eval_y=(y_va,), callbacks=[lgb.early_stopping(50, verbose=False)])
        return model.predict(data.part("test")[0]), {"best_iteration": int(model.best_iteration_ or 0)}


@dataclass
class FoldCollector:
    """Keeps every fold's inputs of every ticker for a pooled model (`pooled_ranker`), and
    predicts nothing itself (its predictions are zeros and are not scored)."""

    folds: dict[str, list[FoldData]] = field(default_factory=dict)

    def fit_predict(self, data: FoldData, frame: pd.DataFrame) -> tuple[np.ndarray, dict]:
        self.folds.setdefault(str(frame["ticker"].iloc[0]), []).append(data)
        return np.zeros(len(data.fold.test)), {}


def _grades(dates: np.ndarray, y: np.ndarray, grades: int) -> np.ndarray:
    """Each row's relevance on its day: the quantile of its target among the day's rows."""
    pct = pd.Series(y).groupby(dates).rank(pct=True).to_numpy()
    return np.minimum((pct * grades).astype(int), grades - 1)


def pooled_ranker(collected: dict[str, list[FoldData]], frames: dict[str, pd.DataFrame], seed: int = 0,
                  threads: int = 2, grades: int = 5, params: dict | None = None) -> pd.DataFrame:
    """One LightGBM lambdarank model per fold, trained on every ticker's training rows of that fold
    (each day one query, the relevance the quantile of the day's targets), early-stopped on their
    validation rows, predicting every ticker's test rows: date, ticker, fold, prediction, target,
    next_return, train_mean (the walk-forward's prediction table)."""
    import lightgbm as lgb

    out = []
    for k in sorted({d.fold.k for folds in collected.values() for d in folds}):
        parts = {t: next(d for d in folds if d.fold.k == k) for t, folds in collected.items()
                 if any(d.fold.k == k for d in folds)}
        windows = {json.dumps(d.fold.bounds, sort_keys=True) for d in parts.values()}
        if len(windows) > 1:  # a ticker listed later has its own windows: its rows of fold k are other days
            raise ValueError(f"pooled_ranker: fold {k} has different windows across tickers ({sorted(windows)}); "
                             "pool only tickers whose histories start together")

        def pooled(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            x = np.concatenate([d.part(name)[0] for d in parts.values()])
            y = np.concatenate([d.part(name)[1] for d in parts.values()])
            dates = np.concatenate([d.dates[getattr(d.fold, name)].to_numpy() for d in parts.values()])
            order = np.argsort(dates, kind="stable")
            return x[order], y[order], dates[order]

        x_tr, y_tr, d_tr = pooled("train")
        x_va, y_va, d_va = pooled("val")
        model = lgb.LGBMRanker(objective="lambdarank", **(params or LIGHTGBM_PARAMS), random_state=seed, n_jobs=threads,
                               deterministic=True, force_row_wise=True)
        model.fit(x_tr, _grades(d_tr, y_tr, grades), group=_group_sizes(d_tr),
                  eval_X=(x_va,), eval_y=(_grades(d_va, y_va, grades),), eval_group=[_group_sizes(d_va)], eval_at=[1],
                  callbacks=[lgb.early_stopping(50, verbose=False)])
        for ticker, data in parts.items():
            test = frames[ticker].iloc[data.fold.test]
            out.append(pd.DataFrame({"date": test["date"].to_numpy(), "ticker": ticker, "fold": k,
                                     "prediction": model.predict(data.part("test")[0]),
                                     "target": data.y[data.fold.test],
                                     "next_return": test["next_return"].fillna(0.0).to_numpy(),
                                     "train_mean": float(np.mean(data.part("train")[1]))}))
    return pd.concat(out, ignore_index=True)


def _group_sizes(dates: np.ndarray) -> np.ndarray:
    _, counts = np.unique(dates, return_counts=True)  # dates are sorted: one contiguous query per day
    return counts


@dataclass(frozen=True)
class ZooRow:
    """One model's line of the table."""

    model: str
    ic: float
    rank_ic: float
    icir: float
    rank_icir: float
    annual_return: float       # top-k long-only, after costs
    excess_return: float       # over equal weight of the universe, after both pay costs, annualised
    information_ratio: float   # of that excess, annualised
    max_drawdown: float        # of the top-k portfolio after costs
    days: int


def daily_ic(predictions: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per day, the Pearson and Spearman correlation across tickers of the forecast with the
    realised target (days with fewer than three tickers or a constant forecast are left out)."""
    usable = predictions.groupby("date").filter(lambda g: len(g) >= 3 and g["prediction"].nunique() > 1)
    grouped = usable.groupby("date")
    pearson = grouped.apply(lambda g: g["prediction"].corr(g["target"]), include_groups=False)
    spearman = grouped.apply(lambda g: g["prediction"].corr(g["target"], method="spearman"), include_groups=False)
    return pearson.dropna(), spearman.dropna()


def top_k_returns(predictions: pd.DataFrame, k: int, cost_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Daily returns after costs of holding the k highest forecasts in equal weight (traded at each
    close, costs on the traded value) and of holding every ticker in equal weight."""
    forecast = predictions.pivot_table(index="date", columns="ticker", values="prediction").sort_index()
    nxt = predictions.pivot_table(index="date", columns="ticker", values="next_return").reindex(forecast.index)
    complete = forecast.notna().all(axis=1) & nxt.notna().all(axis=1)
    forecast, nxt = forecast[complete].to_numpy(), nxt[complete].to_numpy()
    n = forecast.shape[1]
    ranks = np.argsort(np.argsort(-forecast, axis=1, kind="stable"), axis=1)
    targets = {"top": (ranks < k) / k, "equal": np.full_like(forecast, 1.0 / n)}
    out = {}
    for name, w in targets.items():
        held = np.zeros(n)
        r = np.zeros(len(w))
        for t in range(len(w)):
            cost = cost_rate * np.abs(w[t] - held).sum()
            r[t] = w[t] @ nxt[t] - cost
            grown = w[t] * (1 + nxt[t])
            held = grown / max(grown.sum(), 1e-12)
        out[name] = r
    return out["top"], out["equal"]


def zoo_row(model: str, predictions: pd.DataFrame, k: int, cost_rate: float) -> ZooRow:
    pearson, spearman = daily_ic(predictions)
    top, equal = top_k_returns(predictions, k, cost_rate)
    excess = top - equal
    equity = np.cumprod(1 + top)
    drawdown = float((equity / np.maximum.accumulate(np.maximum(equity, 1.0)) - 1).min()) if len(top) else 0.0
    sd = excess.std(ddof=1) if len(excess) > 1 else 0.0

    def ratio(s: pd.Series) -> float:
        return float(s.mean() / s.std(ddof=1)) if len(s) > 1 and s.std(ddof=1) > 0 else float("nan")

    return ZooRow(model, float(pearson.mean()) if len(pearson) else float("nan"),
                  float(spearman.mean()) if len(spearman) else float("nan"), ratio(pearson), ratio(spearman),
                  float((1 + top).prod() ** (ANNUAL_DAYS / max(len(top), 1)) - 1), float(excess.mean() * ANNUAL_DAYS),
                  float(excess.mean() / sd * np.sqrt(ANNUAL_DAYS)) if sd > 0 else 0.0, drawdown, len(top))


def zoo_table(predictions: dict[str, pd.DataFrame], k: int, cost_rate: float) -> pd.DataFrame:
    """One row per model, every model scored on the days all of them forecast."""
    common = None
    for frame in predictions.values():
        days = set(frame["date"])
        common = days if common is None else common & days
    rows = [zoo_row(name, frame[frame["date"].isin(common)], k, cost_rate) for name, frame in predictions.items()]
    return pd.DataFrame([r.__dict__ for r in rows])
