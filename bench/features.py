"""Benchmark the vectorised 94-feature build on the full profile against a per-ticker pandas reference,
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
from odyssey import features as F  # noqa: E402
from odyssey.cleaning import clean_alt, clean_prices  # noqa: E402
from odyssey.returns import clip_returns, fit_clip_thresholds, log_returns  # noqa: E402
from odyssey.sources.synthetic import generate_market  # noqa: E402
from odyssey.universe import Profile, get_profile  # noqa: E402

RTOL, ATOL = 1e-7, 1e-9


def prepare_inputs(profile: Profile) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Clean prices, clipped returns and clean alt data, chained as the Dagster assets do."""
    market = generate_market(profile)
    cleaned = clean_prices(market.data.prices, market.data.actions, list(profile.tickers), profile.start)
    calendar = pd.DatetimeIndex(sorted(cleaned.prices["date"].unique()), name="date")
    alt = clean_alt(market.data.alt, calendar)
    raw = log_returns(cleaned.prices)
    returns = clip_returns(raw, fit_clip_thresholds(raw, profile.train_end))
    return cleaned.prices, returns, alt


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
    for name in F.FEATURE_NAMES:
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


def main(profile_name: str = "full", repeats: int = 3) -> dict:
    profile = get_profile(profile_name)
    clean, returns, alt = prepare_inputs(profile)

    # The K-means regime fit is done once; both implementations then apply the same stored model,
    # so the timed work is the same on both sides.
    fitted = F.build_features(clean, returns, alt, profile.train_end)
    model = fitted.regime_model
    fit_seconds, _ = best_time(lambda: F.build_features(clean, returns, alt, profile.train_end), repeats)
    vec_seconds, vec = best_time(
        lambda: F.build_features(clean, returns, alt, profile.train_end, regime_model=model), repeats)
    ref_seconds, ref = best_time(lambda: reference_features(clean, returns, alt, model), 1)
    table = vec.table

    rows = [
        ("vectorised (odyssey.features, stored regime model)", vec_seconds, len(table)),
        ("vectorised incl. regime K-means fit", fit_seconds, len(fitted.table)),
        ("reference (per-ticker pandas)", ref_seconds, len(ref)),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"profile {profile.name}: {clean['ticker'].nunique()} tickers, {len(F.FEATURE_NAMES)} features")
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
    main()
