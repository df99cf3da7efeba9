"""A per-ticker reference implementation of the registry features (all 94 when every alternative
series is present), written from the formulas.

It loops over tickers and computes every indicator on that ticker's pandas Series; market-wide
features (regimes, VIX, breadth, rates, FX, gold) are computed once on the shared calendar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from odyssey.features import feature_names

SQRT252 = np.sqrt(252.0)
ALT_COLUMNS = ["VIX", "DXY", "Gold", "Yield_10Y"]


# --- small Series helpers --------------------------------------------------------------------
def _mean(s: pd.Series, n: int) -> pd.Series:
    return s.rolling(n, min_periods=n).mean()


def _sum(s: pd.Series, n: int) -> pd.Series:
    return s.rolling(n, min_periods=n).sum()


def _std(s: pd.Series, n: int) -> pd.Series:
    return s.rolling(n, min_periods=n).std(ddof=1)


def _max(s: pd.Series, n: int) -> pd.Series:
    return s.rolling(n, min_periods=n).max()


def _min(s: pd.Series, n: int) -> pd.Series:
    return s.rolling(n, min_periods=n).min()


def _ema(s: pd.Series, span: int) -> pd.Series:
    """alpha = 2 / (span + 1), recursion started at the first value, NaN until span values seen."""
    return s.ewm(alpha=2.0 / (span + 1.0), adjust=False, min_periods=span).mean()


def _wilder(s: pd.Series, n: int) -> pd.Series:
    """Wilder smoothing: alpha = 1 / n, recursion started at the first value, NaN until n values."""
    return s.ewm(alpha=1.0 / n, adjust=False, min_periods=n).mean()


def _div(a: pd.Series, b: pd.Series, fill: float) -> pd.Series:
    """a / b; where b == 0 (and a is known) or the quotient is infinite, `fill`; NaN stays NaN."""
    a_v = np.asarray(a, dtype=float)
    b_v = np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = a_v / b_v
    q = np.where(np.isinf(q) | ((b_v == 0.0) & ~np.isnan(a_v)), fill, q)
    return pd.Series(q, index=a.index)


def _corr_filled(x: pd.Series, y: pd.Series, n: int) -> pd.Series:
    """Rolling correlation; 0 where undefined although both series have a full window, else NaN."""
    corr = x.rolling(n, min_periods=n).corr(y)
    full = (x.notna().astype(float).rolling(n, min_periods=n).sum() >= n) & \
        (y.notna().astype(float).rolling(n, min_periods=n).sum() >= n)
    return corr.fillna(0.0).where(full)


def _beta(x: pd.Series, m: pd.Series, n: int) -> pd.Series:
    return x.rolling(n, min_periods=n).cov(m) / m.rolling(n, min_periods=n).var()


def _mean_abs_dev(s: pd.Series, n: int) -> pd.Series:
    return s.rolling(n, min_periods=n).apply(lambda w: np.abs(w - w.mean()).mean(), raw=True)


def _ls_slope(s: pd.Series, n: int) -> pd.Series:
    t = np.arange(n, dtype=float)
    tc = t - t.mean()
    denom = (tc**2).sum()
    return s.rolling(n, min_periods=n).apply(lambda w: (tc * (w - w.mean())).sum() / denom, raw=True)


def _pct_rank_last(s: pd.Series, n: int) -> pd.Series:
    """Percentile rank (average rank of ties / window size) of the last value in its window."""
    def rank(w: np.ndarray) -> float:
        last = w[-1]
        return ((w < last).sum() + ((w == last).sum() + 1) / 2.0) / len(w)
    return s.rolling(n, min_periods=n).apply(rank, raw=True)


# --- market-wide features on the calendar -----------------------------------------------------
def _regime_series(alt: pd.DataFrame, spy: pd.Series, model: dict) -> dict[str, pd.Series]:
    """Assign each day's market state (ln VIX when VIX is present, the benchmark's 20-day
    volatility and return) to the nearest stored cluster centre (standardised units)."""
    state = {
        "spy_vol_20": _std(spy, 20) * SQRT252,
        "spy_return_20": _sum(spy, 20),
    }
    if "VIX" in alt.columns:
        state["ln_vix"] = np.log(alt["VIX"])
    columns = model["columns"]
    mean, std = dict(zip(columns, model["mean"])), dict(zip(columns, model["std"]))
    z = np.column_stack([(state[c].to_numpy() - mean[c]) / std[c] for c in columns])
    centers = np.asarray(model["centers"], dtype=float)
    n_days = len(spy)
    label = np.full(n_days, np.nan)
    distance = np.full(n_days, np.nan)
    duration = np.full(n_days, np.nan)
    prev_label, run = None, 0
    for i in range(n_days):
        row = z[i]
        if not np.isfinite(row).all():
            prev_label, run = None, 0
            continue
        d = [float(np.sqrt(((row - c) ** 2).sum())) for c in centers]
        k = int(np.argmin(d))
        run = run + 1 if k == prev_label else 1
        label[i], distance[i], duration[i] = float(k), d[k], float(run)
        prev_label = k
    idx = spy.index
    return {"Regime": pd.Series(label, index=idx), "Regime_duration": pd.Series(duration, index=idx),
            "Regime_strength": pd.Series(distance, index=idx)}


def _market_wide(alt: pd.DataFrame, spy: pd.Series, closes: dict[str, pd.Series], model: dict,
                 calendar: pd.DatetimeIndex) -> dict[str, pd.Series]:
    out = _regime_series(alt, spy, model)
    above_sum = pd.Series(0.0, index=calendar)
    above_cnt = pd.Series(0.0, index=calendar)
    for close in closes.values():
        c = close.reindex(calendar)
        sma = _mean(c, 20)
        known = sma.notna()
        above_sum += ((c > sma) & known).astype(float)
        above_cnt += known.astype(float)
    out["Market_breadth"] = (above_sum / above_cnt).where(above_cnt > 0)
    if "VIX" in alt.columns:
        vix = alt["VIX"]
        out["VIX_percentile_20d"] = _pct_rank_last(vix, 20)
        out["VIX_percentile_60d"] = _pct_rank_last(vix, 60)
        out["VIX_level"] = vix
        out["VIX_change_5d"] = np.log(vix / vix.shift(5))
    if "Yield_10Y" in alt.columns:
        out["Yield_10Y_change_20d"] = alt["Yield_10Y"] - alt["Yield_10Y"].shift(20)
    if "DXY" in alt.columns:
        out["DXY_return_20d"] = np.log(alt["DXY"] / alt["DXY"].shift(20))
    if "Gold" in alt.columns:
        out["Gold_return_20d"] = np.log(alt["Gold"] / alt["Gold"].shift(20))
    return out


# --- per-ticker features ------------------------------------------------------------------------
def _ticker_features(bars: pd.DataFrame, r: pd.Series, spy: pd.Series, alt: pd.DataFrame) -> dict[str, pd.Series]:
    o, h, lo, c, v = (bars[f] for f in ("open", "high", "low", "close", "volume"))
    f: dict[str, pd.Series] = {}

    # price
    sma = {n: _mean(c, n) for n in (5, 10, 20, 50, 200)}
    ema = {n: _ema(c, n) for n in (12, 26)}
    for n in (5, 10, 20, 50, 200):
        f[f"SMA_{n}_rel"] = sma[n] / c - 1.0
    for n in (12, 26):
        f[f"EMA_{n}_rel"] = ema[n] / c - 1.0
    for n in (5, 20, 50, 10, 200):
        f[f"Price_SMA_{n}_ratio"] = c / sma[n] - 1.0
    sd20 = _std(c, 20)
    upper, lower = sma[20] + 2.0 * sd20, sma[20] - 2.0 * sd20
    f["Upper_BB_rel"] = upper / c - 1.0
    f["Middle_BB_rel"] = sma[20] / c - 1.0
    f["Lower_BB_rel"] = lower / c - 1.0
    f["BB_width"] = (upper - lower) / sma[20]
    typical = (h + lo + c) / 3.0
    vwap20 = _sum(typical * v, 20) / _sum(v, 20)
    vwap5 = _sum(typical * v, 5) / _sum(v, 5)
    f["VWAP_rel"] = vwap20 / c - 1.0
    f["Price_VWAP_ratio"] = c / vwap20 - 1.0
    f["BB_percent_b"] = _div(c - lower, upper - lower, 0.5)
    f["EMA_12_26_ratio"] = ema[12] / ema[26] - 1.0
    hh20, ll20 = _max(h, 20), _min(lo, 20)
    f["Donchian_position_20"] = _div(c - ll20, hh20 - ll20, 0.5)

    # momentum
    delta = c.diff()
    up, down = delta.clip(lower=0.0), (-delta).clip(lower=0.0)
    for n in (14, 7, 21):
        gain, loss = _wilder(up, n), _wilder(down, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = 100.0 - 100.0 / (1.0 + gain / loss)
        value = np.where((loss == 0.0) & (gain > 0.0), 100.0, value)
        value = np.where((loss == 0.0) & (gain == 0.0), 50.0, value)
        f[f"RSI_{n}"] = pd.Series(value, index=c.index)
    macd = ema[12] - ema[26]
    signal = _ema(macd, 9)
    f["MACD_rel"] = macd / c
    f["MACD_signal_rel"] = signal / c
    f["MACD_histogram_rel"] = (macd - signal) / c
    for n in (5, 10, 20, 60):
        f[f"ROC_{n}"] = c / c.shift(n) - 1.0
    for n in (5, 10, 20):
        f[f"MOM_{n}_rel"] = (c - c.shift(n)) / c
    hh14, ll14 = _max(h, 14), _min(lo, 14)
    f["Williams_%R"] = -100.0 * _div(hh14 - c, hh14 - ll14, 0.5)
    stoch_k = 100.0 * _div(c - ll14, hh14 - ll14, 0.5)
    f["Stochastic_K"] = stoch_k
    f["Stochastic_D"] = _mean(stoch_k, 3)
    f["CCI_20"] = _div(typical - _mean(typical, 20), 0.015 * _mean_abs_dev(typical, 20), 0.0)
    f["Momentum_12_1"] = c.shift(21) / c.shift(252) - 1.0

    # volatility
    prev = c.shift(1)
    tr = pd.concat([h - lo, (h - prev).abs(), (lo - prev).abs()], axis=1).max(axis=1, skipna=False)
    tr = tr.where(prev.notna())
    for n in (14, 7, 21):
        f[f"ATR_{n}_rel"] = _wilder(tr, n) / c
    rstd = {n: _std(r, n) for n in (5, 20, 60)}
    rsum = {n: _sum(r, n) for n in (5, 10, 20, 60)}
    rv20 = rstd[20] * SQRT252
    f["Realized_Vol_20"] = rv20
    f["Realized_Vol_60"] = rstd[60] * SQRT252
    f["Vol_of_Vol"] = _std(rv20, 60)
    ln_hl2 = np.log(h / lo) ** 2
    f["Parkinson_Vol"] = np.sqrt(_mean(ln_hl2, 20) / (4.0 * np.log(2.0))) * SQRT252
    gk = _mean(0.5 * ln_hl2 - (2.0 * np.log(2.0) - 1.0) * np.log(c / o) ** 2, 20)
    f["Garman_Klass_Vol"] = np.sqrt(gk.clip(lower=0.0)) * SQRT252
    f["Realized_Vol_5"] = rstd[5] * SQRT252
    f["Vol_ratio_5_60"] = _div(rstd[5] * SQRT252, rstd[60] * SQRT252, 1.0)
    rs_term = np.log(h / c) * np.log(h / o) + np.log(lo / c) * np.log(lo / o)
    f["Rogers_Satchell_Vol"] = np.sqrt(_mean(rs_term, 20).clip(lower=0.0)) * SQRT252
    f["Downside_Vol_20"] = np.sqrt(_mean(np.minimum(r, 0.0) ** 2, 20)) * SQRT252

    # volume
    step = np.sign(c.diff()) * v
    obv = step.fillna(0.0).cumsum().where(c.notna())
    vsum20 = _sum(v, 20)
    f["OBV_rel"] = (obv - obv.shift(20)) / vsum20
    f["OBV_SMA_20_rel"] = (obv - _mean(obv, 20)) / vsum20
    f["Volume_SMA_20_ratio"] = _div(v, _mean(v, 20), 1.0)
    lv = np.log(1.0 + v)
    f["Volume_trend"] = _ls_slope(lv, 5)
    f["VWAP_deviation_5"] = c / vwap5 - 1.0
    f["Volume_zscore_60"] = _div(lv - _mean(lv, 60), _std(lv, 60), 0.0)
    dollar = c * v
    f["Dollar_volume_ratio_20"] = _div(dollar, _mean(dollar, 20), 1.0)
    f["Volume_return_corr_20"] = _corr_filled(r.abs(), lv, 20)
    illiq = (r.abs() / dollar.where(dollar != 0.0)).rolling(20, min_periods=1).mean()
    f["Amihud_illiquidity_20"] = np.log(1e9 * illiq + 1e-12).where(r.notna().cumsum() >= 20)

    # returns
    f["Return_1d"] = r.copy()
    for n in (5, 10, 20, 60):
        f[f"Return_{n}d"] = rsum[n]
    f["Return_20d_std"] = rstd[20]
    f["Return_60d_std"] = rstd[60]
    for n in (20, 60):
        f[f"Sharpe_{n}d"] = _div(_mean(r, n), rstd[n], 0.0) * SQRT252
        f[f"Cumulative_return_{n}d"] = np.exp(rsum[n]) - 1.0
    f["Skewness_60d"] = r.rolling(60, min_periods=60).skew()
    f["Kurtosis_60d"] = r.rolling(60, min_periods=60).kurt()
    f["Drawdown_60d"] = c / _max(c, 60) - 1.0
    r_lag = r.shift(1)
    f["Return_autocorr_20d"] = _corr_filled(r, r_lag, 20)

    # cross-asset
    f["Correlation_SPY_20d"] = _corr_filled(r, spy, 20)
    if "VIX" in alt.columns:
        f["Correlation_VIX_20d"] = _corr_filled(r, np.log(alt["VIX"]).diff(), 20)
    f["Beta_SPY_20d"] = _beta(r, spy, 20)
    beta60 = _beta(r, spy, 60)
    f["Beta_SPY_60d"] = beta60
    f["Relative_strength_SPY"] = rsum[20] - _sum(spy, 20)
    if "Yield_10Y" in alt.columns:
        f["Correlation_Yield10Y_60d"] = _corr_filled(r, alt["Yield_10Y"].diff(), 60)
    f["Correlation_SPY_60d"] = _corr_filled(r, spy, 60)
    resid_var = r.rolling(60, min_periods=60).var() - beta60**2 * spy.rolling(60, min_periods=60).var()
    f["Idiosyncratic_vol_60d"] = np.sqrt(resid_var.clip(lower=0.0)) * SQRT252
    return f


def reference_features(clean: pd.DataFrame, returns: pd.DataFrame, alt: pd.DataFrame, regime_model: dict,
                       benchmark: str = "SPY") -> pd.DataFrame:
    """date, ticker and the registry features the alternative series in `alt` allow (registry
    order) for every row of `clean`, in (ticker, date) order. `returns` holds the clipped daily
    log returns (`log_return_clipped`); `regime_model` is the fitted K-means dict of the feature
    pipeline (odyssey.fitting.RegimeModel)."""
    tickers = list(dict.fromkeys(clean["ticker"]))
    if benchmark not in tickers:
        raise ValueError(f"benchmark {benchmark!r} is not among the tickers {tickers}")
    calendar = pd.DatetimeIndex(sorted(clean["date"].unique()), name="date")
    series = [c for c in ALT_COLUMNS if c in alt.columns]
    alt_cal = alt.set_index("date").reindex(calendar)[series].astype(float)
    names = feature_names(tuple(series))

    bars: dict[str, pd.DataFrame] = {}
    rets: dict[str, pd.Series] = {}
    for t in tickers:
        rows = clean[clean["ticker"] == t].sort_values("date").set_index("date")
        bars[t] = rows[["open", "high", "low", "close", "volume"]].astype(float)
        r_rows = returns[returns["ticker"] == t].set_index("date")["log_return_clipped"]
        rets[t] = r_rows.reindex(rows.index).astype(float)
    spy_cal = rets[benchmark].reindex(calendar)

    market = _market_wide(alt_cal, spy_cal, {t: b["close"] for t, b in bars.items()}, regime_model, calendar)

    parts = []
    for t in tickers:
        dates = bars[t].index
        feats = _ticker_features(bars[t], rets[t], spy_cal.reindex(dates), alt_cal.reindex(dates))
        feats.update({name: s.reindex(dates) for name, s in market.items()})
        missing, extra = set(names) - set(feats), set(feats) - set(names)
        if missing or extra:
            raise RuntimeError(f"reference lacks features {sorted(missing)} and has others {sorted(extra)}")
        block = pd.DataFrame({name: np.asarray(feats[name], dtype=float) for name in names})
        block.insert(0, "ticker", t)
        block.insert(0, "date", dates.values)
        parts.append(block)
    return pd.concat(parts, ignore_index=True)
