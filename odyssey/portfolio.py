"""Portfolio accounting shared by the RL environment and the backtest: position limits, costed
rebalancing, the forecast/return panel, the baselines a policy tilts around, and the gymnasium
PortfolioEnv.

One trading day is one step. At the close of day t the portfolio (weights `w`, cash `1 - sum(w)`)
trades to a target; costs are paid from cash; the holdings then earn the simple returns from t
to t+1 and drift. Every strategy in the backtest goes through the same `rebalance`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd

from odyssey.calendar import in_window

# Asset classes for stress scenarios; every ticker not listed is an equity.
# The policy's and its ONNX export's cards are stored values whose signed manifests (odyssey/signing.py
# signed_card) cover the card and these files (written by odyssey/policy.py).
POLICY_MODEL, POLICY_FILE = "ppo_policy", "ppo_policy.zip"
ONNX_MODEL, ONNX_FILE = "policy_onnx", "policy.onnx"

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


def read_holdings(path: Path) -> tuple[dict[str, float], str]:
    """The weights held and the day they were held at, from a holdings file ({"as_of": day,
    "weights": {ticker: weight}}; the rest is cash), read once, with an error naming the file
    when it is not one."""
    try:
        data = json.loads(Path(path).read_text())
        return {str(t): float(w) for t, w in data["weights"].items()}, str(pd.Timestamp(data["as_of"]).date())
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: not a holdings file ({{\"as_of\": day, \"weights\": {{ticker: weight}}}}): "
                         f"{type(error).__name__}: {error}") from error


def drift_holdings(weights: np.ndarray, daily: pd.DataFrame, as_of: str | pd.Timestamp) -> np.ndarray:
    """Weights held at the close of `as_of`, carried to the newest close of `daily` (simple
    returns, date x ticker in the weights' order): each day the holdings earn their returns and
    cash earns none."""
    w = np.asarray(weights, dtype=float)
    for _, row in daily[daily.index > pd.Timestamp(as_of)].iterrows():
        r = np.nan_to_num(row.to_numpy(float))
        w = w * (1.0 + r) / (1.0 + float(w @ r))
    return w


def write_holdings(path: Path, weights: dict[str, float], as_of: str) -> None:
    """Write a holdings file whole or not at all (a reader never sees half of one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps({"as_of": as_of, "weights": {t: round(float(w), 10) for t, w in weights.items()}},
                                  indent=1))
    partial.replace(path)


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
        keep = in_window(self.dates, start, end)
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


BASELINES = ("equal_weight", "inverse_volatility")


def baseline_targets(kind: str, daily: pd.DataFrame, dates: pd.DatetimeIndex, c: Constraints,
                     vol_window: int = 60) -> np.ndarray:
    """[T, N] target weights of a reference allocation at each close in `dates`, from the simple
    daily returns `daily` [date x ticker] known at that close: `equal_weight`, or
    `inverse_volatility` (weights proportional to 1 / trailing `vol_window`-day volatility)."""
    n = daily.shape[1]
    if kind == "equal_weight":
        return np.tile(allocate(np.ones(n), c), (len(dates), 1))
    if kind == "inverse_volatility":
        vol = daily.rolling(vol_window, min_periods=vol_window // 2).std().reindex(dates).to_numpy()
        return np.array([allocate(np.divide(1.0, v, out=np.zeros_like(v), where=v > 0), c)
                         for v in np.nan_to_num(vol)]).reshape(len(dates), n)
    raise ValueError(f"unknown baseline {kind!r}: expected one of {BASELINES}")


def forecast_context(signals: np.ndarray, next_returns: np.ndarray, horizon: int, window: int = 60) -> np.ndarray:
    """[T, 2] what a policy needs to judge its forecasts at each close t, from data known then:

    - realised skill: the correlation between each ticker's forecasts made at s and its
      `horizon`-day return from s, over the `window` forecasts whose return had been realised by
      t (s <= t - horizon), averaged over tickers (0 until half a window has been realised);
    - dispersion: the cross-sectional standard deviation of the scaled forecasts at t (their
      absolute value for a single ticker).
    """
    growth = pd.DataFrame(np.log1p(next_returns)).rolling(horizon).sum().shift(-(horizon - 1))
    realised = np.expm1(growth)  # row s: return from close s to close s + horizon (NaN at the end)
    corr = pd.DataFrame(signals, dtype=float).rolling(window, min_periods=window // 2).corr(realised)
    skill = corr.shift(horizon).mean(axis=1, skipna=True).fillna(0.0).clip(-1.0, 1.0).to_numpy()
    dispersion = np.abs(signals[:, 0]) if signals.shape[1] == 1 else signals.std(axis=1)
    return np.column_stack([skill, dispersion]).astype(np.float32)


@dataclass
class PolicyMarket:
    """What the policy sees and earns over consecutive trading days: the scaled forecasts, their
    context (`forecast_context`), the baseline's target weights it tilts around, and the simple
    returns from each close to the next."""

    dates: pd.DatetimeIndex
    tickers: tuple[str, ...]
    signals: np.ndarray       # [T, N] float32, SignalScale-d forecasts
    context: np.ndarray       # [T, 2] float32
    baseline: np.ndarray      # [T, N]
    next_returns: np.ndarray  # [T, N]

    def __len__(self) -> int:
        return len(self.dates)

    def between(self, start: str | pd.Timestamp | None = None,
                end: str | pd.Timestamp | None = None) -> "PolicyMarket":
        keep = in_window(self.dates, start, end)
        return PolicyMarket(self.dates[keep], self.tickers, self.signals[keep], self.context[keep],
                            self.baseline[keep], self.next_returns[keep])


def policy_market(panel: Panel, scale: SignalScale, baseline: np.ndarray, horizon: int,
                  skill_window: int = 60) -> PolicyMarket:
    """The policy's view of `panel`; the context is computed over the whole panel, so a later
    slice (`between`) keeps the history its rolling skill needs."""
    if baseline.shape != panel.forecasts.shape:
        raise ValueError(f"baseline {baseline.shape} and forecasts {panel.forecasts.shape} must be equal [T, N]")
    signals = scale.apply(panel.forecasts)
    return PolicyMarket(panel.dates, panel.tickers, signals,
                        forecast_context(signals, panel.next_returns, horizon, skill_window),
                        np.asarray(baseline, dtype=float), panel.next_returns)


def baseline_policy_market(panel: Panel, returns: pd.DataFrame, scale: SignalScale, baseline: str, c: Constraints,
                           vol_window: int, horizon: int, skill_window: int) -> PolicyMarket:
    """`policy_market` with the targets of the named `baseline` (`baseline_targets`) computed
    from the long `returns` table: what the training, the gate, the backtest and the
    recommendations all see."""
    targets = baseline_targets(baseline, daily_returns(returns, panel.tickers), panel.dates, c, vol_window)
    return policy_market(panel, scale, targets, horizon, skill_window)


@dataclass(frozen=True)
class PolicyFold:
    """One step of the policy's walk-forward: it trains on train_start .. train_end and is judged
    on start .. end, `horizon` sessions later (the training forecasts' returns are realised by then)."""

    train_start: pd.Timestamp
    train_end: pd.Timestamp
    start: pd.Timestamp
    end: pd.Timestamp


@dataclass(frozen=True)
class PolicyPeriods:
    """The policy's out-of-sample days, never overlapping: the walk-forward `folds` (each trained
    on the days before its held-out block), judged together by policy_earns_its_place, then the
    test period of the backtest. The served policy is the last fold's."""

    folds: tuple[PolicyFold, ...]
    test_start: pd.Timestamp

    @property
    def train_start(self) -> pd.Timestamp:
        return self.folds[-1].train_start

    @property
    def train_end(self) -> pd.Timestamp:
        return self.folds[-1].train_end

    @property
    def validation_start(self) -> pd.Timestamp:
        return self.folds[0].start

    @property
    def validation_end(self) -> pd.Timestamp:
        return self.folds[-1].end


def policy_periods(dates: pd.DatetimeIndex, validation_end: str | pd.Timestamp, horizon: int,
                   validation_fraction: float, folds: int = 1) -> PolicyPeriods:
    """Walk the policy forward over the out-of-sample days up to `horizon` sessions before
    `validation_end` (whose forecasts look into the test period): the last `validation_fraction`
    of them is held out, cut into `folds` consecutive blocks; fold k trains on every usable day
    before its block less `horizon` sessions (an expanding window). The test period starts on the
    first day after `validation_end`."""
    before = dates[dates <= pd.Timestamp(validation_end)]
    usable = before[:len(before) - horizon] if len(before) > horizon else before[:0]
    n_validation = int(round(len(usable) * validation_fraction))
    n_train = len(usable) - n_validation - horizon
    if n_train <= 0 or n_validation < folds:
        raise ValueError(f"{len(usable)} out-of-sample days before {pd.Timestamp(validation_end).date()} cannot hold "
                         f"a training period, a {horizon}-session gap and a {validation_fraction:.0%} validation "
                         f"period of {folds} blocks")
    first = len(usable) - n_validation
    edges = [first + round(k * n_validation / folds) for k in range(folds + 1)]
    steps = tuple(PolicyFold(usable[0], usable[a - horizon - 1], usable[a], usable[b - 1])
                  for a, b in zip(edges[:-1], edges[1:]))
    after = dates[dates > pd.Timestamp(validation_end)]
    return PolicyPeriods(steps, after[0] if len(after) else pd.Timestamp(validation_end) + pd.Timedelta(days=1))


@dataclass(frozen=True)
class EnvSettings:
    """How actions map to trades and how the reward is computed.

    The action tilts the baseline: a = 0 holds the baseline exactly, and a = +-1 on one name moves
    its weight by `tilt` times its baseline weight (relative to the portfolio's average action,
    so the tilt moves money between names, not into or out of cash).

    reward = reward_scale * (x - risk_aversion / 2 * x**2), with x the day's return after costs
    minus the baseline's return after its own costs: the policy earns only what its tilt adds, it
    pays every cost its trading causes beyond the baseline's, and its variance term is the
    tracking error. Market moves that the baseline earns too are not in the reward, so the cost
    of a trade is not drowned by them.
    """

    tilt: float = 1.0
    trade_rate: float = 0.1
    risk_aversion: float = 5.0
    reward_scale: float = 1000.0
    episode_length: int | None = 256  # None: one episode runs through the whole market


POSITION_CLIP = 3.0


def tilt_target(weights: np.ndarray, baseline: np.ndarray, action: np.ndarray, tilt: float,
                trade_rate: float = 1.0) -> np.ndarray:
    """The weights an action trades to. The action names an aim: the baseline tilted by `tilt` x
    the action's deviation from its baseline-weighted mean (so a constant action aims at the
    baseline). The portfolio then moves `trade_rate` of the way from `weights` to the aim: a
    noisy aim costs a fraction of what chasing it would, while a persistent one is still reached
    (the partial adjustment that is optimal under trading costs, Garleanu and Pedersen 2013)."""
    a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    total = baseline.sum()
    centred = a - (baseline @ a) / total if total > 0 else a
    aim = baseline * (1.0 + tilt * centred)
    return weights + trade_rate * (aim - weights)


def observation(signals: np.ndarray, context: np.ndarray, weights: np.ndarray, baseline: np.ndarray,
                tilt: float) -> np.ndarray:
    """Observation at one close: scaled forecasts (N), the current position relative to the
    baseline in units of the largest tilt (N, clipped), then the forecast context (2)."""
    position = np.divide(weights - baseline, tilt * baseline, out=np.zeros(len(baseline)), where=baseline > 0)
    return np.concatenate([signals, np.clip(position, -POSITION_CLIP, POSITION_CLIP), context]).astype(np.float32)


def spaces(n_assets: int, clip: float = 5.0) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    """Observation (`observation`) and action spaces for `n_assets`."""
    low = np.r_[np.full(n_assets, -clip), np.full(n_assets, -POSITION_CLIP), -1.0, 0.0].astype(np.float32)
    high = np.r_[np.full(n_assets, clip), np.full(n_assets, POSITION_CLIP), 1.0, clip].astype(np.float32)
    return (gym.spaces.Box(low, high, dtype=np.float32),
            gym.spaces.Box(-1.0, 1.0, (n_assets,), dtype=np.float32))


class PortfolioEnv(gym.Env):
    """Daily tilts around a baseline allocation over N assets, from their out-of-sample forecasts.

    Observation (`observation`, 2N + 2 float32). Action Box(-1, 1, N): the tilt (`tilt_target`),
    projected onto the limits (`project`). Each episode starts holding the baseline, and a shadow
    baseline portfolio trades alongside with the same costs; the reward is the policy's excess
    return over it (`EnvSettings`). Training episodes start at a reproducible pseudo-random day:
    episode k of an env seeded with s starts where numpy's default_rng([s, k]) says, so runs (and
    resumed runs) repeat exactly.
    """

    metadata = {"render_modes": []}

    def __init__(self, market: PolicyMarket, constraints: Constraints = Constraints(),
                 settings: EnvSettings = EnvSettings(), clip: float = 5.0):
        super().__init__()
        shapes = {market.signals.shape, market.baseline.shape, market.next_returns.shape}
        if len(shapes) != 1 or market.signals.ndim != 2 or market.context.shape != (len(market.signals), 2):
            raise ValueError(f"signals {market.signals.shape}, baseline {market.baseline.shape} and next_returns "
                             f"{market.next_returns.shape} must be equal [T, N], context {market.context.shape} [T, 2]")
        length = settings.episode_length
        if length is not None and length > len(market):
            raise ValueError(f"episode_length {length} exceeds the {len(market)} days available")
        self.signals = np.ascontiguousarray(market.signals, dtype=np.float32)
        self.context = np.ascontiguousarray(market.context, dtype=np.float32)
        self.baseline = np.ascontiguousarray(market.baseline, dtype=np.float64)
        self.next_returns = np.ascontiguousarray(market.next_returns, dtype=np.float64)
        self.constraints, self.settings = constraints, settings
        self.n_days, self.n_assets = self.signals.shape
        self.episode_length = length or self.n_days
        self.observation_space, self.action_space = spaces(self.n_assets, clip)
        self._seed, self._first_episode, self._episode = 0, 0, 0
        self._t = self._end = 0
        self.weights = np.zeros(self.n_assets)
        self._base_targets = np.array([project(b, constraints) for b in self.baseline]).reshape(self.baseline.shape)
        self._inv_tilt = np.divide(1.0, settings.tilt * self.baseline, out=np.zeros_like(self.baseline),
                                   where=self.baseline > 0)
        self._obs_buffer = np.zeros(2 * self.n_assets + 2, dtype=np.float32)

    def start_at_episode(self, episode: int) -> None:
        """Continue the episode sequence at `episode` (used when training resumes)."""
        self._first_episode = self._episode = int(episode)

    def _obs(self) -> np.ndarray:
        """`observation`, from precomputed parts (the step's hot path)."""
        t, n, out = self._t, self.n_assets, self._obs_buffer.copy()
        out[:n] = self.signals[t]
        out[n:2 * n] = np.clip((self.weights - self.baseline[t]) * self._inv_tilt[t], -POSITION_CLIP, POSITION_CLIP)
        out[2 * n:] = self.context[t]
        return out

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._seed, self._episode = int(seed), self._first_episode
        span = self.n_days - self.episode_length
        start = int(np.random.default_rng([self._seed, self._episode]).integers(0, span + 1)) if span > 0 else 0
        self._episode += 1
        self._t, self._end = start, start + self.episode_length
        self.weights = self._base_targets[start].copy()
        self.baseline_weights = self.weights.copy()
        return self._obs(), {"day": self._t}

    def step(self, action: np.ndarray):
        c, s, t = self.constraints, self.settings, self._t
        target = project(tilt_target(self.weights, self.baseline[t], action, s.tilt, s.trade_rate), c)
        net, cost, traded, self.weights = rebalance(self.weights, target, self.next_returns[t], c.cost_rate)
        base_net, base_cost, _, self.baseline_weights = rebalance(
            self.baseline_weights, self._base_targets[t], self.next_returns[t], c.cost_rate)
        excess = net - base_net
        reward = s.reward_scale * (excess - 0.5 * s.risk_aversion * excess * excess)
        info = {"day": t, "return": net, "cost": cost, "traded": traded, "target": target,
                "baseline_return": base_net, "excess_cost": cost - base_cost}
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
