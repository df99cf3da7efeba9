"""Model explanations: TreeSHAP feature importance (mean |SHAP value|) and its bar plot."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import xgboost as xgb


def shap_importance(booster: xgb.Booster, rows: pd.DataFrame, feature_names: Sequence[str],
                    top: int = 20) -> tuple[pd.DataFrame, bytes]:
    """Top features by mean |SHAP| over `rows`, and a PNG bar plot of them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    names = list(feature_names)
    x = rows[names].astype(np.float32)
    values = shap.TreeExplainer(booster).shap_values(x)
    importance = np.abs(values).mean(axis=0)
    table = (pd.DataFrame({"feature": names, "mean_abs_shap": importance})
             .sort_values(["mean_abs_shap", "feature"], ascending=[False, True]).head(top).reset_index(drop=True))
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(table) + 1))
    ax.barh(table["feature"][::-1], table["mean_abs_shap"][::-1])
    ax.set_xlabel("mean |SHAP value|")
    ax.tick_params(labelsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return table, buffer.getvalue()
