"""Backtest of the policy and the baselines with identical costs and limits, performance metrics
with block-bootstrap intervals, Monte Carlo resampling and stress scenarios."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from odyssey.metrics import ANNUAL_DAYS, block_bootstrap_indices
from odyssey.portfolio import (Constraints, Panel, PolicyMarket, allocate, asset_class, baseline_targets,
                               daily_returns, observation, project, rebalance, tilt_target)


@dataclass
class StrategyRun:
    """One strategy's daily path: net returns, costs and traded value, and post-trade weights."""

    name: str
    dates: pd.DatetimeIndex
    returns: np.ndarray   # [T] net of costs
    costs: np.ndarray     # [T]
    traded: np.ndarray    # [T] sum |target - current|
    weights: np.ndarray   # [T, N] post-trade (target) weights
    final_weights: np.ndarray | None = None  # [N] after the last day's moves (what is held now)

    @property
    def realized(self) -> pd.DatetimeIndex:
        """The day each return is realised: row t's return runs from close t to the next close."""
        if len(self.dates) == 0:
            return self.dates
        return pd.DatetimeIndex([*self.dates[1:], self.dates[-1] + pd.offsets.BDay(1)], name="date")

    def frame(self, tickers: tuple[str, ...]) -> pd.DataFrame:
        out = pd.DataFrame({"date": self.dates, "strategy": self.name, "return": self.returns, "cost": self.costs,
                            "traded": self.traded})
        return pd.concat([out, pd.DataFrame(self.weights, columns=[f"w_{t}" for t in tickers])], axis=1)


def runs_from_frame(daily: pd.DataFrame, tickers: tuple[str, ...]) -> list[StrategyRun]:
    """The inverse of StrategyRun.frame for every strategy in a backtest table (in table order)."""
    runs = []
    for name, group in daily.groupby("strategy", sort=False):
        group = group.sort_values("date")
        runs.append(StrategyRun(name, pd.DatetimeIndex(group["date"]), group["return"].to_numpy(float),
                                group["cost"].to_numpy(float), group["traded"].to_numpy(float),
                                group[[f"w_{t}" for t in tickers]].to_numpy(float)))
    return runs


def run_targets(name: str, panel: Panel, targets: np.ndarray, c: Constraints) -> StrategyRun:
    """Trade to `targets[t]` (projected onto the limits) at every close, starting from cash."""
    return run_decisions(name, panel, lambda t, w: targets[t], c)


def run_decisions(name: str, panel: Panel | PolicyMarket, decide: Callable[[int, np.ndarray], np.ndarray],
                  c: Constraints, initial: np.ndarray | None = None) -> StrategyRun:
    """The common loop: `decide(t, current_weights)` gives day t's target, which is projected onto
    the limits and traded with costs (`rebalance`), starting from `initial` weights (cash)."""
    n_days, n_assets = panel.next_returns.shape
    w = np.zeros(n_assets) if initial is None else np.asarray(initial, dtype=float)
    returns, costs, traded = np.zeros(n_days), np.zeros(n_days), np.zeros(n_days)
    weights = np.zeros((n_days, n_assets))
    for t in range(n_days):
        wanted = np.asarray(decide(t, w), dtype=float)
        if not np.isfinite(wanted).all():
            raise ValueError(f"{name}: target weights on {panel.dates[t].date()} are not all numbers: {wanted}")
        target = project(wanted, c)
        weights[t] = target
        returns[t], costs[t], traded[t], w = rebalance(w, target, panel.next_returns[t], c.cost_rate)
    return StrategyRun(name, panel.dates, returns, costs, traded, weights, w)


def run_policy(name: str, market: PolicyMarket, act: Callable[[np.ndarray], np.ndarray], c: Constraints,
               tilt: float, trade_rate: float, initial: np.ndarray | None = None) -> StrategyRun:
    """A tilt policy (PortfolioEnv's observation and action convention) run through the common loop.
    From cash, it buys its baseline on the first day, as the baseline does, and tilts from there."""
    def decide(t: int, w: np.ndarray) -> np.ndarray:
        obs = observation(market.signals[t], market.context[t], w, market.baseline[t], tilt)
        start = market.baseline[t] if t == 0 and not w.any() else w
        return tilt_target(start, market.baseline[t], act(obs), tilt, trade_rate)
    return run_decisions(name, market, decide, c, initial)


def concatenate(name: str, runs: list[StrategyRun]) -> StrategyRun:
    """Consecutive runs (the blocks of a walk-forward) as one path."""
    return StrategyRun(name, pd.DatetimeIndex(np.concatenate([r.dates for r in runs]), name="date"),
                       np.concatenate([r.returns for r in runs]), np.concatenate([r.costs for r in runs]),
                       np.concatenate([r.traded for r in runs]), np.concatenate([r.weights for r in runs]),
                       runs[-1].final_weights)


def walk_forward_runs(blocks: list[tuple[PolicyMarket, Callable[[np.ndarray], np.ndarray]]], c: Constraints,
                      tilt: float, trade_rate: float) -> tuple[list[StrategyRun], list[StrategyRun]]:
    """The policy of each walk-forward fold traded on its held-out block, and the baseline on the
    same days, through the same accounting: both start each block from cash and buy the baseline
    on its first day. `concatenate` makes each one path."""
    return ([run_policy("policy", market, act, c, tilt, trade_rate) for market, act in blocks],
            [run_targets("baseline", market, market.baseline, c) for market, _ in blocks])


@dataclass(frozen=True)
class PolicyVerdict:
    """Whether a policy earns its place over its baseline on days it never trained on, by
    non-inferiority: the lower bound of the interval of its annualised excess return after costs
    is >= -margin."""

    passed: bool
    excess_return: float
    ci_low: float
    ci_high: float
    level: float
    days: int
    policy_turnover: float    # annualised traded value
    baseline_turnover: float
    needed: int = 0  # held-out days the bootstrap needs; more than `days`: the policy cannot be judged
    margin: float = 0.0
    blocks: int = 1

    @property
    def evaluable(self) -> bool:
        return self.days >= self.needed

    @property
    def reason(self) -> str:
        if not self.evaluable:
            return (f"not yet evaluable: {self.days} held-out days, fewer than the {self.needed} the block bootstrap "
                    f"needs, so the policy has not shown it earns its place")
        verdict = (f"not worse than the baseline by more than the {self.margin:.2%}/yr margin" if self.passed else
                   f"cannot rule out losing more than the {self.margin:.2%}/yr margin to the baseline")
        return (f"excess return over the baseline {self.excess_return:+.2%}/yr, {self.level:.0%} interval "
                f"[{self.ci_low:+.2%}, {self.ci_high:+.2%}] over {self.days} held-out days in {self.blocks} "
                f"walk-forward block(s): {verdict} after costs (turnover {self.policy_turnover:.1f}/yr against "
                f"{self.baseline_turnover:.1f}/yr)")


def judge_policy(policy: StrategyRun, baseline: StrategyRun, margin: float, level: float = 0.9, block: int = 20,
                 blocks: int = 1) -> PolicyVerdict:
    """Non-inferiority of the policy's held-out path against its baseline's on the same days, by a
    paired moving-block bootstrap (`excess_over`): it passes when the lower bound of the interval
    of the annualised excess return after costs is >= -margin. With no signal the interval holds
    the policy's costs and tracking error and is wide, so the policy fails unless it stays on its
    baseline; a real edge lifts the bound over -margin."""
    turnover = (float(policy.traded.mean() * ANNUAL_DAYS), float(baseline.traded.mean() * ANNUAL_DAYS))
    days = len(policy.returns)
    if days < 2 * block:
        nan = float("nan")
        return PolicyVerdict(False, nan, nan, nan, level, days, *turnover, needed=2 * block, margin=margin,
                             blocks=blocks)
    e = excess_over(policy, baseline, block=block, level=level)
    return PolicyVerdict(e["excess_return_ci_low"] >= -margin, e["excess_return"], e["excess_return_ci_low"],
                         e["excess_return_ci_high"], level, days, *turnover, needed=2 * block, margin=margin,
                         blocks=blocks)


# -- baselines: target weights from information up to each close ---------------------------------

def equal_weight_targets(panel: Panel, c: Constraints) -> np.ndarray:
    return baseline_targets("equal_weight", pd.DataFrame(columns=list(panel.tickers)), panel.dates, c)


def inverse_vol_targets(panel: Panel, history: pd.DataFrame, c: Constraints, window: int = 60) -> np.ndarray:
    """Weights proportional to 1 / trailing `window`-day volatility (known at each close)."""
    return baseline_targets("inverse_volatility", daily_returns(history, panel.tickers), panel.dates, c, window)


def top_k(scores: np.ndarray, k: int, c: Constraints, positive_only: bool) -> np.ndarray:
    chosen = np.zeros_like(scores)
    finite = np.where(np.isfinite(scores), scores, -np.inf)
    for i in np.argsort(-finite, kind="stable")[:k]:
        if np.isfinite(finite[i]) and (finite[i] > 0 or not positive_only):
            chosen[i] = 1.0
    return allocate(chosen, c)


def momentum_targets(panel: Panel, history: pd.DataFrame, c: Constraints, k: int,
                     lookback: int = 252, skip: int = 21) -> np.ndarray:
    """12-1 momentum: equal weight in the k names with the best return from t-252 to t-21."""
    growth = np.log1p(daily_returns(history, panel.tickers)).cumsum()
    score = (growth.shift(skip) - growth.shift(lookback)).reindex(panel.dates).to_numpy()
    return np.array([top_k(s, k, c, positive_only=False) for s in score])


def forecast_top_k_targets(panel: Panel, c: Constraints, k: int) -> np.ndarray:
    """Equal weight in the k names with the highest positive out-of-sample XGBoost forecast."""
    return np.array([top_k(f, k, c, positive_only=True) for f in panel.forecasts])


def strategy_targets(panel: Panel, analog: Panel, history: pd.DataFrame, c: Constraints, k: int,
                     vol_window: int) -> dict[str, np.ndarray]:
    """Daily target weights on `panel`'s days of every rule-based strategy: equal weight, inverse
    volatility, 12-1 momentum, and top-k by out-of-sample XGBoost forecast (`panel`) and by
    out-of-sample analog forecast (`analog`, on the same days)."""
    return {
        "equal_weight": equal_weight_targets(panel, c),
        "inverse_volatility": inverse_vol_targets(panel, history, c, vol_window),
        "momentum_12_1": momentum_targets(panel, history, c, k),
        f"xgboost_top_{k}": forecast_top_k_targets(panel, c, k),
        f"analog_top_{k}": forecast_top_k_targets(analog, c, k),
    }


# -- metrics ------------------------------------------------------------------------------------

def _drawdown_series(returns: np.ndarray) -> np.ndarray:
    equity = np.cumprod(1.0 + returns)
    peak = np.maximum.accumulate(np.maximum(equity, 1.0))
    return equity / peak - 1.0


def performance(returns: np.ndarray, traded: np.ndarray | None = None) -> dict[str, float]:
    """CAGR, volatility, Sharpe, Sortino (risk-free 0), max drawdown, Calmar, win rate (days with a
    gain among days with a move), profit factor, and turnover: traded value (buys + sells) per year
    as a multiple of the portfolio."""
    r = np.asarray(returns, dtype=float)
    n = len(r)
    growth = float(np.prod(1.0 + r))
    cagr = growth ** (ANNUAL_DAYS / n) - 1.0 if n and growth > 0 else -1.0
    sd = r.std(ddof=1) if n > 1 else 0.0
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))) if n else 0.0
    mdd = float(_drawdown_series(r).min()) if n else 0.0
    moved = r[r != 0]
    gains, losses = r[r > 0].sum(), -r[r < 0].sum()
    out = {
        "cagr": float(cagr),
        "volatility": float(sd * np.sqrt(ANNUAL_DAYS)),
        "sharpe": float(r.mean() / sd * np.sqrt(ANNUAL_DAYS)) if sd > 0 else 0.0,
        "sortino": float(r.mean() / downside * np.sqrt(ANNUAL_DAYS)) if downside > 0 else 0.0,
        "max_drawdown": mdd,
        "calmar": float(cagr / -mdd) if mdd < 0 else 0.0,
        "win_rate": float(np.mean(moved > 0)) if len(moved) else 0.0,
        "profit_factor": float(gains / losses) if losses > 0 else float("inf") if gains > 0 else 0.0,
    }
    if traded is not None:
        out["turnover"] = float(np.mean(traded) * ANNUAL_DAYS)
    return out


BOOTSTRAPPED = ("cagr", "volatility", "sharpe", "sortino", "max_drawdown", "calmar", "win_rate", "profit_factor")


def metrics_table(runs: list[StrategyRun], block: int = 20, reps: int = 1000, level: float = 0.9,
                  seed: int = 0) -> pd.DataFrame:
    """One row per strategy and metric: the value and its moving-block bootstrap interval. Every
    strategy is resampled with the same blocks of days, so intervals are comparable."""
    n = len(runs[0].returns)
    idx = block_bootstrap_indices(n, block, reps, seed) if n >= 2 * block else None
    alpha = (1 - level) / 2
    rows = []
    for run in runs:
        point = performance(run.returns, run.traded)
        samples = [performance(run.returns[i]) for i in idx] if idx is not None else []
        for metric, value in point.items():
            low = high = float("nan")
            if samples and metric in BOOTSTRAPPED:
                draws = np.array([s[metric] for s in samples], dtype=float)
                draws = draws[np.isfinite(draws)]
                if len(draws):
                    low, high = float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha))
            rows.append({"strategy": run.name, "metric": metric, "value": value, "ci_low": low, "ci_high": high})
        rows.append({"strategy": run.name, "metric": "costs_paid", "value": float(run.costs.sum()),
                     "ci_low": float("nan"), "ci_high": float("nan")})
    return pd.DataFrame(rows)


def _enough_days(n: int, block: int) -> None:
    if n < 2 * block:
        raise ValueError(f"{n} test days are too few to resample in {block}-day blocks (need {2 * block})")


def excess_over(run: StrategyRun, benchmark: StrategyRun, block: int = 20, reps: int = 2000, level: float = 0.9,
                seed: int = 0) -> dict[str, float]:
    """Annualised mean daily excess return of `run` over `benchmark` and the Sharpe difference, with
    paired moving-block bootstrap intervals (both series resampled on the same days)."""
    diff = run.returns - benchmark.returns
    _enough_days(len(diff), block)
    idx = block_bootstrap_indices(len(diff), block, reps, seed)
    alpha = (1 - level) / 2

    def sharpe(r: np.ndarray) -> np.ndarray:
        sd = r.std(axis=-1, ddof=1)
        return np.where(sd > 0, r.mean(axis=-1) / np.where(sd > 0, sd, 1.0) * np.sqrt(ANNUAL_DAYS), 0.0)

    mean_draws = diff[idx].mean(axis=1) * ANNUAL_DAYS
    sharpe_draws = sharpe(run.returns[idx]) - sharpe(benchmark.returns[idx])
    return {
        "excess_return": float(diff.mean() * ANNUAL_DAYS),
        "excess_return_ci_low": float(np.quantile(mean_draws, alpha)),
        "excess_return_ci_high": float(np.quantile(mean_draws, 1 - alpha)),
        "sharpe_difference": float(sharpe(run.returns) - sharpe(benchmark.returns)),
        "sharpe_difference_ci_low": float(np.quantile(sharpe_draws, alpha)),
        "sharpe_difference_ci_high": float(np.quantile(sharpe_draws, 1 - alpha)),
        "level": level,
    }


def monte_carlo(runs: list[StrategyRun], block: int = 20, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Block-bootstrap paths of each strategy's daily returns (same blocks for every strategy):
    one row per strategy and path with its Sharpe, max drawdown and total return."""
    _enough_days(len(runs[0].returns), block)
    idx = block_bootstrap_indices(len(runs[0].returns), block, reps, seed)
    rows = []
    for run in runs:
        paths = run.returns[idx]
        sd = paths.std(axis=1, ddof=1)
        sharpe = np.where(sd > 0, paths.mean(axis=1) / np.where(sd > 0, sd, 1.0) * np.sqrt(ANNUAL_DAYS), 0.0)
        equity = np.cumprod(1.0 + paths, axis=1)
        peak = np.maximum.accumulate(np.maximum(equity, 1.0), axis=1)
        rows.append(pd.DataFrame({"strategy": run.name, "path": np.arange(reps), "sharpe": sharpe,
                                  "max_drawdown": (equity / peak - 1.0).min(axis=1),
                                  "total_return": equity[:, -1] - 1.0}))
    return pd.concat(rows, ignore_index=True)


def monte_carlo_summary(paths: pd.DataFrame) -> pd.DataFrame:
    g = paths.groupby("strategy", sort=False)
    return pd.DataFrame({
        "sharpe_p05": g["sharpe"].quantile(0.05), "sharpe_p50": g["sharpe"].median(),
        "sharpe_p95": g["sharpe"].quantile(0.95), "p_sharpe_below_0": g["sharpe"].apply(lambda s: float((s < 0).mean())),
        "max_drawdown_p05": g["max_drawdown"].quantile(0.05), "max_drawdown_p50": g["max_drawdown"].median(),
        "total_return_p50": g["total_return"].median(),
    }).reset_index()


# -- stress tests -------------------------------------------------------------------------------

HISTORICAL_WINDOWS: dict[str, tuple[str, str]] = {
    "covid_crash_2020": ("2020-02-19", "2020-03-23"),
    "rate_shock_2022": ("2022-01-03", "2022-10-14"),
}
# One-day shocks by asset class (simple returns).
SYNTHETIC_SHOCKS: dict[str, dict[str, float]] = {
    "equities_minus_20pct": {"equity": -0.20, "credit": -0.05, "bond": 0.02, "cash": 0.0},
    "rates_plus_200bp": {"equity": -0.06, "credit": -0.06, "bond": -0.12, "cash": 0.0},
    "everything_minus_10pct": {"equity": -0.10, "credit": -0.10, "bond": -0.10, "cash": 0.0},
}


def stress_tests(runs: list[StrategyRun], tickers: tuple[str, ...],
                 windows: dict[str, tuple[str, str]] = HISTORICAL_WINDOWS,
                 shocks: dict[str, dict[str, float]] = SYNTHETIC_SHOCKS) -> pd.DataFrame:
    """Historical windows (return from the close of `start` to the close of `end`, max drawdown and
    worst day, when the backtest covers them) and one-day synthetic shocks applied to each
    strategy's latest and average weights."""
    rows = []
    for run in runs:
        for name, (start, end) in windows.items():
            inside = (run.realized > pd.Timestamp(start)) & (run.realized <= pd.Timestamp(end))
            r = run.returns[inside]
            rows.append({"strategy": run.name, "scenario": name, "kind": "historical", "covered_days": int(inside.sum()),
                         "return": float(np.prod(1 + r) - 1) if len(r) else float("nan"),
                         "max_drawdown": float(_drawdown_series(r).min()) if len(r) else float("nan"),
                         "worst_day": float(r.min()) if len(r) else float("nan")})
        for name, by_class in shocks.items():
            shock = np.array([by_class[asset_class(t)] for t in tickers])
            latest = run.final_weights if run.final_weights is not None else run.weights[-1]
            for label, w in (("latest", latest), ("average", run.weights.mean(axis=0))):
                rows.append({"strategy": run.name, "scenario": f"{name} ({label} weights)", "kind": "synthetic",
                             "covered_days": 1, "return": float(w @ shock), "max_drawdown": float(min(w @ shock, 0.0)),
                             "worst_day": float(w @ shock)})
    return pd.DataFrame(rows)


def monthly_returns(run: StrategyRun) -> pd.DataFrame:
    """Compounded return per calendar month (by the day returns are realised): rows years, columns
    months 1-12."""
    series = pd.Series(run.returns, index=run.realized)
    monthly = (1 + series).groupby([series.index.year, series.index.month]).prod() - 1
    return monthly.unstack().reindex(columns=range(1, 13))
