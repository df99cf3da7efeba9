"""Table storage: Parquet (zstd) and JSON IO managers on a local path or any fsspec URL, with every
stored value also kept by its SHA-256 (its data version) under <tables>/.versions/, and readers
that load the newest version whose blocking checks passed (resources/accepted.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from abc import abstractmethod
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ContextManager, Optional

import dagster as dg
import pandas as pd
from filelock import FileLock
from pydantic import Field
from upath import UPath

from odyssey.hashing import sha256_bytes
from resources.accepted import (DATA_VERSION_TAG, RESTORE_FORCED, RESTORED_FROM, NoAcceptedVersion, Resolution,
                                StoredVersion, accepted_version, iso, label, note_read, partitions_data_version,
                                reads_markdown, reads_of, restore_command)

LOCAL_PROTOCOLS = ("", "file", "local")
VERSIONS_DIR = ".versions"
KEEP_VERSIONS = 5
CODE_VERSION_TAG = "dagster/code_version"
INPUT_TAG_PREFIX = "dagster/input_"  # the input data versions and event pointers of a materialization
USER_PROVIDED_TAG = "dagster/data_version_is_user_provided"
BLOCKING_CHECKS_DESCRIPTION = ("each asset's blocking checks by name (graph.build_definitions binds them): a reader "
                               "loads the newest version they all passed")


class StoredVersionError(RuntimeError):
    """The bytes of a version are gone, or no longer hash to the version they are stored as."""


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


# --- the version store: <tables>/.versions/<asset>[/<partition>]/<stored at>-<sha256><ext> ---------

def current_path(tables: UPath, asset: str, partition: str | None, extension: str) -> UPath:
    """Where the IO managers keep an asset partition's current value (UPathIOManager's layout)."""
    path = tables.joinpath(*dg.AssetKey.from_user_string(asset).path)
    if partition is not None:
        path = path / partition
    return path.with_name(path.name + extension)


def version_folder(tables: UPath, current: UPath) -> UPath:
    relative = current.relative_to(tables) if current.is_relative_to(tables) else UPath(current.name)
    text = str(relative)
    return tables / VERSIONS_DIR / (text[: -len(current.suffix)] if current.suffix else text)


def stored_versions(folder: UPath, extension: str) -> list[tuple[str, str, UPath]]:
    """(stored at, SHA-256, file) of each version in the folder, newest first."""
    if not folder.exists():
        return []
    found = []
    for path in folder.iterdir():
        if not path.name.endswith(extension):
            continue
        stamp, _, digest = path.name[: -len(extension)].partition("-")
        if len(digest) == 64:
            found.append((stamp, digest, path))
    return sorted(found, key=lambda v: v[0], reverse=True)


def store_version(tables: UPath, current: UPath, data: bytes, digest: str) -> UPath:
    """Keep `data` as version `digest` of the value at `current` (re-storing the same bytes
    re-dates that version)."""
    folder = version_folder(tables, current)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = folder / f"{stamp}-{digest}{current.suffix}"
    write_atomic(target, data)
    for _, other, path in stored_versions(folder, current.suffix):
        if other == digest and path.name != target.name:
            path.unlink()
    return target


def prune_versions(tables: UPath, current: UPath, keep: int, protect: set[str]) -> None:
    """Delete all but the newest `keep` stored versions and the `protect`ed ones (the newest
    version whose blocking checks passed is never deleted)."""
    for stamp, digest, path in stored_versions(version_folder(tables, current), current.suffix)[keep:]:
        if digest not in protect:
            path.unlink()


def read_version(tables: UPath, current: UPath, digest: str) -> bytes:
    """The bytes of version `digest`, checked against it: from the version store, or the current
    file when it holds that version (values stored before the version store existed)."""
    folder = version_folder(tables, current)
    for _, other, path in stored_versions(folder, current.suffix):
        if other == digest:
            data = path.read_bytes()
            if sha256_bytes(data) != digest:
                raise StoredVersionError(f"{path} no longer hashes to the version it was stored as ({digest[:12]}): "
                                         "the file changed after it was stored")
            return data
    if current.exists():
        data = current.read_bytes()
        if sha256_bytes(data) == digest:
            return data
    raise StoredVersionError(f"version {digest[:12]} is no longer stored (not in {folder}, and {current} holds "
                             "another version)")


def record_stored_bytes(context: dg.OutputContext, data: bytes, stored: UPath) -> None:
    """What the catalog keeps of a stored output (beside the `path` UPathIOManager records): its size and SHA-256, and the SHA-256 as
    the materialization's data version, so downstream assets are stale exactly when these bytes
    change (a re-run that writes the same bytes leaves them fresh).

    Dagster has no public way for an IO manager to set the data version (dagster-io/dagster#15584);
    the step's data-version cache, read when the materialization is logged right after
    `handle_output`, is it. tests/test_lineage.py proves the version equals the stored bytes' hash."""
    digest = sha256_bytes(data)
    context.add_output_metadata({"sha256": digest, "bytes": len(data), "version_path": str(stored)})
    if context.has_asset_key:
        context.step_context.set_data_version(context.asset_key, dg.DataVersion(digest))


def _step(context: dg.InputContext | dg.OutputContext):
    try:
        return context.step_context
    except Exception:  # a context built outside a run (build_input_context, load_asset_value)
        return None


def _checks_this_asset(context: dg.InputContext) -> bool:
    """Whether the loading step is an asset check of the asset it loads (a check judges the latest
    version, the one it is evaluated on)."""
    step = _step(context)
    if step is None:
        return False
    layer = step.job_def.asset_layer
    for output in step.step.step_outputs:
        key = layer.get_asset_check_key_for_node_output(step.node_handle, output.name)
        if key is not None and key.asset_key == context.asset_key:
            return True
    return False


def _record_provenance(context: dg.InputContext, resolved: dict[str | None, Resolution]) -> None:
    """Make the step's materialization record the input version it read (its
    `dagster/input_data_version/<asset>` tag), not the newer rejected one. Like `set_data_version`
    above, the step's data-version cache is the only way: it holds the inputs' versions, fetched
    at the start of the step, until the outputs are logged."""
    from dagster._core.definitions.data_version import SKIP_PARTITION_DATA_VERSION_DEPENDENCY_THRESHOLD
    from dagster._core.execution.context.data_version_cache import InputAssetVersionInfo

    step = _step(context)
    if step is None or step.is_asset_check_step or not any(r.skipped for r in resolved.values()):
        return
    cache = step.input_asset_records
    if cache is None:
        return
    if None in resolved:
        v = resolved[None].version
        cache[context.asset_key] = InputAssetVersionInfo(v.storage_id, dg.DagsterEventType.ASSET_MATERIALIZATION,
                                                         dg.DataVersion(v.data_version), v.run_id, v.timestamp)
        return
    info = cache.get(context.asset_key)
    if info is not None and len(resolved) < SKIP_PARTITION_DATA_VERSION_DEPENDENCY_THRESHOLD:
        versions = [resolved[p].version.data_version for p in sorted(resolved)]
        cache[context.asset_key] = dataclasses.replace(
            info, data_version=dg.DataVersion(partitions_data_version(versions)))


class _VersionedUPath(dg.UPathIOManager):
    """Writes the value, keeps it in the version store and prunes it; loads an input asset's
    newest version whose blocking checks passed (an asset check loads the latest: it judges it)."""

    def __init__(self, base_path: UPath, blocking_checks: Mapping[str, Sequence[str]] | None = None,
                 keep_versions: int = KEEP_VERSIONS):
        super().__init__(base_path=base_path)
        self._blocking = blocking_checks
        self._keep = keep_versions

    @abstractmethod
    def encode(self, context: dg.OutputContext, obj: Any) -> bytes:
        """The bytes stored for `obj`."""

    @abstractmethod
    def decode(self, data: bytes) -> Any:
        """The value of stored bytes."""

    def blocking_checks(self, context: dg.InputContext | dg.OutputContext) -> list[str]:
        """The asset's blocking checks: from the definitions when bound, else from the graph the
        run's job was made from (all its checks, also those of assets outside the job)."""
        if self._blocking is not None:
            return list(self._blocking.get(context.asset_key.to_user_string(), ()))
        step = _step(context)
        if step is None:
            return []
        graph = step.job_def.asset_layer.asset_graph.source_asset_graph
        return sorted(k.name for k in graph.asset_check_keys
                      if k.asset_key == context.asset_key and graph.get_check_spec(k).blocking)

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        data = self.encode(context, obj)
        digest = sha256_bytes(data)
        write_atomic(path, data)
        stored = store_version(self._base_path, path, data, digest)
        prune_versions(self._base_path, path, self._keep, {digest, *self._accepted_digest(context)})
        record_stored_bytes(context, data, stored)
        step = _step(context)
        reads = reads_of(step.run_id, step.step.key) if step is not None else []
        if reads:
            context.add_output_metadata({"input_versions": dg.MetadataValue.md(reads_markdown(reads))})

    def _accepted_digest(self, context: dg.OutputContext) -> list[str]:
        """The version readers get now (before this one is judged): kept whatever its age."""
        blocking = self.blocking_checks(context) if context.has_asset_key else []
        step = _step(context)
        if not blocking or step is None:
            return []
        partition = context.asset_partition_key if context.has_asset_partitions else None
        try:
            version = accepted_version(step.instance, context.asset_key.to_user_string(), partition, blocking).version
        except NoAcceptedVersion:
            return []
        return [version.data_version] if version.data_version else []

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        return self.decode(path.read_bytes())

    def load_input(self, context: dg.InputContext) -> Any:
        if not context.has_asset_key:
            return super().load_input(context)
        blocking = self.blocking_checks(context)
        if not blocking or _checks_this_asset(context):
            return super().load_input(context)
        if context.has_asset_partitions:
            keys = list(context.asset_partition_keys)
            if not keys:
                return None
            paths = self._get_paths_for_partitions(context)
            resolved = {k: self._resolve(context, k, blocking) for k in keys}
            values = {k: self._load_version(paths[k], resolved[k]) for k in keys}
            self._note(context, resolved)
            return values[keys[0]] if len(keys) == 1 else values
        resolved = {None: self._resolve(context, None, blocking)}
        value = self._load_version(self._get_path(context), resolved[None])
        self._note(context, resolved)
        return value

    def _resolve(self, context: dg.InputContext, partition: str | None, blocking: list[str]) -> Resolution:
        return accepted_version(context.instance, context.asset_key.to_user_string(), partition, blocking)

    def _load_version(self, path: UPath, resolution: Resolution) -> Any:
        v = resolution.version
        try:
            return self.decode(read_version(self._base_path, path, v.data_version or ""))
        except StoredVersionError as error:
            raise StoredVersionError(f"{label(v.asset, v.partition)}: version {v.short} (materialized "
                                     f"{iso(v.timestamp)}), the newest whose blocking checks passed, cannot be "
                                     f"loaded: {error}; restore a stored version: "
                                     f"{restore_command(v.asset, v.partition)}") from None

    def _note(self, context: dg.InputContext, resolved: dict[str | None, Resolution]) -> None:
        step = _step(context)
        for resolution in resolved.values():
            (context.log.warning if resolution.skipped else context.log.info)(resolution.summary())
            if step is not None:
                note_read(step.run_id, step.step.key, resolution)
        _record_provenance(context, resolved)


def table_bytes(frame: pd.DataFrame) -> bytes:
    """The bytes the table IO manager stores for a DataFrame (Parquet, zstd, no index)."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, compression="zstd", index=False)
    return buffer.getvalue()


class _ParquetUPath(_VersionedUPath):
    extension = ".parquet"

    def encode(self, context: dg.OutputContext, obj: pd.DataFrame) -> bytes:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: the table IO manager stores DataFrames, "
                            f"got {type(obj).__name__}")
        return table_bytes(obj)

    def decode(self, data: bytes) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(data))


class _JsonUPath(_VersionedUPath):
    extension = ".json"

    def encode(self, context: dg.OutputContext, obj: Any) -> bytes:
        return json.dumps(obj, indent=2, sort_keys=True, default=str).encode()

    def decode(self, data: bytes) -> Any:
        return json.loads(data)


class ParquetIOManager(dg.ConfigurableIOManagerFactory):
    """DataFrames as zstd Parquet under base_path/<asset key>[/<partition>].parquet, each version
    also under base_path/.versions/ by its SHA-256; inputs read at the newest version whose
    blocking checks passed."""

    base_path: str
    blocking_checks: Optional[dict[str, list[str]]] = Field(default=None, description=BLOCKING_CHECKS_DESCRIPTION)
    keep_versions: int = Field(default=KEEP_VERSIONS, description="stored versions kept per asset partition, "
                                                                   "besides the one downstream reads")

    def create_io_manager(self, context: dg.InitResourceContext) -> _ParquetUPath:
        return _ParquetUPath(UPath(self.base_path), self.blocking_checks, self.keep_versions)


class JsonIOManager(dg.ConfigurableIOManagerFactory):
    """JSON-serialisable values (parameters, manifests) as .json beside the tables, versioned and
    read the same way."""

    base_path: str
    blocking_checks: Optional[dict[str, list[str]]] = Field(default=None, description=BLOCKING_CHECKS_DESCRIPTION)
    keep_versions: int = Field(default=KEEP_VERSIONS, description="stored versions kept per asset partition, "
                                                                   "besides the one downstream reads")

    def create_io_manager(self, context: dg.InitResourceContext) -> _JsonUPath:
        return _JsonUPath(UPath(self.base_path), self.blocking_checks, self.keep_versions)


class Storage(dg.ConfigurableResource):
    """The base location for files assets write themselves (exports, reports, models), and direct
    reads of stored tables outside the IO managers."""

    base_path: str
    blocking_checks: Optional[dict[str, list[str]]] = Field(default=None, description=BLOCKING_CHECKS_DESCRIPTION)

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
        """An asset's current stored table (only `columns`, when given), or None before its first
        run: for tables without blocking checks that extend their own history (the landed days,
        the forecast log). A table with blocking checks is read with `accepted_table`."""
        path = self.path("tables", f"{asset}.parquet")
        if not path.exists():
            return None
        with path.open("rb") as handle:
            return pd.read_parquet(handle, columns=columns)

    def stored_json(self, asset: str, partition: str | None = None) -> Any:
        """An asset partition's current stored JSON value, or None before its first run: for values
        without blocking checks (the walk-forward summaries)."""
        path = current_path(self.path("tables"), asset, partition, ".json")
        return json.loads(path.read_bytes()) if path.exists() else None

    def blocking_for(self, asset: str) -> list[str]:
        if self.blocking_checks is None:
            raise RuntimeError("this Storage was built without the definitions' blocking checks: use the resources of "
                               "graph.build_definitions(settings)")
        return list(self.blocking_checks.get(asset, ()))

    def accepted_table(self, instance: dg.DagsterInstance, asset: str, columns: list[str] | None = None,
                       partition: str | None = None) -> pd.DataFrame | None:
        """The version of a stored table that downstream assets read: the newest whose blocking
        checks passed (NoAcceptedVersion when none did); None when the table was never stored."""
        blocking = self.blocking_for(asset)
        tables = self.path("tables")
        current = current_path(tables, asset, partition, ".parquet")
        if not blocking:
            if not current.exists():
                return None
            with current.open("rb") as handle:
                return pd.read_parquet(handle, columns=columns)
        try:
            version = accepted_version(instance, asset, partition, blocking).version
        except NoAcceptedVersion:
            if not current.exists():
                return None
            raise
        return pd.read_parquet(io.BytesIO(read_version(tables, current, version.data_version or "")), columns=columns)


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


def roll_back_landed(instance: dg.DagsterInstance, storage: Storage, run_id: str, files: Sequence[str]) -> dict[str, str]:
    """After an ingestion run failed: the rows its `files` brought are taken out of each landed
    table (every landed row records the file it came from), the result is stored as a new version
    and reported to the instance, so the catalog shows it and the days of those files can land
    again once corrected. Whatever ran since (a schedule's ingest, the main job) keeps its rows.
    Returns {table: what was done} for each table that had rows of them."""
    done = {}
    names = set(files)
    tables = storage.path("tables")
    with storage.exclusive(LANDED_POOL):
        for table in LANDED_TABLES.values():
            stored = storage.stored_table(table)
            if stored is None or "source_file" not in stored.columns:
                continue
            taken = stored["source_file"].isin(names)
            if not taken.any():
                continue
            kept = stored[~taken].reset_index(drop=True)
            data = table_bytes(kept)
            what = (f"{int(taken.sum())} row(s) of {', '.join(sorted(set(stored.loc[taken, 'source_file'])))} taken out: "
                    f"ingestion run {run_id} failed, the files went to quarantine")
            put_current(instance, tables, table, None, ".parquet", data, sha256_bytes(data), what, {},
                        {"rows": len(kept), "rows_taken_out": int(taken.sum()), "failed_run": run_id})
            done[table] = what
    return done


def put_current(instance: dg.DagsterInstance, tables: UPath, asset: str, partition: str | None, extension: str,
                data: bytes, digest: str, description: str, tags: dict, metadata: dict) -> None:
    """Make `data` (of data version `digest`) the asset partition's current value outside a run:
    written in place, kept in the version store, and reported to the instance as a
    materialization with that data version (with `tags` and `metadata` besides), so readers
    resolve it and the catalog shows it."""
    current = current_path(tables, asset, partition, extension)
    write_atomic(current, data)
    stored = store_version(tables, current, data, digest)
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key=dg.AssetKey.from_user_string(asset), partition=partition, description=description,
        tags={**tags, DATA_VERSION_TAG: digest, USER_PROVIDED_TAG: "true"},
        metadata={"path": dg.MetadataValue.path(str(current)), "sha256": digest, "bytes": len(data),
                  "version_path": str(stored), **metadata}))


def restore_version(instance: dg.DagsterInstance, tables: UPath, asset: str, partition: str | None, extension: str,
                    version: StoredVersion, forced: bool = False) -> str:
    """Put a stored version back as the asset partition's current value: its bytes (checked
    against the version) replace the current file, and a materialization with that data version
    is reported to the instance, carrying the original's code and input versions and what was
    restored, so readers resolve it and the catalog shows it. Returns the data version."""
    digest = version.data_version or ""
    data = read_version(tables, current_path(tables, asset, partition, extension), digest)
    key = dg.AssetKey.from_user_string(asset)
    original = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, storage_ids=[version.storage_id]),
                                               limit=1).records
    tags = {k: v for k, v in ((original[0].asset_materialization.tags or {}) if original else {}).items()
            if k == CODE_VERSION_TAG or k.startswith(INPUT_TAG_PREFIX)}
    put_current(instance, tables, asset, partition, extension, data, digest,
                f"restored version {digest[:12]} by python -m jobs.restore" + (" --force" if forced else ""), tags,
                {RESTORED_FROM: digest, RESTORE_FORCED: forced, "restored_from_run": version.run_id or "restore",
                 "restored_from_storage_id": version.storage_id,
                 "restored_from_materialized_at": iso(version.timestamp), "restored_checks": version.describe()})
    return digest
