"""Skill worth deploying, decided for the whole universe at once.

One ticker's evidence (`skill_evidence`) is two one-sided tests on its walk-forward, both of which
must reject "no skill":

* the **excess IC**: the correlation, within each walk-forward fold, of the forecast with the
  forward *simple* return in excess of the ticker's trailing drift, divided by its trailing
  volatility. A forecast that only knows the size of the coming returns (a volatility forecast:
  the drag of volatility on log returns, the leverage effect, a skewed distribution whose median
  moves with the volatility) ranks log returns, but cannot move the mean of these. It is Pearson's
  correlation, not a rank IC: with a skewed distribution, ranks reward knowing the size too;
* the **economic test**: the daily return, after costs, of a long-only tilt the forecast drives (a
  weight of 1.5 when it forecasts more than the drift it was trained on, 0.5 when less, each
  session's forecast held for its horizon in a sleeve of 1/horizon) in excess of holding the ticker
  at weight 1. Its mean is what the forecast earns a long-only allocation.

Each p-value is studentised by a moving-block bootstrap (blocks of at least the horizon, so the
overlap of the forward returns is kept): z = estimate / bootstrap standard deviation, p = 1 - Phi(z),
which resolves the small p-values a family-wise threshold needs. The ticker's p-value is the larger
of the two (an intersection-union test, valid at its level with no adjustment).

`family_decision` then adjusts every ticker's p-value for the number of hypotheses tried: tickers
times model variants (the distinct configurations ever evaluated, counted by the tracking store),
by Holm's step-down (family-wise error) or Benjamini-Hochberg (false discovery rate), at
`gates.family_rate`; statsmodels' `multipletests` does the arithmetic (method "none" judges each
ticker alone, for research on one ticker). A ticker whose walk-forward
is not stored yet counts as a hypothesis with p = 1, which keeps the error rate controlled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from odyssey.hashing import sha256_bytes
from odyssey.metrics import ANNUAL_DAYS, block_bootstrap_indices

FamilyMethod = Literal["holm", "bh", "none"]
METHODS = {"holm": "holm", "bh": "fdr_bh", "none": None}  # statsmodels' names; none: no adjustment
TILT = 0.5  # the economic test's weights: 1 +- TILT
DRIFT_DAYS, VOL_DAYS = 252, 63  # trailing windows of the excess target
MIN_TRAILING = 20
NO_VIEW = 1e-6  # a forecast this close to the drift it was trained on has no view


def variant_of(config: dict, registry_version: str) -> str:
    """A model variant's name: the SHA-256 (16 hex digits) of what makes two walk-forwards two
    tries rather than one, re-run on more data: the walk-forward's windows, the XGBoost parameters
    (all but its thread count), the horizon, purge and embargo, and the feature registry's version."""
    from odyssey.signing import canonical_json

    xgboost = {k: v for k, v in config["xgboost"].items() if k != "nthread"}
    what = {"walkforward": config["walkforward"], "xgboost": xgboost, "horizon": config["horizon"],
            "purge": config["purge"], "embargo": config["embargo"], "registry_version": registry_version}
    return sha256_bytes(canonical_json(what))[:16]


def daily_simple_returns(returns: pd.DataFrame, ticker: str) -> pd.Series:
    """The ticker's simple return realised on each date, from the daily log returns (date, ticker,
    log_return), indexed by date."""
    rows = returns[returns["ticker"] == ticker]
    return pd.Series(np.expm1(rows["log_return"].to_numpy(float)), index=pd.DatetimeIndex(rows["date"]))


@dataclass(frozen=True)
class SkillEvidence:
    """One ticker's walk-forward evidence of skill: estimates, their bootstrap z-scores and
    one-sided p-values, and `p`, the larger of the two."""

    n: int
    excess_ic: float
    excess_ic_z: float
    p_ic: float
    tilt_excess: float  # annualised mean daily return of the tilt over holding, after costs
    tilt_excess_z: float
    p_economic: float
    p: float

    def to_dict(self) -> dict:
        return asdict(self)


def excess_target(dates: pd.Series, target: np.ndarray, daily: pd.Series, horizon: int) -> np.ndarray:
    """The forward simple return over `horizon` sessions (from the h-session log return `target`)
    less `horizon` times the trailing mean daily simple return, over the trailing daily volatility
    times sqrt(horizon); both trailing statistics use the returns realised up to each date
    (`daily`: simple return realised on each date, indexed by date). NaN where fewer than 20
    trailing days exist."""
    daily = daily.sort_index()
    drift = daily.rolling(DRIFT_DAYS, min_periods=MIN_TRAILING).mean()
    vol = daily.rolling(VOL_DAYS, min_periods=MIN_TRAILING).std()
    at = pd.DatetimeIndex(dates)
    m = drift.reindex(at).to_numpy()
    s = vol.reindex(at).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.expm1(target) - horizon * m) / (s * np.sqrt(horizon))


def tilt_excess_returns(prediction: np.ndarray, drift_forecast: np.ndarray, next_return: np.ndarray,
                        cost_rate: float, horizon: int = 1) -> np.ndarray:
    """Daily returns, after costs, of a long-only tilt over holding the ticker at weight 1. Each
    session's forecast takes a sleeve of 1/horizon of the position for the `horizon` sessions it
    forecasts, at weight 1 + TILT * sign(prediction - drift_forecast) (the overlapping portfolios of
    a multi-session forecast: each forecast is used over its whole horizon, and the weight moves a
    sleeve at a time); the tilt's part of the next session's return, less the cost rate on every
    unit of weight traded (from weight 1 on the first day). A forecast within NO_VIEW of the drift
    (a constant model's, up to rounding) is no view: its sleeve stays at weight 1."""
    gap = prediction - drift_forecast
    views = TILT * np.where(np.abs(gap) > NO_VIEW, np.sign(gap), 0.0)
    tilt = pd.Series(views).rolling(horizon, min_periods=1).sum().to_numpy() / horizon
    traded = np.abs(np.diff(np.r_[0.0, tilt]))
    return tilt * next_return - traded * cost_rate


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's correlation of two series already centred within their folds (0 when either is
    constant)."""
    scale = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / scale) if scale > 0 else 0.0


def _within_folds(values: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Each value less the mean of its fold: the correlation then compares forecasts with outcomes
    inside each fold, not the folds' levels (a constant model, whose forecast moves only from fold
    to fold, has none)."""
    means = pd.Series(values).groupby(folds).transform("mean").to_numpy()
    return values - means


def _one_sided(estimate: float, replicates: np.ndarray) -> tuple[float, float]:
    from scipy.stats import norm  # imported on first use: loading the code location skips SciPy

    sd = float(np.nanstd(replicates, ddof=1))
    if not np.isfinite(estimate) or not np.isfinite(sd) or sd <= 0:
        return 0.0, 1.0
    z = estimate / sd
    return float(z), float(norm.sf(z))


def skill_evidence(predictions: pd.DataFrame, daily: pd.Series, horizon: int, cost_rate: float,
                   block: int = 20, reps: int = 500, seed: int = 0) -> SkillEvidence:
    """The two tests on a ticker's walk-forward predictions (date, prediction, target, next_return,
    train_mean; `daily`: the ticker's simple return realised on each date, its whole history)."""
    ordered = predictions.sort_values("date").reset_index(drop=True)
    excess = excess_target(ordered["date"], ordered["target"].to_numpy(float), daily, horizon)
    p = ordered["prediction"].to_numpy(float)
    tilt = tilt_excess_returns(p, ordered["train_mean"].to_numpy(float),
                               ordered["next_return"].fillna(0.0).to_numpy(float), cost_rate, horizon)
    usable = np.isfinite(excess)
    n = int(usable.sum())
    block = max(block, horizon)
    if n < 2 * block:
        return SkillEvidence(n, float("nan"), 0.0, 1.0, float("nan"), 0.0, 1.0, 1.0)
    folds = ordered["fold"].to_numpy()[usable] if "fold" in ordered else np.zeros(n)
    pe, ex = _within_folds(p[usable], folds), _within_folds(excess[usable], folds)
    ic = _correlation(ex, pe)
    idx = block_bootstrap_indices(n, block, reps, seed)
    ic_z, p_ic = _one_sided(ic, np.array([_correlation(ex[i], pe[i]) for i in idx]))
    tilt_idx = block_bootstrap_indices(len(tilt), block, reps, seed + 1)
    mean = float(tilt.mean())
    tilt_z, p_econ = _one_sided(mean, tilt[tilt_idx].mean(axis=1))
    return SkillEvidence(n, float(ic), ic_z, p_ic, mean * ANNUAL_DAYS, tilt_z, p_econ, max(p_ic, p_econ))


@dataclass(frozen=True)
class FamilyDecision:
    """The deployment decision for the universe: each ticker's p-value (None: no walk-forward
    stored yet, counted as p = 1), its adjusted p-value, and the tickers that may deploy."""

    method: str
    rate: float
    variants: int
    hypotheses: int
    p: dict[str, float | None]
    adjusted: dict[str, float]
    deploy: tuple[str, ...]

    def passes(self, ticker: str) -> bool:
        return ticker in self.deploy

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"ticker": t, "p": self.p[t], "adjusted_p": self.adjusted[t], "deploys": t in self.deploy}
                             for t in self.p])


def family_decision(pvalues: Mapping[str, float | None], variants: int, method: FamilyMethod,
                    rate: float) -> FamilyDecision:
    """Which of the universe's tickers (the keys of `pvalues`) may deploy when `variants` model
    variants were tried on each: Holm's or Benjamini-Hochberg's adjustment of every p-value over
    len(pvalues) * variants hypotheses (the variants not at hand, and tickers without a p-value,
    counted with p = 1), rejecting at `rate`."""
    from statsmodels.stats.multitest import multipletests  # imported on first use

    if method not in METHODS:
        raise ValueError(f"unknown family method {method!r}; choose one of {sorted(METHODS)}")
    if variants < 1:
        raise ValueError(f"variants must be at least 1, got {variants}")
    tickers: Sequence[str] = list(pvalues)
    known = [1.0 if pvalues[t] is None or not np.isfinite(pvalues[t]) else float(pvalues[t]) for t in tickers]
    hypotheses = len(tickers) * variants
    if METHODS[method] is None:  # each ticker alone: one hypothesis each, no adjustment
        adjusted, reject, hypotheses = np.array(known), np.array(known) <= rate, len(tickers)
    else:
        padded = np.r_[known, np.ones(hypotheses - len(known))]
        reject, adjusted, _, _ = multipletests(padded, alpha=rate, method=METHODS[method])
    return FamilyDecision(method, rate, variants, hypotheses, dict(pvalues),
                          {t: float(adjusted[i]) for i, t in enumerate(tickers)},
                          tuple(t for i, t in enumerate(tickers) if reject[i]))
