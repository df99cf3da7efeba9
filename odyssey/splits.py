"""Target construction and chronological train / validation / test splits with purging."""

from __future__ import annotations

import numpy as np
import pandas as pd

from odyssey.settings import Profile
from odyssey.sources.columns import ADJ_CLOSE

def target_name(horizon: int) -> str:
    return f"Return_{horizon}d_forward"


def price_column(clean: pd.DataFrame) -> str:
    """The close returns are taken from: adjusted for distributions when the table has it."""
    return ADJ_CLOSE if ADJ_CLOSE in clean.columns else "close"


def forward_returns(clean: pd.DataFrame, horizon: int = 5) -> pd.DataFrame:
    """Total log return from the close of t to the close of t+h per ticker, h sessions ahead, in
    column `target_name(horizon)`; also the date of t+h (`target_end`)."""
    ordered = clean.sort_values(["ticker", "date"], kind="stable")
    grouped = ordered.groupby("ticker", sort=False)
    column = price_column(ordered)
    future_close = grouped[column].shift(-horizon)
    future_date = grouped["date"].shift(-horizon)
    return pd.DataFrame({
        "date": ordered["date"].to_numpy(),
        "ticker": ordered["ticker"].to_numpy(),
        target_name(horizon): np.log(future_close.to_numpy() / ordered[column].to_numpy()),
        "target_end": future_date.to_numpy(),
    })


def make_splits(features: pd.DataFrame, clean: pd.DataFrame, profile: Profile, horizon: int = 5) -> tuple[pd.DataFrame, dict]:
    """Features + target + split label; rows whose target window crosses a split boundary are purged.

    Returns the table (date, ticker, split, target, features...) and a report of purged rows.
    """
    target_column = target_name(horizon)
    target = forward_returns(clean, horizon)
    table = features.merge(target, on=["date", "ticker"], how="left", validate="one_to_one")
    table.insert(2, "split", profile.split_of(table["date"]).to_numpy())
    end_split = profile.split_of(table["target_end"].fillna(pd.Timestamp.max.normalize())).to_numpy()
    no_target = table[target_column].isna().to_numpy()
    crosses = (end_split != table["split"].to_numpy()) & ~no_target
    keep = ~(crosses | no_target)
    report = {
        "horizon": horizon,
        "purged_boundary_rows": int(crosses.sum()),
        "dropped_no_target_rows": int(no_target.sum()),
        "rows": {s: int(((table["split"] == s) & keep).sum()) for s in ("train", "validation", "test")},
        "boundaries": {"train_end": profile.train_end, "validation_end": profile.validation_end},
    }
    out = table.loc[keep].drop(columns="target_end").reset_index(drop=True)
    first = ["date", "ticker", "split", target_column]
    cols = first + [c for c in out.columns if c not in first]
    return out[cols], report
