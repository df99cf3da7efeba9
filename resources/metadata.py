"""Metadata users look at in the UI: table summaries, previews and small plots (shared by assets and checks)."""

import base64
import dataclasses
import io
from typing import Sequence

import dagster as dg
import numpy as np
import pandas as pd

from odyssey.lineage import ARTIFACTS_KEY, Artifact

def present(values: dict) -> dict:
    """The entries of `values` that metadata can show: none that is None or a missing number."""
    return {k: v for k, v in values.items() if v is not None and not (np.isscalar(v) and pd.isna(v))}


def artifacts_metadata(artifacts: Sequence[Artifact]) -> dict:
    """The files an asset wrote beside its stored value, for the lineage document and
    `python -m jobs.lineage --verify`."""
    return {ARTIFACTS_KEY: dg.MetadataValue.json([dataclasses.asdict(a) for a in artifacts])}


def check_reason(record) -> str | None:
    """The `reason` a finished check evaluation recorded in its metadata, if any (for a check
    execution record of the instance)."""
    evaluation = record.event.asset_check_evaluation if record is not None and record.event else None
    reason = evaluation.metadata.get("reason") if evaluation else None
    return str(reason.value) if reason is not None else None


def md_table(frame: pd.DataFrame, rows: int = 10, digits: int = 4) -> dg.MetadataValue:
    shown = frame.head(rows).copy()
    for column in shown.columns:
        if pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].round(digits)
        elif pd.api.types.is_datetime64_any_dtype(shown[column]):
            shown[column] = shown[column].dt.strftime("%Y-%m-%d")
    return dg.MetadataValue.md(shown.to_markdown(index=False) if len(shown) else "_(empty)_")

def describe_table(frame: pd.DataFrame, preview_columns: Sequence[str] | None = None) -> dict:
    """Rows, tickers, date range, NaN counts and a preview."""
    meta: dict = {"rows": dg.MetadataValue.int(len(frame)), "columns": dg.MetadataValue.int(frame.shape[1])}
    if "ticker" in frame.columns:
        tickers = sorted(frame["ticker"].unique().tolist())
        meta["tickers"] = dg.MetadataValue.int(len(tickers))
        meta["ticker_list"] = dg.MetadataValue.text(", ".join(tickers))
    if "date" in frame.columns and len(frame):
        meta["first_date"] = dg.MetadataValue.text(str(pd.Timestamp(frame["date"].min()).date()))
        meta["last_date"] = dg.MetadataValue.text(str(pd.Timestamp(frame["date"].max()).date()))
    numeric = frame.select_dtypes(include=[np.number])
    nan = numeric.isna().sum()
    meta["nan_cells"] = dg.MetadataValue.int(int(nan.sum()))
    if nan.any():
        top = nan[nan > 0].sort_values(ascending=False).head(15)
        meta["nan_by_column"] = md_table(top.rename("nan").rename_axis("column").reset_index(), rows=15)
    cols = list(preview_columns) if preview_columns else list(frame.columns[:10])
    meta["preview"] = md_table(frame[cols], rows=8)
    return meta

def png_bytes_markdown(data: bytes, alt: str = "plot") -> dg.MetadataValue:
    """PNG bytes as an inline image in markdown metadata."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(data).decode()})")


def png_markdown(fig) -> dg.MetadataValue:
    """A matplotlib figure as an inline PNG in markdown metadata."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return png_bytes_markdown(buffer.getvalue())

def line_plot(frame: pd.DataFrame, x: str, ys: Sequence[str], title: str) -> dg.MetadataValue:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(ys), 1, figsize=(8, 1.6 * len(ys)), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, y in zip(axes, ys):
        ax.plot(frame[x], frame[y], linewidth=0.8)
        ax.set_ylabel(y, fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0].set_title(title, fontsize=9)
    return png_markdown(fig)
