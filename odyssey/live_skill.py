"""The live-skill monitor: a one-sided CUSUM on a champion's daily skill contributions, fitted on
its own walk-forward forecasts, that says when the skill it was deployed on is gone.

A forecast made at session t is scored as soon as session t+1 closes: its contribution is
``c_t = z(prediction_t) * z(next return / trailing volatility)``, both normal scores against the
walk-forward's own distributions. Over the walk-forward the mean of ``c`` is the model's
next-session skill ``mu`` (a Gaussian-rank correlation); a model whose signal died has mean 0.
The lower CUSUM ``S_t = max(0, S_{t-1} + (mu - c_t) - 0.75 mu)`` grows while live forecasts are
worse than the walk-forward and the alarm is its first crossing of ``h``. (The allowance 0.75 mu
detected a dead signal within 60 sessions most often at the same false-alarm rate, against 0.5 mu
and 1.0 mu and moving sums over 30 to 60 sessions, in the simulation of bench/replay.py.) ``h`` is set so that a
healthy champion alarms with probability at most ``false_alarm`` in its first ``window`` live
sessions and in the next ``window``: by a moving-block bootstrap of the walk-forward
contributions (which keeps their autocorrelation). Returns are scaled by their trailing volatility, so a calmer or wilder market
changes the contributions' spread little and the alarm rate with it.

What a monitor can detect is bounded by the information in the sessions: a next-session skill
of ``mu`` gives a signal-to-noise of about ``mu * sqrt(n)`` after n sessions. bench/replay.py
measures the detection rate and delay against ``mu``; the README states where the aims hold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from odyssey.gates import NOT_EVALUABLE
from odyssey.outcomes import empty_log
from odyssey.settings import GateSettings
from odyssey.splits import price_column

QUANTILES = 201  # points of each reference distribution kept in the card
BLOCK = 20  # sessions per bootstrap block (four 5-day horizons: the contributions' memory)
ALLOWANCE = 0.75  # the CUSUM's allowance, as a share of the walk-forward mean contribution
FALSE_ALARM = GateSettings().live_false_alarm
SCORING_ERROR = "error"  # a ticker whose live forecasts could not be scored (the check fails, naming it)
LOST_KEY = "lost"  # the live-skill check's metadata: the tickers whose skill was lost (the retraining sensor reads it)


def scaled_next_returns(clean: pd.DataFrame, vol_window: int = 63) -> pd.DataFrame:
    """date, ticker, scaled_next_return: the simple return from close t to close t+1 divided by
    the root mean square of the daily log returns over the `vol_window` sessions up to t (known
    at t); NaN where it is not realised yet or the trailing window is shorter than half."""
    ordered = clean.sort_values(["ticker", "date"], kind="stable")
    column = price_column(ordered)
    grouped = ordered.groupby("ticker", sort=False)[column]
    close = ordered[column]
    log_return = np.log(close / grouped.shift(1))
    vol = np.sqrt((log_return ** 2).groupby(ordered["ticker"], sort=False).transform(
        lambda s: s.rolling(vol_window, min_periods=max(2, vol_window // 2)).mean()))
    nxt = grouped.shift(-1) / close - 1.0
    scaled = (nxt / vol).where(vol > 0)
    return pd.DataFrame({"date": ordered["date"].to_numpy(), "ticker": ordered["ticker"].to_numpy(),
                         "scaled_next_return": scaled.to_numpy(float)})


def _grid(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(q) for q in np.quantile(values, np.linspace(0.0, 1.0, QUANTILES)))


def normal_scores(values: np.ndarray, grid: tuple[float, ...]) -> np.ndarray:
    """Each value's normal score against a reference distribution given by its quantiles: the
    probability it reaches there (mid-way through ties, clipped half a grid step inside 0 and 1)
    through the inverse normal CDF."""
    points = np.asarray(grid)
    probs = np.linspace(0.0, 1.0, len(points))
    values = np.asarray(values, float)
    p = np.interp(values, points, probs, left=0.0, right=1.0)
    lo, hi = np.searchsorted(points, values, "left"), np.searchsorted(points, values, "right")
    tied = hi > lo  # equal to grid points (tree models repeat predictions): the middle of their run
    p[tied] = (probs[lo[tied]] + probs[hi[tied] - 1]) / 2.0
    edge = 0.5 / (len(points) - 1)
    from scipy.stats import norm  # imported on first use: loading the code location skips SciPy

    return norm.ppf(np.clip(p, edge, 1.0 - edge))


def cusum(contributions: np.ndarray, mean: float, allowance: float) -> np.ndarray:
    """The lower CUSUM path over the rows of `contributions` (the last axis is time)."""
    drift = mean - np.asarray(contributions, float) - allowance
    out = np.empty_like(drift)
    s = np.zeros(drift.shape[:-1])
    for t in range(drift.shape[-1]):
        s = np.maximum(0.0, s + drift[..., t])
        out[..., t] = s
    return out


def block_paths(series: np.ndarray, length: int, reps: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """`reps` moving-block bootstrap paths of `length` from `series` (reps x length)."""
    blocks = -(-length // block)
    starts = rng.integers(0, len(series) - block + 1, size=(reps, blocks))
    index = (starts[..., None] + np.arange(block)).reshape(reps, -1)[:, :length]
    return series[index]


def calibrated_threshold(first: np.ndarray, second: np.ndarray, false_alarm: float) -> float:
    """The lowest level that healthy paths cross in at most `false_alarm` of their first window and
    of their second window among those quiet in the first (the CUSUM starts at 0 when a champion
    goes live, so the second window is the steadier state): the per-window rate holds later too."""
    levels = np.unique(np.concatenate([first, second]))[:, None]
    quiet = first[None, :] <= levels
    first_rate = 1.0 - quiet.mean(axis=1)
    second_rate = ((second[None, :] > levels) & quiet).sum(axis=1) / np.maximum(quiet.sum(axis=1), 1)
    return float(levels[(first_rate <= false_alarm) & (second_rate <= false_alarm)][0, 0])


@dataclass(frozen=True)
class LiveSkillMonitor:
    """Fitted on a model's walk-forward forecasts; stored (signed) in its card."""

    prediction_grid: tuple[float, ...]
    return_grid: tuple[float, ...]
    mean: float  # walk-forward mean contribution: the next-session skill the model was deployed on
    allowance: float
    threshold: float  # h: the CUSUM level that raises the alarm
    false_alarm: float
    window: int
    reference_days: int
    vol_window: int

    @classmethod
    def fit(cls, prediction: np.ndarray, scaled_next_return: np.ndarray, *, false_alarm: float = FALSE_ALARM,
            window: int = 126, vol_window: int = 63, reps: int = 2000, seed: int = 0) -> "LiveSkillMonitor":
        """From the walk-forward forecasts and their scaled next-session returns (rows with both)."""
        p, r = np.asarray(prediction, float), np.asarray(scaled_next_return, float)
        ok = np.isfinite(p) & np.isfinite(r)
        p, r = p[ok], r[ok]
        if len(p) < 2 * BLOCK:
            raise ValueError(f"live-skill monitor: {len(p)} walk-forward forecasts with a realised next session, "
                             f"fewer than {2 * BLOCK}")
        grid_p, grid_r = _grid(p), _grid(r)
        c = normal_scores(p, grid_p) * normal_scores(r, grid_r)
        mean = float(c.mean())
        allowance = ALLOWANCE * max(mean, 0.0)
        rng = np.random.default_rng(seed)
        # the walk-forward mean is an estimate: each healthy path is judged against the mean of a
        # resample of the walk-forward, so the threshold allows for the estimate's error
        estimates = block_paths(c, len(c), reps, BLOCK, rng).mean(axis=1)
        path = cusum(block_paths(c, 2 * window, reps, BLOCK, rng), estimates[:, None], allowance)
        threshold = calibrated_threshold(path[:, :window].max(axis=1), path[:, window:].max(axis=1), false_alarm)
        return cls(grid_p, grid_r, mean, allowance, threshold, false_alarm, window, int(len(p)), vol_window)

    def contributions(self, prediction: np.ndarray, scaled_next_return: np.ndarray) -> np.ndarray:
        return (normal_scores(np.asarray(prediction, float), self.prediction_grid)
                * normal_scores(np.asarray(scaled_next_return, float), self.return_grid))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LiveSkillMonitor":
        data = dict(data)
        data["prediction_grid"] = tuple(data["prediction_grid"])
        data["return_grid"] = tuple(data["return_grid"])
        return cls(**data)

    def judge(self, dates, prediction: np.ndarray, scaled_next_return: np.ndarray,
              min_days: int) -> "LiveSkillVerdict":
        """The verdict on a champion's realised live forecasts, in date order: failed from the
        first session the CUSUM crossed the threshold (for good: the alarm is the first crossing);
        else not yet evaluable below `min_days` realised sessions; else passed."""
        dates = pd.DatetimeIndex(dates)
        n = len(dates)
        c = self.contributions(prediction, scaled_next_return)
        path = cusum(c, self.mean, self.allowance)
        crossed = np.flatnonzero(path > self.threshold)
        alarm = int(crossed[0]) if len(crossed) else None
        if self.mean <= 0:
            status, alarm = NOT_EVALUABLE, None
        elif alarm is not None:
            status = "failed"
        else:
            status = NOT_EVALUABLE if n < min_days else "passed"
        return LiveSkillVerdict(
            status=status, realised=n, min_days=min_days, statistic=float(path[-1]) if n else 0.0,
            peak=float(path.max()) if n else 0.0, threshold=self.threshold, walkforward_skill=self.mean,
            live_skill=float(c.mean()) if n else float("nan"), false_alarm=self.false_alarm, window=self.window,
            alarm_date=str(dates[alarm].date()) if alarm is not None else None,
            alarm_after=alarm + 1 if alarm is not None else None, path=tuple(float(x) for x in path))


@dataclass(frozen=True)
class LiveSkillVerdict:
    status: str  # passed | failed | not yet evaluable
    realised: int  # realised live forecasts (their next session has closed)
    min_days: int
    statistic: float  # the CUSUM now
    peak: float
    threshold: float
    walkforward_skill: float
    live_skill: float  # mean live contribution
    false_alarm: float
    window: int
    alarm_date: str | None  # the session the CUSUM first crossed the threshold
    alarm_after: int | None  # realised live forecasts up to the alarm
    path: tuple[float, ...]

    @property
    def passed(self) -> bool:
        return self.status != "failed"

    @property
    def evaluable(self) -> bool:
        return self.status != NOT_EVALUABLE

    @property
    def reason(self) -> str:
        skill = (f"next-session skill live {self.live_skill:+.3f} against {self.walkforward_skill:+.3f} in the "
                 f"walk-forward")
        if self.walkforward_skill <= 0:
            return (f"{NOT_EVALUABLE}: the walk-forward shows no next-session skill ({self.walkforward_skill:+.3f}) "
                    "for the live forecasts to lose")
        if self.status == "failed":
            return (f"live skill lost: the CUSUM crossed {self.threshold:.2f} on {self.alarm_date}, after "
                    f"{self.alarm_after} realised live forecasts ({skill}; {self.realised} realised)")
        if self.status == NOT_EVALUABLE:
            return (f"{NOT_EVALUABLE}: {self.realised} of {self.min_days} realised days; CUSUM {self.statistic:.2f} "
                    f"of {self.threshold:.2f} ({skill})")
        return (f"CUSUM {self.statistic:.2f} below its threshold {self.threshold:.2f} (a healthy champion crosses it "
                f"in at most {self.false_alarm:.0%} of {self.window}-session spans) over {self.realised} realised live "
                f"forecasts ({skill})")


def live_pairs(log: pd.DataFrame, scaled: pd.DataFrame, ticker: str, version: str) -> pd.DataFrame:
    """date, prediction, scaled_next_return: the version's logged forecasts of `ticker` whose
    next session has closed, in date order."""
    rows = log[(log["ticker"] == ticker) & (log["model_version"] == str(version))][["date", "prediction"]]
    joined = rows.merge(scaled.loc[scaled["ticker"] == ticker, ["date", "scaled_next_return"]], on="date")
    joined = joined[joined["scaled_next_return"].notna() & joined["prediction"].notna()]
    return joined.sort_values("date").reset_index(drop=True)


@dataclass(frozen=True)
class MonitorPower:
    """The monitor's behaviour measured by simulation at one next-session skill."""

    skill: float
    windows: int
    detection_rate: float  # dead signal: share of windows alarmed within `within` sessions
    median_detection_sessions: float  # dead signal: median sessions to the alarm (inf: most never alarm)
    false_alarm_rate: float  # healthy champion: share alarmed within its first `window` live sessions
    later_false_alarm_rate: float  # healthy: share of those still quiet alarmed in the next `window`
    reversal_detection_rate: float  # reversed signal: share alarmed within `within` sessions
    within: int


def simulated_forecasts(n: int, skill: float, rng: np.random.Generator, persistence: float = 0.9,
                        tail_df: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """A champion's forecasts and scaled next-session returns: forecasts persist like a momentum
    signal (AR(1)); returns are `skill` times the standardised forecast plus Student-t noise of
    unit variance (fat tails, as daily returns have)."""
    shocks = rng.standard_normal(n)
    p = np.empty(n)
    p[0] = shocks[0]
    scale = np.sqrt(1.0 - persistence ** 2)
    for t in range(1, n):
        p[t] = persistence * p[t - 1] + scale * shocks[t]
    noise = rng.standard_t(tail_df, n) / np.sqrt(tail_df / (tail_df - 2.0))
    return p, skill * p + np.sqrt(max(1.0 - skill ** 2, 0.0)) * noise


def simulate_power(skill: float, windows: int = 200, *, reference_days: int = 1250, window: int = 126,
                   within: int = 60, false_alarm: float = FALSE_ALARM, reps: int = 2000, seed: int = 0) -> MonitorPower:
    """Fit a monitor on `reference_days` simulated walk-forward forecasts of a model with this
    next-session `skill`, then watch three live futures per window: the signal dead from the
    first live session, the signal reversed, and healthy for two windows."""
    rng = np.random.default_rng(seed)
    delays, reversed_, first, later, quiet = [], 0, 0, 0, 0
    dates = pd.bdate_range("2000-01-03", periods=2 * window)
    for i in range(windows):
        monitor = LiveSkillMonitor.fit(*simulated_forecasts(reference_days, skill, rng), false_alarm=false_alarm,
                                       window=window, reps=reps, seed=seed + i)
        dead = monitor.judge(dates[:window], *simulated_forecasts(window, 0.0, rng), min_days=0)
        delays.append(dead.alarm_after if dead.alarm_after is not None else np.inf)
        flipped = monitor.judge(dates[:window], *simulated_forecasts(window, -skill, rng), min_days=0)
        reversed_ += flipped.alarm_after is not None and flipped.alarm_after <= within
        healthy = monitor.judge(dates, *simulated_forecasts(2 * window, skill, rng), min_days=0)
        if healthy.alarm_after is not None and healthy.alarm_after <= window:
            first += 1
        else:
            quiet += 1
            later += healthy.alarm_after is not None
    delays = np.asarray(delays, float)
    return MonitorPower(skill, windows, float(np.mean(delays <= within)), float(np.median(delays)),
                        first / windows, later / quiet if quiet else float("nan"), reversed_ / windows, within)


def fit_on_walkforward(oos: pd.DataFrame, clean: pd.DataFrame, *, false_alarm: float, window: int,
                       vol_window: int, seed: int = 0) -> LiveSkillMonitor:
    """The monitor of a model whose walk-forward forecasts are `oos` (date, ticker, prediction),
    from the clean prices of its ticker."""
    ticker = oos["ticker"].iloc[0]
    scaled = scaled_next_returns(clean[clean["ticker"] == ticker], vol_window)
    rows = oos[["date", "prediction"]].merge(scaled[["date", "scaled_next_return"]], on="date").sort_values("date")
    return LiveSkillMonitor.fit(rows["prediction"].to_numpy(), rows["scaled_next_return"].to_numpy(),
                                false_alarm=false_alarm, window=window, vol_window=vol_window, seed=seed)


def judge_champion(monitor: dict, log: pd.DataFrame | None, clean: pd.DataFrame, ticker: str, version: str,
                   min_days: int) -> LiveSkillVerdict | None:
    """The live-skill verdict on a champion from its card's fitted monitor (None: its card has
    none, it was trained before the monitor existed) and the forecast log."""
    if not monitor:
        return None
    fitted = LiveSkillMonitor.from_dict(monitor)
    pairs = live_pairs(log if log is not None else empty_log(),
                       scaled_next_returns(clean[clean["ticker"] == ticker], fitted.vol_window), ticker, version)
    return fitted.judge(pairs["date"], pairs["prediction"].to_numpy(), pairs["scaled_next_return"].to_numpy(),
                        min_days)
