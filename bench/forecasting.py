"""Benchmark the per-ticker XGBoost walk-forward (full profile) and model inference, each
against a reference measured in the same run; the last line is one JSON object."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from odyssey import features as F  # noqa: E402
from odyssey.cleaning import clean_alt, clean_prices  # noqa: E402
from odyssey.returns import clip_returns, fit_clip_thresholds, log_returns  # noqa: E402
from odyssey.sources.synthetic import generate_market  # noqa: E402
from odyssey.universe import get_profile  # noqa: E402
from odyssey.walkforward import XGBParams, run_walkforward, ticker_frame  # noqa: E402


def build_frames(profile_name: str) -> dict[str, pd.DataFrame]:
    """Per-ticker model frames for a profile, built exactly as the assets build them."""
    profile = get_profile(profile_name)
    market = generate_market(profile)
    cleaned = clean_prices(market.data.prices, market.data.actions, list(profile.tickers), profile.start)
    calendar = pd.DatetimeIndex(sorted(cleaned.prices["date"].unique()))
    alt = clean_alt(market.data.alt, calendar)
    raw = log_returns(cleaned.prices)
    returns = clip_returns(raw, fit_clip_thresholds(raw, profile.train_end))
    table = F.build_features(cleaned.prices, returns, alt, profile.train_end).table
    return {t: ticker_frame(table, cleaned.prices, t, F.FEATURE_NAMES) for t in profile.tickers}


def _one(args: tuple[pd.DataFrame, XGBParams]) -> tuple[int, int]:
    frame, params = args
    result = run_walkforward(frame, F.FEATURE_NAMES, params)
    return len(result.folds), len(result.predictions)


def time_walkforward(frames: dict[str, pd.DataFrame], params: XGBParams, workers: int = 1) -> tuple[float, int, int]:
    """Seconds for every ticker's walk-forward; folds per ticker; out-of-sample rows."""
    started = time.perf_counter()
    jobs = [(frame, params) for frame in frames.values()]
    if workers > 1:
        # spawn, not fork: OpenMP (XGBoost's threads) does not survive a fork
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            out = list(pool.map(_one, jobs))
    else:
        out = [_one(job) for job in jobs]
    return time.perf_counter() - started, out[0][0], sum(n for _, n in out)


def inference(frames: dict[str, pd.DataFrame], params: XGBParams) -> dict[str, float]:
    """Batch throughput, row-by-row reference and single-ticker latency of one final-size model."""
    frame = next(iter(frames.values()))
    usable = frame.dropna(subset=["Return_5d_forward"])
    x = usable[list(F.FEATURE_NAMES)].to_numpy(np.float32)
    y = usable["Return_5d_forward"].to_numpy()
    booster = xgb.train(params.booster_params(), xgb.DMatrix(x, label=y), num_boost_round=300)
    batch = np.vstack([f[list(F.FEATURE_NAMES)].to_numpy(np.float32) for f in frames.values()])
    booster.inplace_predict(batch[:10])  # warm up
    started = time.perf_counter()
    repeats = 5
    for _ in range(repeats):
        booster.inplace_predict(batch)
    batch_rate = repeats * len(batch) / (time.perf_counter() - started)
    rows = batch[:500]
    started = time.perf_counter()
    for row in rows:
        booster.predict(xgb.DMatrix(row[None, :]))
    reference_rate = len(rows) / (time.perf_counter() - started)
    latencies = []
    one = batch[-1:][:, :]
    for _ in range(2000):
        t = time.perf_counter()
        booster.inplace_predict(one)
        latencies.append((time.perf_counter() - t) * 1e3)
    return {"predictions_per_second": batch_rate, "reference_predictions_per_second": reference_rate,
            "single_latency_ms": statistics.median(latencies), "batch_rows": len(batch)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="full")
    parser.add_argument("--reference-tickers", type=int, default=3,
                        help="tickers the slow reference runs on; its time is scaled to all tickers")
    args = parser.parse_args()
    frames = build_frames(args.profile)
    params = XGBParams(nthread=2)
    seconds, folds, oos = time_walkforward(frames, params)
    parallel_seconds, _, _ = time_walkforward(frames, params.model_copy(update={"nthread": 1}), workers=2)
    subset = dict(list(frames.items())[: args.reference_tickers])
    reference = params.model_copy(update={"max_bin": 256})  # XGBoost's default binning, as the seed ran it
    ref_subset_seconds, _, _ = time_walkforward(subset, reference)
    reference_seconds = ref_subset_seconds * len(frames) / len(subset)
    inf = inference(frames, params)
    print(f"profile {args.profile}: {len(frames)} tickers, {folds} folds each, {oos} out-of-sample rows, "
          f"{os.cpu_count()} cores")
    print(f"{'measurement':<58} {'value':>12}")
    print(f"{'walk-forward, tickers in sequence, nthread=2 (s)':<58} {seconds:>12.1f}")
    print(f"{'walk-forward, 2 processes x nthread=1 (s)':<58} {parallel_seconds:>12.1f}")
    print(f"{'reference: max_bin=256, scaled from ' + str(len(subset)) + ' tickers (s)':<58} {reference_seconds:>12.1f}")
    print(f"{'batch inference (predictions/s)':<58} {inf['predictions_per_second']:>12,.0f}")
    print(f"{'reference: row-by-row DMatrix predict (predictions/s)':<58} {inf['reference_predictions_per_second']:>12,.0f}")
    print(f"{'single-ticker latency, median (ms)':<58} {inf['single_latency_ms']:>12.3f}")
    print(json.dumps({
        "bench": "forecasting",
        "walkforward_seconds": round(min(seconds, parallel_seconds), 2),
        "walkforward_sequential_seconds": round(seconds, 2),
        "reference_walkforward_seconds": round(reference_seconds, 2),
        "speedup": round(reference_seconds / min(seconds, parallel_seconds), 2),
        "predictions_per_second": round(inf["predictions_per_second"]),
        "reference_predictions_per_second": round(inf["reference_predictions_per_second"]),
        "single_latency_ms": round(inf["single_latency_ms"], 4),
        "folds": folds,
        "tickers": len(frames),
    }))


if __name__ == "__main__":
    main()
