"""Standard scaling fit on train rows only; parameters kept as JSON, never pickled."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler


def fit_scaler(table: pd.DataFrame, columns: Sequence[str], registry_version: str) -> dict:
    """Fit sklearn's StandardScaler on the rows with split == 'train' (NaN ignored)."""
    train = table.loc[table["split"] == "train", list(columns)]
    if train.empty:
        raise ValueError("no train rows to fit the scaler on")
    scaler = StandardScaler().fit(train.to_numpy())
    return {
        "kind": "standard",
        "fit_on": "train",
        "train_rows": int(len(train)),
        "train_start": str(table.loc[table["split"] == "train", "date"].min().date()),
        "train_end": str(table.loc[table["split"] == "train", "date"].max().date()),
        "registry_version": registry_version,
        "features": {c: {"mean": float(m), "scale": float(s)} for c, m, s in zip(columns, scaler.mean_, scaler.scale_)},
    }


def apply_scaler(table: pd.DataFrame, params: dict) -> pd.DataFrame:
    """(x - mean) / scale for every feature in params; other columns unchanged."""
    out = table.copy()
    names = list(params["features"])
    mean = np.array([params["features"][c]["mean"] for c in names])
    scale = np.array([params["features"][c]["scale"] for c in names])
    out[names] = (table[names].to_numpy() - mean) / scale
    return out
