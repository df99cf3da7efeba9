"""Feature drift: PSI and KL per feature and an Evidently data-drift report with the
window-mean z-score test, the target's size, and the ticker's volatility relative to the
benchmark's (bench/drift.py measures the decision's false alarms and power by simulation)."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd


EPS = 1e-4
RETURN, BENCHMARK_RETURN = "log_return", "benchmark_log_return"  # the daily returns beside the features
DRIFTED_KEY = "drifted"  # the drift check's metadata: the tickers that drifted (the retraining sensor reads it)
# and per ticker the sessions its current window holds (after its champion's training window, at most
# monitoring.window_days): how long since a retrain, which the retraining sensor's hold reads
CURRENT_SESSIONS_KEY = "current_sessions"


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


def daily_returns(clean: pd.DataFrame, benchmark: str) -> pd.DataFrame:
    """date, ticker, `RETURN`, `BENCHMARK_RETURN`: every ticker's daily log return beside the
    benchmark's on the same date (NaN on the benchmark's own rows: it has no ratio to itself), the
    columns `relative_volatility_z` reads from a ticker's drift windows."""
    from odyssey.fitting import log_returns

    daily = log_returns(clean).rename(columns={"log_return": RETURN})
    bench = daily.loc[daily["ticker"] == benchmark, ["date", RETURN]].rename(columns={RETURN: BENCHMARK_RETURN})
    daily = daily.merge(bench, on="date", how="left")
    daily.loc[daily["ticker"] == benchmark, BENCHMARK_RETURN] = np.nan
    return daily


CAP = 8.0  # a day's absolute return counts at most this many times its reference median (a bad print, one jump)
MIN_REFERENCE_WINDOWS = 4  # the reference must be this many windows long for their spread to mean anything


def relative_volatility_z(reference: np.ndarray, current: np.ndarray) -> float:
    """How unusual the current window's volatility relative to the benchmark's is among all
    windows of the same length in the reference: the log ratio of the ticker's to the
    benchmark's mean absolute daily return over the window, |current - mean of the reference
    windows'| / their standard deviation. Rows: days; columns: the ticker's and the benchmark's
    daily log returns (rows with a NaN are dropped).

    A storm or a calm that scales the ticker's and the market's moves alike leaves the ratio; a
    ticker whose own risk changed (its idiosyncratic volatility or its beta) moves it, and so does
    a market that calms or storms while the ticker's own moves do not. The level of volatility
    alone, which `window_mean_z` of the target's size judges, varies so much between a market's
    calm years and its crashes that a tripled idiosyncratic volatility can stay inside it.

    Each day's absolute return counts at most `CAP` times its reference median, so one bad print
    or one jump does not make a regime. Reference windows in which either series did not move (a
    halt) are left out; a current window in which either did not move is as unusual as can be
    (inf). NaN: fewer than 2 current days, a reference shorter than `MIN_REFERENCE_WINDOWS`
    windows, or one whose median day did not move."""
    ref, cur = np.asarray(reference, float), np.asarray(current, float)
    ref, cur = np.abs(ref[np.isfinite(ref).all(axis=1)]), np.abs(cur[np.isfinite(cur).all(axis=1)])
    w = len(cur)
    if w < 2 or len(ref) < MIN_REFERENCE_WINDOWS * w:
        return float("nan")
    caps = CAP * np.median(ref, axis=0)
    if (caps <= 0).any():
        return float("nan")
    ref, cur = np.minimum(ref, caps), np.minimum(cur, caps)
    sums = np.vstack([np.zeros(2), np.cumsum(ref, axis=0)])
    windows = sums[w:] - sums[:-w]
    windows = windows[(windows > 0).all(axis=1)]
    moved = cur.sum(axis=0)
    if (moved <= 0).any():
        return float("inf")
    ratios = np.log(windows[:, 0] / windows[:, 1])
    spread = float(ratios.std(ddof=1)) if len(ratios) > 1 else float("nan")
    if not np.isfinite(spread) or spread == 0.0:
        return float("nan")
    return float(abs(np.log(moved[0] / moved[1]) - ratios.mean()) / spread)


def _register_window_mean_test() -> None:
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    def impl(reference_data: pd.Series, current_data: pd.Series, feature_type, threshold: float):
        z = window_mean_z(reference_data.to_numpy(), current_data.to_numpy())
        return z, bool(z > threshold)

    register_stattest(StatTest(name=WINDOW_MEAN_TEST, display_name="window-mean z-score",
                               allowed_feature_types=[ColumnType.Numerical], default_threshold=3.0), impl)


def degenerate_columns(values: np.ndarray) -> np.ndarray:
    """Per column of a matrix (rows: days), whether it is constant up to floating-point noise over
    its finite values, or has none (e.g. the benchmark's beta to itself): no histogram, no drift."""
    values = np.asarray(values, float)
    if len(values) == 0:
        return np.ones(values.shape[1], dtype=bool)
    finite = np.isfinite(values)
    low = np.where(finite, values, np.inf).min(axis=0)
    high = np.where(finite, values, -np.inf).max(axis=0)
    size = np.where(finite, np.abs(values), 0.0).max(axis=0)
    with np.errstate(invalid="ignore"):
        spread = high - low
    return ~finite.any(axis=0) | (spread <= 1e-9 * np.maximum(1.0, size))


def window_mean_z_columns(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """`window_mean_z` for every column of two matrices at once (rows: days, columns: features).

    Finite columns take one cumulative sum: the window means are differences of it, on values
    centred by the column's reference mean so large levels lose no precision. A column with NaN
    or inf goes through `window_mean_z`, which drops NaN on its own."""
    ref, cur = np.asarray(reference, float), np.asarray(current, float)
    out = np.full(ref.shape[1], np.nan)
    clean = np.isfinite(ref).all(axis=0) & np.isfinite(cur).all(axis=0)
    for j in np.flatnonzero(~clean):
        out[j] = window_mean_z(ref[:, j], cur[:, j])
    n, w = len(ref), len(cur)
    if not clean.any() or w == 0 or n <= w:
        return out
    centre = ref[:, clean].mean(axis=0)
    sums = np.vstack([np.zeros(int(clean.sum())), np.cumsum(ref[:, clean] - centre, axis=0)])
    means = (sums[w:] - sums[:-w]) / w  # every same-length window of the reference
    spread = means.std(axis=0, ddof=1)
    gap = cur[:, clean].mean(axis=0) - centre - means.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(gap) / spread
    flat = ~np.isfinite(spread) | (spread == 0.0)
    same = np.isclose(cur[:, clean].mean(axis=0), centre + means.mean(axis=0))
    z[flat] = np.where(same[flat], 0.0, np.inf)
    out[clean] = z
    return out


def psi_kl_columns(reference: np.ndarray, current: np.ndarray, n_bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """`psi_kl` for every column of two matrices at once: the reference's quantile edges per
    column, each value's bin by comparison with them, and the bin shares by counting. Repeated
    edges leave empty bins in both windows, which add nothing, as `psi_kl`'s unique edges do.
    Columns with non-finite values go through `psi_kl`."""
    ref, cur = np.asarray(reference, float), np.asarray(current, float)
    psi, kl = np.full(ref.shape[1], np.nan), np.full(ref.shape[1], np.nan)
    clean = np.isfinite(ref).all(axis=0) & np.isfinite(cur).all(axis=0)
    for j in np.flatnonzero(~clean):
        psi[j], kl[j] = psi_kl(ref[:, j], cur[:, j], n_bins)
    if not clean.any() or len(ref) < n_bins or len(cur) == 0:
        return psi, kl
    r, c = ref[:, clean], cur[:, clean]
    quantiles = np.quantile(r, np.linspace(0, 1, n_bins + 1), axis=0)  # (n_bins + 1, k)
    distinct = 1 + (np.diff(quantiles, axis=0) > 0).sum(axis=0)
    # psi_kl's outer edges are -inf and +inf: an interior edge at the minimum or maximum merges into them
    edges = quantiles[1:-1].copy()
    edges[edges <= quantiles[0]] = -np.inf
    edges[edges >= quantiles[-1]] = np.inf

    def shares(x: np.ndarray) -> np.ndarray:
        bins = (x[:, :, None] >= edges.T[None, :, :]).sum(axis=2)  # each value's bin, 0 .. n_bins - 1
        return np.stack([(bins == b).sum(axis=0) for b in range(n_bins)]) / len(x)

    p, q = np.clip(shares(r), EPS, None), np.clip(shares(c), EPS, None)
    column_psi = np.sum((q - p) * np.log(q / p), axis=0)
    column_kl = np.sum(q * np.log(q / p), axis=0)
    constant = distinct < 3  # (almost) constant in the reference
    psi[clean] = np.where(constant, 0.0, column_psi)
    kl[clean] = np.where(constant, 0.0, column_kl)
    return psi, kl


@dataclass(frozen=True)
class DriftStatistics:
    """What the drift decision needs for one window pair."""

    table: pd.DataFrame  # feature, psi, kl, psi_above_threshold, window_z, drifted
    share_drifted: float
    target_psi: float
    target_z: float  # window-mean z-score of the target's absolute size (its volatility)
    relative_vol_z: float = float("nan")  # `relative_volatility_z` (NaN: not judged, e.g. the benchmark itself)

    def drifted(self, max_share_drifted: float, z_threshold: float, relative_vol_z_threshold: float) -> bool:
        """The decision: too many features moved, or the target's size did, or the ticker's
        volatility relative to the benchmark's did."""
        relative = not np.isnan(self.relative_vol_z) and self.relative_vol_z > relative_vol_z_threshold
        return bool(self.share_drifted > max_share_drifted or self.target_z > z_threshold or relative)

    def reason(self, max_share_drifted: float, z_threshold: float, relative_vol_z_threshold: float,
               top: int = 5) -> str:
        most = self.table.sort_values("window_z", ascending=False).head(top)
        relative = (f", its volatility relative to the benchmark's z {self.relative_vol_z:.1f} (threshold "
                    f"{relative_vol_z_threshold})" if not np.isnan(self.relative_vol_z) else "")
        return (f"{self.share_drifted:.0%} of features drifted (threshold {max_share_drifted:.0%}), the target's "
                f"size z {self.target_z:.1f} (threshold {z_threshold}){relative}; most: "
                + ", ".join(f"{r.feature} z {r.window_z:.1f}" for r in most.itertuples()))


def drift_statistics(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str], target: str,
                     z_threshold: float = 3.0, psi_threshold: float = 0.2,
                     scores: dict[str, float] | None = None) -> DriftStatistics:
    """Per feature the window-mean z-score (the decision), PSI and KL, all columns at once, and the
    target's PSI and size z. Columns constant up to rounding cannot drift (z 0). `scores`: the
    z-scores as Evidently computed them (`evidently_drift`), instead of computing them here."""
    columns = list(columns)
    ref, cur = reference[columns].to_numpy(float), current[columns].to_numpy(float)
    psi, kl = psi_kl_columns(ref, cur)
    if scores is None:
        z = np.where(degenerate_columns(np.vstack([ref, cur])), 0.0, window_mean_z_columns(ref, cur))
    else:
        z = np.array([scores.get(c, 0.0) for c in columns])
    z = np.where(np.isnan(z), 0.0, z)
    table = pd.DataFrame({"feature": columns, "psi": psi, "kl": kl, "psi_above_threshold": psi > psi_threshold,
                          "window_z": z, "drifted": z > z_threshold})
    table = table.sort_values("window_z", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    target_psi, _ = psi_kl(reference[target].to_numpy(float), current[target].to_numpy(float))
    target_z = window_mean_z(reference[target].abs().to_numpy(float), current[target].abs().to_numpy(float))
    pair = [RETURN, BENCHMARK_RETURN]
    relative = (relative_volatility_z(reference[pair].to_numpy(float), current[pair].to_numpy(float))
                if set(pair) <= set(reference.columns) & set(current.columns) else float("nan"))
    return DriftStatistics(table, float(table["drifted"].mean()), target_psi, target_z, relative)


def drift_windows(rows: pd.DataFrame, train_start: str | None, train_end: str | None, fallback_end: str,
                  window_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One ticker's reference and current windows, which never overlap: its champion's training
    window (from the first row to `fallback_end`, the end of the validation split, without a
    champion), and its last `window_days` rows after that window (fewer, even none, soon after a
    retrain: the market the champion has not seen yet)."""
    rows = rows.sort_values("date")
    start = pd.Timestamp(train_start) if train_start else rows["date"].min()
    end = pd.Timestamp(train_end) if train_end else pd.Timestamp(fallback_end)
    return rows[(rows["date"] >= start) & (rows["date"] <= end)], rows[rows["date"] > end].tail(window_days)


@dataclass(frozen=True)
class EvidentlyReport:
    html: bytes
    json: bytes
    scores: dict[str, float]  # column -> window-mean z-score


def evidently_report(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str],
                     z_threshold: float = 3.0) -> EvidentlyReport:
    """Evidently's data-drift preset with the window-mean z-score test per feature: the HTML and
    JSON report a user reads, and each column's score. Columns that are constant up to rounding
    are left out (no histogram, no drift)."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    _register_window_mean_test()
    both = np.vstack([reference[list(columns)].to_numpy(float), current[list(columns)].to_numpy(float)])
    cols = [c for c, flat in zip(columns, degenerate_columns(both)) if not flat]
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
    html = snapshot.get_html_str(as_iframe=False).encode()
    return EvidentlyReport(html, json.dumps(payload, default=str).encode(), scores)


@dataclass(frozen=True)
class DriftReport(DriftStatistics):
    html: bytes = b""
    json: bytes = b""


def evidently_drift(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str], target: str,
                    z_threshold: float = 3.0, psi_threshold: float = 0.2) -> DriftReport:
    """The drift statistics with the z-scores as Evidently's report computed them, and the report."""
    report = evidently_report(reference, current, columns, z_threshold)
    stats = drift_statistics(reference, current, columns, target, z_threshold, psi_threshold, scores=report.scores)
    return DriftReport(stats.table, stats.share_drifted, stats.target_psi, stats.target_z, stats.relative_vol_z,
                       report.html, report.json)
