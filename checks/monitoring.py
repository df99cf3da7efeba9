"""Drift and live-skill checks (not blocking: they signal; the retraining sensor acts on them)."""

import dagster as dg
import pandas as pd

from odyssey.drift import DRIFTED_KEY, DriftStatistics
from odyssey.gates import live_skill_gate
from resources.settings import SettingsResource, ticker_partitions


def drift_by_ticker(feature_drift: pd.DataFrame) -> dict[str, DriftStatistics]:
    """The stored drift table back as each ticker's statistics."""
    out = {}
    for ticker, rows in feature_drift.groupby("ticker", sort=True):
        table = rows.drop(columns=["ticker", "target_psi", "target_z"]).reset_index(drop=True)
        out[ticker] = DriftStatistics(table, float(table["drifted"].mean()), float(rows["target_psi"].iloc[0]),
                                      float(rows["target_z"].iloc[0]))
    return out


@dg.asset_check(asset="feature_drift",
                description="for every ticker, the share of drifted features (window-mean z above the threshold) and "
                            "the forward target's size (window-mean z of its absolute value) are under their "
                            "thresholds; metadata `drifted` maps the tickers that are not to their reasons (the "
                            "retraining sensor reads it)")
def feature_drift_check(settings: SettingsResource, feature_drift: pd.DataFrame) -> dg.AssetCheckResult:
    limits = settings.value.monitoring
    stats = drift_by_ticker(feature_drift)
    drifted = [t for t, s in stats.items() if s.drifted(limits.max_share_drifted, limits.z_threshold)]
    reasons = {t: stats[t].reason(limits.max_share_drifted, limits.z_threshold) for t in drifted}
    reason = "; ".join(f"{t}: {r}" for t, r in reasons.items()) or f"none of {len(stats)} tickers drifted"
    return dg.AssetCheckResult(passed=not drifted, metadata={
        DRIFTED_KEY: dg.MetadataValue.json(reasons), "reason": reason[:4000],
        "max_share_drifted": max(s.share_drifted for s in stats.values()),
        "max_target_z": max(s.target_z for s in stats.values()), "tickers": len(stats)})


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
