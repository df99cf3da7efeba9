"""One typed `Settings` for a run, and the one place that reads it: `load_settings`.

Settings come from a TOML file: `odyssey.toml` at the repository root, or the file the
environment variable ODYSSEY_SETTINGS names. A file may start from another with
``extends = "settings/full.toml"`` (a path relative to the file) and change only what differs.
A few environment variables override the common knobs (`ENV_OVERRIDES`). Nothing else in Odyssey
reads the environment: the settings object is passed in.

Sections: universe (tickers, benchmark, alternative series, exchange), dates (start; end, which
may be "today"; the split boundaries as ISO dates or as proportions of the sessions), source,
costs, cleaning, features, forecast (the one horizon, walk-forward windows, training window,
XGBoost), gates, monitoring, portfolio (limits and PPO) and paths.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Union
from urllib.parse import parse_qsl, unquote_plus, urlsplit

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from odyssey.calendar import sessions as exchange_sessions
from odyssey.calendar import today as exchange_today

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILE = REPO_ROOT / "odyssey.toml"
PRESETS_DIR = REPO_ROOT / "settings"
KNOWN_ALT_SERIES: tuple[str, ...] = ("VIX", "DXY", "Gold", "Yield_10Y")
BAR_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
SPLIT_NAMES: tuple[str, ...] = ("train", "validation", "test")


class _Model(BaseModel):
    # errors name the field and the rule, never the value given (it may be a credential)
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


# --- credentials -------------------------------------------------------------------------------
REDACTED = "***"


# query parameters that carry a credential (tokens, keys, signatures of pre-signed or SAS URLs)
# (a whole word of the name: access_token, api_key, X-Amz-Signature, sig; not key_prefix, sslkey,
# tokenizer or author)
SECRET_PARAMETERS = re.compile(r"(^|[_.-])(token|secret|password|passwd|pwd|sig|signature|credential|credentials|"
                               r"auth|apikey|key|sas)$", re.IGNORECASE)


def url_userinfo(value: str) -> str | None:
    """The `user:password` (or token) before the host of a URL, if it has one."""
    if not isinstance(value, str) or "://" not in value:
        return None
    try:
        netloc = urlsplit(value).netloc
    except ValueError:
        return None
    return netloc.rpartition("@")[0] if "@" in netloc else None


def _secret_parameters(value: str) -> list[tuple[str, str]]:
    """(name, value) of the query parameters of a URL whose names say they carry a credential."""
    if not isinstance(value, str) or "://" not in value:
        return []
    try:
        query = urlsplit(value).query
    except ValueError:
        return []
    return [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if SECRET_PARAMETERS.search(k) and v]


def has_credentials(value: str) -> bool:
    """A URL with a user or password before its host, or a token, key or signature in its query."""
    info = url_userinfo(value)
    return (bool(info) and info != REDACTED) or any(v != REDACTED for _, v in _secret_parameters(value))


def redact_url(value: str) -> str:
    """The URL with its user and password, and the values of its credential query parameters,
    masked: https://***@host/...?token=*** ."""
    info = url_userinfo(value)
    out = value.replace(f"{info}@", f"{REDACTED}@", 1) if info else value
    secrets = _secret_parameters(value)
    if secrets:
        head, _, query = out.partition("?")
        query, _, fragment = query.partition("#")
        parts = []
        for part in query.split("&"):
            name = part.partition("=")[0]
            parts.append(f"{name}={REDACTED}" if "=" in part and SECRET_PARAMETERS.search(unquote_plus(name))
                         and part.partition("=")[2] else part)
        out = head + "?" + "&".join(parts) + (f"#{fragment}" if fragment else "")
    return out


def _strings(tree: Any, prefix: str = ""):
    """(dotted field, value) of every string in a settings tree."""
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from _strings(value, f"{prefix}{key}.")
    elif isinstance(tree, (list, tuple)):
        for value in tree:
            yield from _strings(value, prefix)
    elif isinstance(tree, str):
        yield prefix.rstrip("."), tree


# --- universe and dates ---------------------------------------------------------------------
class Universe(_Model):
    """What is traded, against what, on which exchange's sessions."""

    tickers: tuple[str, ...] = Field(min_length=1)
    benchmark: str = Field(description="a universe ticker: cross-asset features and regimes use its returns")
    alt_series: tuple[str, ...] = Field(default=KNOWN_ALT_SERIES, description="alternative series used (any of "
                                        "VIX, DXY, Gold, Yield_10Y; empty: none)")
    bar_fields: tuple[str, ...] = Field(default=BAR_FIELDS, description="the bar fields the market has: close, and "
                                        "any of volume and open/high/low (all three or none); features that need a "
                                        "field left out are left out too (a closes-only market: [\"close\"])")
    exchange: str = Field(default="XNYS", description="exchange_calendars code of the trading calendar")

    @field_validator("bar_fields")
    @classmethod
    def _bar_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(BAR_FIELDS))
        if unknown or "close" not in value:
            raise ValueError(f"universe.bar_fields must include close and only {list(BAR_FIELDS)}, got {list(value)}")
        if 0 < len({"open", "high", "low"} & set(value)) < 3:
            raise ValueError(f"universe.bar_fields: open, high and low come together (the day's range), "
                             f"got {list(value)}")
        return tuple(f for f in BAR_FIELDS if f in value)

    @model_validator(mode="after")
    def _consistent(self) -> "Universe":
        if len(set(self.tickers)) != len(self.tickers):
            raise ValueError(f"universe.tickers repeats a ticker: {list(self.tickers)}")
        if self.benchmark not in self.tickers:
            raise ValueError(f"universe.benchmark {self.benchmark!r} must be one of the tickers {list(self.tickers)}")
        unknown = sorted(set(self.alt_series) - set(KNOWN_ALT_SERIES))
        if unknown:
            raise ValueError(f"universe.alt_series has unknown series {unknown}; known: {list(KNOWN_ALT_SERIES)}")
        return self


Boundary = Union[float, str]


class Dates(_Model):
    """The history a run covers; split boundaries are ISO dates or proportions (0-1) of the sessions."""

    start: str
    end: str = Field(default="today", description='an ISO date or "today"')
    train_end: Boundary = 0.55
    validation_end: Boundary = 0.75

    @field_validator("start", "end")
    @classmethod
    def _date(cls, value: str) -> str:
        if str(value).lower() != "today":
            pd.Timestamp(value)
        return str(value)

    @field_validator("train_end", "validation_end")
    @classmethod
    def _boundary(cls, value: Boundary) -> Boundary:
        if isinstance(value, float) and not 0.0 < value < 1.0:
            raise ValueError(f"a proportion must lie strictly between 0 and 1, got {value}")
        if isinstance(value, str):
            pd.Timestamp(value)
        return value


class Profile(_Model):
    """The resolved universe and dates of a run: concrete session dates everywhere."""

    name: str
    tickers: tuple[str, ...]
    benchmark: str
    alt_series: tuple[str, ...]
    bar_fields: tuple[str, ...] = BAR_FIELDS
    exchange: str
    start: str
    end: str
    train_end: str
    validation_end: str

    @property
    def sessions(self) -> pd.DatetimeIndex:
        return exchange_sessions(self.start, self.end, self.exchange)

    def split_of(self, dates: pd.Series | pd.DatetimeIndex) -> pd.Series:
        """'train' / 'validation' / 'test' for each date."""
        d = pd.Series(pd.DatetimeIndex(dates))
        out = pd.Series("test", index=d.index, dtype=object)
        out[d <= pd.Timestamp(self.validation_end)] = "validation"
        out[d <= pd.Timestamp(self.train_end)] = "train"
        return out

    def with_end(self, end: str | pd.Timestamp) -> "Profile":
        return self.model_copy(update={"end": str(pd.Timestamp(end).date())})


# --- source ---------------------------------------------------------------------------------
class SyntheticSettings(_Model):
    """The seeded synthetic market (see odyssey/sources/synthetic.py)."""

    seed: int = 7
    signal_strength: float = Field(default=0.22, description="planted predictable share of returns (0: none)")
    signal_source: Literal["momentum", "gold"] = Field(
        default="momentum", description="what the planted signal reads: 'momentum', the ticker's own 10-day return "
        "(which the signal adds to: trends feed on themselves, run away from a strength near 1.5, and a flip damps "
        "them instead of reversing the skill); 'gold', Gold's 20-day return (a feature that nothing feeds back into: "
        "no strength runs away, and a flip reverses the skill at its full size)")
    annual_drift: float = Field(default=0.075, description="expected yearly log return per unit of market beta")
    drift_date: Optional[str] = Field(default=None, description="distribution shift from this date")
    drift_tickers: Optional[tuple[str, ...]] = Field(default=None, description="tickers that drift (None: all)")
    signal_flip_date: Optional[str] = Field(default=None, description="from this date the planted signal reverses")
    signal_death_date: Optional[str] = Field(default=None, description="from this date the planted signal stops")
    signal_tickers: Optional[tuple[str, ...]] = Field(default=None, description="tickers whose signal flips or "
                                                      "stops (None: all)")
    missing_day_rate: float = 0.001
    bad_ticks: bool = True
    splits: bool = True
    bad_prints: tuple[str, ...] = Field(default=(), description="'TICKER YYYY-MM-DD': one more bad print on that "
                                        "session (the quoted close off by 25 % for the day, reverting the next)")
    unlisted_splits: tuple[str, ...] = Field(default=(), description="'TICKER YYYY-MM-DD RATIO': a split in the "
                                             "quotes from that session on that no corporate-actions table lists")

    @field_validator("bad_prints", "unlisted_splits")
    @classmethod
    def _events(cls, value: tuple[str, ...], info) -> tuple[str, ...]:
        size = 2 if info.field_name == "bad_prints" else 3
        for item in value:
            parts = item.split()
            try:
                ok = len(parts) == size and pd.Timestamp(parts[1]) is not None and (size == 2 or float(parts[2]) > 0)
            except ValueError:
                ok = False
            if not ok:
                shape = "'TICKER YYYY-MM-DD'" if size == 2 else "'TICKER YYYY-MM-DD RATIO' (ratio > 0)"
                raise ValueError(f"source.synthetic.{info.field_name}: {item!r} is not {shape}")
        return value


class SourceSettings(_Model):
    kind: Literal["synthetic", "csv", "yfinance"] = "synthetic"
    csv_path: Optional[str] = Field(default=None, description="folder of CSV/Parquet bars (csv source)")
    synthetic: SyntheticSettings = SyntheticSettings()


# --- stages ---------------------------------------------------------------------------------
class Costs(_Model):
    """Trading costs on traded value, shared by the forecast sign strategy and the portfolio."""

    cost_bps: float = 10.0
    slippage_bps: float = 5.0

    @property
    def rate(self) -> float:
        return (self.cost_bps + self.slippage_bps) / 1e4


class CleaningSettings(_Model):
    max_fill_days: int = Field(default=5, description="longest run of missing sessions forward-filled")
    outlier_sigma: float = Field(default=5.0, description="a one-day move beyond this many trailing sigmas is an outlier")
    repair_bad_prints: bool = Field(default=True, description="repair a spike the next session undoes (see "
                                    "revert_band); false keeps every quote as delivered")
    revert_band: float = Field(default=0.2, gt=0.0, lt=0.5,
                               description="a spike is a bad print only when the next session opens and closes back "
                                           "within this share of the spike's size from the previous close; real "
                                           "crashes that partly revert (2011-08-08: back to 0.28 of the move) are kept")
    level_shift_sigma: float = Field(default=15.0, description="a persistent one-day level change beyond this many "
                                     "sigmas without a corporate action is suspicious")
    split_tolerance: float = Field(default=0.03, description="a persistent one-day move within this relative distance "
                                   "of a split ratio (2, 3, 4, 5, 7, 8, 10, 15, 20 or an inverse) is a suspected "
                                   "unlisted split, whatever the volume")
    confirmed_moves: tuple[str, ...] = Field(default=(), description="'TICKER YYYY-MM-DD' of real moves that look like "
                                             "a split or a change of unit: the level-shift check accepts them")
    stale_volume_days: int = Field(default=10, description="this many sessions in a row of zero volume is suspicious")
    clip_sigma: float = Field(default=3.0, description="returns are clipped at mean +- this many sigma (fitted)")

    @field_validator("confirmed_moves")
    @classmethod
    def _moves(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            parts = item.split()
            if len(parts) != 2:
                raise ValueError(f"cleaning.confirmed_moves: {item!r} is not 'TICKER YYYY-MM-DD'")
            try:
                pd.Timestamp(parts[1])
            except ValueError:
                raise ValueError(f"cleaning.confirmed_moves: {item!r} has no ISO date") from None
        return value

    def confirmed(self) -> set[tuple[str, pd.Timestamp]]:
        """The confirmed real moves as (ticker, date)."""
        return {(t, pd.Timestamp(d)) for t, d in (item.split() for item in self.confirmed_moves)}


class FeatureSettings(_Model):
    regime_seed: int = 42


class WalkForwardSettings(_Model):
    """Walk-forward windows (years); the purge and embargo are the forecast horizon."""

    min_train_years: float = 3.0
    val_years: float = 0.5
    test_years: float = 0.5
    step_years: float = 0.5


class XGBParams(_Model):
    """XGBoost hyperparameters. Defaults: the regularized preset (shallow, subsampled trees with
    patient early stopping), which recovers about twice the seed notebook's share of a planted
    signal; `XGB_PRESETS["seed"]` keeps the seed notebook's values."""

    objective: str = "reg:squarederror"
    learning_rate: float = 0.05
    max_depth: int = 2
    n_estimators: int = 1000
    early_stopping_rounds: int = 100
    seed: int = 42
    tree_method: str = "hist"
    nthread: int = 2
    subsample: float = 0.5
    colsample_bytree: float = 0.5
    min_child_weight: float = 100.0
    max_bin: int = 64

    def booster_params(self) -> dict:
        return {"objective": self.objective, "eta": self.learning_rate, "max_depth": self.max_depth,
                "seed": self.seed, "tree_method": self.tree_method, "nthread": self.nthread,
                "subsample": self.subsample, "colsample_bytree": self.colsample_bytree,
                "min_child_weight": self.min_child_weight, "max_bin": self.max_bin}


XGB_PRESETS: dict[str, XGBParams] = {
    "regularized": XGBParams(),
    "seed": XGBParams(learning_rate=0.01, max_depth=6, early_stopping_rounds=50, subsample=1.0,
                      colsample_bytree=1.0, min_child_weight=1.0),
}


class ForecastSettings(_Model):
    """The one horizon (target, purge, embargo, canary and drift target all follow it), the
    walk-forward, the final model's rolling training window and XGBoost."""

    horizon: int = Field(default=5, ge=1, description="sessions ahead of the forecast target")
    training_years: float = Field(default=0.0, ge=0.0, description="length of the final model's training window "
                                  "(0: everything labelled)")
    walkforward: WalkForwardSettings = WalkForwardSettings()
    xgboost: XGBParams = XGBParams()

    @field_validator("xgboost", mode="before")
    @classmethod
    def _preset(cls, value: Any) -> Any:
        """A preset name, or a table whose optional `preset` key names the base the rest changes."""
        if isinstance(value, str):
            value = {"preset": value}
        if isinstance(value, Mapping) and "preset" in value:
            name = value["preset"]
            if name not in XGB_PRESETS:
                raise ValueError(f"unknown XGBoost preset {name!r}; choose one of {sorted(XGB_PRESETS)}")
            value = {**XGB_PRESETS[name].model_dump(), **{k: v for k, v in value.items() if k != "preset"}}
        return value


class GateSettings(_Model):
    """Deployment gates of the forecast models and the live-skill check."""

    implausible_direction_accuracy: float = 0.60
    naive_margin: float = 0.05
    regression_tolerance: float = 0.02
    skill_level: float = Field(default=0.90, description="level of the walk-forward's bootstrap intervals shown "
                               "beside the skill verdict, and of the no_regression gate")
    min_skill_days: int = Field(default=250, description="out-of-sample days needed to judge skill")
    family_method: Literal["holm", "bh", "none"] = Field(
        default="holm", description="how has_skill adjusts every ticker's skill p-value for the hypotheses tried "
        "(tickers x model variants): 'holm' controls the chance of deploying any model without skill, 'bh' the "
        "expected share of deployed models without skill, 'none' judges each ticker alone at family_rate (one "
        "ticker's research; on a universe of 15 with nothing to predict, most runs then deploy something) "
        "(odyssey/skill.py)")
    family_rate: float = Field(default=0.10, gt=0, lt=1, description="the family-wise error rate (holm) or false "
                               "discovery rate (bh) of the deployment decision")
    variants_tried: int = Field(default=1, ge=1, description="model variants tried per ticker, at least: has_skill "
                                "uses the larger of this and the distinct configurations the tracking store has "
                                "evaluated (XGBoost parameters, walk-forward windows, horizon, feature registry)")
    policy_margin: float = Field(default=0.01, ge=0, description="non-inferiority margin of the policy gate: "
                                 "policy_earns_its_place passes only when the lower bound of the interval of the "
                                 "policy's annualised excess return over its baseline after costs, over its "
                                 "walk-forward's held-out blocks, is >= -policy_margin")
    policy_level: float = Field(default=0.90, gt=0.5, lt=1, description="two-sided level of that interval")
    policy_block_days: int = Field(default=20, ge=2, description="block length of the paired moving-block "
                                   "bootstrap behind that interval")
    advice_min_dsr: float = Field(default=0.95, gt=0, lt=1, description="strategy_selection: the chosen strategy "
                                  "advises only when the deflated Sharpe ratio of its excess return over the "
                                  "baseline (the probability that its true information ratio is above what the "
                                  "best of the candidates would show by luck) is at least this")
    advice_max_pbo: float = Field(default=0.5, gt=0, lt=1, description="... and the probability of backtest "
                                  "overfitting of the selection (combinatorially symmetric cross-validation over "
                                  "the candidates) is below this")
    advice_partitions: int = Field(default=16, ge=4, description="blocks of held-out sessions CSCV combines (even)")

    @field_validator("advice_partitions")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"advice_partitions must be even (CSCV splits the blocks in halves), got {value}")
        return value
    canary_folds: int = Field(default=2, description="walk-forward folds the leakage canary cleans, builds and "
                              "trains again: the first, then the middle, then the last, then evenly spaced")
    canary_cuts: int = Field(default=1, description="cut dates per fold after which the raw future is changed")
    canary_seed: int = 0
    live_window: int = Field(default=126, description="realised live forecasts scored by forecast_outcomes, and the "
                             "span the live-skill monitor's false-alarm rate is per")
    live_min_days: int = Field(default=40, description="realised live forecasts before a quiet live-skill monitor "
                               "counts as a pass (fewer: not yet evaluable; an alarm counts at once)")
    live_level: float = Field(default=0.90, description="interval level of the live IC and hit rate shown")
    live_false_alarm: float = Field(default=0.035, gt=0, lt=0.5, description="share of live_window-session spans "
                                    "in which the live-skill monitor may alarm on a healthy champion, by its "
                                    "bootstrap (3.5 %: measured on fresh futures, with the walk-forward's estimation "
                                    "error, it stays within 5 %; bench/replay.py)")
    live_vol_window: int = Field(default=63, ge=4, description="sessions of trailing volatility the next-session "
                                 "returns are scaled by in the live-skill monitor")


class MonitoringSettings(_Model):
    """Drift: the recent window after the champion's training window against it. A feature (or the
    target's absolute size) drifts when its window mean is more than z_threshold standard
    deviations of same-length window means away; the ticker drifts when more than
    max_share_drifted of its features do, or its target's size does, or its volatility relative to
    the benchmark's is more than relative_vol_z_threshold deviations of same-length windows away."""

    window_days: int = 126
    min_window_days: int = Field(default=20, ge=2, description="sessions after the reference window needed to "
                                 "judge drift (fewer, as soon after a retrain: not yet evaluable)")
    z_threshold: float = 4.0
    psi_threshold: float = 0.2
    max_share_drifted: float = 0.15
    relative_vol_z_threshold: float = Field(
        default=3.5, gt=0, description="the ticker's volatility relative to the benchmark's (log ratio of their mean "
        "absolute daily returns over the window, each day capped at 8 times its reference median) drifts beyond "
        "this many deviations of same-length reference windows: chosen on 40 seeds of the quick synthetic market, "
        "where about 2-3 % of healthy tickers cross it per 126 sessions and a tripled idiosyncratic volatility "
        "crosses it within 60 sessions in about 70 % of cases; bench/drift.py measures the whole decision on "
        "other seeds")
    retrain_hold_sessions: int = Field(
        default=63, ge=0, description="a drift of a ticker the retraining sensor has retrained before waits "
        "until its current window holds this many sessions after the champion's training window (the drift check "
        "still shows it meanwhile): a champion retrained into a new regime holds only weeks of it among years of "
        "the old, so its first judged window drifts again; without a hold a drifted ticker was retrained every 10 "
        "to 20 sessions. At most window_days. A first drift and a lost live skill are never held")


class PPOSettings(_Model):
    """PPO hyperparameters (defaults: the seed notebook's), vectorization, checkpointing, and the
    environment's episode length and reward risk aversion."""

    learning_rate: float = 3e-4
    n_steps: int = 2048
    batch_size: int = 64
    n_epochs: int = 10
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.01
    total_timesteps: int = 500_000
    net_arch: list[int] = [64, 64]
    n_envs: int = 4
    seed: int = 42
    checkpoint_every: int = 50_000
    episode_length: int = 256
    risk_aversion: float = Field(default=5.0, description="aversion to the variance of the excess return over "
                                 "the baseline (tracking error) in the reward")
    reward_scale: float = 1000.0
    tilt: float = Field(default=1.0, gt=0, description="an action of +-1 moves a weight by this multiple of its "
                        "baseline weight")
    trade_rate: float = Field(default=0.1, gt=0, le=1, description="share of the way from the current weights "
                              "to the action's aim traded each day")
    skill_window: int = Field(default=60, ge=4, description="realised forecasts behind the observation's skill")
    torch_threads: int = 1

    @model_validator(mode="after")
    def _aligned(self) -> "PPOSettings":
        if self.n_steps % self.episode_length:
            raise ValueError(f"n_steps ({self.n_steps}) must be a multiple of episode_length "
                             f"({self.episode_length}) so that rollouts end on episode boundaries")
        if (self.n_steps * self.n_envs) % self.batch_size:
            raise ValueError(f"n_steps * n_envs ({self.n_steps * self.n_envs}) must be a multiple of batch_size "
                             f"({self.batch_size})")
        return self

    @property
    def rollout(self) -> int:
        return self.n_steps * self.n_envs

    @property
    def checkpoint_rollouts(self) -> int:
        """Checkpoints fall on rollout boundaries: every this many rollouts."""
        return max(1, math.ceil(self.checkpoint_every / self.rollout))


class PortfolioSettings(_Model):
    max_weight: float = 0.20
    max_invested: float = 0.80
    vol_window: int = Field(default=60, description="trailing days of the inverse-volatility baseline")
    top_k: int = Field(default=0, description="names held by momentum and XGBoost top-k (0: a third)")
    portfolio_value: float = 1_000_000.0
    hold_band: float = 0.005
    baseline: Literal["equal_weight", "inverse_volatility"] = Field(
        default="equal_weight", description="the allocation the policy tilts around, and advises when the policy "
        "fails policy_earns_its_place")
    validation_fraction: float = Field(default=0.5, gt=0, lt=1, description="last share of the policy's "
                                       "pre-test days held out to judge it (policy_earns_its_place) and to choose "
                                       "the advisor (strategy_selection)")
    policy_folds: int = Field(default=3, ge=1, description="consecutive blocks the held-out days are cut into: "
                              "the policy walks forward over them, each block judged by a policy trained only on "
                              "the days before it (less the horizon); the last block's policy is the one served")
    holdings_file: Optional[str] = Field(default=None, description="a JSON file of the weights held now "
                                         "({ticker: weight}, the rest in cash), written by the book that trades "
                                         "the recommendations: they start from it when the run gives no "
                                         "current_weights (relative to the settings file)")
    ppo: PPOSettings = PPOSettings()


class MemorySettings(_Model):
    """Market memory: the state embedding, the analog forecast and where the index lives (local
    mode under paths.qdrant unless qdrant_url, from QDRANT_URL, names a server)."""

    dimensions: int = Field(default=16, ge=2, description="PCA components of a market state")
    first_fit_months: int = Field(default=24, ge=1, description="the first fit of the state map (clip thresholds, "
                                  "regimes, scaler, PCA) ends on the last session before this many months after "
                                  "the start; a question on or before that session is refused")
    refit_months: int = Field(default=12, ge=0, description="then the state map is refitted on the expanding "
                              "window every this many months while before dates.train_end, where the last fit "
                              "ends; a question about a day is answered by the newest fit that ends before it "
                              "(0: one fit, at train_end)")
    k: int = Field(default=20, ge=1, description="analogs behind a forecast")
    collection: str = "market_states"
    qdrant_url: Optional[str] = None
    qdrant_api_key_env: Optional[str] = Field(default=None, description="name of the environment variable holding "
                                              "the server's API key (read by the resource, never stored here)")


class LineageSettings(_Model):
    """The lineage document is always built; OpenLineage events are an option."""

    openlineage: bool = Field(default=False, description="add dagster-openlineage's sensor, which sends OpenLineage "
                              "run, job and dataset events to $OPENLINEAGE_URL or the transport openlineage.yml names")


class TickSourceSettings(_Model):
    """The seeded synthetic tick market (the embedded default): Hawkes-like self-exciting
    arrivals, a persistent stochastic volatility that rises with the arrival intensity, a
    spread that widens with volatility, and a drift knob."""

    seed: int = 11
    start: str = Field(default="2025-11-17", description="the first day (UTC) of the synthetic ticks")
    days: int = Field(default=5, ge=1, description="days of ticks the first build writes")
    ticks_per_day: int = Field(default=50_000, ge=100, description="mean messages per day")
    base_price: float = 94_655.99
    branching_ratio: float = Field(default=0.7, ge=0.0, lt=1.0, description="expected messages each message "
                                   "triggers (Hawkes self-excitation; 0: Poisson arrivals)")
    excitation_seconds: float = Field(default=20.0, gt=0, description="mean delay of a triggered message")
    tick_vol_bps: float = Field(default=0.8, gt=0, description="typical midprice move per message (bps)")
    vol_of_vol: float = Field(default=0.6, ge=0.0, description="spread of the persistent log-volatility "
                              "(0: constant volatility)")
    vol_half_life_seconds: float = Field(default=600.0, gt=0)
    intensity_coupling: float = Field(default=0.5, ge=0.0, description="per-message volatility grows as "
                                      "(intensity / mean intensity) ** coupling (0: none)")
    drift_from_day: Optional[int] = Field(default=None, ge=0, description="from this day (0-based) on, the "
                                          "market shifts: volatility and spread times drift_multiplier")
    drift_multiplier: float = Field(default=2.0, gt=0)


class TickModelSettings(_Model):
    """Training of the tick models: the seed's logistic regression and XGBoost."""

    logistic_max_iter: int = 1000
    max_train_rows: int = Field(default=1_000_000, ge=1000, description="training rows used at most (an even "
                                "stride through the train split beyond it)")
    xgb_learning_rate: float = 0.1
    xgb_max_depth: int = 3
    xgb_rounds: int = 300
    xgb_early_stopping_rounds: int = 30
    xgb_min_child_weight: float = 50.0
    nthread: int = 2
    seed: int = 42


class TickSettings(_Model):
    """The tick-level volatility-spike pipeline (group `ticks`): one product's exchange ticker
    messages, rolling features over ticks and seconds, the honest forward label, models, gates
    and drift."""

    product: str = "BTC-USD"
    source_kind: Literal["synthetic", "files"] = Field(
        default="synthetic", description="'synthetic': the first build writes the synthetic market's days into an "
        "empty tick archive; 'files': only NDJSON files of your own, in the tick archive or landed")
    source: TickSourceSettings = TickSourceSettings()
    window_ticks: int = Field(default=60, ge=2, description="feature window in messages")
    short_window_ticks: int = Field(default=10, ge=2, description="the short window of the volatility ratio")
    window_seconds: float = Field(default=60.0, gt=0, description="feature window in seconds")
    horizon_ticks: int = Field(default=60, ge=2, description="the label's forward window in messages")
    quantile: float = Field(default=0.95, gt=0, lt=1, description="tau: this quantile of the training part's "
                            "forward volatility")
    label: Literal["forward", "contemporaneous"] = Field(
        default="forward", description="'forward': volatility over the next horizon_ticks messages (honest); "
        "'contemporaneous': the seed's label on the current window (a counter-example its check rejects)")
    train_share: float = Field(default=0.6, gt=0, lt=1)
    validation_share: float = Field(default=0.2, gt=0, lt=1)
    models: TickModelSettings = TickModelSettings()
    baseline_margin: float = Field(default=0.02, ge=0, description="PR-AUC a champion must add to the baseline's")
    level: float = Field(default=0.9, gt=0, lt=1, description="level of the block-bootstrap intervals")
    bootstrap_reps: int = Field(default=200, ge=20)
    bootstrap_block_ticks: int = Field(default=600, ge=1, description="messages per bootstrap block")
    bootstrap_max_rows: int = Field(default=200_000, ge=1000, description="rows per split the intervals resample at "
                                    "most (every k-th beyond it; the metrics themselves use every row)")
    dependence_cuts: int = Field(default=20, ge=1, description="rows the label-dependence check perturbs")
    drift_window_ticks: int = Field(default=10_000, ge=100, description="the recent messages drift compares")
    drift_reference_ticks: int = Field(default=200_000, ge=1000, description="the last training messages drift "
                                       "compares them with")
    drift_z_threshold: float = 4.0

    @model_validator(mode="after")
    def _consistent(self) -> "TickSettings":
        if self.train_share + self.validation_share >= 1:
            raise ValueError("ticks: train_share + validation_share must leave a test part (< 1)")
        if self.short_window_ticks >= self.window_ticks:
            raise ValueError("ticks: short_window_ticks must be shorter than window_ticks")
        if self.drift_reference_ticks <= self.drift_window_ticks:
            raise ValueError("ticks: drift_reference_ticks must exceed drift_window_ticks (the window-mean test "
                             "compares the recent window with windows of the same length inside the reference)")
        return self


class Paths(_Model):
    """Local state and where it goes; every field has an embedded default under `home`."""

    home: str = str(REPO_ROOT / ".odyssey")
    storage_url: Optional[str] = None
    landing: Optional[str] = None
    tick_landing: Optional[str] = None
    dagster_home: Optional[str] = None
    mlflow_tracking_uri: Optional[str] = Field(default=None, description="the MLflow tracking/registry URI; one "
                                               "with credentials only from MLFLOW_TRACKING_URI, shown here masked")
    mlflow_tracking_uri_env: Optional[str] = Field(default=None, description="name of the environment variable "
                                                   "holding the MLflow URI when it carries credentials (read by the "
                                                   "MLflow resource, never stored here)")
    mlflow_artifacts: Optional[str] = None
    alerts_log: Optional[str] = None
    qdrant: Optional[str] = None
    alert_webhook_env: Optional[str] = Field(default=None, description="name of the environment variable holding "
                                             "the alert webhook URL (read by the settings resource, never stored "
                                             "here: a webhook URL is a credential)")
    signing_key_env: Optional[str] = Field(default=None, description="name of the environment variable holding "
                                           "the HMAC key (read by the signer, never stored here)")
    keep_versions: int = Field(default=5, ge=1, description="stored versions kept per asset (and partition) under "
                               "<storage>/tables/.versions/, besides the newest that passed its blocking checks, "
                               "which is always kept")

    @model_validator(mode="before")
    @classmethod
    def _no_webhook(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("alert_webhook"):
            raise ValueError(f"paths.alert_webhook: a webhook URL is a credential; set it in the environment "
                             f"variable {ALERT_WEBHOOK_ENV} instead (the settings and the UI show only its name)")
        return data

    @model_validator(mode="after")
    def _defaults(self) -> "Paths":
        home = Path(self.home)
        derived = {
            "storage_url": str(home / "storage"),
            "landing": str(home / "landing"),
            "tick_landing": str(home / "tick_landing"),
            "dagster_home": str(home / "dagster_home"),
            "mlflow_tracking_uri": f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
            "mlflow_artifacts": (home / "mlflow" / "artifacts").as_uri(),
            "alerts_log": str(home / "alerts.log"),
            "qdrant": str(home / "qdrant"),
        }
        for name, value in derived.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        return self

    @property
    def landing_dirs(self) -> tuple[Path, Path, Path]:
        """The landing folder, and its archive and quarantine beside it."""
        return _with_archive(Path(self.landing))

    @property
    def tick_landing_dirs(self) -> tuple[Path, Path, Path]:
        """The tick landing folder (NDJSON files of ticker messages), its archive and quarantine."""
        return _with_archive(Path(self.tick_landing))


def _with_archive(landing: Path) -> tuple[Path, Path, Path]:
    return landing, landing.with_name(landing.name + "_archive"), landing.with_name(landing.name + "_quarantine")


class DaemonSettings(_Model):
    """How soon dagster-daemon reacts: the least seconds between two ticks of each of Odyssey's
    sensors (a landing waits at most `landing_seconds` for its ingest run to be requested)."""

    landing_seconds: int = Field(default=2, ge=1, description="the landing folder's sensor (new sessions)")
    follow_seconds: int = Field(default=15, ge=1, description="sensors that follow finished runs: live "
                                "monitoring after new forecasts, retraining after failed checks, the market "
                                "memory after new states, the lineage document after any run")


EXPECTATION_KINDS = ("all_ingested", "rejected_from_event", "bad_print_repaired", "live_skill_alarm",
                     "no_live_skill_alarm", "demoted", "drift", "no_drift", "retrained", "only_retrained",
                     "none_deployed", "retrained_at_most")
WITHIN_KINDS = ("live_skill_alarm", "demoted", "drift", "retrained")  # found within N sessions of the event
BEFORE_EVENT_KINDS = ("no_live_skill_alarm", "no_drift", "only_retrained")  # absent, optionally before the event


class Expectation(_Model):
    """What a replay must show (jobs/replay.py judges it; odyssey/replay.py says how each kind is read).

    `tickers` are the tickers it is about (None: every ticker); `within` the sessions after the
    event (its first session, `event`) by which it must have happened; `before_event` limits a
    "no ..." expectation to the sessions before the event; `count` is what `retrained_at_most`
    allows each ticker over the whole replay."""

    kind: Literal[EXPECTATION_KINDS]
    tickers: Optional[tuple[str, ...]] = None
    within: Optional[int] = Field(default=None, ge=0)
    before_event: bool = False
    count: Optional[int] = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bounds_where_they_count(self) -> "Expectation":
        if (self.kind == "retrained_at_most") != (self.count is not None):
            raise ValueError("replay.expect: `count` goes with kind 'retrained_at_most', and only there")
        if self.within is not None and self.kind not in WITHIN_KINDS:
            raise ValueError(f"replay.expect: `within` goes with kinds {', '.join(WITHIN_KINDS)}; "
                             f"{self.kind!r} would ignore it")
        if self.before_event and self.kind not in BEFORE_EVENT_KINDS:
            raise ValueError(f"replay.expect: `before_event` goes with kinds {', '.join(BEFORE_EVENT_KINDS)}; "
                             f"{self.kind!r} would ignore it")
        return self


class ReplaySettings(_Model):
    """A replay's length and, for a scenario, its planted event and what must follow
    (`python -m jobs.replay`)."""

    sessions: int = Field(default=120, ge=1, description="sessions walked forward after dates.end")
    event: Optional[str] = Field(default=None, description="the scenario's event: the first session it touches "
                                 "(the date its synthetic knob names)")
    description: str = ""
    expect: tuple[Expectation, ...] = ()


class Settings(_Model):
    name: str = "custom"
    universe: Universe
    dates: Dates
    source: SourceSettings = SourceSettings()
    costs: Costs = Costs()
    cleaning: CleaningSettings = CleaningSettings()
    features: FeatureSettings = FeatureSettings()
    forecast: ForecastSettings = ForecastSettings()
    gates: GateSettings = GateSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    portfolio: PortfolioSettings = PortfolioSettings()
    memory: MemorySettings = MemorySettings()
    lineage: LineageSettings = LineageSettings()
    ticks: TickSettings = TickSettings()
    daemon: DaemonSettings = DaemonSettings()
    replay: ReplaySettings = ReplaySettings()
    paths: Paths = Paths()

    @model_validator(mode="after")
    def _hold_within_the_window(self) -> "Settings":
        """Judged on the settings, not on a run's override of the drift window (the hold is the
        retraining sensor's, and a run that looks at a shorter window changes nothing it reads)."""
        monitoring = self.monitoring
        if monitoring.retrain_hold_sessions > monitoring.window_days:
            raise ValueError(f"monitoring.retrain_hold_sessions ({monitoring.retrain_hold_sessions}) exceeds "
                             f"window_days ({monitoring.window_days}): the current window never holds more, so a "
                             "held drift would wait for ever")
        return self

    @model_validator(mode="after")
    def _source(self) -> "Settings":
        if self.source.kind == "csv" and not self.source.csv_path:
            raise ValueError("source.kind = 'csv' needs source.csv_path (or ODYSSEY_CSV_PATH)")
        return self

    @model_validator(mode="after")
    def _synthetic_tickers(self) -> "Settings":
        """The synthetic knobs name tickers of the universe: one that does not would plant nothing."""
        synthetic, universe = self.source.synthetic, set(self.universe.tickers)
        named = {"signal_tickers": synthetic.signal_tickers or (), "drift_tickers": synthetic.drift_tickers or (),
                 "bad_prints": [item.split()[0] for item in synthetic.bad_prints],
                 "unlisted_splits": [item.split()[0] for item in synthetic.unlisted_splits]}
        unknown = {field: sorted(set(tickers) - universe) for field, tickers in named.items()
                   if set(tickers) - universe}
        if self.source.kind == "synthetic" and unknown:
            raise ValueError("source.synthetic names tickers outside universe.tickers: " + "; ".join(
                f"{field} {tickers}" for field, tickers in unknown.items()))
        return self

    @model_validator(mode="after")
    def _no_credentials(self) -> "Settings":
        """Settings are shown in the UI, passed between processes and kept in version control: no
        value may carry a credential. An MLflow URI with one comes from MLFLOW_TRACKING_URI, read
        by the MLflow resource; the settings show it masked."""
        leaks = [name for name, value in _strings(self.model_dump()) if has_credentials(value)]
        if leaks:
            raise ValueError(f"{', '.join(leaks)} carries a credential (user:password@ or a token, key or signature in a URL): set it through the "
                             "environment variable of that field instead (MLFLOW_TRACKING_URI for the MLflow URI; "
                             "for storage, Qdrant and artifact stores their own credential variables such as "
                             "AWS_ACCESS_KEY_ID or QDRANT_API_KEY); settings are shown in the UI")
        uri = self.paths.mlflow_tracking_uri
        masked = url_userinfo(uri) == REDACTED or any(v == REDACTED for _, v in _secret_parameters(uri))
        if masked and not self.paths.mlflow_tracking_uri_env:
            raise ValueError("paths.mlflow_tracking_uri is masked (***@) but no environment variable holds the real "
                             "URI: set MLFLOW_TRACKING_URI")
        return self

    def profile(self, today: pd.Timestamp | None = None) -> Profile:
        """Resolve "today" and proportions into session dates (the exchange's calendar)."""
        u, d = self.universe, self.dates
        end = (pd.Timestamp(today) if today is not None else exchange_today(u.exchange)).normalize() \
            if d.end.lower() == "today" else pd.Timestamp(d.end)
        days = exchange_sessions(d.start, end, u.exchange)
        if len(days) < 2:
            raise ValueError(f"dates: no trading sessions of {u.exchange} between {d.start} and {end.date()}")

        def boundary(value: Boundary) -> str:
            if isinstance(value, float):
                return str(days[max(0, min(len(days) - 1, int(round(value * len(days))) - 1))].date())
            return str(pd.Timestamp(value).date())

        train_end, validation_end = boundary(d.train_end), boundary(d.validation_end)
        if not pd.Timestamp(days[0]) <= pd.Timestamp(train_end) < pd.Timestamp(validation_end):
            raise ValueError(f"dates: need start <= train_end < validation_end, got {days[0].date()}, {train_end}, "
                             f"{validation_end}")
        return Profile(name=self.name, tickers=u.tickers, benchmark=u.benchmark, alt_series=u.alt_series,
                       bar_fields=u.bar_fields,
                       exchange=u.exchange, start=str(days[0].date()), end=str(days[-1].date()),
                       train_end=train_end, validation_end=validation_end)

    def updated(self, changes: Mapping[str, Any]) -> "Settings":
        """A copy with nested changes merged in (validated), e.g. {"source": {"kind": "csv"}}."""
        return Settings.model_validate(_merge(self.model_dump(exclude_unset=True), changes))


# --- loading --------------------------------------------------------------------------------
# env variable -> (dotted settings field, parser)
ENV_OVERRIDES: dict[str, tuple[str, Any]] = {
    "ODYSSEY_SOURCE": ("source.kind", str),
    "ODYSSEY_CSV_PATH": ("source.csv_path", str),
    "ODYSSEY_SEED": ("source.synthetic.seed", int),
    "ODYSSEY_SIGNAL_STRENGTH": ("source.synthetic.signal_strength", float),
    "ODYSSEY_DRIFT_DATE": ("source.synthetic.drift_date", str),
    "ODYSSEY_DRIFT_TICKERS": ("source.synthetic.drift_tickers", lambda v: tuple(t.strip() for t in v.split(","))),
    "ODYSSEY_END": ("dates.end", str),
    "ODYSSEY_HOME": ("paths.home", str),
    "ODYSSEY_STORAGE_URL": ("paths.storage_url", str),
    "ODYSSEY_LANDING": ("paths.landing", str),
    "ODYSSEY_TICK_LANDING": ("paths.tick_landing", str),
    "DAGSTER_HOME": ("paths.dagster_home", str),
    "MLFLOW_TRACKING_URI": ("paths.mlflow_tracking_uri", str),
    "ODYSSEY_MLFLOW_ARTIFACTS": ("paths.mlflow_artifacts", str),
    "ODYSSEY_ALERTS_LOG": ("paths.alerts_log", str),
    # a credential: the settings hold the variable's name, the settings resource reads its value
    "ODYSSEY_ALERT_WEBHOOK": ("paths.alert_webhook_env", lambda _: ALERT_WEBHOOK_ENV),
    "QDRANT_URL": ("memory.qdrant_url", str),
}
SIGNING_KEY_ENV = "ODYSSEY_SIGNING_KEY"
QDRANT_API_KEY_ENV = "QDRANT_API_KEY"
ALERT_WEBHOOK_ENV = "ODYSSEY_ALERT_WEBHOOK"
MLFLOW_URI_ENV = "MLFLOW_TRACKING_URI"
PATH_FIELDS = {("source", "csv_path"), ("portfolio", "holdings_file"), *(("paths", f) for f in ("home", "storage_url", "landing", "tick_landing",
                                                                 "dagster_home",
                                                                 "alerts_log", "qdrant"))}


def _merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict:
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
    return out


def _set(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def _absolute_paths(tree: dict, folder: Path) -> dict:
    """Relative paths in a settings file are relative to that file's folder."""
    for section, name in PATH_FIELDS:
        value = tree.get(section, {}).get(name)
        if isinstance(value, str) and value and "://" not in value and not Path(value).is_absolute():
            tree[section][name] = str((folder / value).resolve())
    return tree


def read_settings_file(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """The merged tree of a settings file and the files it extends."""
    path = Path(path).resolve()
    if path in _seen:
        raise ValueError(f"{path}: 'extends' loops through {[str(p) for p in _seen]}")
    if not path.is_file():
        raise FileNotFoundError(f"settings file {path} does not exist")
    with path.open("rb") as handle:
        try:
            tree = tomllib.load(handle)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{path}: not valid TOML ({error})") from None
    tree = _absolute_paths(tree, path.parent)
    parent = tree.pop("extends", None)
    if parent is None:
        return tree
    return _merge(read_settings_file(path.parent / parent, (*_seen, path)), tree)


def preset_path(name: str) -> Path:
    path = PRESETS_DIR / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))
        raise ValueError(f"unknown settings preset {name!r}; presets: {known}")
    return path


def child_environment(changes: Mapping[str, str], drop: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment for a process this one starts (a build, dagster-daemon): this process's
    own, without the variables `drop` names, with `changes`."""
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **changes}


def settings_file(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The settings file `load_settings` reads: `path`, else $ODYSSEY_SETTINGS, else odyssey.toml."""
    env = os.environ if environ is None else environ
    return Path(path or env.get("ODYSSEY_SETTINGS") or DEFAULT_FILE)


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """Settings from `path` (default: $ODYSSEY_SETTINGS, else odyssey.toml), then the environment's
    overrides (`ENV_OVERRIDES`), then `overrides`. The only reader of the environment."""
    env = os.environ if environ is None else environ
    chosen = settings_file(path, env)
    tree = read_settings_file(chosen)
    for variable, (dotted, parse) in ENV_OVERRIDES.items():
        value = env.get(variable, "").strip()
        if value:
            _set(tree, dotted, parse(value))
    uri = env.get(MLFLOW_URI_ENV, "").strip()
    if has_credentials(uri):  # the resource reads the URI from the variable; the settings show it masked
        _set(tree, "paths.mlflow_tracking_uri", redact_url(uri))
        _set(tree, "paths.mlflow_tracking_uri_env", MLFLOW_URI_ENV)
    if env.get(SIGNING_KEY_ENV):
        _set(tree, "paths.signing_key_env", SIGNING_KEY_ENV)
    if env.get(QDRANT_API_KEY_ENV):
        _set(tree, "memory.qdrant_api_key_env", QDRANT_API_KEY_ENV)
    try:
        return Settings.model_validate(_merge(tree, overrides or {}))
    except ValueError as error:
        raise ValueError(f"settings from {chosen}: {error}") from None
