"""Drift and decay checks (not blocking: they signal; the retraining sensor acts on them)."""

import dagster as dg
import pandas as pd

from assets.forecasting import ticker_partitions


class DriftGateConfig(dg.Config):
    max_share_drifted: float = 0.15
    max_target_psi: float = 0.25


@dg.asset_check(asset="feature_drift", partitions_def=ticker_partitions,
                description="share of drifted features (Evidently, window-mean z > 3) is under its threshold")
def feature_drift_check(config: DriftGateConfig, feature_drift: pd.DataFrame) -> dg.AssetCheckResult:
    share = float(feature_drift["drifted"].mean())
    top = feature_drift.sort_values("window_z", ascending=False).head(5)
    drifted = share > config.max_share_drifted
    reason = (f"{share:.0%} of features drifted (threshold {config.max_share_drifted:.0%}); most: "
              + ", ".join(f"{r.feature} z {r.window_z:.1f}" for r in top.itertuples()))
    return dg.AssetCheckResult(passed=not drifted, metadata={"share_drifted": share, "reason": reason,
                                                             "ticker": str(feature_drift["ticker"].iloc[0])})


@dg.asset_check(asset="forecast_quality", partitions_def=ticker_partitions,
                description="the recent window's IC has not decayed below the long run (2 standard errors)")
def forecast_quality_check(forecast_quality: dict) -> dg.AssetCheckResult:
    q = forecast_quality
    reason = (f"recent IC {q['recent_ic']:.3f} vs long-run {q['long_run_ic']:.3f} (s.e. {q['ic_standard_error']:.3f}), "
              f"accuracy {q['recent_direction_accuracy']:.3f}")
    return dg.AssetCheckResult(passed=not q["decayed"], metadata={"reason": reason, "ticker": q["ticker"]})


MONITORING_CHECKS = [feature_drift_check, forecast_quality_check]
