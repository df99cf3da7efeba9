"""Drift and live-skill checks (not blocking: they signal; the retraining sensor acts on them)."""

import dagster as dg
import pandas as pd

from odyssey.drift import DRIFTED_KEY
from odyssey.gates import live_skill_gate
from resources.settings import SettingsResource, ticker_partitions


@dg.asset_check(asset="feature_drift",
                description="for every ticker, the share of drifted features (window-mean z above the threshold) and "
                            "the forward target's size (window-mean z of its absolute value) are under their "
                            "thresholds; metadata `drifted` maps the tickers that are not to their reasons (the "
                            "retraining sensor reads it)")
def feature_drift_check(feature_drift: pd.DataFrame) -> dg.AssetCheckResult:
    tickers = feature_drift.groupby("ticker", sort=True).agg(
        drifted=("ticker_drifted", "first"), reason=("ticker_reason", "first"), share=("drifted", "mean"),
        target_z=("target_z", "first"))
    reasons = {t: r.reason for t, r in tickers[tickers["drifted"]].iterrows()}
    reason = "; ".join(f"{t}: {r}" for t, r in reasons.items()) or f"none of {len(tickers)} tickers drifted"
    return dg.AssetCheckResult(passed=not reasons, metadata={
        DRIFTED_KEY: dg.MetadataValue.json(reasons), "reason": reason[:4000],
        "max_share_drifted": float(tickers["share"].max()), "max_target_z": float(tickers["target_z"].max()),
        "tickers": len(tickers)})


@dg.asset_check(asset="forecast_outcomes", partitions_def=ticker_partitions,
                description="the champion's realised live forecasts are not significantly less skilful than its "
                            "walk-forward (the live IC's interval reaches the walk-forward IC's)")
def live_skill_check(settings: SettingsResource, forecast_outcomes: dict) -> dg.AssetCheckResult:
    if forecast_outcomes.get("champion") is None:
        return dg.AssetCheckResult(passed=True, metadata={"reason": forecast_outcomes["reason"],
                                                          "ticker": forecast_outcomes["ticker"]})
    result = live_skill_gate(forecast_outcomes, forecast_outcomes["walkforward_ic"],
                             forecast_outcomes["walkforward_ic_ci_low"], settings.value.gates.live_min_days)
    return dg.AssetCheckResult(passed=result.passed, metadata={
        "reason": result.reason, "ticker": forecast_outcomes["ticker"],
        **{k: v for k, v in result.details.items() if v is not None and not pd.isna(v)}})


MONITORING_CHECKS = [feature_drift_check, live_skill_check]
