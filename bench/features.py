"""Benchmark the vectorised feature build (94 features on the full preset) against a per-ticker pandas reference,
checking that both give the same values; the last line printed is one JSON object."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.reference_features import reference_features  # noqa: E402
from odyssey.fitting import MarketInputs, clean_market_data, feature_pipeline  # noqa: E402
from odyssey.settings import Settings, load_settings, preset_path  # noqa: E402
from odyssey.sources.synthetic import generate_market  # noqa: E402

RTOL, ATOL = 1e-7, 1e-9


def prepare_inputs(settings: Settings) -> MarketInputs:
    """Clean prices, daily log returns and clean alt data, as the Dagster assets chain them."""
    profile = settings.profile()
    market = generate_market(profile, settings.source.synthetic)
    return clean_market_data(market.data, profile, settings.cleaning).inputs


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Best wall-clock seconds over `repeats` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def compare(vectorised: pd.DataFrame, reference: pd.DataFrame) -> dict:
    """Column-by-column agreement of two feature tables (same layout, NaN positions identical)."""
    if list(vectorised.columns) != list(reference.columns):
        raise AssertionError("column layouts differ")
    if len(vectorised) != len(reference):
        raise AssertionError(f"row counts differ: {len(vectorised)} vs {len(reference)}")
    keys_equal = (vectorised["ticker"].to_numpy() == reference["ticker"].to_numpy()).all() and \
        (vectorised["date"].to_numpy() == reference["date"].to_numpy()).all()
    if not keys_equal:
        raise AssertionError("(ticker, date) keys differ")
    mismatches: list[str] = []
    finite = both_nan = 0
    max_abs = 0.0
    for name in vectorised.columns[2:]:
        a = vectorised[name].to_numpy(dtype=float)
        b = reference[name].to_numpy(dtype=float)
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        ok = nan_a == nan_b
        both = ~nan_a & ~nan_b
        if both.any():
            diff = np.abs(a[both] - b[both])
            max_abs = max(max_abs, float(diff.max()))
            ok[both] = diff <= ATOL + RTOL * np.abs(b[both])
        finite += int(both.sum())
        both_nan += int((nan_a & nan_b).sum())
        if not ok.all():
            mismatches.append(f"{name}: {int((~ok).sum())} values differ")
    return {"values": finite + both_nan, "finite": finite, "both_nan": both_nan, "max_abs_diff": max_abs,
            "mismatches": mismatches}


def main(preset: str = "full", repeats: int = 3) -> dict:
    settings = load_settings(preset_path(preset), environ={})
    profile = settings.profile()
    inputs = prepare_inputs(settings)
    pipeline = feature_pipeline(settings, scale=False)
    train_end = pd.Timestamp(profile.train_end)

    # The clip thresholds and the K-means regime model are fitted once; both implementations then
    # apply the same stored parameters, so the timed work is the same on both sides.
    params, _ = pipeline.fit_transform(inputs, end=train_end)
    fit_seconds, fitted = best_time(lambda: pipeline.fit_transform(inputs, end=train_end)[1], repeats)
    vec_seconds, table = best_time(lambda: pipeline.transform(inputs, params), repeats)
    clipped = pipeline.clipper().apply(inputs.returns, params.clip)
    clean = inputs.clean.sort_values(["ticker", "date"], kind="stable")  # the vectorised table's row order
    ref_seconds, ref = best_time(lambda: reference_features(clean, clipped, inputs.alt, params.regime,
                                                            benchmark=profile.benchmark), 1)
    table = table.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)

    rows = [
        ("vectorised (odyssey.fitting, stored parameters)", vec_seconds, len(table)),
        ("vectorised incl. clip and regime K-means fit", fit_seconds, len(fitted)),
        ("reference (per-ticker pandas)", ref_seconds, len(ref)),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"profile {profile.name}: {inputs.clean['ticker'].nunique()} tickers, {len(pipeline.names)} features")
    print(f"{'implementation':<{width}}  {'seconds':>8}  {'rows':>7}")
    for label, seconds, n in rows:
        print(f"{label:<{width}}  {seconds:>8.3f}  {n:>7d}")

    result = compare(table, ref)
    print(f"compared {result['values']} feature values ({result['finite']} finite, {result['both_nan']} NaN in both); "
          f"max abs diff {result['max_abs_diff']:.3g} (rtol {RTOL:g}, atol {ATOL:g})")
    if result["mismatches"]:
        for line in result["mismatches"]:
            print("MISMATCH", line)
        raise SystemExit(1)
    summary = {"bench": "features", "seconds": round(vec_seconds, 4), "reference_seconds": round(ref_seconds, 4),
               "speedup": round(ref_seconds / vec_seconds, 2), "rows": int(len(table))}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "full")
