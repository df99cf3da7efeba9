"""Benchmark the tick pipeline; the last line printed is one JSON object.

    python bench/ticks.py [--ticks 10000000] [--reference-ticks 1000000] [--reps N]

1. End to end on --ticks synthetic messages (default 10 M): generate the market, compute the
   features, the honest labels and split, train the threshold rule, the logistic regression
   and XGBoost, and score all three on validation and test with block-bootstrap intervals
   (`--reps` resamples; default the settings' bootstrap_reps).
2. Features: the vectorised build against the per-message streaming featurizer (running sums,
   O(1) per message, what a live consumer runs), both measured in full on the same first
   --reference-ticks messages, and their values compared; the vectorised build also on all
   --ticks messages.
3. Single-message inference, median of 2,000 calls on feature rows of the test part: the
   logistic regression (numpy), XGBoost's trees as flat arrays (TreeTable), and the library
   reference, XGBoost's inplace_predict on a one-row array. `inference_ms` is the candidate's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from odyssey.settings import TickSettings, load_settings  # noqa: E402
from odyssey.ticks.features import StreamingFeaturizer, FEATURES, order_ticks, tick_features, timestamp_ns  # noqa: E402
from odyssey.ticks.labels import label_table  # noqa: E402
from odyssey.ticks.models import TreeTable  # noqa: E402
from odyssey.ticks.source import generate_ticks  # noqa: E402
from odyssey.ticks.training import label_spec, train_tick_models, windows_of  # noqa: E402


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def median_ms(fn, rows: np.ndarray, calls: int = 2000) -> float:
    times = np.empty(calls)
    for i in range(calls):
        row = rows[i % len(rows)]
        start = time.perf_counter()
        fn(row)
        times[i] = time.perf_counter() - start
    return float(np.median(times) * 1e3)


def streaming(ticks, settings: TickSettings) -> list[dict]:
    featurizer = StreamingFeaturizer(windows_of(settings))
    stamps = timestamp_ns(ticks["timestamp"])
    t = ((stamps - stamps[0]) / 1e9).tolist()
    out = []
    for message in zip(t, ticks["price"].tolist(), ticks["best_bid"].tolist(), ticks["best_ask"].tolist()):
        row = featurizer.update(*message)
        if row is not None:
            out.append(row)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ticks", type=int, default=10_000_000)
    parser.add_argument("--reference-ticks", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=None)
    args = parser.parse_args(argv)
    base = load_settings(environ={}).ticks
    per_day = 1_000_000
    days = int(np.ceil(args.ticks / per_day)) + 1  # a day more than needed: cut to exactly --ticks
    settings = base.model_copy(update={
        "source": base.source.model_copy(update={"days": days, "ticks_per_day": per_day}),
        **({"bootstrap_reps": args.reps} if args.reps else {})})

    # 1. end to end
    start = time.perf_counter()
    ticks, generate_s = timed(lambda: order_ticks(generate_ticks(settings.source, settings.product)))
    ticks = ticks.iloc[:args.ticks]
    features, feature_s = timed(tick_features, ticks, windows_of(settings))
    (labels, params), label_s = timed(label_table, features, label_spec(settings), settings.train_share,
                                      settings.validation_share)
    data = features.assign(split=labels["split"].to_numpy(), y=labels["y"].to_numpy())
    training, train_s = timed(train_tick_models, data, params["tau"], settings)
    end_to_end = time.perf_counter() - start
    test = training.evaluation.set_index(["model", "split"])
    print(f"end to end: {len(ticks):,} messages in {end_to_end:.1f} s (aim <= 60 s): generate {generate_s:.1f} s, "
          f"features {feature_s:.1f} s, labels {label_s:.1f} s, train and score {train_s:.1f} s "
          f"({training.train_rows:,} training rows, {settings.bootstrap_reps} bootstrap resamples)")
    for model in ("baseline", "logistic", "xgboost"):
        row = test.loc[(model, "test")]
        print(f"  test PR-AUC {model:<9} {row['pr_auc']:.3f} [{row['pr_auc_ci_low']:.3f}, {row['pr_auc_ci_high']:.3f}]"
              f"  positive rate {row['positive_rate']:.3f}")
    print(f"  candidate: {training.candidate}")

    # 2. features against the streaming reference, same messages
    sample = ticks.iloc[:args.reference_ticks]
    vectorised, vec_s = timed(tick_features, sample, windows_of(settings))
    reference, ref_s = timed(streaming, sample, settings)
    worst = 0.0  # the largest difference, relative to the feature's own spread
    for name in FEATURES:
        ours = vectorised[name].to_numpy()
        theirs = np.array([r[name] for r in reference], float)
        if not np.array_equal(np.isnan(ours), np.isnan(theirs)):
            raise SystemExit(f"MISMATCH {name}: the two builds have NaN in different rows")
        worst = max(worst, float(np.nanmax(np.abs(ours - theirs)) / max(np.nanstd(theirs), 1e-300)))
    print(f"features on the same {len(sample):,} messages: vectorised {vec_s:.3f} s ({len(sample) / vec_s:,.0f}/s), "
          f"streaming reference {ref_s:.1f} s ({len(sample) / ref_s:,.0f}/s): {ref_s / vec_s:.0f}x; "
          f"max difference {worst:.2g} of a feature's standard deviation")
    print(f"features on all {len(ticks):,} messages: {feature_s:.2f} s ({len(ticks) / feature_s:,.0f}/s, aim >= 1 M/s)")

    # 3. single-message inference
    part = data[data["split"] == "test"]
    logistic, xgb_model = training.models["logistic"], training.models["xgboost"]
    rows = part[list(logistic.features)].to_numpy(np.float64)[:2000]
    trees = TreeTable.of(xgb_model)
    rows32 = rows.astype(np.float32)
    logistic_ms = median_ms(logistic.score_row, rows)
    trees_ms = median_ms(trees.score_row, rows32)
    booster = xgb_model.booster
    booster.set_param({"nthread": 1})
    limit = (0, xgb_model.best_iteration + 1)
    library_ms = median_ms(lambda r: booster.inplace_predict(r[None, :], iteration_range=limit), rows32)
    inference = logistic_ms if training.candidate == "logistic" else trees_ms
    print(f"single-message inference (median of 2,000): logistic {logistic_ms:.4f} ms, XGBoost trees as arrays "
          f"{trees_ms:.4f} ms, XGBoost inplace_predict one row {library_ms:.4f} ms (aim <= 0.1 ms; the seed: < 5 ms)")

    summary = {"bench": "ticks", "ticks": int(len(ticks)), "end_to_end_seconds": round(end_to_end, 2),
               "feature_ticks_per_second": round(len(ticks) / feature_s),
               "reference_ticks_per_second": round(len(sample) / ref_s),
               "reference_ticks": int(len(sample)), "vectorised_ticks_per_second_same_sample": round(len(sample) / vec_s),
               "inference_ms": round(inference, 4), "candidate": training.candidate,
               "logistic_inference_ms": round(logistic_ms, 4), "xgboost_trees_inference_ms": round(trees_ms, 4),
               "xgboost_inplace_predict_ms": round(library_ms, 4), "train_seconds": round(train_s, 2),
               "generate_seconds": round(generate_s, 2), "bootstrap_reps": settings.bootstrap_reps}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
