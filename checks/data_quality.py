"""Blocking data-quality checks: one pandera schema check per table plus the rules around it.

A failing blocking check stops everything downstream of its asset in the same run; the failure
cases (column, check, value, row, and source file/row where known) are in the check's metadata.
"""

import inspect

import dagster as dg
import pandas as pd

from assets.metadata import md_table
from odyssey import schemas
from odyssey.exports import verify_exports
from odyssey.features import FEATURE_NAMES
from odyssey.quality import long_gaps, missing_tickers, nan_outside_warmup, scaled_train_moments
from resources.market import MarketSource
from resources.storage import Storage

QUALITY_THRESHOLD = 0.95

def schema_result(schema, frame: pd.DataFrame) -> dg.AssetCheckResult:
    outcome = schemas.validate(schema, frame)
    metadata = {"rows_checked": outcome.rows, "failures": len(outcome.failure_cases)}
    if not outcome.passed:
        metadata["failures_by_check"] = md_table(outcome.summary(), rows=30)
        metadata["failure_cases"] = md_table(outcome.failure_cases, rows=20)
    return dg.AssetCheckResult(passed=outcome.passed, metadata=metadata)

def _make_schema_check(asset: str, schema) -> dg.AssetChecksDefinition:
    def check(**tables: pd.DataFrame) -> dg.AssetCheckResult:
        return schema_result(schema, tables[asset])

    # The checked asset is loaded through a parameter named after it.
    check.__signature__ = inspect.Signature(
        [inspect.Parameter(asset, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=pd.DataFrame)])
    return dg.asset_check(
        asset=asset, name=f"{asset}_schema", blocking=True,
        description=f"pandera schema `{schema.name}`: types, ranges, uniqueness; failure cases in metadata",
    )(check)


SCHEMA_CHECKS = [
    _make_schema_check("raw_prices", schemas.RAW_PRICES),
    _make_schema_check("raw_alt_data", schemas.RAW_ALT),
    _make_schema_check("clean_prices", schemas.CLEAN_PRICES),
    _make_schema_check("clean_alt_data", schemas.CLEAN_ALT),
    _make_schema_check("returns", schemas.RETURNS),
    _make_schema_check("features", schemas.FEATURES),
    _make_schema_check("dataset_splits", schemas.DATASET),
    _make_schema_check("scaled_features", schemas.DATASET),
]

@dg.asset_check(asset="raw_prices", blocking=True, description="every configured ticker has bars")
def raw_prices_all_tickers_present(market: MarketSource, raw_prices: pd.DataFrame) -> dg.AssetCheckResult:
    missing = missing_tickers(raw_prices, market.universe().tickers)
    return dg.AssetCheckResult(passed=not missing, metadata={"missing_tickers": ", ".join(missing) or "none",
                                                              "configured": len(market.universe().tickers)})

@dg.asset_check(asset="clean_prices", blocking=True,
                description="no run of missing business days longer than the fill limit remains after cleaning")
def clean_prices_no_long_gaps(clean_prices: pd.DataFrame) -> dg.AssetCheckResult:
    gaps = long_gaps(clean_prices)
    return dg.AssetCheckResult(passed=gaps.empty, metadata={"long_gaps": len(gaps), "gaps": md_table(gaps, rows=20)})

@dg.asset_check(asset="features", blocking=True,
                description="a feature is NaN only inside its warm-up window (registry lookback)")
def features_nan_only_in_warmup(features: pd.DataFrame) -> dg.AssetCheckResult:
    bad = nan_outside_warmup(features)
    return dg.AssetCheckResult(passed=bad.empty, metadata={"violations": len(bad), "details": md_table(bad, rows=20)})

@dg.asset_check(asset="scaled_features", blocking=True,
                description="the scaler was fit on train rows only: train mean ~0 and std ~1 for every feature")
def scaled_features_train_moments(scaled_features: pd.DataFrame) -> dg.AssetCheckResult:
    bad = scaled_train_moments(scaled_features, FEATURE_NAMES)
    return dg.AssetCheckResult(passed=bad.empty, metadata={"violations": len(bad), "details": md_table(bad, rows=20, digits=8)})

@dg.asset_check(asset="data_quality_report", blocking=True,
                description=f"every quality dimension scores at least {QUALITY_THRESHOLD}")
def data_quality_threshold(data_quality_report: pd.DataFrame) -> dg.AssetCheckResult:
    low = data_quality_report[data_quality_report["score"] < QUALITY_THRESHOLD]
    return dg.AssetCheckResult(passed=low.empty, metadata={
        "threshold": QUALITY_THRESHOLD, "below_threshold": ", ".join(low["dimension"]) or "none",
        "scores": md_table(data_quality_report)})

@dg.asset_check(asset="feature_exports", blocking=True, description="every exported file matches its manifest SHA-256")
def feature_exports_integrity(storage: Storage, feature_exports: dict) -> dg.AssetCheckResult:
    bad = verify_exports(storage.path("exports"), feature_exports)
    return dg.AssetCheckResult(passed=not bad, metadata={"files": len(feature_exports["files"]),
                                                          "mismatched": ", ".join(bad[:20]) or "none"})

ALL_CHECKS = [
    *SCHEMA_CHECKS,
    raw_prices_all_tickers_present,
    clean_prices_no_long_gaps,
    features_nan_only_in_warmup,
    scaled_features_train_moments,
    data_quality_threshold,
    feature_exports_integrity,
]
