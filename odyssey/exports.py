"""ML-ready exports: per-ticker and global Parquet (zstd) files plus a manifest with SHA-256s."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from typing import Sequence

import pandas as pd
from upath import UPath

from odyssey.hashing import sha256_bytes
from odyssey.settings import SPLIT_NAMES


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, compression="zstd", index=False)
    return buffer.getvalue()


def _write(root: UPath, relative: str, frame: pd.DataFrame) -> dict:
    data = parquet_bytes(frame)
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    dates = frame["date"] if len(frame) else pd.Series(dtype="datetime64[ns]")
    return {
        "path": relative,
        "rows": int(len(frame)),
        "bytes": len(data),
        "sha256": sha256_bytes(data),
        "start": str(dates.min().date()) if len(frame) else None,
        "end": str(dates.max().date()) if len(frame) else None,
    }


def write_exports(table: pd.DataFrame, root: str | UPath, feature_names: Sequence[str], registry_version: str,
                  scaler: dict, target: str) -> dict:
    """Write per_asset/<TICKER>/<split>.parquet and global/<split>.parquet; return the manifest.

    Each file holds date, ticker, the features (scaled) and the target. The manifest is also
    written as manifest.json beside them.
    """
    root = UPath(root)
    columns = ["date", "ticker", *feature_names, target]
    files = []
    for split in SPLIT_NAMES:
        part = table.loc[table["split"] == split, columns]
        files.append({"scope": "global", "split": split, **_write(root, f"global/{split}.parquet", part)})
        for ticker, group in part.groupby("ticker", sort=True):
            files.append({"scope": ticker, "split": split,
                          **_write(root, f"per_asset/{ticker}/{split}.parquet", group.reset_index(drop=True))})
    manifest = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "registry_version": registry_version,
        "target": target,
        "n_features": len(feature_names),
        "feature_names": list(feature_names),
        "tickers": sorted(table["ticker"].unique().tolist()),
        "splits": {
            s: {"rows": int((table["split"] == s).sum()),
                "start": str(table.loc[table["split"] == s, "date"].min().date()) if (table["split"] == s).any() else None,
                "end": str(table.loc[table["split"] == s, "date"].max().date()) if (table["split"] == s).any() else None}
            for s in SPLIT_NAMES
        },
        "scaling": {"kind": scaler["kind"], "fit_on": "train", "train_end": scaler["train_end"]},
        "files": files,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def verify_exports(root: str | UPath, manifest: dict) -> list[str]:
    """Files whose SHA-256 no longer matches the manifest (empty list: all intact)."""
    root = UPath(root)
    return [f["path"] for f in manifest["files"] if sha256_bytes((root / f["path"]).read_bytes()) != f["sha256"]]
