"""A seeded synthetic market that behaves like one, with a documented planted signal.

Structure (all daily, on the exchange's trading sessions):

* a 3-state regime process (0 calm, 1 normal, 2 crisis; a Markov chain) sets the market
  factor's volatility; VIX follows the regime and jumps when the market falls;
* returns = drift + beta * market factor + sector factor + GARCH(1,1) idiosyncratic noise,
  so tickers are correlated by sector and volatility clusters;
* volume rises with absolute returns; a few days are missing, a few ticks are bad (a one-day
  spike that reverts) and stock splits appear in the quotes and in the corporate-actions table;
* the planted signal: on day t+1 every ticker earns an extra
  ``signal_strength * sigma_i * tanh((R10_i,t - 10 mu_i) / (sigma_i * sqrt(10)))``, where R10 is
  the ticker's own log return over the last 10 days (information available at t), mu_i its daily
  drift (so the signal is momentum in excess of drift) and sigma_i its typical daily volatility. `true_signal` gives, per (date, ticker), the planted part of the
  5-day forward log return to first order: ``5 * signal_strength * sigma_i * tanh(...)``.
  The momentum feeds on itself (the returns it reads include what it added), so from a strength
  near 1.5 trends run away. With ``signal_source = "gold"`` the signal reads Gold's 20-day log
  return instead (the feature ``Gold_return_20d``): ``(G20_t - 20 * 0.0002) / (0.009 sqrt(20))``,
  its excess over Gold's drift in standard deviations, in place of the momentum's argument.
  Nothing feeds back, no strength runs away, and a flip reverses the skill at its full size,
  where a flipped momentum only damps the trends it feeds. The term is common to every ticker.
  The drift (``annual_drift`` per unit of beta) is the same in every regime; with
  ``signal_strength = 0`` and ``annual_drift = 0`` nothing about direction is predictable;
* ``drift_date``: from that date on, the drifted tickers' idiosyncratic volatility triples,
  their market beta rises by 0.8 and their volume doubles, so feature distributions shift;
* ``signal_flip_date``: from that date on the planted signal reverses sign, so a model that
  learned it forecasts the wrong way (the live-skill check must notice); ``signal_death_date``:
  from that date on the planted part is noise of the same size that nothing observable predicts
  (``tanh`` of an independent normal draw each day), so the skill dies while the volatility
  stays about as it was (a death or flip of the Gold-driven signal, which every ticker shares,
  also ends the chosen tickers' co-movement with the others); both for ``signal_tickers`` only, when given. The noise comes from
  a stream of its own, drawn whatever the knobs, so everything before the date, and every other
  ticker, stays as it was;
* a bad print is a one-day spike of the quoted close that reverts the next day. The market's
  true close on such a day is the geometric midpoint of its neighbours (the two days' returns
  are equal), with or without the bad prints, so a correct repair restores it exactly. The
  midpoint needs the next day: a market that ends on a bad-print day has that day's own close,
  and extending it by one day moves it to the midpoint (the only earlier value that changes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from odyssey.settings import Profile, SyntheticSettings
from odyssey.sources.columns import MarketData

# ticker: (market beta, sector, sector loading, idiosyncratic daily vol, start price, volume)
_TICKER_SPECS: dict[str, tuple[float, str, float, float, float, float]] = {
    "AAPL": (1.15, "tech", 0.6, 0.012, 210.0, 9.0e7),
    "NVDA": (1.60, "semis", 0.9, 0.020, 18.0, 4.0e7),
    "TSLA": (1.50, "tech", 0.5, 0.028, 25.0, 3.0e7),
    "MSFT": (1.05, "tech", 0.5, 0.010, 30.0, 4.0e7),
    "GOOGL": (1.10, "tech", 0.5, 0.011, 600.0, 4.0e6),
    "AMZN": (1.20, "tech", 0.6, 0.014, 130.0, 6.0e6),
    "META": (1.25, "tech", 0.6, 0.016, 40.0, 3.0e7),
    "SPY": (1.00, "none", 0.0, 0.0015, 115.0, 1.5e8),
    "QQQ": (1.15, "tech", 0.35, 0.002, 46.0, 6.0e7),
    "EFA": (0.85, "intl", 0.6, 0.004, 55.0, 2.0e7),
    "IEF": (-0.10, "rates", 0.0, 0.0015, 90.0, 1.0e6),
    "HYG": (0.35, "credit", 0.4, 0.002, 88.0, 4.0e6),
    "BIL": (0.0, "none", 0.0, 0.0001, 45.8, 1.0e6),
    "INTC": (1.10, "semis", 0.7, 0.014, 20.0, 5.0e7),
    "AMD": (1.55, "semis", 0.9, 0.024, 9.0, 5.0e7),
}
_DEFAULT_SPEC = (1.0, "none", 0.0, 0.012, 50.0, 1.0e7)

# (ticker, first date quoted after the split, new shares per old share)
SPLITS: tuple[tuple[str, str, float], ...] = (
    ("AAPL", "2014-06-09", 7.0),
    ("AAPL", "2020-08-31", 4.0),
    ("TSLA", "2020-08-31", 5.0),
    ("NVDA", "2021-07-20", 4.0),
    ("AMZN", "2022-06-06", 20.0),
    ("GOOGL", "2022-07-18", 20.0),
    ("TSLA", "2022-08-25", 3.0),
    ("NVDA", "2024-06-10", 10.0),
)

REGIME_MARKET_VOL = np.array([0.006, 0.010, 0.024])
REGIME_VIX_LEVEL = np.array([12.5, 18.0, 34.0])
REGIME_TRANSITIONS = np.array(
    [[0.985, 0.015, 0.000],
     [0.010, 0.980, 0.010],
     [0.000, 0.050, 0.950]]
)
SECTOR_VOL = 0.006
DURATION = 7.5  # rates ETFs move by -duration x yield change
YIELD_VOL = 0.045  # daily standard deviation of the 10-year yield, percentage points
GOLD_VOL = 0.009  # daily log-return volatility of Gold
N_BAD_TICKS = 6
DRIFT_VOL, DRIFT_BETA, DRIFT_VOLUME = 3.0, 0.8, 2.0  # after drift_date, for the drifted tickers
BAD_TICK_HORIZON = 3900  # bad ticks fall on sessions 60..3900 of the range
BAD_TICK_SIZE = 0.25  # the quoted close is off by 25 % for one day



@dataclass
class SyntheticMarket:
    data: MarketData
    true_signal: pd.DataFrame  # date, ticker, true_signal (planted part of 5-day fwd log return)
    regimes: pd.Series  # regime per business day
    adjusted_close: pd.DataFrame  # dates x tickers, the clean split-adjusted closes


def _spec(ticker: str) -> tuple[float, str, float, float, float, float]:
    return _TICKER_SPECS.get(ticker, _DEFAULT_SPEC)


def signal_multiplier(dates: pd.DatetimeIndex, tickers, config) -> np.ndarray:
    """days x tickers: the planted signal's sign and presence (1; -1 from `signal_flip_date`, 0 from
    `signal_death_date`, for `signal_tickers` or all)."""
    out = np.ones((len(dates), len(tickers)))
    chosen = np.array([config.signal_tickers is None or t in config.signal_tickers for t in tickers])
    for date, value in ((config.signal_flip_date, -1.0), (config.signal_death_date, 0.0)):
        if date is not None:
            out[np.outer(dates >= pd.Timestamp(date), chosen)] = value
    return out


def generate_market(profile: Profile, config: SyntheticSettings = SyntheticSettings()) -> SyntheticMarket:
    """Generate the synthetic market for a profile's tickers and sessions (deterministic)."""
    dates = profile.sessions
    tickers = list(profile.tickers)
    n_days, n_tk = len(dates), len(tickers)
    # Every random array comes from its own stream and is filled day by day, so a longer date
    # range extends the same market (new days are appended; earlier days do not change, but for
    # a bad-print day that was the last one: see the module docstring) and a
    # knob (signal strength, drift) changes only what it is meant to change.
    streams = iter(np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(16))
    sectors = sorted({_spec(t)[1] for t in tickers} | {"tech", "semis", "intl", "rates", "credit"})
    u_regime = next(streams).random(n_days)
    z_market = next(streams).standard_normal(n_days)
    z_sector = next(streams).standard_normal((n_days, len(sectors)))
    z_idio = next(streams).standard_normal((n_days, n_tk))
    z_vix = next(streams).standard_normal(n_days)
    z_alt = next(streams).standard_normal((n_days, 3))
    z_open = next(streams).standard_normal((n_days, n_tk))
    z_range = np.abs(next(streams).standard_normal((n_days, n_tk, 2)))
    z_volume = next(streams).standard_normal((n_days, n_tk))
    u_missing = next(streams).random((n_days, n_tk))
    u_missing_len = next(streams).integers(1, 4, size=(n_days, n_tk))
    bad = next(streams)
    z_dead = next(streams).standard_normal((n_days, n_tk))  # the dead signal's noise
    bad_rows = bad.integers(60, BAD_TICK_HORIZON, size=N_BAD_TICKS)
    bad_cols = bad.integers(0, n_tk, size=N_BAD_TICKS)
    bad_sign = bad.choice([-1.0, 1.0], size=N_BAD_TICKS)

    # Regimes: a Markov chain started in "normal".
    regimes = np.empty(n_days, dtype=np.int64)
    state = 1
    cum = np.cumsum(REGIME_TRANSITIONS, axis=1)
    for t in range(n_days):
        state = int(np.searchsorted(cum[state], u_regime[t], side="right"))
        state = min(state, 2)
        regimes[t] = state
    market = REGIME_MARKET_VOL[regimes] * z_market

    # Yield and rates factor: the 10Y yield moves with the market (risk-on, yields up).
    d_yield = YIELD_VOL * (0.4 * z_market + np.sqrt(1 - 0.16) * z_alt[:, 0])
    yield_10y = np.clip(2.4 + np.cumsum(d_yield), 0.3, None)

    spec = np.array([_spec(t)[0] for t in tickers]), [_spec(t)[1] for t in tickers]
    beta = spec[0].astype(float)
    sector_idx = np.array([sectors.index(s) if s != "none" else -1 for s in spec[1]])
    loading = np.array([_spec(t)[2] for t in tickers])
    idio_vol = np.array([_spec(t)[3] for t in tickers])
    start_price = np.array([_spec(t)[4] for t in tickers])
    base_volume = np.array([_spec(t)[5] for t in tickers])
    is_rates = np.array([s == "rates" for s in spec[1]])
    rates_vol = np.where(is_rates, DURATION * YIELD_VOL / 100.0, 0.0)
    typical_vol = np.sqrt((beta * REGIME_MARKET_VOL[1]) ** 2 + (loading * SECTOR_VOL) ** 2 + idio_vol**2 + rates_vol**2)
    # the same drift in every regime: regimes never predict direction
    drift = config.annual_drift / 252.0 * np.clip(beta, 0.15, None)

    gold_return = 0.0002 + GOLD_VOL * (-0.1 * z_market + np.sqrt(1 - 0.01) * z_alt[:, 2])
    # the gold-driven signal's argument at t: Gold's 20-day log return in excess of its drift, in
    # units of its standard deviation (0 until 20 days exist)
    gold_z = pd.Series(gold_return - 0.0002).rolling(20).sum().fillna(0.0).to_numpy() / (GOLD_VOL * np.sqrt(20.0))
    by_gold = config.signal_source == "gold"
    flip = signal_multiplier(dates, tickers, config)
    dead = (flip == 0.0).astype(float)
    drift_mask = np.zeros((n_days, n_tk), dtype=bool)
    if config.drift_date is not None:
        after = dates >= pd.Timestamp(config.drift_date)
        chosen = tickers if config.drift_tickers is None else list(config.drift_tickers)
        cols = np.array([t in chosen for t in tickers])
        drift_mask = np.outer(after, cols)

    # GARCH(1,1) idiosyncratic variance, unit long-run level, scaled by idio_vol.
    omega, alpha, beta_g = 0.05, 0.08, 0.87
    h = np.ones(n_tk)
    eps_prev = np.zeros(n_tk)
    returns = np.empty((n_days, n_tk))
    window = np.zeros((10, n_tk))
    g_hist = np.zeros((n_days, n_tk))
    sector_ret = np.where(sector_idx[None, :] >= 0, z_sector[:, np.maximum(sector_idx, 0)], 0.0) * SECTOR_VOL
    sqrt10 = np.sqrt(10.0)
    for t in range(n_days):
        h = omega + alpha * eps_prev**2 + beta_g * h
        vol_mult = np.where(drift_mask[t], DRIFT_VOL, 1.0) * (1.0 + 0.5 * (regimes[t] == 2))
        eps = np.sqrt(h) * z_idio[t]
        b = beta + np.where(drift_mask[t], DRIFT_BETA, 0.0)
        if by_gold:
            g_prev = np.full(n_tk, np.tanh(gold_z[t - 1])) if t >= 1 else np.zeros(n_tk)
        else:
            g_prev = np.tanh((window.sum(axis=0) - 10 * drift) / (typical_vol * sqrt10)) if t >= 10 else np.zeros(n_tk)
        planted = config.signal_strength * flip[t] * typical_vol * g_prev
        if dead[t].any():
            planted = planted + config.signal_strength * dead[t] * typical_vol * np.tanh(z_dead[t])
        r = drift + b * market[t] + loading * sector_ret[t] + idio_vol * vol_mult * eps + planted
        r = np.where(is_rates, r - DURATION * d_yield[t] / 100.0, r)
        returns[t] = r
        window[t % 10] = r
        if by_gold:
            g_hist[t] = np.tanh(gold_z[t])
        else:
            g_hist[t] = np.tanh((window.sum(axis=0) - 10 * drift) / (typical_vol * sqrt10)) if t >= 9 else 0.0
        eps_prev = eps

    # Bad prints asked for by the settings (`bad_prints`), beside the seeded ones: no random draw.
    planted = [(int(dates.get_loc(pd.Timestamp(day))), tickers.index(ticker), 1.0)
               for ticker, day in (item.split() for item in config.bad_prints)
               if ticker in tickers and pd.Timestamp(day) in dates]
    bad_rows = np.concatenate([bad_rows, [r for r, _, _ in planted]]).astype(np.int64)
    bad_cols = np.concatenate([bad_cols, [c for _, c, _ in planted]]).astype(np.int64)
    bad_sign = np.concatenate([bad_sign, [s for _, _, s in planted]])

    # Bad-print days: the true close is the geometric midpoint of its neighbours.
    for row, col in zip(bad_rows, bad_cols):
        if row + 1 < n_days:
            returns[row, col] = returns[row + 1, col] = 0.5 * (returns[row, col] + returns[row + 1, col])
    adj_close = start_price * np.exp(np.cumsum(returns, axis=0))
    open_frac = np.clip(0.35 + 0.15 * z_open, 0.0, 1.0)
    prev_close = np.vstack([start_price[None, :], adj_close[:-1]])
    adj_open = prev_close * np.exp(open_frac * returns)
    day_vol = typical_vol * (1.0 + regimes[:, None])
    adj_high = np.maximum(adj_open, adj_close) * np.exp(0.5 * day_vol * z_range[..., 0])
    adj_low = np.minimum(adj_open, adj_close) * np.exp(-0.5 * day_vol * z_range[..., 1])
    volume = base_volume * np.exp(0.25 * z_volume + 0.8 * np.abs(returns) / typical_vol)
    volume = volume * np.where(drift_mask, DRIFT_VOLUME, 1.0)

    # Alternative data.
    vix = np.empty(n_days)
    level = REGIME_VIX_LEVEL[1]
    for t in range(n_days):
        target = REGIME_VIX_LEVEL[regimes[t]]
        level = level + 0.08 * (target - level) - 250.0 * market[t] + 0.9 * z_vix[t]
        level = max(level, 9.0)
        vix[t] = level
    dxy = 80.0 * np.exp(np.cumsum(0.004 * (-0.2 * z_market + np.sqrt(1 - 0.04) * z_alt[:, 1])))
    gold = 1100.0 * np.exp(np.cumsum(gold_return))

    # Quotes: unadjusted for splits (earlier prices are higher by the later splits' ratios).
    actions = []
    # A quote is what traded that day: every split after it scales it, including splits after the
    # range's end, so a longer range extends the same quotes. Only splits inside the range are
    # listed as corporate actions (a source knows the splits of the history it delivers).
    factor = np.ones((n_days, n_tk))
    if config.splits:
        for ticker, day, ratio in SPLITS:
            if ticker in tickers and dates[0] < pd.Timestamp(day):
                j = tickers.index(ticker)
                factor[dates < pd.Timestamp(day), j] *= ratio
                if pd.Timestamp(day) <= dates[-1]:
                    actions.append((pd.Timestamp(day), ticker, ratio))
    for ticker, day, ratio in (item.split() for item in config.unlisted_splits):  # in the quotes, never listed
        if ticker in tickers:
            factor[dates < pd.Timestamp(day), tickers.index(ticker)] *= float(ratio)
    q_open, q_high, q_low, q_close = (x * factor for x in (adj_open, adj_high, adj_low, adj_close))
    q_volume = np.round(volume / factor).astype(np.int64)

    seeded = len(bad_rows) - len(planted)
    for i, (row, col, sign) in enumerate(zip(bad_rows, bad_cols, bad_sign)):
        if row < n_days and (config.bad_ticks or i >= seeded):
            q_close[row, col] *= 1.0 + BAD_TICK_SIZE * sign
            q_high[row, col] = max(q_high[row, col], q_close[row, col])
            q_low[row, col] = min(q_low[row, col], q_close[row, col])

    # Missing days: short runs (1-3 business days) removed from the quotes.
    present = np.ones((n_days, n_tk), dtype=bool)
    starts = np.argwhere(u_missing < config.missing_day_rate)
    for row, col in starts:
        if row == 0:
            continue
        present[row : row + u_missing_len[row, col], col] = False

    frame = pd.DataFrame(
        {
            "date": np.repeat(dates.values, n_tk),
            "ticker": np.tile(np.array(tickers, dtype=object), n_days),
            "open": q_open.ravel(),
            "high": q_high.ravel(),
            "low": q_low.ravel(),
            "close": q_close.ravel(),
            "volume": q_volume.ravel(),
        }
    )
    frame = frame[present.ravel()]
    frame = frame.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)

    alt = pd.DataFrame({"date": dates, "VIX": vix, "DXY": dxy, "Gold": gold, "Yield_10Y": yield_10y})
    alt_present = np.ones(n_days, dtype=bool)
    alt_present[np.argwhere(u_missing[:, 0] < config.missing_day_rate / 2).ravel()[:3]] = False
    alt_present[0] = True
    alt = alt[alt_present].reset_index(drop=True)

    actions_df = pd.DataFrame(actions, columns=["date", "ticker", "ratio"])
    actions_df["date"] = pd.to_datetime(actions_df["date"])
    actions_df["ratio"] = actions_df["ratio"].astype(float)

    signal = 5.0 * config.signal_strength * flip * typical_vol * g_hist
    true_signal = pd.DataFrame(
        {
            "date": np.repeat(dates.values, n_tk),
            "ticker": np.tile(np.array(tickers, dtype=object), n_days),
            "true_signal": signal.ravel(),
        }
    ).sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)

    return SyntheticMarket(
        data=MarketData(prices=frame, alt=alt, actions=actions_df),
        true_signal=true_signal,
        regimes=pd.Series(regimes, index=dates, name="regime"),
        adjusted_close=pd.DataFrame(adj_close, index=dates, columns=tickers),
    )
