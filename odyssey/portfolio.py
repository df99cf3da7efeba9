"""Portfolio accounting shared by the RL environment and the backtest: position limits, costed
rebalancing, the forecast/return panel, and the gymnasium PortfolioEnv.

One trading day is one step. At the close of day t the portfolio (weights `w`, cash `1 - sum(w)`)
trades to a target; costs are paid from cash; the holdings then earn the simple returns from t
to t+1 and drift. Every strategy in the backtest goes through the same `rebalance`.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pandas as pd

# Asset classes for stress scenarios; every ticker not listed is an equity.
ASSET_CLASS = {"IEF": "bond", "BIL": "cash", "HYG": "credit"}


def asset_class(ticker: str) -> str:
    return ASSET_CLASS.get(ticker, "equity")


@dataclass(frozen=True)
class Constraints:
    """Long-only position limits and trading costs (the seed backtest's values)."""

    max_weight: float = 0.20     # per asset
    max_invested: float = 0.80   # the rest (>= 20 %) stays in cash
    cost_bps: float = 10.0       # commission on traded value
    slippage_bps: float = 5.0    # market-order slippage on traded value

    @property
    def cost_rate(self) -> float:
        return (self.cost_bps + self.slippage_bps) / 1e4


def project(weights: np.ndarray, c: Constraints) -> np.ndarray:
    """Clip each weight to [0, max_weight]; if the total exceeds max_invested, scale all weights
    down in proportion (which keeps every weight within its bounds)."""
    w = np.clip(weights, 0.0, c.max_weight)
    total = w.sum()
    if total > c.max_invested:
        w = w * (c.max_invested / total)
    return w


def allocate(scores: np.ndarray, c: Constraints) -> np.ndarray:
    """Invest max_invested in proportion to non-negative `scores`, capping each weight at
    max_weight and handing the excess to the uncapped names (water-filling); what no name can
    take stays in cash. All-zero scores give an all-cash portfolio."""
    s = np.where(np.isfinite(scores), np.maximum(scores, 0.0), 0.0)
    w = np.zeros_like(s, dtype=float)
    budget, free = c.max_invested, s > 0
    while budget > 1e-12 and free.any():
        share = budget * s * free / s[free].sum()
        capped = free & (w + share >= c.max_weight)
        if not capped.any():
            w += share
            break
        budget -= float((c.max_weight - w[capped]).sum())
        w[capped] = c.max_weight
        free &= ~capped
    return w


def rebalance(current: np.ndarray, target: np.ndarray, next_returns: np.ndarray,
              cost_rate: float) -> tuple[float, float, float, np.ndarray]:
    """Trade from `current` to `target` weights, pay `cost_rate` on the traded value from cash,
    then earn `next_returns` (simple) for one day.

    Returns (net portfolio return, cost, traded value as a fraction of the portfolio, the
    weights after the day's moves)."""
    traded = float(np.abs(target - current).sum())
    cost = traded * cost_rate
    net = float(target @ next_returns) - cost
    drifted = target * (1.0 + next_returns) / (1.0 + net)
    return net, cost, traded, drifted


@dataclass
class Panel:
    """Aligned arrays for one period of consecutive trading days: the forecast known at each day's
    close and the simple return from that close to the next."""

    dates: pd.DatetimeIndex
    tickers: tuple[str, ...]
    forecasts: np.ndarray     # [T, N] out-of-sample 5-day return forecasts
    next_returns: np.ndarray  # [T, N] simple returns t -> t+1

    def __len__(self) -> int:
        return len(self.dates)

    def between(self, start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None) -> "Panel":
        keep = np.ones(len(self.dates), dtype=bool)
        if start is not None:
            keep &= self.dates >= pd.Timestamp(start)
        if end is not None:
            keep &= self.dates <= pd.Timestamp(end)
        return Panel(self.dates[keep], self.tickers, self.forecasts[keep], self.next_returns[keep])


def daily_returns(returns: pd.DataFrame, tickers: tuple[str, ...]) -> pd.DataFrame:
    """Simple daily returns [date x ticker] from the long `returns` table (date, ticker,
    log_return; unclipped). A missing price (a long gap) counts as no move."""
    missing = sorted(set(tickers) - set(returns["ticker"].unique()))
    if missing:
        raise ValueError(f"returns: no daily returns for tickers {missing}")
    wide = returns.pivot_table(index="date", columns="ticker", values="log_return", aggfunc="first", dropna=False)
    return np.expm1(wide.reindex(columns=list(tickers))).fillna(0.0).sort_index()


def build_panel(forecasts: pd.DataFrame, tickers: tuple[str, ...], returns: pd.DataFrame,
                max_stale_days: int = 10) -> Panel:
    """Every trading day from the first day all tickers have an out-of-sample forecast to the last
    forecast day. On days the walk-forward skipped (the embargo at the start of each test window)
    the last forecast is carried forward, at most `max_stale_days`: it was known then, and the
    portfolio keeps earning the day's returns. Next-day returns come from `returns`."""
    missing = sorted(set(tickers) - set(forecasts["ticker"].unique()))
    if missing:
        raise ValueError(f"walkforward_forecasts: no out-of-sample predictions for tickers {missing}")
    daily = daily_returns(returns, tickers)
    pred = forecasts.pivot_table(index="date", columns="ticker", values="prediction", aggfunc="first")[list(tickers)]
    calendar = daily.index[(daily.index >= pred.index.min()) & (daily.index <= pred.index.max())]
    pred = pred.reindex(calendar)
    if max_stale_days > 0:
        pred = pred.ffill(limit=max_stale_days)
    nxt = daily.shift(-1).reindex(calendar)
    complete = pred.notna().all(axis=1) & nxt.notna().all(axis=1)
    if not complete.any():
        raise ValueError("walkforward_forecasts: no date has an out-of-sample forecast for every ticker")
    first, last = complete.idxmax(), complete[::-1].idxmax()
    window = (calendar >= first) & (calendar <= last)
    stale = ~complete[window]
    if stale.any():
        raise ValueError(f"walkforward_forecasts: forecasts missing for more than {max_stale_days} days inside the "
                         f"period, first at {stale.index[stale.to_numpy()][0].date()}")
    return Panel(pd.DatetimeIndex(calendar[window], name="date"), tuple(tickers), pred[window].to_numpy(float),
                 nxt[window].to_numpy(float))


@dataclass(frozen=True)
class SignalScale:
    """Per-ticker standard deviation of the forecasts on the policy's training period: the
    observation is forecast / scale, clipped to +-clip."""

    scale: tuple[float, ...]
    clip: float = 5.0

    @classmethod
    def fit(cls, forecasts: np.ndarray, clip: float = 5.0) -> "SignalScale":
        sd = np.nanstd(forecasts, axis=0)
        return cls(tuple(float(s) if s > 0 else 1.0 for s in sd), clip)

    def apply(self, forecasts: np.ndarray) -> np.ndarray:
        return np.clip(forecasts / np.asarray(self.scale), -self.clip, self.clip).astype(np.float32)


@dataclass(frozen=True)
class EnvSettings:
    """How actions map to trades and how the reward is computed.

    reward = reward_scale * (r - risk_aversion / 2 * r**2), with r the day's portfolio return
    after costs: a per-step mean-variance utility, whose sum over an episode rises with the mean
    return and falls with the variance, the trade-off the Sharpe ratio measures.
    """

    action_scale: float = 0.20   # an action of +1 raises a weight by 20 percentage points
    risk_aversion: float = 5.0
    reward_scale: float = 100.0
    episode_length: int | None = 256  # None: one episode runs through the whole panel


def spaces(n_assets: int, clip: float = 5.0) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    """Observation (scaled forecasts, then weights) and action spaces for `n_assets`."""
    low = np.r_[np.full(n_assets, -clip), np.zeros(n_assets)].astype(np.float32)
    high = np.r_[np.full(n_assets, clip), np.ones(n_assets)].astype(np.float32)
    return (gym.spaces.Box(low, high, dtype=np.float32),
            gym.spaces.Box(-1.0, 1.0, (n_assets,), dtype=np.float32))


class PortfolioEnv(gym.Env):
    """Daily allocation over N assets from their out-of-sample forecasts.

    Observation (2N, float32): N forecasts scaled by SignalScale (clipped to +-clip), then the N
    current weights (cash is 1 - their sum). Action Box(-1, 1, N): weight changes, multiplied
    by action_scale, added to the current weights and projected onto the limits (`project`).
    Training episodes start at a reproducible pseudo-random day: episode k of an env seeded with
    s starts where numpy's default_rng([s, k]) says, so runs (and resumed runs) repeat exactly.
    """

    metadata = {"render_modes": []}

    def __init__(self, signals: np.ndarray, next_returns: np.ndarray, constraints: Constraints = Constraints(),
                 settings: EnvSettings = EnvSettings(), clip: float = 5.0):
        super().__init__()
        if signals.shape != next_returns.shape or signals.ndim != 2:
            raise ValueError(f"signals {signals.shape} and next_returns {next_returns.shape} must be equal [T, N]")
        length = settings.episode_length
        if length is not None and length > len(signals):
            raise ValueError(f"episode_length {length} exceeds the {len(signals)} days available")
        self.signals = np.ascontiguousarray(signals, dtype=np.float32)
        self.next_returns = np.ascontiguousarray(next_returns, dtype=np.float64)
        self.constraints, self.settings = constraints, settings
        self.n_days, self.n_assets = signals.shape
        self.episode_length = length or self.n_days
        self.observation_space, self.action_space = spaces(self.n_assets, clip)
        self._seed, self._first_episode, self._episode = 0, 0, 0
        self._t = self._end = 0
        self.weights = np.zeros(self.n_assets)

    def start_at_episode(self, episode: int) -> None:
        """Continue the episode sequence at `episode` (used when training resumes)."""
        self._first_episode = self._episode = int(episode)

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.signals[self._t], self.weights.astype(np.float32)])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._seed, self._episode = int(seed), self._first_episode
        span = self.n_days - self.episode_length
        start = int(np.random.default_rng([self._seed, self._episode]).integers(0, span + 1)) if span > 0 else 0
        self._episode += 1
        self._t, self._end = start, start + self.episode_length
        self.weights = np.zeros(self.n_assets)
        return self._obs(), {"day": self._t}

    def step(self, action: np.ndarray):
        c = self.constraints
        delta = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0) * self.settings.action_scale
        target = project(self.weights + delta, c)
        net, cost, traded, self.weights = rebalance(self.weights, target, self.next_returns[self._t], c.cost_rate)
        s = self.settings
        reward = s.reward_scale * (net - 0.5 * s.risk_aversion * net * net)
        info = {"day": self._t, "return": net, "cost": cost, "traded": traded, "target": target}
        self._t += 1
        truncated = self._t >= self._end
        if truncated and self._t == self.n_days:  # no next day in the data: repeat the last one
            self._t -= 1
        return self._obs(), float(reward), False, truncated, info


def orders(current: np.ndarray, target: np.ndarray, c: Constraints, band: float = 0.005) -> tuple[np.ndarray, list[str]]:
    """Turn a target into tradable orders: changes within +-band are HOLDs (the weight stays);
    positions above max_weight are always cut to it; if holding and buying together would exceed
    max_invested, the buys shrink in proportion. Returns (final weights, BUY/SELL/HOLD per asset)."""
    current = np.asarray(current, dtype=float)
    final = np.where(np.abs(target - current) > band, target, current)
    final = np.minimum(final, c.max_weight)
    excess = final.sum() - c.max_invested
    if excess > 1e-12:
        buys = np.maximum(final - current, 0.0)
        if buys.sum() >= excess:
            final = final - buys * (excess / buys.sum())
        else:  # holdings alone exceed the limit: buy nothing, scale what is held
            final = np.minimum(final, current)
            final = final * (c.max_invested / final.sum())
    delta = final - current
    actions = ["BUY" if d > 1e-12 else "SELL" if d < -1e-12 else "HOLD" for d in delta]
    return final, actions


def limit_violations(tickers: list[str], weights: np.ndarray, c: Constraints, tol: float = 1e-9) -> list[str]:
    """Human-readable breaches of the long-only limits (empty when the weights are valid)."""
    w = np.asarray(weights, dtype=float)
    problems = [f"{t}: weight is not a number" for t, x in zip(tickers, w) if not np.isfinite(x)]
    problems += [f"{t}: weight {x:.4f} < 0 (no shorting)" for t, x in zip(tickers, w) if x < -tol]
    problems += [f"{t}: weight {x:.4f} > {c.max_weight}" for t, x in zip(tickers, w) if x > c.max_weight + tol]
    if np.nansum(w) > c.max_invested + tol:
        problems.append(f"invested {np.nansum(w):.4f} > {c.max_invested} (cash below {1 - c.max_invested:.0%})")
    return problems
