"""Blocking data-quality checks: one pandera schema check per table plus the rules around it.

A failing blocking check stops everything downstream of its asset in the same run; the failure
cases (column, check, value, row, and source file/line where known) are in the check's metadata.
"""

import inspect
from typing import Callable

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from odyssey import schemas
from odyssey.exports import verify_exports
from odyssey.features import feature_names
from odyssey.quality import level_shifts, long_gaps, missing_tickers, nan_outside_warmup, scaled_train_moments, stale_volume
from odyssey.settings import Settings
from odyssey.splits import target_name
from resources.metadata import md_table
from resources.settings import SettingsResource
from resources.storage import Storage

QUALITY_THRESHOLD = 0.95


def schema_result(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> dg.AssetCheckResult:
    outcome = schemas.validate(schema, frame)
    metadata = {"rows_checked": outcome.rows, "failures": len(outcome.failure_cases), "reason": outcome.reason()}
    if not outcome.passed:
        metadata["failures_by_check"] = md_table(outcome.summary(), rows=30)
        metadata["failure_cases"] = md_table(outcome.failure_cases, rows=20)
    return dg.AssetCheckResult(passed=outcome.passed, metadata=metadata)


def make_schema_check(asset: str, schema: Callable[[Settings], pa.DataFrameSchema],
                       description: str) -> dg.AssetChecksDefinition:
    def check(settings: SettingsResource, **tables: pd.DataFrame) -> dg.AssetCheckResult:
        return schema_result(schema(settings.value), tables[asset])

    # The checked asset is loaded through a parameter named after it.
    check.__signature__ = inspect.Signature(
        [inspect.Parameter("settings", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=SettingsResource),
         inspect.Parameter(asset, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=pd.DataFrame)])
    return dg.asset_check(asset=asset, name=f"{asset}_schema", blocking=True,
                          description=f"pandera schema: {description}; failure cases in metadata")(check)


def _features(s: Settings) -> pa.DataFrameSchema:
    return schemas.features_schema(feature_names(s.universe.alt_series))


def _dataset(s: Settings) -> pa.DataFrameSchema:
    return schemas.dataset_schema(feature_names(s.universe.alt_series), target_name(s.forecast.horizon))


SCHEMA_CHECKS = [
    make_schema_check("raw_prices", lambda s: schemas.RAW_PRICES, "types, positive prices, OHLC consistency, "
                       "unique (ticker, date), no future dates"),
    make_schema_check("raw_alt_data", lambda s: schemas.RAW_ALT, "types, ranges, unique dates"),
    make_schema_check("clean_prices", lambda s: schemas.CLEAN_PRICES, "types, ranges, flags, empty only in gaps"),
    make_schema_check("clean_alt_data", lambda s: schemas.CLEAN_ALT, "finite values, unique dates"),
    make_schema_check("returns", lambda s: schemas.RETURNS, "finite returns, unique (ticker, date)"),
    make_schema_check("features", _features, "the registry features present, finite, in registry order"),
    make_schema_check("dataset_splits", _dataset, "features, finite target, split labels"),
    make_schema_check("scaled_features", _dataset, "features, finite target, split labels"),
]


@dg.asset_check(asset="raw_prices", blocking=True, description="every configured ticker has bars")
def raw_prices_all_tickers_present(settings: SettingsResource, raw_prices: pd.DataFrame) -> dg.AssetCheckResult:
    tickers = settings.value.universe.tickers
    missing = missing_tickers(raw_prices, tickers)
    return dg.AssetCheckResult(passed=not missing, metadata={"missing_tickers": ", ".join(missing) or "none",
                                                              "configured": len(tickers)})


@dg.asset_check(asset="raw_prices", blocking=True,
                description="no long run of zero volume (a feed that stopped reporting it, or a halted line)")
def raw_prices_volume_reported(settings: SettingsResource, raw_prices: pd.DataFrame) -> dg.AssetCheckResult:
    days = settings.value.cleaning.stale_volume_days
    runs = stale_volume(raw_prices, days)
    reason = ("no run of zero volume" if runs.empty else
              f"{len(runs)} run(s) of at least {days} sessions with zero volume, first {runs.iloc[0]['ticker']} "
              f"{runs.iloc[0]['start']}..{runs.iloc[0]['end']}")
    return dg.AssetCheckResult(passed=runs.empty, metadata={"reason": reason, "runs": md_table(runs, rows=20)})


@dg.asset_check(asset="raw_prices", blocking=False,
                description="the newest bar is the newest session the settings ask for: new data, not a re-fetch")
def raw_prices_up_to_date(settings: SettingsResource, raw_prices: pd.DataFrame) -> dg.AssetCheckResult:
    profile = settings.profile()
    expected = pd.Timestamp(profile.end)  # resolved to the newest session asked for
    newest = raw_prices["date"].max()
    behind = raw_prices.groupby("ticker")["date"].max()
    late = behind[behind < expected]
    reason = (f"newest bar {newest.date()}, newest session asked for {expected.date()}"
              + (f"; behind: {', '.join(f'{t} ({d.date()})' for t, d in late.items())}" if len(late) else ""))
    return dg.AssetCheckResult(passed=late.empty, metadata={"reason": reason, "newest_bar": str(newest.date()),
                                                             "expected_session": str(expected.date())})


@dg.asset_check(asset="clean_prices", blocking=True,
                description="no run of missing sessions longer than the fill limit remains after cleaning")
def clean_prices_no_long_gaps(clean_prices: pd.DataFrame) -> dg.AssetCheckResult:
    gaps = long_gaps(clean_prices)
    return dg.AssetCheckResult(passed=gaps.empty, metadata={"long_gaps": len(gaps), "gaps": md_table(gaps, rows=20)})


@dg.asset_check(asset="clean_prices", blocking=True,
                description="no persistent level change far beyond the outlier threshold that no corporate action "
                            "explains (an unlisted split, a change of price unit)")
def clean_prices_no_unexplained_level_shift(settings: SettingsResource,
                                            clean_prices: pd.DataFrame) -> dg.AssetCheckResult:
    rules = settings.value.cleaning
    shifts = level_shifts(clean_prices, rules.level_shift_sigma)
    reason = ("no unexplained level shift" if shifts.empty else
              f"{len(shifts)} unexplained level shift(s): " + "; ".join(
                  f"{r.ticker} on {r.date} x{r.ratio:.3f} ({r.sigmas:.0f} sigma)" for r in shifts.head(5).itertuples())
              + ": add the split to corporate_actions or fix the prices' unit")
    return dg.AssetCheckResult(passed=shifts.empty, metadata={"reason": reason, "shifts": md_table(shifts, rows=20)})


@dg.asset_check(asset="features", blocking=True,
                description="a feature is NaN only inside its warm-up window (registry lookback)")
def features_nan_only_in_warmup(settings: SettingsResource, features: pd.DataFrame) -> dg.AssetCheckResult:
    bad = nan_outside_warmup(features, feature_names(settings.value.universe.alt_series))
    return dg.AssetCheckResult(passed=bad.empty, metadata={"violations": len(bad), "details": md_table(bad, rows=20)})


@dg.asset_check(asset="scaled_features", blocking=True,
                description="the scaler was fitted on train rows only: train mean ~0 and std ~1 for every feature")
def scaled_features_train_moments(settings: SettingsResource, scaled_features: pd.DataFrame) -> dg.AssetCheckResult:
    bad = scaled_train_moments(scaled_features, feature_names(settings.value.universe.alt_series))
    return dg.AssetCheckResult(passed=bad.empty, metadata={"violations": len(bad),
                                                            "details": md_table(bad, rows=20, digits=8)})


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
    raw_prices_volume_reported,
    raw_prices_up_to_date,
    clean_prices_no_long_gaps,
    clean_prices_no_unexplained_level_shift,
    features_nan_only_in_warmup,
    scaled_features_train_moments,
    data_quality_threshold,
    feature_exports_integrity,
]
