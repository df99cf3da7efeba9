"""Rolling features of ticker messages, over the last N messages and over the last S seconds,
vectorised over the whole table, with a per-message streaming featurizer as the reference (the
way the seed's featurizer computed them, one message at a time).

The seed's five: `midprice`, `midprice_return`, `rolling_vol`, `spread`, `trade_intensity`.
The seed's `trade_intensity` was the count of messages in a window of N messages, which is N
whatever happens; here it is N divided by the seconds those N messages took (messages per
second; at least a millisecond, the finest time an exchange stamps reliably), and `messages_s`
counts the messages in the last S seconds. Added: the spread in basis
points, the realised volatility of the last S seconds, the short-to-long volatility ratio, the
order flow (`trade_imbalance`: the mean side of the last N trades, +1 at the ask and -1 at the
bid; `tick_rule_imbalance`: the mean sign of the last N price changes) and the gap since the
previous message.

Every feature at a message uses that message and earlier ones only. A row needs a full window
of N returns, so the first N messages have no features.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd

from odyssey.hashing import frame_sha256

MIN_ELAPSED_SECONDS = 1e-3  # trade_intensity of N messages stamped within one millisecond: N per millisecond
SEED_FEATURES = ("midprice", "midprice_return", "rolling_vol", "spread", "trade_intensity")
ORDER_FLOW = ("trade_imbalance", "tick_rule_imbalance")
FEATURES = (*SEED_FEATURES, "spread_bps", "messages_s", "realised_vol_s", "vol_ratio", *ORDER_FLOW, "gap_seconds")
# what the models read: everything but the price level, which is not comparable across time
MODEL_FEATURES = tuple(f for f in FEATURES if f != "midprice")


@dataclass(frozen=True)
class Windows:
    ticks: int = 60
    short_ticks: int = 10
    seconds: float = 60.0


def _window_sum(values: np.ndarray, window: int) -> np.ndarray:
    """Sum of the last `window` values at each position (NaN before a full window)."""
    csum = np.concatenate([[0.0], np.cumsum(values)])
    out = np.full(len(values), np.nan)
    out[window - 1:] = csum[window:] - csum[:-window]
    return out


def _rolling_std(r: np.ndarray, window: int) -> np.ndarray:
    """Sample standard deviation (ddof 1) of the last `window` returns; r[0] is not a return."""
    x = np.where(np.isfinite(r), r, 0.0)
    s1, s2 = _window_sum(x, window), _window_sum(x * x, window)
    var = np.maximum((s2 - s1 * s1 / window) / (window - 1), 0.0)
    out = np.sqrt(var)
    out[:window] = np.nan  # r[0] is not a return: the first full window ends at position `window`
    return out


def timestamp_ns(stamps: pd.Series) -> np.ndarray:
    """UTC nanoseconds since the epoch, as int64 (without a slow trip through Timestamp objects)."""
    return stamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]").view(np.int64) \
        if isinstance(stamps.dtype, pd.DatetimeTZDtype) else stamps.to_numpy("datetime64[ns]").view(np.int64)


def order_ticks(ticks: pd.DataFrame) -> pd.DataFrame:
    """The ticks in time order (stable: messages with the same time keep their file order)."""
    return ticks.sort_values("timestamp", kind="stable").reset_index(drop=True)


def tick_features(ticks: pd.DataFrame, windows: Windows = Windows()) -> pd.DataFrame:
    """Features of every message with a full window: `tick` (its position in time order),
    `timestamp`, then FEATURES. `ticks` must be in time order (order_ticks)."""
    n_ticks, short, seconds = windows.ticks, windows.short_ticks, windows.seconds
    bid = ticks["best_bid"].to_numpy(float)
    ask = ticks["best_ask"].to_numpy(float)
    price = ticks["price"].to_numpy(float)
    t_ns = timestamp_ns(ticks["timestamp"])
    t = (t_ns - (t_ns[0] if len(t_ns) else 0)) / 1e9
    mid = (bid + ask) / 2
    r = np.empty(len(mid))
    r[:1] = np.nan
    r[1:] = np.diff(np.log(mid))
    vol = _rolling_std(r, n_ticks)
    short_vol = _rolling_std(r, short)
    spread = ask - bid
    elapsed = np.full(len(t), np.nan)
    elapsed[n_ticks:] = t[n_ticks:] - t[:-n_ticks]
    # messages in (t - S, t] and their squared returns (r[0] counts as 0)
    first = np.searchsorted(t, t - seconds, side="right")
    index = np.arange(len(t))
    r2 = np.concatenate([[0.0], np.cumsum(np.where(np.isfinite(r), r * r, 0.0))])
    side = np.where(price >= ask, 1.0, np.where(price <= bid, -1.0, 0.0))
    change = np.concatenate([[0.0], np.sign(np.diff(price))])
    gap = np.concatenate([[np.nan], np.diff(t)])
    k = slice(n_ticks, None)  # rows with a full window
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(vol[k] > 0, short_vol[k] / vol[k], 1.0)
    intensity = n_ticks / np.maximum(elapsed[k], MIN_ELAPSED_SECONDS)
    return pd.DataFrame({
        "tick": index[k], "timestamp": ticks["timestamp"].iloc[k].reset_index(drop=True),
        "midprice": mid[k], "midprice_return": r[k], "rolling_vol": vol[k], "spread": spread[k],
        "trade_intensity": intensity, "spread_bps": spread[k] / mid[k] * 1e4,
        "messages_s": (index[k] + 1 - first[k]).astype(float),
        "realised_vol_s": np.sqrt(np.maximum(r2[index[k] + 1] - r2[first[k]], 0.0)),
        "vol_ratio": ratio,
        "trade_imbalance": _window_sum(side, n_ticks)[k] / n_ticks,
        "tick_rule_imbalance": _window_sum(change, n_ticks)[k] / n_ticks,
        "gap_seconds": gap[k],
    })


class StreamingFeaturizer:
    """The same features one message at a time, as a live consumer computes them: running sums
    over deques of the last N returns, sides and price changes, and over the messages of the last
    S seconds (O(1) per message). The benchmark's reference, and the proof that the vectorised
    table is what a live consumer sees."""

    def __init__(self, windows: Windows = Windows()):
        self.w = windows
        self.returns: deque[float] = deque()
        self.short: deque[float] = deque()
        self.sides: deque[float] = deque()
        self.changes: deque[float] = deque()
        self.times: deque[float] = deque()
        self.recent: deque[tuple[float, float]] = deque()  # (time, squared return) in the last S seconds
        self.sums = {"r": 0.0, "r2": 0.0, "short": 0.0, "short2": 0.0, "side": 0.0, "change": 0.0, "recent": 0.0}
        self.last_mid: float | None = None
        self.last_price: float | None = None
        self.last_time: float | None = None
        self.count = 0

    def _push(self, values: deque, value: float, limit: int, total: str, squares: str | None = None) -> None:
        values.append(value)
        self.sums[total] += value
        if squares:
            self.sums[squares] += value * value
        if len(values) > limit:
            old = values.popleft()
            self.sums[total] -= old
            if squares:
                self.sums[squares] -= old * old

    def update(self, time_s: float, price: float, bid: float, ask: float) -> dict | None:
        """Take one message (time in seconds); its features once N returns are in, else None."""
        w, sums = self.w, self.sums
        mid = (bid + ask) / 2
        r = math.log(mid / self.last_mid) if self.last_mid is not None else None
        squared = r * r if r is not None else 0.0
        self.recent.append((time_s, squared))
        sums["recent"] += squared
        while self.recent[0][0] <= time_s - w.seconds:
            sums["recent"] -= self.recent.popleft()[1]
        if r is not None:
            self._push(self.returns, r, w.ticks, "r", "r2")
            self._push(self.short, r, w.short_ticks, "short", "short2")
        self._push(self.sides, 1.0 if price >= ask else (-1.0 if price <= bid else 0.0), w.ticks, "side")
        change = 0.0 if self.last_price is None else (price > self.last_price) - (price < self.last_price)
        self._push(self.changes, float(change), w.ticks, "change")
        self.times.append(time_s)
        if len(self.times) > w.ticks + 1:
            self.times.popleft()
        gap = time_s - self.last_time if self.last_time is not None else float("nan")
        self.last_mid, self.last_price, self.last_time = mid, price, time_s
        self.count += 1
        if self.count <= w.ticks:
            return None
        n, k = w.ticks, w.short_ticks
        vol = math.sqrt(max((sums["r2"] - sums["r"] ** 2 / n) / (n - 1), 0.0))
        short_vol = math.sqrt(max((sums["short2"] - sums["short"] ** 2 / k) / (k - 1), 0.0))
        elapsed = self.times[-1] - self.times[0]
        return {
            "midprice": mid, "midprice_return": r, "rolling_vol": vol, "spread": ask - bid,
            "trade_intensity": n / max(elapsed, MIN_ELAPSED_SECONDS),
            "spread_bps": (ask - bid) / mid * 1e4, "messages_s": float(len(self.recent)),
            "realised_vol_s": math.sqrt(max(sums["recent"], 0.0)),
            "vol_ratio": short_vol / vol if vol > 0 else 1.0,
            "trade_imbalance": sums["side"] / n, "tick_rule_imbalance": sums["change"] / n,
            "gap_seconds": gap,
        }


def features_from_files(paths, product: str, windows: Windows = Windows()) -> pd.DataFrame:
    """Read the NDJSON files, order the messages in time and compute the features, exactly as the
    `raw_ticks` and `tick_features` assets do from the same files."""
    from odyssey.ticks.source import read_tick_files

    ticks, _ = read_tick_files(paths, product)
    return tick_features(order_ticks(ticks), windows)


@dataclass
class Replay:
    paths: list
    missing: list  # raw files that are gone: nothing was replayed
    features: pd.DataFrame | None
    sha256: str | None  # of every value (odyssey.hashing.frame_sha256)


def replay(names, landing, archive, product: str, windows: Windows = Windows()) -> Replay:
    """The features rebuilt from the raw files named `names` (the stored ticks' source files, in
    reading order), found in the archive or, for a run not yet settled, the landing folder."""
    from odyssey.ticks.source import resolve_sources

    paths = resolve_sources(names, landing, archive)
    missing = [p for p in paths if not p.exists()]
    if missing:
        return Replay(paths, missing, None, None)
    features = features_from_files(paths, product, windows)
    return Replay(paths, [], features, frame_sha256(features))
