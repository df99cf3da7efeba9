"""Table storage: Parquet (zstd) and JSON IO managers on a local path or any fsspec URL."""

from __future__ import annotations

import contextlib
import io
import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ContextManager

import dagster as dg
import pandas as pd
from filelock import FileLock
from upath import UPath

from odyssey.hashing import sha256_bytes

LOCAL_PROTOCOLS = ("", "file", "local")
HISTORY_DIR = ".history"
KEEP_VERSIONS = 5


def archive_previous(path: UPath, base: UPath, keep: int = KEEP_VERSIONS) -> UPath | None:
    """Copy the version about to be replaced to <base>/.history/<relative path>/<time><suffix>,
    keeping the newest `keep`: a materialization that fails its checks never loses the last good one."""
    if not path.exists():
        return None
    relative = path.relative_to(base) if path.is_relative_to(base) else UPath(path.name)
    folder = base / HISTORY_DIR / str(relative)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = folder / f"{stamp}{path.suffix}"
    target.write_bytes(path.read_bytes())
    versions = sorted(p for p in folder.iterdir() if p.name.endswith(path.suffix))
    for old in versions[:-keep]:
        old.unlink()
    return target


def record_stored_bytes(context: dg.OutputContext, data: bytes, previous: UPath | None) -> None:
    """What the catalog keeps of a stored output (beside the `path` UPathIOManager records): its size and SHA-256, and the SHA-256 as
    the materialization's data version, so downstream assets are stale exactly when these bytes
    change (a re-run that writes the same bytes leaves them fresh).

    Dagster has no public way for an IO manager to set the data version (dagster-io/dagster#15584);
    the step's data-version cache, read when the materialization is logged right after
    `handle_output`, is it. tests/test_lineage.py proves the version equals the stored bytes' hash."""
    digest = sha256_bytes(data)
    context.add_output_metadata({"sha256": digest, "bytes": len(data),
                                 "previous_version": str(previous) if previous else "none"})
    if context.has_asset_key:
        context.step_context.set_data_version(context.asset_key, dg.DataVersion(digest))


def write_atomic(path: UPath, data: bytes) -> None:
    """Write bytes so readers never see a half-written file (rename on local disks; object
    stores replace whole objects anyway)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.protocol in LOCAL_PROTOCOLS:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp.path, path.path)
    else:
        path.write_bytes(data)


class _ParquetUPath(dg.UPathIOManager):
    extension = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: the table IO manager stores DataFrames, "
                            f"got {type(obj).__name__}")
        buffer = io.BytesIO()
        obj.to_parquet(buffer, compression="zstd", index=False)
        data = buffer.getvalue()
        previous = archive_previous(path, self._base_path)
        write_atomic(path, data)
        record_stored_bytes(context, data, previous)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        with path.open("rb") as handle:
            return pd.read_parquet(handle)


class _JsonUPath(dg.UPathIOManager):
    extension = ".json"

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        data = json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
        previous = archive_previous(path, self._base_path)
        write_atomic(path, data)
        record_stored_bytes(context, data, previous)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        return json.loads(path.read_text())


class ParquetIOManager(dg.ConfigurableIOManagerFactory):
    """DataFrames as zstd Parquet under base_path/<asset key>[/<partition>].parquet; the replaced
    version is kept under base_path/.history/ (newest five)."""

    base_path: str

    def create_io_manager(self, context: dg.InitResourceContext) -> _ParquetUPath:
        return _ParquetUPath(base_path=UPath(self.base_path))


class JsonIOManager(dg.ConfigurableIOManagerFactory):
    """JSON-serialisable values (parameters, manifests) as .json beside the tables."""

    base_path: str

    def create_io_manager(self, context: dg.InitResourceContext) -> _JsonUPath:
        return _JsonUPath(base_path=UPath(self.base_path))


class Storage(dg.ConfigurableResource):
    """The base location for files assets write themselves (exports, reports, models)."""

    base_path: str

    def path(self, *parts: str) -> UPath:
        return UPath(self.base_path).joinpath(*parts)

    def exclusive(self, name: str) -> ContextManager:
        """An exclusive lock named `name`, across threads and processes, held for a read-modify-write
        of stored tables (a lock file under base_path/.locks/, released when its holder ends, even by
        a crash). Object stores have no such lock: there the concurrency pool of the writing step
        keeps writers apart (LANDED_POOL)."""
        root = UPath(self.base_path)
        if root.protocol not in LOCAL_PROTOCOLS:
            return contextlib.nullcontext()
        folder = Path(root.path) / ".locks"
        folder.mkdir(parents=True, exist_ok=True)
        return FileLock(folder / f"{name}.lock")

    def stored_table(self, asset: str, columns: list[str] | None = None) -> pd.DataFrame | None:
        """An asset's stored table as the IO manager wrote it (only `columns`, when given), or
        None before its first run (for assets that extend their own history, such as the landed
        days and the forecast log)."""
        path = self.path("tables", f"{asset}.parquet")
        if not path.exists():
            return None
        with path.open("rb") as handle:
            return pd.read_parquet(handle, columns=columns)


LANDED_TABLES = {"bars": "landed_bars", "alt": "landed_alt_data", "actions": "landed_actions"}
# The concurrency pool of the step that extends the landed tables: the instance allows one step of
# it at a time (pools default_limit 1), so two ingests never read the same landed days and each
# write back only their own.
LANDED_POOL = "landed_tables"


def last_landed_day(storage: Storage, history_end: str | pd.Timestamp, kind: str,
                    stored: pd.DataFrame | None = None) -> pd.Timestamp | None:
    """New landing files of `kind` ("bars" | "alt") must start after this day: the later of the
    source history's end and the last landed day of that kind (`stored`: that table, if already
    read). Splits ("actions") may name any day: None."""
    if kind == "actions":
        return None
    if stored is None:
        stored = storage.stored_table(LANDED_TABLES[kind])
    end = pd.Timestamp(history_end)
    return max(end, stored["date"].max()) if stored is not None and len(stored) else end
