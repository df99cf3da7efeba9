"""Benchmark the per-ticker XGBoost walk-forward (full preset, the feature pipeline fitted inside
every fold) and model inference, each against a reference measured in full in the same run; the
last line printed is one JSON object. The leakage canary's cost is bench/canary.py's.

    walk-forward: odyssey.walkforward.WalkForward.run for every ticker, against what a competent
                  user writes with the same building blocks: per fold, the pipeline's one-call
                  fit_transform on the fold's training window, the fold's rows picked from a pandas
                  frame, one DMatrix per part, and the same XGBoost parameters and early stopping.
                  Both run on all tickers (nothing is scaled up from a sample) and must give the
                  same predictions.
    inference:    Booster.inplace_predict on every feature row of the universe against one DMatrix
                  for the whole batch and Booster.predict; single-row latency of both.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.features import prepare_inputs  # noqa: E402
from odyssey.features import REGISTRY_VERSION  # noqa: E402
from odyssey.fitting import MarketInputs, feature_pipeline  # noqa: E402
from odyssey.models import load_verified, serialize, train_final_model  # noqa: E402
from odyssey.settings import Settings, XGBParams, load_settings, preset_path  # noqa: E402
from odyssey.walkforward import Fold, WalkForward, walkforward_from_settings  # noqa: E402


@dataclass
class FirstFolds(WalkForward):
    """The walk-forward limited to its first `max_folds` folds (None: all)."""

    max_folds: int | None = None

    def folds(self, frame: pd.DataFrame) -> list[Fold]:
        return super().folds(frame)[: self.max_folds]


def make_walkforward(settings: Settings, params: XGBParams, max_folds: int | None) -> WalkForward:
    wf = walkforward_from_settings(settings, params)
    return FirstFolds(wf.pipeline, wf.params, wf.config, wf.horizon, wf.costs, max_folds=max_folds)


def reference_walkforward(wf: WalkForward, inputs: MarketInputs, ticker: str) -> pd.DataFrame:
    """The reference: the same fold windows, features, model and early stopping, written plainly
    (the pipeline refitted and recomputed in full per fold, pandas row selection, one DMatrix per
    train / validation / test part)."""
    frame = wf.frame(inputs, ticker)
    names = list(wf.pipeline.names)
    params = wf.params
    out = []
    for fold in wf.folds(frame):
        train_end = frame["date"].iloc[fold.train].max()
        _, table = wf.pipeline.fit_transform(inputs, end=train_end, tickers=[ticker])
        data = frame.merge(table, on=["date", "ticker"], how="left")
        train, val, test = (data.iloc[rows] for rows in (fold.train, fold.val, fold.test))
        booster = xgb.train(params.booster_params(), xgb.DMatrix(train[names], label=train["target"]),
                            num_boost_round=params.n_estimators,
                            evals=[(xgb.DMatrix(val[names], label=val["target"]), "validation")],
                            early_stopping_rounds=params.early_stopping_rounds, verbose_eval=False)
        prediction = booster.predict(xgb.DMatrix(test[names]), iteration_range=(0, booster.best_iteration + 1))
        out.append(pd.DataFrame({"date": test["date"].to_numpy(), "fold": fold.k, "prediction": prediction}))
    return pd.concat(out, ignore_index=True)


# --- the walk-forward in worker processes ------------------------------------------------------
_WORKER: dict = {}


def _worker_run(job: tuple[str, str, dict, int | None]) -> int:
    settings_json, ticker, params, max_folds = job
    if "inputs" not in _WORKER:
        settings = Settings.model_validate_json(settings_json)
        _WORKER.update(settings=settings, inputs=prepare_inputs(settings))
    wf = make_walkforward(_WORKER["settings"], XGBParams(**params), max_folds)
    return len(wf.run(_WORKER["inputs"], ticker).predictions)


def parallel_walkforward(settings: Settings, params: XGBParams, max_folds: int | None, workers: int) -> float:
    """Seconds for every ticker's walk-forward spread over `workers` processes (nthread=1 each),
    excluding the workers' start-up and their one-off input preparation."""
    one = params.model_copy(update={"nthread": 1}).model_dump()
    # spawn, not fork: OpenMP (XGBoost's threads) does not survive a fork
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        warm = settings.universe.tickers[:workers]
        list(pool.map(_worker_run, [(settings.model_dump_json(), t, one, 1) for t in warm]))  # start and prepare
        started = time.perf_counter()
        list(pool.map(_worker_run, [(settings.model_dump_json(), t, one, max_folds)
                                    for t in settings.universe.tickers]))
        return time.perf_counter() - started


# --- inference ---------------------------------------------------------------------------------
def inference(settings: Settings, inputs: MarketInputs, params: XGBParams) -> dict[str, float]:
    """Batch throughput and single-row latency of one final-size model (300 rounds on a ticker's
    labelled rows), inplace_predict against one DMatrix per batch + predict."""
    pipeline = feature_pipeline(settings)
    _, table = pipeline.fit_transform(inputs, end=pd.Timestamp(settings.profile().train_end))
    names = list(pipeline.names)
    wf = walkforward_from_settings(settings, params)
    labelled = wf.frame(inputs, settings.universe.tickers[0]).merge(table, on=["date", "ticker"])
    booster = xgb.train(params.booster_params(), xgb.DMatrix(labelled[names].to_numpy(np.float32),
                                                             label=labelled["target"]), num_boost_round=300)
    batch = table[names].to_numpy(np.float32)
    booster.inplace_predict(batch[:10])  # warm up
    repeats = 5

    def rate(fn) -> tuple[float, np.ndarray]:
        started = time.perf_counter()
        for _ in range(repeats):
            out = fn()
        return repeats * len(batch) / (time.perf_counter() - started), out

    fast_rate, fast = rate(lambda: booster.inplace_predict(batch))
    ref_rate, ref = rate(lambda: booster.predict(xgb.DMatrix(batch)))
    if not np.allclose(fast, ref, rtol=1e-6, atol=1e-9):
        raise AssertionError("inplace_predict and DMatrix predict disagree")

    def latency(fn) -> float:
        one = batch[-1:]
        times = []
        for _ in range(2000):
            started = time.perf_counter()
            fn(one)
            times.append((time.perf_counter() - started) * 1e3)
        return statistics.median(times)

    return {"predictions_per_second": fast_rate, "reference_predictions_per_second": ref_rate,
            "single_latency_ms": latency(booster.inplace_predict),
            "reference_single_latency_ms": latency(lambda x: booster.predict(xgb.DMatrix(x))),
            "batch_rows": len(batch), **production_latency(settings, inputs, params, batch[-1:])}


def production_latency(settings: Settings, inputs: MarketInputs, params: XGBParams, row: np.ndarray,
                       repeats: int = 200) -> dict[str, float]:
    """One forecast the way the batch forecasts serve it: the final model as stored (UBJSON bytes
    and its signed card), loaded only after its hash, signature and feature registry verify, then
    predict. Cold: verify + load + predict on every call. Warm: the verified model kept in a cache
    keyed by its SHA-256, then predict. Medians of `repeats` calls."""
    key = b"bench-key"
    wf = walkforward_from_settings(settings, params)
    booster, card = train_final_model(wf, inputs, settings.universe.tickers[0], REGISTRY_VERSION)
    data, card = serialize(booster, card, key)
    names = card.feature_names
    cache: dict[str, xgb.Booster] = {}

    def cold(x):
        return load_verified(data, card, key, REGISTRY_VERSION, names).inplace_predict(x)

    def warm(x):
        if card.sha256 not in cache:
            cache[card.sha256] = load_verified(data, card, key, REGISTRY_VERSION, names)
        return cache[card.sha256].inplace_predict(x)

    def median_ms(fn) -> float:
        fn(row)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            fn(row)
            times.append((time.perf_counter() - started) * 1e3)
        return statistics.median(times)

    return {"production_cold_latency_ms": median_ms(cold), "production_warm_latency_ms": median_ms(warm),
            "model_bytes": len(data), "model_rounds": card.best_iteration + 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", "--profile", dest="preset", default="full", help="settings preset (settings/)")
    parser.add_argument("--max-folds", type=int, default=None,
                        help="time only each ticker's first N folds, for Odyssey and the reference alike "
                             "(default: all)")
    parser.add_argument("--workers", type=int, default=2,
                        help="also time the walk-forward over this many processes x nthread=1 (1: skip)")
    parser.add_argument("--inference-only", action="store_true",
                        help="time only batch inference and the single-forecast latencies")
    args = parser.parse_args()

    settings = load_settings(preset_path(args.preset), environ={})
    if args.inference_only:
        inf = inference(settings, prepare_inputs(settings), settings.forecast.xgboost.model_copy(update={"nthread": 2}))
        print(json.dumps({"bench": "forecasting_inference", **{k: round(v, 4) if isinstance(v, float) else v
                                                               for k, v in inf.items()}}))
        return
    tickers = list(settings.universe.tickers)
    params = settings.forecast.xgboost.model_copy(update={"nthread": 2})
    inputs = prepare_inputs(settings)
    wf = make_walkforward(settings, params, args.max_folds)
    full_wf = walkforward_from_settings(settings, params)

    warm = make_walkforward(settings, params, 1)  # first calls (imports, XGBoost start-up) stay out of the timings
    warm.run(inputs, tickers[0])
    reference_walkforward(warm, inputs, tickers[0])

    rows = []
    max_diff = 0.0
    for ticker in tickers:
        # Odyssey and reference interleaved per ticker, so that load from other processes on a
        # shared machine falls on both alike; CPU seconds (every thread of this process) are
        # recorded beside wall-clock seconds for the same reason.
        started, cpu = time.perf_counter(), time.process_time()
        result = wf.run(inputs, ticker)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        started, cpu = time.perf_counter(), time.process_time()
        reference = reference_walkforward(wf, inputs, ticker)
        ref_seconds, ref_cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        ours = result.predictions
        if len(ours) != len(reference) or not (ours["date"].to_numpy() == reference["date"].to_numpy()).all():
            raise AssertionError(f"{ticker}: Odyssey and the reference predict different rows")
        max_diff = max(max_diff, float(np.abs(ours["prediction"].to_numpy() - reference["prediction"]).max()))
        all_folds = len(full_wf.folds(full_wf.frame(inputs, ticker)))
        rows.append({"ticker": ticker, "folds": len(result.folds), "all_folds": all_folds, "oos_rows": len(ours),
                     "seconds": seconds, "reference_seconds": ref_seconds,
                     "cpu_seconds": cpu_seconds, "reference_cpu_seconds": ref_cpu_seconds,
                     # boosting rounds trained (early stopping runs `early_stopping_rounds` past the best)
                     "trees": int(np.minimum(result.folds["best_iteration"] + 1 + params.early_stopping_rounds,
                                             params.n_estimators).sum())})
        r = rows[-1]
        print(f"  {ticker:<6} {r['folds']:>3} folds  odyssey {seconds:6.1f} s ({cpu_seconds:6.1f} cpu)  reference "
              f"{ref_seconds:6.1f} s ({ref_cpu_seconds:6.1f} cpu)", flush=True)
    table = pd.DataFrame(rows)
    seconds = float(table["seconds"].sum())
    reference_seconds = float(table["reference_seconds"].sum())
    parallel_seconds = (parallel_walkforward(settings, params, args.max_folds, args.workers)
                        if args.workers > 1 else None)
    inf = inference(settings, inputs, params)

    folds, all_folds = int(table["folds"].iloc[0]), int(table["all_folds"].iloc[0])
    partial = args.max_folds is not None and folds < all_folds
    fold_label = f"first {folds} of {all_folds} folds" if partial else f"all {folds} folds"
    load = os.getloadavg()
    print()
    print(f"preset {settings.name}: {len(tickers)} tickers, {fold_label} each, {int(table['oos_rows'].sum())} "
          f"out-of-sample rows, XGBoost {settings.forecast.xgboost.max_depth}-deep trees, eta "
          f"{params.learning_rate}, early stopping {params.early_stopping_rounds}, max_bin {params.max_bin}, "
          f"{os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end")
    print(f"{'':<8} {'rounds':>6} {'-- wall-clock seconds ---':>25} {'--- CPU seconds ---':>20}")
    print(f"{'ticker':<8} {'boosted':>6} {'odyssey':>8} {'reference':>10} {'ratio':>5} {'odyssey':>8} "
          f"{'reference':>10}")
    for r in table.itertuples():
        print(f"{r.ticker:<8} {r.trees:>6d} {r.seconds:>8.1f} {r.reference_seconds:>10.1f} "
              f"{r.reference_seconds / r.seconds:>5.2f} {r.cpu_seconds:>8.1f} {r.reference_cpu_seconds:>10.1f}")
    print(f"{'all':<8} {int(table['trees'].sum()):>6d} {seconds:>8.1f} {reference_seconds:>10.1f} "
          f"{reference_seconds / seconds:>5.2f} {table['cpu_seconds'].sum():>8.1f} "
          f"{table['reference_cpu_seconds'].sum():>10.1f}")
    print(f"predictions: Odyssey and the reference agree to {max_diff:.3g} (max abs difference)")
    print()
    print(f"{'measurement':<66} {'value':>12}")
    print(f"{'walk-forward, ' + fold_label + ', tickers in sequence, nthread=2 (s)':<66} {seconds:>12.1f}")
    if parallel_seconds is not None:
        print(f"{'walk-forward, ' + str(args.workers) + ' processes x nthread=1 (s)':<66} {parallel_seconds:>12.1f}")
    print(f"{'reference: plain per-fold loop, same model, all ' + str(len(tickers)) + ' tickers (s)':<66} "
          f"{reference_seconds:>12.1f}")
    print(f"{'batch inference, inplace_predict (predictions/s)':<66} {inf['predictions_per_second']:>12,.0f}")
    print(f"{'reference: one DMatrix per batch + predict (predictions/s)':<66} "
          f"{inf['reference_predictions_per_second']:>12,.0f}")
    print(f"{'single-row latency, inplace_predict, median (ms)':<66} {inf['single_latency_ms']:>12.3f}")
    print(f"{'reference: single-row DMatrix + predict, median (ms)':<66} {inf['reference_single_latency_ms']:>12.3f}")
    print(f"{'production path, cold: verify + load the stored model + predict (ms)':<66} "
          f"{inf['production_cold_latency_ms']:>12.3f}")
    print(f"{'production path, warm: verified model cached by SHA-256 + predict (ms)':<66} "
          f"{inf['production_warm_latency_ms']:>12.3f}")
    best = min(seconds, parallel_seconds) if parallel_seconds is not None else seconds
    print(json.dumps({
        "bench": "forecasting",
        "walkforward_seconds": round(best, 2),
        "walkforward_sequential_seconds": round(seconds, 2),
        "walkforward_parallel_seconds": round(parallel_seconds, 2) if parallel_seconds is not None else None,
        "reference_walkforward_seconds": round(reference_seconds, 2),
        "speedup": round(reference_seconds / best, 2),
        "sequential_speedup": round(reference_seconds / seconds, 2),
        "prediction_max_abs_diff": max_diff,
        "predictions_per_second": round(inf["predictions_per_second"]),
        "reference_predictions_per_second": round(inf["reference_predictions_per_second"]),
        "single_latency_ms": round(inf["single_latency_ms"], 4),
        "reference_single_latency_ms": round(inf["reference_single_latency_ms"], 4),
        "production_cold_latency_ms": round(inf["production_cold_latency_ms"], 4),
        "production_warm_latency_ms": round(inf["production_warm_latency_ms"], 4),
        "walkforward_seconds_per_ticker": {r.ticker: round(r.seconds, 2) for r in table.itertuples()},
        "walkforward_cpu_seconds": round(float(table["cpu_seconds"].sum()), 2),
        "reference_walkforward_cpu_seconds": round(float(table["reference_cpu_seconds"].sum()), 2),
        "folds": folds,
        "folds_in_walkforward": all_folds,
        "tickers": len(tickers),
    }))


if __name__ == "__main__":
    main()
