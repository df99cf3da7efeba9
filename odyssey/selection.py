"""Which strategy advises: the best of the candidates on held-out sessions, by the information ratio
of its daily excess return over the baseline after costs, and only when the choice survives two
guards against selection by luck:

- the deflated Sharpe ratio (Bailey and Lopez de Prado, 2014): the probability that the chosen
  strategy's true information ratio exceeds the best a set of as many candidates, each without
  skill, would show on as many sessions (their spread taken from the candidates themselves), with
  the skew and kurtosis of its excess returns;
- the probability of backtest overfitting by combinatorially symmetric cross-validation (Bailey,
  Borwein, Lopez de Prado and Zhu, 2017): the held-out sessions are cut into S blocks; for every
  half of them the best candidate of that half is ranked among all candidates on the other half;
  PBO is the share of halves in which it lands at or below the median.

When either guard fails, or no candidate beats the baseline, the baseline advises."""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from odyssey.metrics import ANNUAL_DAYS

EULER_GAMMA = 0.5772156649015329


def information_ratios(excess: np.ndarray) -> np.ndarray:
    """Per-session mean over standard deviation of each column (0 for a column that never moves)."""
    sd = excess.std(axis=0, ddof=1)
    return np.divide(excess.mean(axis=0), sd, out=np.zeros(excess.shape[1]), where=sd > 0)


def expected_max_sharpe(trials: int, variance: float) -> float:
    """The expected largest of `trials` Sharpe ratios without skill whose estimates vary by
    `variance` (the false strategy theorem's approximation); 0 for a single trial."""
    from scipy import stats  # imported when a choice is made: the code location loads without it
    if trials < 2 or variance <= 0:
        return 0.0
    return math.sqrt(variance) * ((1 - EULER_GAMMA) * stats.norm.ppf(1 - 1 / trials)
                                  + EULER_GAMMA * stats.norm.ppf(1 - 1 / (trials * math.e)))


def deflated_sharpe(returns: np.ndarray, trials: int, trial_variance: float) -> float:
    """Probability that the true per-session Sharpe ratio of `returns` exceeds the expected maximum
    of `trials` unskilled ones (probabilistic Sharpe ratio against that benchmark, corrected for
    skew and kurtosis)."""
    from scipy import stats  # imported when a choice is made: the code location loads without it
    r = np.asarray(returns, dtype=float)
    n = len(r)
    sd = r.std(ddof=1) if n > 1 else 0.0
    if n < 3 or sd <= 0:
        return 0.0
    sharpe = r.mean() / sd
    benchmark = expected_max_sharpe(trials, trial_variance)
    skew, kurtosis = float(stats.skew(r)), float(stats.kurtosis(r, fisher=False))
    spread = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe ** 2
    return float(stats.norm.cdf((sharpe - benchmark) * math.sqrt(n - 1) / math.sqrt(max(spread, 1e-12))))


def pbo_cscv(excess: np.ndarray, partitions: int = 16, choosable: np.ndarray | None = None) -> float:
    """Probability of backtest overfitting of choosing the column with the best information ratio
    among the `choosable` ones (default: all): over every way of taking half of `partitions`
    consecutive blocks of rows in-sample, the share in which the in-sample choice ranks at or
    below the median of all columns out of sample (relative rank w = rank / (N + 1),
    logit(w) <= 0). Ranks of ties are averaged."""
    from scipy import stats  # imported when a choice is made: the code location loads without it
    t, n = excess.shape
    if n < 2:
        raise ValueError("pbo_cscv needs at least two candidates")
    if partitions % 2 or t < 2 * partitions:
        raise ValueError(f"pbo_cscv: {t} sessions cannot be cut into {partitions} (an even number of) blocks of at "
                         "least two")
    edges = np.linspace(0, t, partitions + 1).round().astype(int)
    count = np.diff(edges).astype(float)
    total = np.add.reduceat(excess, edges[:-1], axis=0)            # [S, N] per-block sums
    square = np.add.reduceat(excess ** 2, edges[:-1], axis=0)
    combos = np.array(list(itertools.combinations(range(partitions), partitions // 2)))
    chosen = np.zeros((len(combos), partitions), dtype=bool)
    chosen[np.arange(len(combos))[:, None], combos] = True

    def ratio(mask: np.ndarray) -> np.ndarray:  # [C, N] information ratio on the blocks in `mask`
        m = mask.astype(float)
        k = m @ count
        mean = (m @ total) / k[:, None]
        var = ((m @ square) - k[:, None] * mean ** 2) / (k[:, None] - 1)
        sd = np.sqrt(np.maximum(var, 0.0))
        return np.divide(mean, sd, out=np.zeros_like(mean), where=sd > 1e-15)

    inside, outside = ratio(chosen), ratio(~chosen)
    if choosable is not None:
        inside = np.where(np.asarray(choosable, dtype=bool)[None, :], inside, -np.inf)
    best = inside.argmax(axis=1)
    ranks = stats.rankdata(outside, axis=1)                          # 1 = worst, N = best
    relative = ranks[np.arange(len(combos)), best] / (n + 1)
    return float(np.mean(np.log(relative / (1 - relative)) <= 0))


@dataclass(frozen=True)
class CandidateResult:
    name: str
    excess_return: float      # annualised mean daily excess over the baseline, after costs
    information_ratio: float  # annualised
    eligible: bool
    note: str = ""


@dataclass(frozen=True)
class AdvisorChoice:
    """The strategy that advises, why, and what the choice was judged with (the thresholds are
    recorded: recommendations refuse a choice made with other values than the settings')."""

    advisor: str              # a candidate's name or the baseline's
    best: str                 # the eligible candidate with the best held-out information ratio
    baseline: str
    reason: str
    deflated_sharpe: float
    pbo: float
    trials: int
    days: int
    start: str
    end: str
    min_dsr: float
    max_pbo: float
    partitions: int
    candidates: tuple[CandidateResult, ...]

    @property
    def guarded(self) -> bool:
        return self.advisor != self.baseline

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AdvisorChoice":
        return cls(**{**data, "candidates": tuple(CandidateResult(**c) for c in data["candidates"])})

    def thresholds(self) -> dict[str, float]:
        return {"advice_min_dsr": self.min_dsr, "advice_max_pbo": self.max_pbo,
                "advice_partitions": self.partitions}


def choose_advisor(excess: pd.DataFrame, baseline: str, eligible: dict[str, str], min_dsr: float, max_pbo: float,
                   partitions: int) -> AdvisorChoice:
    """`excess`: held-out sessions x candidates (the baseline not among them), each candidate's
    daily return after costs minus the baseline's on the same sessions. `eligible` maps the
    candidates that may not advise to why (a policy that failed its gate); they still count as
    trials. The baseline counts in the overfitting test as a candidate that never differs from
    itself."""
    names = list(excess.columns)
    values = excess.to_numpy(float)
    ratios = information_ratios(values)
    candidates = tuple(CandidateResult(name, float(values[:, i].mean() * ANNUAL_DAYS),
                                       float(ratios[i] * math.sqrt(ANNUAL_DAYS)), name not in eligible,
                                       eligible.get(name, "")) for i, name in enumerate(names))
    allowed = [i for i, name in enumerate(names) if name not in eligible]
    common = dict(baseline=baseline, trials=len(names), days=len(values), start=str(excess.index[0].date()),
                  end=str(excess.index[-1].date()), min_dsr=min_dsr, max_pbo=max_pbo, partitions=partitions,
                  candidates=candidates)
    if len(values) < 2 * partitions:
        return AdvisorChoice(advisor=baseline, best=baseline, deflated_sharpe=0.0, pbo=float("nan"), **common,
                             reason=f"not yet evaluable: {len(values)} held-out sessions, fewer than the "
                                    f"{2 * partitions} the overfitting test's {partitions} blocks need, so the "
                                    f"{baseline} baseline advises")
    # the rule as applied: the best of the candidates that may advise, or the baseline (never differs from itself)
    choosable = np.array([name not in eligible for name in names] + [True])
    pbo = pbo_cscv(np.column_stack([values, np.zeros(len(values))]), partitions, choosable)
    common["pbo"] = pbo
    if not allowed:
        return AdvisorChoice(advisor=baseline, best=baseline, deflated_sharpe=0.0, **common,
                             reason=f"no candidate may advise ({'; '.join(f'{k}: {v}' for k, v in eligible.items())})")
    best = max(allowed, key=lambda i: ratios[i])
    dsr = deflated_sharpe(values[:, best], len(names), float(np.var(ratios, ddof=1)) if len(names) > 1 else 0.0)
    name, ir = names[best], candidates[best].information_ratio
    measured = (f"{name} has the best held-out information ratio over the {baseline} baseline ({ir:+.2f}, excess "
                f"{candidates[best].excess_return:+.2%}/yr over {len(values)} sessions of {len(names)} candidates); "
                f"deflated Sharpe {dsr:.2f} (needs >= {min_dsr:.2f}), PBO {pbo:.2f} (needs < {max_pbo:.2f})")
    if ratios[best] <= 0:
        return AdvisorChoice(advisor=baseline, best=name, deflated_sharpe=dsr, **common,
                             reason=f"no candidate beat the {baseline} baseline on held-out sessions: {measured}")
    failed = [text for ok, text in ((dsr >= min_dsr, "its deflated Sharpe ratio is too low: it may be the luckiest "
                                     "of the candidates"),
                                    (pbo < max_pbo, "the selection overfits: the in-sample best is often below the "
                                     "median out of sample")) if not ok]
    if failed:
        return AdvisorChoice(advisor=baseline, best=name, deflated_sharpe=dsr, **common,
                             reason=f"the {baseline} baseline advises because {' and '.join(failed)}: {measured}")
    return AdvisorChoice(advisor=name, best=name, deflated_sharpe=dsr, **common, reason=f"{measured}: it advises")
