"""Drift and decay checks (not blocking: they signal; the retraining sensor acts on them)."""

import dagster as dg
import pandas as pd

from assets.forecasting import ticker_partitions


class DriftGateConfig(dg.Config):
    max_share_drifted: float = 0.15
    max_target_psi: float = 0.5  # PSI above 0.5: the 5-day return distribution itself moved


@dg.asset_check(asset="feature_drift", partitions_def=ticker_partitions,
                description="share of drifted features (Evidently, window-mean z > 3) and the 5-day target's PSI "
                            "are under their thresholds")
def feature_drift_check(config: DriftGateConfig, feature_drift: pd.DataFrame) -> dg.AssetCheckResult:
    share = float(feature_drift["drifted"].mean())
    target_psi = float(feature_drift["target_psi"].iloc[0])
    top = feature_drift.sort_values("window_z", ascending=False).head(5)
    drifted = share > config.max_share_drifted or target_psi > config.max_target_psi
    reason = (f"{share:.0%} of features drifted (threshold {config.max_share_drifted:.0%}), target PSI "
              f"{target_psi:.2f} (threshold {config.max_target_psi}); most: "
              + ", ".join(f"{r.feature} z {r.window_z:.1f}" for r in top.itertuples()))
    return dg.AssetCheckResult(passed=not drifted, metadata={"share_drifted": share, "target_psi": target_psi,
                                                             "reason": reason,
                                                             "ticker": str(feature_drift["ticker"].iloc[0])})


@dg.asset_check(asset="forecast_quality", partitions_def=ticker_partitions,
                description="the recent window's IC has not decayed below the long run (2 standard errors)")
def forecast_quality_check(forecast_quality: dict) -> dg.AssetCheckResult:
    q = forecast_quality
    reason = (f"recent IC {q['recent_ic']:.3f} vs long-run {q['long_run_ic']:.3f} (s.e. {q['ic_standard_error']:.3f}), "
              f"accuracy {q['recent_direction_accuracy']:.3f}")
    return dg.AssetCheckResult(passed=not q["decayed"], metadata={"reason": reason, "ticker": q["ticker"]})


MONITORING_CHECKS = [feature_drift_check, forecast_quality_check]
