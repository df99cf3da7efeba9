"""Ticker messages: the seeded synthetic tick market, and NDJSON files in the exchange's message
format (one file per UTC day), written and read.

A message, one JSON object per line, as the exchange's WebSocket `ticker` channel sends it::

    {"channel": "ticker", "timestamp": "2025-11-17T00:34:11.02474387Z", "sequence_num": 0,
     "events": [{"type": "snapshot", "tickers": [{"type": "ticker", "product_id": "BTC-USD",
                 "price": "94655.99", "best_bid": "94655.98", "best_ask": "94655.99"}]}]}

Other fields (volume_24_h, best_bid_quantity, ...) are ignored, other products and channels are
skipped, and a missing bid or ask falls back to the price, as the seed's featurizer did. A line
that is not such a message is an error naming the file and its line numbers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from odyssey.landing import landing_files, open_regular
from odyssey.settings import TickSourceSettings
from odyssey.sources.csv_source import SourceError, _lines

SECONDS_PER_DAY = 86_400
PRICE_TICK = 0.01
SUFFIX = ".ndjson"


# --- the synthetic market -------------------------------------------------------------------------
def _hawkes_times(rng: np.random.Generator, horizon: float, base_rate: float, branching: float,
                  delay: float) -> np.ndarray:
    """Arrival times (seconds in [0, horizon)) of a Hawkes process with an exponential kernel,
    built as its cluster (branching) process one generation at a time, so the whole span is
    vectorised: immigrants at `base_rate`, each message triggering Poisson(`branching`) more
    after exponential delays of mean `delay`."""
    generation = rng.uniform(0.0, horizon, rng.poisson(base_rate * horizon))
    times = [generation]
    while branching > 0 and len(generation):
        children = rng.poisson(branching, len(generation))
        generation = np.repeat(generation, children) + rng.exponential(delay, int(children.sum()))
        generation = generation[generation < horizon]
        times.append(generation)
    return np.sort(np.concatenate(times), kind="stable")


def generate_ticks(config: TickSourceSettings, product: str = "BTC-USD", days: int | None = None) -> pd.DataFrame:
    """The first `days` days (default `config.days`) of the synthetic market: columns
    timestamp (UTC, ns), product_id, price, best_bid, best_ask. The same config gives the same
    ticks, and more days continue the same market (a longer draw is cut, never re-drawn)."""
    from scipy.signal import lfilter  # imported when ticks are simulated

    days = config.days if days is None else days
    horizon = float(days * SECONDS_PER_DAY)
    rng = np.random.default_rng(config.seed)
    # the span is drawn day by day from one stream per day, so asking for more days keeps the first ones
    rate = config.ticks_per_day / SECONDS_PER_DAY
    base_rate = rate * (1.0 - config.branching_ratio)
    day_seeds = rng.integers(0, 2**63 - 1, days)
    times, vol_shocks, signs, spreads, sides = [], [], [], [], []
    half_life = config.vol_half_life_seconds
    a = 0.5 ** (1.0 / half_life)
    for day, seed in enumerate(day_seeds):
        day_rng = np.random.default_rng(int(seed))
        t = _hawkes_times(day_rng, SECONDS_PER_DAY, base_rate, config.branching_ratio, config.excitation_seconds)
        times.append(t + day * SECONDS_PER_DAY)
        vol_shocks.append(day_rng.standard_normal(SECONDS_PER_DAY))
        signs.append(day_rng.standard_normal(len(t)))
        spreads.append(day_rng.uniform(size=len(t)))
        sides.append(day_rng.uniform(size=len(t)))
    t = np.concatenate(times)
    seconds = np.minimum(t.astype(np.int64), int(horizon) - 1)
    # persistent log-volatility on a one-second grid: an AR(1) with the configured half-life
    shocks = np.concatenate(vol_shocks)
    log_vol = lfilter([np.sqrt(1 - a * a) * config.vol_of_vol], [1.0, -a], shocks)
    # the arrival intensity at each second (the Hawkes kernel applied to the counts so far)
    counts = np.bincount(seconds, minlength=int(horizon)).astype(float)
    decay = np.exp(-1.0 / config.excitation_seconds)
    excitation = lfilter([0.0, 1.0], [1.0, -decay], counts) * config.branching_ratio / config.excitation_seconds
    intensity = base_rate + excitation
    level = np.exp(log_vol[seconds] - 0.5 * config.vol_of_vol**2) * (intensity[seconds] / rate) ** config.intensity_coupling
    if config.drift_from_day is not None:
        level = level * np.where(seconds >= config.drift_from_day * SECONDS_PER_DAY, config.drift_multiplier, 1.0)
    sigma = config.tick_vol_bps * 1e-4 * level
    mid = config.base_price * np.exp(np.cumsum(sigma * np.concatenate(signs)))
    # spread in cents: one to a few (mean about 3), wider when the market moves fast
    u = np.concatenate(spreads)
    spread_ticks = 1 + np.floor(-np.log1p(-u) * 2.0 * level).astype(np.int64)
    bid = np.floor((mid - spread_ticks * PRICE_TICK / 2) / PRICE_TICK) * PRICE_TICK
    bid = np.round(bid, 2)
    ask = np.round(bid + spread_ticks * PRICE_TICK, 2)
    price = np.where(np.concatenate(sides) < 0.5, bid, ask)
    start = pd.Timestamp(config.start, tz="UTC").value
    stamps = start + np.round(t * 1e9).astype(np.int64)
    return pd.DataFrame({"timestamp": pd.DatetimeIndex(stamps.view("datetime64[ns]")).tz_localize("UTC"),
                         "product_id": product,
                         "price": price, "best_bid": bid, "best_ask": ask})


# --- NDJSON files ---------------------------------------------------------------------------------
def message_lines(ticks: pd.DataFrame, first_sequence: int = 0) -> list[str]:
    """One ticker message per tick, in the exchange's format (prices as strings, 2 decimals)."""
    stamps = ticks["timestamp"].dt.tz_convert("UTC")
    nanos = stamps.astype("int64").to_numpy()
    base = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S").to_numpy()
    fractions = nanos % 1_000_000_000
    lines = []
    for i, (stamp, fraction, product, price, bid, ask) in enumerate(zip(
            base, fractions, ticks["product_id"].to_numpy(), ticks["price"].to_numpy(), ticks["best_bid"].to_numpy(),
            ticks["best_ask"].to_numpy())):
        lines.append(json.dumps({
            "channel": "ticker", "timestamp": f"{stamp}.{fraction:09d}Z", "sequence_num": first_sequence + i,
            "events": [{"type": "snapshot" if i == 0 else "update", "tickers": [{
                "type": "ticker", "product_id": product, "price": f"{price:.2f}", "best_bid": f"{bid:.2f}",
                "best_ask": f"{ask:.2f}"}]}]}, separators=(",", ":")))
    return lines


def day_file_name(day: pd.Timestamp, product: str) -> str:
    return f"ticks_{product}_{pd.Timestamp(day):%Y%m%d}{SUFFIX}"


def write_days(ticks: pd.DataFrame, folder: Path) -> list[Path]:
    """One NDJSON file per UTC day (ticks_<product>_<YYYYMMDD>.ndjson), each written whole (a
    temporary name, then a rename), so a watcher never reads half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    days = ticks["timestamp"].dt.tz_convert("UTC").dt.floor("D")
    for day, part in ticks.groupby(days, sort=True):
        product = str(part["product_id"].iloc[0])
        path = folder / day_file_name(day, product)
        tmp = path.with_name("." + path.name + ".tmp")
        tmp.write_text("\n".join(message_lines(part)) + "\n")
        tmp.rename(path)
        written.append(path)
    return written


def tick_files(folder: Path) -> list[Path]:
    """The regular NDJSON files of a folder, in name order (days in order for the written names);
    links and special files are left out (odyssey.landing.refusal)."""
    return landing_files(folder, (SUFFIX,))


@dataclass
class TickFile:
    path: Path
    sha256: str
    ticks: pd.DataFrame  # timestamp, product_id, price, best_bid, best_ask, source_line
    skipped: int  # messages of other channels or products


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_tick_file(path: Path, product: str) -> TickFile:
    """Parse one NDJSON file of ticker messages (module docstring): the `product`'s ticks in file
    order, with their line numbers. SourceError names the file, and every problem with the lines
    it is on."""
    rows: list[tuple] = []
    problems: dict[str, list[int]] = {}
    skipped = 0
    digest = hashlib.sha256()
    with open_regular(path) as handle:  # a regular file only: no link followed, no pipe waited on
        for line_no, raw in enumerate(handle, start=1):
            digest.update(raw)
            if not raw.strip():
                continue
            try:
                message = json.loads(raw)
            except ValueError:
                problems.setdefault("not JSON", []).append(line_no)
                continue
            if not isinstance(message, dict) or message.get("channel") != "ticker":
                skipped += 1
                continue
            stamp, events = message.get("timestamp"), message.get("events")
            if not isinstance(stamp, str) or not isinstance(events, list) or \
                    not all(isinstance(e, dict) and isinstance(e.get("tickers", []), list) for e in events):
                problems.setdefault("a ticker message needs 'timestamp' and a list of 'events' with lists of "
                                    "'tickers'", []).append(line_no)
                continue
            for ticker in (t for e in events for t in e.get("tickers", [])):
                if not isinstance(ticker, dict):
                    problems.setdefault("a ticker is not an object", []).append(line_no)
                    continue
                if ticker.get("product_id") != product:
                    skipped += 1
                    continue
                price = _number(ticker.get("price"))
                quotes = [price if ticker.get(f) in (None, "") else _number(ticker[f]) for f in ("best_bid", "best_ask")]
                for field, value in zip(("price", "best_bid", "best_ask"), (price, *quotes)):
                    if value is None:
                        problems.setdefault(f"field {field!r} is not a number", []).append(line_no)
                if price is not None and None not in quotes:
                    rows.append((stamp, price, *quotes, line_no))
    if problems:
        raise SourceError(f"{path.name}: " + "; ".join(f"{what} on {_lines(lines)}" for what, lines in problems.items()))
    frame = pd.DataFrame(rows, columns=["timestamp", "price", "best_bid", "best_ask", "source_line"])
    stamps = pd.to_datetime(frame["timestamp"], format="ISO8601", utc=True, errors="coerce")
    if stamps.isna().any():
        raise SourceError(f"{path.name}: field 'timestamp' is not an ISO-8601 time on "
                          f"{_lines(frame.loc[stamps.isna(), 'source_line'])}")
    frame["timestamp"] = stamps.astype("datetime64[ns, UTC]")
    frame.insert(1, "product_id", product)
    return TickFile(path, digest.hexdigest(), frame, skipped)


def read_tick_files(paths: Iterable[Path], product: str) -> tuple[pd.DataFrame, list[TickFile]]:
    """Every file's ticks, in file order then line order, with `source_file`; and the files read.
    Features are computed on this order, so the same files always give the same features."""
    files = [read_tick_file(Path(p), product) for p in paths]
    frames = [f.ticks.assign(source_file=f.path.name) for f in files if len(f.ticks)]
    if not frames:
        empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in [
            ("timestamp", "datetime64[ns, UTC]"), ("product_id", "object"), ("price", float), ("best_bid", float),
            ("best_ask", float), ("source_line", "int64"), ("source_file", "object")]})
        return empty, files
    return pd.concat(frames, ignore_index=True), files


def resolve_sources(names: Iterable[str], landing: Path, archive: Path) -> list[Path]:
    """The files behind stored ticks (their `source_file` names, in reading order): archived, or
    still in the landing folder while their ingestion run has not finished."""
    return [archive / n if (archive / n).exists() else landing / n for n in names]


def next_days(config: TickSourceSettings, product: str, after: pd.Timestamp | None, days: int) -> pd.DataFrame:
    """The synthetic market's next `days` whole UTC days after the one holding `after` (the same
    market continued; from its first day when `after` is None)."""
    start = pd.Timestamp(config.start, tz="UTC")
    first = 0 if after is None else (pd.Timestamp(after).tz_convert("UTC").floor("D") - start).days + 1
    ticks = generate_ticks(config, product, days=first + days)
    return ticks[ticks["timestamp"] >= start + pd.Timedelta(days=first)].reset_index(drop=True)
