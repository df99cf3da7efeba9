"""Benchmark the market-state index (Qdrant local mode) against an exact NumPy search measured in
the same run; the last line printed is one JSON object.

    python bench/analogs.py [--queries 500] [--million-queries 20] [--no-million]

1. The full preset's market states (15 tickers, 2010-2024), built as `market_states` builds them
   (the state map, clip thresholds -> regimes -> scaler -> PCA, fitted at the settings' cadence up
   to train_end); the persisted index holds the newest fit's states, which the rest measures.
2. build: writing every realised state but the newest session's into a fresh local-mode folder.
   upsert_day_ms: then the newest session (one state per ticker, whose forward return it
   realises), through the same `sync` the asset runs.
3. queries: `--queries` random (ticker, session) pairs, each the k=20 nearest states realised by
   that session, through the index's payload filter; the reference is the exact NumPy search
   (`exact_neighbours`) on the same ticker's vectors. recall@20 is the share of the reference's
   neighbours the index returns (1.0: identical sets). Then the same on the newest session (the
   live question), which needs no filter.
4. A simulated 1,000,000-point collection (random 16-dimensional states, one ticker), in local
   mode in memory: filtered and unfiltered queries, against the exact search on the same array.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
for folder in (ROOT, ROOT / "bench"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from recovery import market_and_inputs  # noqa: E402

from odyssey.fitting import feature_pipeline  # noqa: E402
from odyssey.memory import (MarketIndex, build_states, day_number, exact_neighbours, fit_ends,  # noqa: E402
                            newest_fit, payload_hash, realised_days, vector_columns)
from odyssey.settings import load_settings, preset_path  # noqa: E402

K = 20


def full_states() -> pd.DataFrame:
    """The newest fit's states of the full preset (what the persisted index holds)."""
    settings = load_settings(preset_path("full"), environ={})
    profile = settings.profile()
    _, inputs = market_and_inputs(settings)
    ends = fit_ends(inputs.dates, profile.train_end, settings.memory.first_fit_months, settings.memory.refit_months)
    states, _ = build_states(inputs, feature_pipeline(settings, scale=False), settings.forecast.horizon,
                             settings.memory.dimensions, ends)
    return newest_fit(states)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def index_against_exact(index: MarketIndex, states: pd.DataFrame, queries: int, live: bool, seed: int = 0) -> dict:
    """Random queries: past sessions after the fit's end (the payload filter), or the newest
    session (`live`: every stored state was realised by then, so no filter), each against the
    exact search."""
    rng = np.random.default_rng(seed)
    columns = vector_columns(states)
    by_ticker = {t: g.reset_index(drop=True) for t, g in states.groupby("ticker")}
    index_ms, exact_ms, recall = [], [], []
    for _ in range(queries):
        ticker = rng.choice(sorted(by_ticker))
        mine = by_ticker[ticker]
        askable = np.flatnonzero((mine["date"] > mine["fit_end"]).to_numpy())
        row = mine.iloc[askable[rng.integers(0, len(askable))]]
        if live:
            row = row.copy()
            row["date"] = mine["date"].max()
        vector = row[columns].to_numpy(np.float32)
        started = time.perf_counter()
        found = index.analogs(ticker, row["date"], vector, K)
        index_ms.append((time.perf_counter() - started) * 1e3)
        vectors, days = mine[columns].to_numpy(np.float32), realised_days(mine["realised_date"])
        started = time.perf_counter()
        rows, _ = exact_neighbours(vectors, days, vector[None, :], day_number([row["date"]]), K)
        exact_ms.append((time.perf_counter() - started) * 1e3)
        expected = set(mine["id"].to_numpy()[rows[0][rows[0] >= 0]])
        recall.append(len(expected & set(found["id"])) / max(len(expected), 1))
    return {"query_p50_ms": statistics.median(index_ms), "query_p99_ms": percentile(index_ms, 99),
            "reference_query_p50_ms": statistics.median(exact_ms), "recall_at_20": float(np.mean(recall))}


def simulated_million(points: int, queries: int, dims: int = 16, seed: int = 1) -> dict:
    from qdrant_client import QdrantClient

    rng = np.random.default_rng(seed)
    # dates cycle through 100,000 days (a pandas timedelta spans at most 106,751); ids are unique
    dates = pd.Timestamp("1700-01-01") + pd.to_timedelta(np.arange(points) % 100_000, unit="D")
    states = pd.DataFrame({"fit_end": pd.Timestamp("1699-12-31"), "id": np.arange(1, points + 1, dtype=np.int64),
                           "date": dates, "ticker": "SIM",
                           "regime": rng.integers(0, 3, points).astype(float),
                           "forward_return": rng.normal(0, 0.02, points),
                           "realised_date": dates + pd.Timedelta(days=7)})
    states = pd.concat([states, pd.DataFrame(rng.standard_normal((points, dims)).astype(np.float32),
                                             columns=[f"v{i}" for i in range(dims)])], axis=1)
    states["hash"] = payload_hash(states)
    index = MarketIndex(QdrantClient(":memory:"), "sim")
    started = time.perf_counter()
    index.sync(states, "sim", known=states.iloc[:0][["ticker", "id", "hash"]])
    build = time.perf_counter() - started
    vectors, days = states[vector_columns(states)].to_numpy(np.float32), realised_days(states["realised_date"])
    filtered, unfiltered, exact = [], [], []
    for q in range(queries):
        vector = rng.standard_normal(dims).astype(np.float32)
        date = dates[rng.integers(0, len(dates))]
        started = time.perf_counter()
        index.analogs("SIM", date, vector, K)
        filtered.append((time.perf_counter() - started) * 1e3)
        started = time.perf_counter()
        index.client.query_points(index.collection("SIM"), query=vector.tolist(), limit=K)
        unfiltered.append((time.perf_counter() - started) * 1e3)
        started = time.perf_counter()
        exact_neighbours(vectors, days, vector[None, :], day_number([date]), K)
        exact.append((time.perf_counter() - started) * 1e3)
    return {"million_points": points, "million_build_seconds": round(build, 1),
            "million_query_p50_ms": round(statistics.median(filtered), 1),
            "million_unfiltered_query_p50_ms": round(statistics.median(unfiltered), 1),
            "million_reference_query_p50_ms": round(statistics.median(exact), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--million-queries", type=int, default=20)
    parser.add_argument("--million-points", type=int, default=1_000_000)
    parser.add_argument("--no-million", action="store_true")
    args = parser.parse_args()

    from qdrant_client import QdrantClient

    states = full_states()
    newest = states["date"].max()
    # the day before the newest session: its forward returns as they stood then
    before = states[states["date"] < newest].copy()
    was_pending = before["realised_date"] >= newest
    before.loc[was_pending, ["forward_return", "realised_date"]] = [np.nan, pd.NaT]
    before["hash"] = payload_hash(before)
    with tempfile.TemporaryDirectory() as folder:
        client = QdrantClient(path=folder)
        try:
            index = MarketIndex(client, "market_states")
            started = time.perf_counter()
            _, known = index.sync(before, "bench")
            build = time.perf_counter() - started
            started = time.perf_counter()
            day, _ = index.sync(states, "bench", known)
            upsert_ms = (time.perf_counter() - started) * 1e3
            result = index_against_exact(index, states, args.queries, live=False)
            live = index_against_exact(index, states, args.queries, live=True)
        finally:
            client.close()
    out = {"bench": "analogs", "points": day["points"], "tickers": int(states["ticker"].nunique()),
           "points_per_ticker": int(day["points"] / states["ticker"].nunique()), "dimensions": len(vector_columns(states)),
           "build_seconds": round(build, 2), "upsert_day_ms": round(upsert_ms, 1), "upserted_on_the_day": day["upserted"],
           **{k: round(v, 3) for k, v in result.items()},
           "live_query_p50_ms": round(live["query_p50_ms"], 3), "live_query_p99_ms": round(live["query_p99_ms"], 3),
           "live_reference_query_p50_ms": round(live["reference_query_p50_ms"], 3),
           "live_recall_at_20": round(live["recall_at_20"], 3)}
    print(f"{'measurement':<58} {'value':>12}")
    print(f"{'points (realised states), one collection per ticker':<58} {out['points']:>12,}")
    print(f"{'build, every state but the newest session (s)':<58} {out['build_seconds']:>12.2f}")
    print(f"{'one new session upserted (ms, ' + str(day['upserted']) + ' points)':<58} {out['upsert_day_ms']:>12.1f}")
    print(f"{'query p50, local mode with the realised filter (ms)':<58} {out['query_p50_ms']:>12.2f}")
    print(f"{'query p99 (ms)':<58} {out['query_p99_ms']:>12.2f}")
    print(f"{'reference: exact NumPy search, same queries, p50 (ms)':<58} {out['reference_query_p50_ms']:>12.3f}")
    print(f"{'recall@20 against the exact search':<58} {out['recall_at_20']:>12.3f}")
    print(f"{'live query p50, the newest session: no filter needed (ms)':<58} {out['live_query_p50_ms']:>12.2f}")
    print(f"{'live query p99 (ms)':<58} {out['live_query_p99_ms']:>12.2f}")
    print(f"{'reference: exact NumPy search, same live queries, p50 (ms)':<58} "
          f"{out['live_reference_query_p50_ms']:>12.3f}")
    print(f"{'live recall@20 against the exact search':<58} {out['live_recall_at_20']:>12.3f}")
    if not args.no_million:
        million = simulated_million(args.million_points, args.million_queries)
        out.update(million)
        print(f"{'simulated ' + format(args.million_points, ',') + ' points: build (s)':<58} "
              f"{million['million_build_seconds']:>12.1f}")
        print(f"{'  query p50 with the realised filter (ms)':<58} {million['million_query_p50_ms']:>12.1f}")
        print(f"{'  query p50 without a filter (ms)':<58} {million['million_unfiltered_query_p50_ms']:>12.1f}")
        print(f"{'  reference: exact NumPy search p50 (ms)':<58} {million['million_reference_query_p50_ms']:>12.1f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
