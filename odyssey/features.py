"""The feature registry (94 features, version v2) and the vectorised feature builder.

Every feature is computed from data at or before its date (see tests/test_causality.py).
Price-level quantities (moving averages, bands, VWAP, MACD, momentum, ATR, OBV) are stored in
ratio form relative to the close or to traded volume, marked ``_rel``, so every feature is
stationary and comparable across tickers and splits. Features marked ``fitted`` use parameters
fitted on a training window (return clip thresholds, the regime K-means; see odyssey/fitting.py):
the data layer fits them on the train split, every walk-forward fold on its own training rows,
and every model carries the parameters it was trained with. Features marked with ``needs`` use
alternative series and are present only when the universe has those series.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from odyssey import indicators as ind

REGISTRY_VERSION = "v2"
CATEGORY_COUNTS = {"price": 21, "momentum": 18, "volatility": 12, "volume": 9, "returns": 15,
                   "cross_asset": 8, "regime": 11}
ANNUAL = np.sqrt(252.0)


@dataclass(frozen=True)
class Feature:
    name: str
    category: str
    formula: str
    lookback: int  # leading rows that are NaN for a ticker with a full, clean history
    fitted: bool = False  # uses fitted parameters (clip thresholds, regime model)
    market_wide: bool = False  # the same value for every ticker on a date
    needs: tuple[str, ...] = ()  # alternative series it is computed from


@dataclass
class Context:
    """Dates x tickers inputs shared by the feature functions, with a cache for intermediates."""

    open: pd.DataFrame
    high: pd.DataFrame
    low: pd.DataFrame
    close: pd.DataFrame
    volume: pd.DataFrame
    ret: pd.DataFrame  # clipped daily log returns
    alt: pd.DataFrame  # dates x the alternative series present (any of VIX, DXY, Gold, Yield_10Y)
    benchmark: str
    regime: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)

    def memo(self, key: str, fn: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        if key not in self.cache:
            self.cache[key] = fn()
        return self.cache[key]

    def sma(self, n: int) -> pd.DataFrame:
        return self.memo(f"sma{n}", lambda: ind.sma(self.close, n))

    def ema(self, n: int) -> pd.DataFrame:
        return self.memo(f"ema{n}", lambda: ind.ema(self.close, n))

    def hh(self, n: int) -> pd.DataFrame:
        return self.memo(f"hh{n}", lambda: self.high.rolling(n, min_periods=n).max())

    def ll(self, n: int) -> pd.DataFrame:
        return self.memo(f"ll{n}", lambda: self.low.rolling(n, min_periods=n).min())

    def std20(self) -> pd.DataFrame:
        return self.memo("std20", lambda: ind.rstd(self.close, 20))

    def vwap(self, n: int) -> pd.DataFrame:
        def compute() -> pd.DataFrame:
            typical = (self.high + self.low + self.close) / 3.0
            return (typical * self.volume).rolling(n, min_periods=n).sum() / self.volume.rolling(n, min_periods=n).sum()
        return self.memo(f"vwap{n}", compute)

    def macd(self) -> pd.DataFrame:
        return self.memo("macd", lambda: self.ema(12) - self.ema(26))

    def macd_signal(self) -> pd.DataFrame:
        return self.memo("macd_signal", lambda: ind.ema(self.macd(), 9))

    def obv(self) -> pd.DataFrame:
        def compute() -> pd.DataFrame:
            direction = np.sign(self.close.diff())
            return (direction * self.volume).fillna(0.0).cumsum().where(self.close.notna())
        return self.memo("obv", compute)

    def vol_sum(self, n: int) -> pd.DataFrame:
        return self.memo(f"volsum{n}", lambda: self.volume.rolling(n, min_periods=n).sum())

    def rsum(self, n: int) -> pd.DataFrame:
        return self.memo(f"rsum{n}", lambda: self.ret.rolling(n, min_periods=n).sum())

    def rstd(self, n: int) -> pd.DataFrame:
        return self.memo(f"rstd{n}", lambda: self.ret.rolling(n, min_periods=n).std())

    def spy(self) -> pd.Series:
        return self.ret[self.benchmark]

    def stoch_k(self) -> pd.DataFrame:
        return self.memo("stoch_k", lambda: 100.0 * ind.safe_div(self.close - self.ll(14), self.hh(14) - self.ll(14), 0.5))


def _rel(level: pd.DataFrame, close: pd.DataFrame) -> pd.DataFrame:
    return level / close - 1.0


def _roc(c: Context, n: int) -> pd.DataFrame:
    return c.close / c.close.shift(n) - 1.0


def _parkinson(c: Context) -> pd.DataFrame:
    hl = np.log(c.high / c.low) ** 2
    return np.sqrt(hl.rolling(20, min_periods=20).mean() / (4.0 * np.log(2.0))) * ANNUAL


def _garman_klass(c: Context) -> pd.DataFrame:
    hl = np.log(c.high / c.low) ** 2
    co = np.log(c.close / c.open) ** 2
    value = (0.5 * hl - (2.0 * np.log(2.0) - 1.0) * co).rolling(20, min_periods=20).mean()
    return np.sqrt(value.clip(lower=0.0)) * ANNUAL


def _rogers_satchell(c: Context) -> pd.DataFrame:
    value = (np.log(c.high / c.close) * np.log(c.high / c.open)
             + np.log(c.low / c.close) * np.log(c.low / c.open))
    return np.sqrt(value.rolling(20, min_periods=20).mean().clip(lower=0.0)) * ANNUAL


def _amihud(c: Context) -> pd.DataFrame:
    """Zero-volume days (a halt, a missing volume) are left out of the 20-day mean rather than
    blanking it, so one such day does not empty the next 20 values."""
    dollar = (c.close * c.volume).replace(0.0, np.nan)
    illiq = (c.ret.abs() / dollar).rolling(20, min_periods=1).mean()
    return np.log(illiq * 1e9 + 1e-12).where(c.ret.notna().cumsum() >= 20)


def _idio_vol(c: Context) -> pd.DataFrame:
    beta = ind.rolling_beta(c.ret, c.spy(), 60)
    var_x = c.ret.rolling(60, min_periods=60).var()
    var_m = c.spy().rolling(60, min_periods=60).var()
    resid = (var_x - beta.pow(2).mul(var_m, axis=0)).clip(lower=0.0)
    return np.sqrt(resid) * ANNUAL


def _breadth(c: Context) -> pd.Series:
    sma20 = c.sma(20)
    above = (c.close > sma20).astype(float).where(sma20.notna())
    return above.mean(axis=1)


def _regime_frame(c: Context, key: str) -> pd.Series:
    if not c.regime:
        raise ValueError("regime features need a fitted regime model (odyssey/fitting.py)")
    return c.regime[key]


Compute = Callable[[Context], "pd.DataFrame | pd.Series"]
_DEFS: list[tuple[Feature, Compute]] = []


# The bar fields beyond the close each feature reads (a closes-only market leaves these out);
# tests/test_features.py holds this table to what the functions actually read.
_RANGE, _VOLUME = ("high", "low"), ("volume",)
_BAR_NEEDS: dict[str, tuple[str, ...]] = {
    **{name: _RANGE for name in ("Donchian_position_20", "Williams_%R", "Stochastic_K", "Stochastic_D", "CCI_20",
                                 "ATR_14_rel", "ATR_7_rel", "ATR_21_rel", "Parkinson_Vol")},
    **{name: ("open", *_RANGE) for name in ("Garman_Klass_Vol", "Rogers_Satchell_Vol")},
    **{name: _VOLUME for name in ("OBV_rel", "OBV_SMA_20_rel", "Volume_SMA_20_ratio", "Volume_trend",
                                  "Volume_zscore_60", "Dollar_volume_ratio_20", "Volume_return_corr_20",
                                  "Amihud_illiquidity_20")},
    **{name: _RANGE + _VOLUME for name in ("VWAP_rel", "Price_VWAP_ratio", "VWAP_deviation_5")},
}


def _f(name: str, category: str, formula: str, lookback: int, fn: Compute, *, fitted: bool = False,
       market_wide: bool = False, needs: tuple[str, ...] = ()) -> None:
    needs = (*needs, *_BAR_NEEDS.get(name, ()))
    _DEFS.append((Feature(name, category, formula, lookback, fitted, market_wide, needs), fn))


# --- price (21) -----------------------------------------------------------------------------
for _n in (5, 10, 20, 50, 200):
    _f(f"SMA_{_n}_rel", "price", f"SMA(close,{_n}) / close - 1", _n - 1, lambda c, n=_n: _rel(c.sma(n), c.close))
for _n in (12, 26):
    _f(f"EMA_{_n}_rel", "price", f"EMA(close,span={_n}) / close - 1", _n - 1, lambda c, n=_n: _rel(c.ema(n), c.close))
for _n in (5, 20, 50):
    _f(f"Price_SMA_{_n}_ratio", "price", f"close / SMA(close,{_n}) - 1", _n - 1, lambda c, n=_n: c.close / c.sma(n) - 1.0)
_f("Upper_BB_rel", "price", "(SMA(close,20) + 2 std(close,20)) / close - 1", 19,
   lambda c: _rel(c.sma(20) + 2.0 * c.std20(), c.close))
_f("Middle_BB_rel", "price", "SMA(close,20) / close - 1 (Bollinger middle band; equals SMA_20_rel, kept under the seed's name)", 19, lambda c: _rel(c.sma(20), c.close))
_f("Lower_BB_rel", "price", "(SMA(close,20) - 2 std(close,20)) / close - 1", 19,
   lambda c: _rel(c.sma(20) - 2.0 * c.std20(), c.close))
_f("BB_width", "price", "4 std(close,20) / SMA(close,20)", 19, lambda c: 4.0 * c.std20() / c.sma(20))
_f("VWAP_rel", "price", "VWAP20 / close - 1; VWAP20 = sum(typical*volume,20)/sum(volume,20)", 19,
   lambda c: _rel(c.vwap(20), c.close))
_f("Price_VWAP_ratio", "price", "close / VWAP20 - 1", 19, lambda c: c.close / c.vwap(20) - 1.0)
_f("Price_SMA_10_ratio", "price", "close / SMA(close,10) - 1", 9, lambda c: c.close / c.sma(10) - 1.0)
_f("Price_SMA_200_ratio", "price", "close / SMA(close,200) - 1", 199, lambda c: c.close / c.sma(200) - 1.0)
_f("BB_percent_b", "price", "(close - lower band) / (upper - lower)", 19,
   lambda c: ind.safe_div(c.close - (c.sma(20) - 2.0 * c.std20()), 4.0 * c.std20(), 0.5))
_f("EMA_12_26_ratio", "price", "EMA12 / EMA26 - 1", 25, lambda c: c.ema(12) / c.ema(26) - 1.0)
_f("Donchian_position_20", "price", "(close - min(low,20)) / (max(high,20) - min(low,20))", 19,
   lambda c: ind.safe_div(c.close - c.ll(20), c.hh(20) - c.ll(20), 0.5))

# --- momentum (18) --------------------------------------------------------------------------
for _n in (14, 7, 21):
    _f(f"RSI_{_n}", "momentum", f"RSI with Wilder smoothing, {_n} days (100 after only gains, 50 when flat)", _n, lambda c, n=_n: ind.rsi(c.close, n))
_f("MACD_rel", "momentum", "(EMA12 - EMA26) / close", 25, lambda c: c.macd() / c.close)
_f("MACD_signal_rel", "momentum", "EMA(MACD, 9) / close", 33, lambda c: c.macd_signal() / c.close)
_f("MACD_histogram_rel", "momentum", "(MACD - signal) / close", 33, lambda c: (c.macd() - c.macd_signal()) / c.close)
for _n in (5, 10, 20):
    _f(f"ROC_{_n}", "momentum", f"close / close[t-{_n}] - 1", _n, lambda c, n=_n: _roc(c, n))
for _n in (5, 10, 20):
    _f(f"MOM_{_n}_rel", "momentum", f"(close - close[t-{_n}]) / close", _n,
       lambda c, n=_n: (c.close - c.close.shift(n)) / c.close)
_f("Williams_%R", "momentum", "-100 (max(high,14) - close) / (max(high,14) - min(low,14))", 13,
   lambda c: -100.0 * ind.safe_div(c.hh(14) - c.close, c.hh(14) - c.ll(14), 0.5))
_f("Stochastic_K", "momentum", "100 (close - min(low,14)) / (max(high,14) - min(low,14))", 13, lambda c: c.stoch_k())
_f("Stochastic_D", "momentum", "SMA(Stochastic_K, 3)", 15, lambda c: ind.sma(c.stoch_k(), 3))
_f("CCI_20", "momentum", "(TP - SMA(TP,20)) / (0.015 mean-abs-dev(TP,20)), TP = (h+l+c)/3", 19,
   lambda c: ind.safe_div((c.high + c.low + c.close) / 3.0 - ind.sma((c.high + c.low + c.close) / 3.0, 20),
                          0.015 * ind.mean_abs_dev((c.high + c.low + c.close) / 3.0, 20), 0.0))
_f("ROC_60", "momentum", "close / close[t-60] - 1", 60, lambda c: _roc(c, 60))
_f("Momentum_12_1", "momentum", "close[t-21] / close[t-252] - 1 (12-1 month momentum)", 252,
   lambda c: c.close.shift(21) / c.close.shift(252) - 1.0)

# --- volatility (12) ------------------------------------------------------------------------
for _n in (14, 7, 21):
    _f(f"ATR_{_n}_rel", "volatility", f"Wilder ATR({_n}) / close", _n,
       lambda c, n=_n: ind.atr(c.high, c.low, c.close, n) / c.close)
_f("Realized_Vol_20", "volatility", "std(r,20) sqrt(252), r = clipped log return", 20,
   lambda c: c.rstd(20) * ANNUAL, fitted=True)
_f("Realized_Vol_60", "volatility", "std(r,60) sqrt(252)", 60, lambda c: c.rstd(60) * ANNUAL, fitted=True)
_f("Vol_of_Vol", "volatility", "std(Realized_Vol_20, 60)", 79, lambda c: ind.rstd(c.rstd(20) * ANNUAL, 60), fitted=True)
_f("Parkinson_Vol", "volatility", "sqrt(mean(ln(h/l)^2,20) / (4 ln 2)) sqrt(252)", 19, _parkinson)
_f("Garman_Klass_Vol", "volatility", "sqrt(max(0, mean(0.5 ln(h/l)^2 - (2 ln2 - 1) ln(c/o)^2, 20))) sqrt(252)", 19, _garman_klass)
_f("Realized_Vol_5", "volatility", "std(r,5) sqrt(252)", 5, lambda c: c.rstd(5) * ANNUAL, fitted=True)
_f("Vol_ratio_5_60", "volatility", "Realized_Vol_5 / Realized_Vol_60", 60,
   lambda c: ind.safe_div(c.rstd(5), c.rstd(60), 1.0), fitted=True)
_f("Rogers_Satchell_Vol", "volatility", "sqrt(max(0, mean(ln(h/c)ln(h/o) + ln(l/c)ln(l/o), 20))) sqrt(252)", 19, _rogers_satchell)
_f("Downside_Vol_20", "volatility", "sqrt(mean(min(r,0)^2, 20)) sqrt(252)", 20,
   lambda c: np.sqrt((c.ret.clip(upper=0.0) ** 2).rolling(20, min_periods=20).mean()) * ANNUAL, fitted=True)

# --- volume (9) -----------------------------------------------------------------------------
_f("OBV_rel", "volume", "(OBV - OBV[t-20]) / sum(volume,20); OBV = cumsum(sign(dclose) volume)", 20,
   lambda c: (c.obv() - c.obv().shift(20)) / c.vol_sum(20))
_f("OBV_SMA_20_rel", "volume", "(OBV - SMA(OBV,20)) / sum(volume,20)", 19,
   lambda c: (c.obv() - ind.sma(c.obv(), 20)) / c.vol_sum(20))
_f("Volume_SMA_20_ratio", "volume", "volume / SMA(volume,20)", 19, lambda c: ind.safe_div(c.volume, ind.sma(c.volume, 20), 1.0))
_f("Volume_trend", "volume", "least-squares slope of ln(1+volume) over 5 days", 4,
   lambda c: ind.slope(np.log1p(c.volume), 5))
_f("VWAP_deviation_5", "volume", "close / VWAP5 - 1", 4, lambda c: c.close / c.vwap(5) - 1.0)
_f("Volume_zscore_60", "volume", "(ln(1+volume) - mean(.,60)) / std(.,60)", 59,
   lambda c: ind.safe_div(np.log1p(c.volume) - ind.sma(np.log1p(c.volume), 60), ind.rstd(np.log1p(c.volume), 60), 0.0))
_f("Dollar_volume_ratio_20", "volume", "close volume / SMA(close volume, 20)", 19,
   lambda c: ind.safe_div(c.close * c.volume, ind.sma(c.close * c.volume, 20), 1.0))
_f("Volume_return_corr_20", "volume", "corr(|r|, ln(1+volume), 20)", 20,
   lambda c: ind.rolling_corr(c.ret.abs(), np.log1p(c.volume), 20),
   fitted=True)
_f("Amihud_illiquidity_20", "volume", "ln(1e9 mean(|r| / (close volume), 20) + 1e-12); zero-volume days are left out of the mean", 20, _amihud, fitted=True)

# --- returns (15) ---------------------------------------------------------------------------
_f("Return_1d", "returns", "r (clipped daily log return)", 1, lambda c: c.ret, fitted=True)
for _n in (5, 10, 20):
    _f(f"Return_{_n}d", "returns", f"sum(r,{_n})", _n, lambda c, n=_n: c.rsum(n), fitted=True)
_f("Return_20d_std", "returns", "std(r,20) (= Realized_Vol_20 / sqrt(252); the seed's name)", 20, lambda c: c.rstd(20), fitted=True)
_f("Return_60d_std", "returns", "std(r,60)", 60, lambda c: c.rstd(60), fitted=True)
for _n in (20, 60):
    _f(f"Sharpe_{_n}d", "returns", f"mean(r,{_n}) / std(r,{_n}) sqrt(252)", _n,
       lambda c, n=_n: ind.safe_div(c.rsum(n) / n, c.rstd(n), 0.0) * ANNUAL, fitted=True)
for _n in (20, 60):
    _f(f"Cumulative_return_{_n}d", "returns", f"exp(sum(r,{_n})) - 1", _n,
       lambda c, n=_n: np.expm1(c.rsum(n)), fitted=True)
_f("Return_60d", "returns", "sum(r,60)", 60, lambda c: c.rsum(60), fitted=True)
_f("Skewness_60d", "returns", "sample skewness of r over 60 days", 60,
   lambda c: c.ret.rolling(60, min_periods=60).skew(), fitted=True)
_f("Kurtosis_60d", "returns", "sample excess kurtosis of r over 60 days", 60,
   lambda c: c.ret.rolling(60, min_periods=60).kurt(), fitted=True)
_f("Drawdown_60d", "returns", "close / max(close,60) - 1", 59, lambda c: c.close / c.close.rolling(60, min_periods=60).max() - 1.0)
_f("Return_autocorr_20d", "returns", "corr(r, r[t-1], 20)", 21,
   lambda c: ind.rolling_corr(c.ret, c.ret.shift(1), 20),
   fitted=True)

# --- cross-asset (8) ------------------------------------------------------------------------
_f("Correlation_SPY_20d", "cross_asset", "corr(r, r_SPY, 20)", 20,
   lambda c: ind.rolling_corr(c.ret, c.spy(), 20), fitted=True)
_f("Correlation_VIX_20d", "cross_asset", "corr(r, dln VIX, 20)", 20,
   lambda c: ind.rolling_corr(c.ret, np.log(c.alt["VIX"]).diff(), 20),
   fitted=True, needs=("VIX",))
_f("Beta_SPY_20d", "cross_asset", "cov(r, r_SPY, 20) / var(r_SPY, 20)", 20,
   lambda c: ind.rolling_beta(c.ret, c.spy(), 20), fitted=True)
_f("Beta_SPY_60d", "cross_asset", "cov(r, r_SPY, 60) / var(r_SPY, 60)", 60,
   lambda c: ind.rolling_beta(c.ret, c.spy(), 60), fitted=True)
_f("Relative_strength_SPY", "cross_asset", "sum(r,20) - sum(r_SPY,20)", 20,
   lambda c: c.rsum(20).sub(c.rsum(20)[c.benchmark], axis=0), fitted=True)
_f("Correlation_Yield10Y_60d", "cross_asset", "corr(r, d Yield_10Y, 60)", 60,
   lambda c: ind.rolling_corr(c.ret, c.alt["Yield_10Y"].diff(), 60),
   fitted=True, needs=("Yield_10Y",))
_f("Correlation_SPY_60d", "cross_asset", "corr(r, r_SPY, 60)", 60,
   lambda c: ind.rolling_corr(c.ret, c.spy(), 60), fitted=True)
_f("Idiosyncratic_vol_60d", "cross_asset", "sqrt(var(r,60) - beta60^2 var(r_SPY,60)) sqrt(252)", 60, _idio_vol, fitted=True)

# --- regime (11, market-wide) ---------------------------------------------------------------
_f("Regime", "regime", "K-means (k=3, fitted) of [ln VIX (when VIX is present), benchmark vol 20d, benchmark "
   "return 20d]; 0 calm, 1 normal, 2 crisis",
   20, lambda c: _regime_frame(c, "label"), fitted=True, market_wide=True)
_f("Regime_duration", "regime", "consecutive days in the current regime", 20,
   lambda c: _regime_frame(c, "duration"), fitted=True, market_wide=True)
_f("Regime_strength", "regime", "distance to the assigned cluster centre (standardised units)", 20,
   lambda c: _regime_frame(c, "distance"), fitted=True, market_wide=True)
_f("VIX_percentile_20d", "regime", "percentile rank of VIX within its last 20 days", 19,
   lambda c: c.alt["VIX"].rolling(20, min_periods=20).rank(pct=True), market_wide=True, needs=("VIX",))
_f("VIX_percentile_60d", "regime", "percentile rank of VIX within its last 60 days", 59,
   lambda c: c.alt["VIX"].rolling(60, min_periods=60).rank(pct=True), market_wide=True, needs=("VIX",))
_f("Market_breadth", "regime", "share of universe tickers with close > SMA(close,20)", 19, _breadth, market_wide=True)
_f("VIX_level", "regime", "VIX", 0, lambda c: c.alt["VIX"], market_wide=True, needs=("VIX",))
_f("VIX_change_5d", "regime", "ln(VIX / VIX[t-5])", 5, lambda c: np.log(c.alt["VIX"] / c.alt["VIX"].shift(5)), market_wide=True, needs=("VIX",))
_f("Yield_10Y_change_20d", "regime", "Yield_10Y - Yield_10Y[t-20]", 20, lambda c: c.alt["Yield_10Y"].diff(20), market_wide=True, needs=("Yield_10Y",))
_f("DXY_return_20d", "regime", "ln(DXY / DXY[t-20])", 20, lambda c: np.log(c.alt["DXY"] / c.alt["DXY"].shift(20)), market_wide=True, needs=("DXY",))
_f("Gold_return_20d", "regime", "ln(Gold / Gold[t-20])", 20, lambda c: np.log(c.alt["Gold"] / c.alt["Gold"].shift(20)), market_wide=True, needs=("Gold",))

REGISTRY: tuple[Feature, ...] = tuple(f for f, _ in _DEFS)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in REGISTRY)
_COMPUTE: dict[str, Compute] = {f.name: fn for f, fn in _DEFS}
BY_NAME: dict[str, Feature] = {f.name: f for f in REGISTRY}


ALL_ALT_SERIES = ("VIX", "DXY", "Gold", "Yield_10Y")
ALL_BAR_FIELDS = ("open", "high", "low", "close", "volume")


def feature_names(alt_series: tuple[str, ...] | list[str] = ALL_ALT_SERIES,
                  bar_fields: tuple[str, ...] | list[str] = ALL_BAR_FIELDS) -> tuple[str, ...]:
    """The registry features computable with these alternative series and bar fields, in registry
    order."""
    have = set(alt_series) | set(bar_fields)
    return tuple(f.name for f in REGISTRY if set(f.needs) <= have)


def features_of(universe) -> tuple[str, ...]:
    """The features of a universe or profile (anything with `alt_series` and `bar_fields`)."""
    return feature_names(universe.alt_series, universe.bar_fields)


def registry_table(alt_series: tuple[str, ...] | list[str] = ALL_ALT_SERIES,
                   bar_fields: tuple[str, ...] | list[str] = ALL_BAR_FIELDS) -> pd.DataFrame:
    """The registry as a table: name, category, formula, lookback, fitted, market_wide, needs,
    present (computable with these alternative series and bar fields), version."""
    frame = pd.DataFrame([{**f.__dict__, "needs": ", ".join(f.needs)} for f in REGISTRY])
    frame["present"] = frame["name"].isin(feature_names(alt_series, bar_fields))
    frame["version"] = REGISTRY_VERSION
    return frame


# --- regimes ----------------------------------------------------------------------------------
def regime_state(ctx: Context) -> pd.DataFrame:
    """The market state the regime K-means clusters: ln VIX when present, and the benchmark's
    20-day volatility and return (clipped returns)."""
    bench = ctx.spy()
    state = {"ln_vix": np.log(ctx.alt["VIX"])} if "VIX" in ctx.alt.columns else {}
    state["spy_vol_20"] = bench.rolling(20, min_periods=20).std() * ANNUAL
    state["spy_return_20"] = bench.rolling(20, min_periods=20).sum()
    return pd.DataFrame(state, index=ctx.close.index)


# --- builder ----------------------------------------------------------------------------------
PRICE_FIELDS = ("open", "high", "low", "close", "volume")


def build_context(clean: pd.DataFrame, ret: pd.DataFrame | None, alt: pd.DataFrame, benchmark: str,
                  tickers: list[str] | None = None, fields: tuple[str, ...] = PRICE_FIELDS,
                  check_benchmark: bool = True) -> tuple[Context, np.ndarray]:
    """Dates x tickers frames of the clean prices (on the clean table's sessions; `fields` only,
    the others left empty), the clipped returns `ret` (dates x tickers, or None when only
    unfitted features are wanted), the alternative series present, and the mask of
    (date, ticker) cells the clean table has."""
    from odyssey.cleaning import wide

    tickers = tickers or list(dict.fromkeys(clean["ticker"]))
    if check_benchmark and benchmark not in set(clean["ticker"]):
        raise ValueError(f"benchmark {benchmark!r} is not among the tickers: cross-asset features need it")
    calendar = pd.DatetimeIndex(sorted(clean["date"].unique()), name="date")
    frames = {f: wide(clean, f, tickers, calendar) if f in fields else pd.DataFrame(np.nan, index=calendar, columns=tickers)
              for f in PRICE_FIELDS}
    if ret is None:
        ret = pd.DataFrame(np.nan, index=calendar, columns=tickers)
    else:
        ret = ret.reindex(index=calendar, columns=list(dict.fromkeys([*tickers, benchmark])))
    series = [c for c in alt.columns if c != "date"]
    alt_wide = alt.set_index("date").reindex(calendar)[series].astype(float)
    present = wide(clean.assign(_p=1.0), "_p", tickers, calendar).notna().to_numpy()
    return Context(**frames, ret=ret, alt=alt_wide, benchmark=benchmark), present


def compute_series(ctx: Context, name: str) -> pd.Series:
    """A market-wide feature: one value per date."""
    value = _COMPUTE[name](ctx)
    if value.ndim != 1:
        raise ValueError(f"{name} is not market-wide")
    return value


def compute(ctx: Context, present: np.ndarray, names: tuple[str, ...]) -> pd.DataFrame:
    """The named features for every (ticker, date) cell present: a long table (ticker, date order)."""
    tickers = list(ctx.close.columns)
    n_days, n_tk = ctx.close.shape
    block = np.empty((n_tk, n_days, len(names)))
    for k, name in enumerate(names):
        value = _COMPUTE[name](ctx)
        arr = value.to_numpy(dtype=float) if value.ndim == 1 else value[tickers].to_numpy(dtype=float)
        block[:, :, k] = arr[None, :].repeat(n_tk, 0) if arr.ndim == 1 else arr.T
    mask = present.T.reshape(-1)
    table = pd.DataFrame(block.reshape(n_tk * n_days, len(names))[mask], columns=list(names))
    table.insert(0, "ticker", np.repeat(np.array(tickers, dtype=object), n_days)[mask])
    table.insert(0, "date", np.tile(ctx.close.index.values, n_tk)[mask])
    return table
