"""Feature drift: PSI and KL per feature and an Evidently data-drift report with the
window-mean z-score test."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd


EPS = 1e-4


def _bins(reference: np.ndarray, n_bins: int) -> np.ndarray:
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, n_bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    return edges


def psi_kl(reference: np.ndarray, current: np.ndarray, n_bins: int = 10) -> tuple[float, float]:
    """Population stability index and KL(current || reference) over the reference's quantile
    bins (NaN ignored; empty bins get a small floor)."""
    ref, cur = reference[np.isfinite(reference)], current[np.isfinite(current)]
    if len(ref) < n_bins or len(cur) == 0:
        return float("nan"), float("nan")
    edges = _bins(ref, n_bins)
    if len(edges) < 3:  # (almost) constant in the reference
        return 0.0, 0.0
    p = np.histogram(ref, edges)[0] / len(ref)
    q = np.histogram(cur, edges)[0] / len(cur)
    p, q = np.clip(p, EPS, None), np.clip(q, EPS, None)
    return float(np.sum((q - p) * np.log(q / p))), float(np.sum(q * np.log(q / p)))


def drift_table(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str],
                psi_threshold: float = 0.2) -> pd.DataFrame:
    rows = []
    for column in columns:
        psi, kl = psi_kl(reference[column].to_numpy(float), current[column].to_numpy(float))
        rows.append({"feature": column, "psi": psi, "kl": kl, "drifted": bool(psi > psi_threshold)})
    return pd.DataFrame(rows).sort_values("psi", ascending=False, na_position="last").reset_index(drop=True)


WINDOW_MEAN_TEST = "window_mean_z"


def window_mean_z(reference: np.ndarray, current: np.ndarray) -> float:
    """How unusual the current window's mean is among all windows of the same length in the
    reference: |mean(current) - mean of window means| / std of window means.

    Features are autocorrelated (moving averages, momentum, volatility), so comparing a few
    months of values with years of values by PSI or KS flags most features in any market; the
    spread of same-length window means in the reference is the right yardstick.
    """
    ref = pd.Series(reference, dtype=float).dropna()
    cur = pd.Series(current, dtype=float).dropna()
    if len(cur) == 0 or len(ref) <= len(cur):
        return float("nan")
    means = ref.rolling(len(cur)).mean().dropna()
    spread = float(means.std())
    if not np.isfinite(spread) or spread == 0.0:
        return 0.0 if np.isclose(cur.mean(), means.mean()) else float("inf")
    return float(abs(cur.mean() - means.mean()) / spread)


def _register_window_mean_test() -> None:
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    def impl(reference_data: pd.Series, current_data: pd.Series, feature_type, threshold: float):
        z = window_mean_z(reference_data.to_numpy(), current_data.to_numpy())
        return z, bool(z > threshold)

    register_stattest(StatTest(name=WINDOW_MEAN_TEST, display_name="window-mean z-score",
                               allowed_feature_types=[ColumnType.Numerical], default_threshold=3.0), impl)


def _degenerate(values: pd.Series) -> bool:
    """Constant up to floating-point noise (e.g. the benchmark's beta to itself): no histogram,
    no drift."""
    finite = values[np.isfinite(values)]
    if finite.empty:
        return True
    spread = float(finite.max() - finite.min())
    return spread <= 1e-9 * max(1.0, float(finite.abs().max()))


@dataclass
class DriftReport:
    table: pd.DataFrame  # feature, psi, kl, psi_above_threshold, window_z, drifted
    share_drifted: float
    target_psi: float
    target_z: float  # window-mean z-score of the target's absolute size (its volatility)
    html: bytes
    json: bytes


def evidently_drift(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str], target: str,
                    z_threshold: float = 3.0, psi_threshold: float = 0.2) -> DriftReport:
    """Evidently's data-drift preset with the window-mean z-score test per feature (the drift
    decision), plus PSI and KL per feature for reference; the drift share is Evidently's share of
    drifted features. Columns that are constant up to rounding are reported but not tested."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    _register_window_mean_test()
    cols = [c for c in columns if not _degenerate(pd.concat([reference[c], current[c]]))]
    report = Report([DataDriftPreset(columns=cols, method=WINDOW_MEAN_TEST, threshold=z_threshold)])
    with warnings.catch_warnings():
        # Evidently's report also correlates the columns with each other; a column constant over
        # one window makes numpy divide by a zero deviation. Those correlations decide nothing here.
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = report.run(current[cols], reference[cols])
    payload = snapshot.dict()
    scores = {}
    for metric in payload["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            scores[config["column"]] = float(metric["value"])
    table = drift_table(reference, current, list(columns), psi_threshold).rename(
        columns={"drifted": "psi_above_threshold"})
    table["window_z"] = table["feature"].map(scores).fillna(0.0)  # degenerate columns cannot drift
    table["drifted"] = table["window_z"] > z_threshold
    table = table.sort_values("window_z", ascending=False, na_position="last").reset_index(drop=True)
    share = float(table["drifted"].mean())
    target_psi, _ = psi_kl(reference[target].to_numpy(float), current[target].to_numpy(float))
    target_z = window_mean_z(reference[target].abs().to_numpy(float), current[target].abs().to_numpy(float))
    html = snapshot.get_html_str(as_iframe=False).encode()
    return DriftReport(table, share, target_psi, target_z, html, json.dumps(payload, default=str).encode())
