"""Drift and live-skill checks (not blocking: they signal; the retraining sensor acts on them)."""

import dagster as dg
import pandas as pd

from odyssey.gates import live_skill_gate
from resources.settings import SettingsResource, ticker_partitions


@dg.asset_check(asset="feature_drift", partitions_def=ticker_partitions,
                description="the share of drifted features (window-mean z above the threshold, Evidently) and the "
                            "forward target's size (window-mean z of its absolute value) are under their thresholds")
def feature_drift_check(settings: SettingsResource, feature_drift: pd.DataFrame) -> dg.AssetCheckResult:
    limits = settings.value.monitoring
    share = float(feature_drift["drifted"].mean())
    target_z = float(feature_drift["target_z"].iloc[0])
    top = feature_drift.sort_values("window_z", ascending=False).head(5)
    drifted = share > limits.max_share_drifted or target_z > limits.z_threshold
    reason = (f"{share:.0%} of features drifted (threshold {limits.max_share_drifted:.0%}), the target's size z "
              f"{target_z:.1f} (threshold {limits.z_threshold}); most: "
              + ", ".join(f"{r.feature} z {r.window_z:.1f}" for r in top.itertuples()))
    return dg.AssetCheckResult(passed=not drifted, metadata={
        "share_drifted": share, "target_z": target_z, "target_psi": float(feature_drift["target_psi"].iloc[0]),
        "reason": reason, "ticker": str(feature_drift["ticker"].iloc[0])})


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
