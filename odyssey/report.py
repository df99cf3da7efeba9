"""Backtest charts (PNG) and the self-contained HTML backtest report."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd

from odyssey.backtest import StrategyRun, monthly_returns
from odyssey.metrics import ANNUAL_DAYS

COMPARISON_COLUMNS = ["baseline", "excess_return", "excess_return_ci_low", "excess_return_ci_high", "sharpe_difference",
                      "sharpe_difference_ci_low", "sharpe_difference_ci_high", "level"]


def _figure(height: float = 3.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(9, height))


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def analog_paths_chart(paths: pd.DataFrame, title: str) -> bytes:
    """The analogs' cumulative log returns after their day (one thin line each) and their mean."""
    fig, ax = _figure(2.8)
    for column in paths.columns:
        ax.plot(paths.index, paths[column], color="tab:blue", alpha=0.35, linewidth=0.8)
    if len(paths.columns):
        ax.plot(paths.index, paths.mean(axis=1), color="black", linewidth=1.8, label="mean")
        ax.legend(fontsize=7)
    ax.axhline(0.0, color="grey", linewidth=0.6)
    ax.set_xlabel("sessions after the analog's day", fontsize=8)
    ax.set_ylabel("cumulative log return", fontsize=8)
    ax.set_title(title, fontsize=9)
    return _png(fig)


def equity_chart(runs: list[StrategyRun]) -> bytes:
    fig, ax = _figure()
    for run in runs:
        ax.plot(run.realized, np.cumprod(1 + run.returns), label=run.name, linewidth=1.6 if run.name == "ppo" else 0.9)
    ax.set_title("Equity (after costs)")
    ax.legend(fontsize=7)
    return _png(fig)


def drawdown_chart(runs: list[StrategyRun]) -> bytes:
    fig, ax = _figure()
    for run in runs:
        equity = np.cumprod(1 + run.returns)
        ax.plot(run.realized, equity / np.maximum.accumulate(np.maximum(equity, 1.0)) - 1, label=run.name, linewidth=0.9)
    ax.set_title("Drawdown")
    ax.legend(fontsize=7)
    return _png(fig)


def rolling_sharpe_chart(runs: list[StrategyRun], window: int = 63) -> bytes:
    fig, ax = _figure()
    for run in runs:
        r = pd.Series(run.returns, index=run.realized)
        ax.plot(run.realized, r.rolling(window).mean() / r.rolling(window).std() * np.sqrt(ANNUAL_DAYS),
                label=run.name, linewidth=0.9)
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_title(f"Rolling Sharpe ({window} days)")
    ax.legend(fontsize=7)
    return _png(fig)


def monthly_heatmap(run: StrategyRun) -> bytes:
    table = monthly_returns(run)
    fig, ax = _figure(0.45 * len(table) + 1.2)
    limit = float(np.nanmax(np.abs(table.to_numpy()))) if table.notna().any().any() else 0.01
    image = ax.imshow(table.to_numpy(), cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(12), [str(m) for m in range(1, 13)])
    ax.set_yticks(range(len(table)), [str(y) for y in table.index])
    for (i, j), value in np.ndenumerate(table.to_numpy()):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.1%}", ha="center", va="center", fontsize=6)
    ax.set_title(f"Monthly returns: {run.name}")
    fig.colorbar(image, ax=ax, fraction=0.03)
    return _png(fig)


def monte_carlo_chart(paths: pd.DataFrame) -> bytes:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, group in paths.groupby("strategy", sort=False):
        axes[0].hist(group["sharpe"], bins=40, histtype="step", label=name)
        axes[1].hist(group["max_drawdown"], bins=40, histtype="step", label=name)
    axes[0].set_title("Bootstrap Sharpe")
    axes[1].set_title("Bootstrap max drawdown")
    axes[0].legend(fontsize=7)
    return _png(fig)


def charts(runs: list[StrategyRun], paths: pd.DataFrame, heatmap_of: str = "ppo") -> dict[str, bytes]:
    chosen = next((r for r in runs if r.name == heatmap_of), runs[0])
    return {"equity_curves": equity_chart(runs), "drawdowns": drawdown_chart(runs),
            "rolling_sharpe": rolling_sharpe_chart(runs), "monthly_returns": monthly_heatmap(chosen),
            "monte_carlo": monte_carlo_chart(paths)}


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="", border=0, classes="t")


def html_report(title: str, summary: dict[str, str], metrics: pd.DataFrame, comparison: pd.DataFrame,
                monte_carlo: pd.DataFrame, stress: pd.DataFrame, images: dict[str, bytes]) -> str:
    """One HTML file with the charts embedded as data URIs (no network access needed to view it)."""
    wide = metrics.pivot_table(index="strategy", columns="metric", values="value", sort=False).reset_index()
    intervals = metrics.dropna(subset=["ci_low"]).assign(
        interval=lambda f: f.apply(lambda r: f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]", axis=1))
    intervals = intervals.pivot_table(index="strategy", columns="metric", values="interval", aggfunc="first",
                                      sort=False).reset_index()
    items = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in summary.items())
    figures = "".join(
        f'<figure><img id="chart-{name}" alt="{name}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
        f"<figcaption>{name.replace('_', ' ')}</figcaption></figure>" for name, data in images.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} table.t{{border-collapse:collapse;font-size:12px}}
table.t td,table.t th{{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}} figure{{margin:1em 0}}
img{{max-width:100%}}</style></head>
<body><h1>{html.escape(title)}</h1><ul>{items}</ul>
<h2>Metrics</h2>{_table(wide)}
<h2>Metrics with 90 % block-bootstrap intervals</h2>{_table(intervals)}
<h2>Policy against the baselines (paired bootstrap)</h2>{_table(comparison[COMPARISON_COLUMNS])}
<h2>Charts</h2>{figures}
<h2>Monte Carlo (block bootstrap of daily returns)</h2>{_table(monte_carlo)}
<h2>Stress tests</h2>{_table(stress)}
</body></html>
"""
