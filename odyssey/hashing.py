"""SHA-256 of files and bytes, for manifests and artifact integrity."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def frame_sha256(frame) -> str:
    """SHA-256 of a table's exact content: column names, dtypes and every value's bytes (two
    tables hash equal only if they are bit for bit the same; the index is ignored)."""
    import numpy as np
    import pandas as pd

    digest = hashlib.sha256()
    for name in frame.columns:
        column = frame[name]
        digest.update(f"{name}:{column.dtype}\n".encode())
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            values = column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]").view(np.int64)
        elif column.dtype == object:
            values = np.frombuffer("\x1f".join(map(str, column.tolist())).encode(), np.uint8)
        else:
            values = np.ascontiguousarray(column.to_numpy())
        digest.update(values.tobytes())
    return digest.hexdigest()
