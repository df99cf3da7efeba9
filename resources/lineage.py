"""Read the lineage records from Dagster's catalog: the definitions' asset and check specs, each
asset partition's latest materialization (code and data versions, input data versions, stored
path, size and SHA-256, the files beside it), its stale status, each check's latest evaluation,
the MLflow runs behind the models, the installed packages and the git commit.

Public instance APIs where they exist (`fetch_materializations`, the check execution history);
the stale status is computed by the same resolver the UI uses.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path

import dagster as dg
import fsspec
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from upath import UPath

from odyssey import registry as mlreg
from odyssey.lineage import ARTIFACTS_KEY, AssetRecord, CheckRecord, LineageDocument, ModelRecord, Package, \
    Status, artifacts_from_json, propagate_stale
from odyssey.registry import Tracker
from resources.metadata import check_reason
from resources.ticks import tick_version

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_VERSION_TAG = "dagster/data_version"
CODE_VERSION_TAG = "dagster/code_version"
INPUT_VERSION_PREFIX = "dagster/input_data_version/"
CHECK_STATUS = {AssetCheckExecutionRecordStatus.SUCCEEDED: "passed", AssetCheckExecutionRecordStatus.FAILED: "failed"}
COMPLETED = set(CHECK_STATUS)
MODEL_ASSETS = ("forecast_models",)  # per-ticker models in the MLflow registry


@dataclass(frozen=True)
class GraphSpecs:
    """The definitions' assets and checks, however they were loaded (in a run, or from `graph.py`)."""

    assets: dict[dg.AssetKey, dg.AssetSpec]
    checks: list[dg.AssetCheckSpec]
    asset_graph: object  # dagster AssetGraph, for the stale status

    @staticmethod
    def of(repository_def) -> GraphSpecs:
        specs: dict[dg.AssetKey, dg.AssetSpec] = {}
        checks: dict[dg.AssetCheckKey, dg.AssetCheckSpec] = {}
        for assets_def in repository_def.assets_defs_by_key.values():
            specs.update({s.key: s for s in assets_def.specs})
            checks.update({c.key: c for c in assets_def.check_specs})
        for checks_def in repository_def.asset_checks_defs_by_key.values():
            checks.update({c.key: c for c in checks_def.check_specs})
        return GraphSpecs(specs, sorted(checks.values(), key=lambda c: (c.asset_key.to_user_string(), c.name)),
                          repository_def.asset_graph)


class DefinitionsCatalog:
    """The definitions a `lineage` run describes, bound by `graph.build_definitions` once they exist
    (an asset's run context does not carry the whole repository when run in process)."""

    def __init__(self) -> None:
        self._definitions: dg.Definitions | None = None

    def bind(self, definitions: dg.Definitions) -> dg.Definitions:
        self._definitions = definitions
        return definitions

    def graph(self) -> GraphSpecs:
        if self._definitions is None:
            raise RuntimeError("the lineage catalog was never bound to its definitions (graph.build_definitions)")
        return GraphSpecs.of(self._definitions.get_repository_def())


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds") if timestamp else None


def _meta(materialization, name: str):
    value = materialization.metadata.get(name) if materialization else None
    return getattr(value, "value", value) if value is not None else None


def partition_keys(spec: dg.AssetSpec, instance: dg.DagsterInstance) -> list[str | None]:
    if spec.partitions_def is None:
        return [None]
    return list(spec.partitions_def.get_partition_keys(dynamic_partitions_store=instance))


def latest_materialization(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None):
    records_filter = dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None)
    records = instance.fetch_materializations(records_filter, limit=1).records
    return records[0] if records else None


def _stale_resolver(instance: dg.DagsterInstance, asset_graph) -> CachingStaleStatusResolver:
    view = AssetGraphView(temporal_context=TemporalContext(effective_dt=datetime.now(timezone.utc), last_event_id=None),
                          instance=instance, asset_graph=asset_graph)
    return CachingStaleStatusResolver(instance=instance, asset_graph=asset_graph, loading_context=view)


def _cause(key: dg.AssetKey, cause) -> str:
    text = cause.reason if cause.asset_key == key else f"{cause.asset_key.to_user_string()} {cause.reason}"
    dependency = cause.dependency
    if dependency is not None:
        text += f": {dependency.asset_key.to_user_string()}" + (
            f"[{dependency.partition_key}]" if dependency.partition_key else "")
    return text


def stale_status(instance: dg.DagsterInstance, asset_graph, keys: Iterable[tuple[dg.AssetKey, str | None]]
                 ) -> dict[tuple[str, str | None], Status]:
    """(asset, partition) -> ("fresh" | "stale" | "missing", the causes when stale), as the UI shows
    it: stale when its own code or the data it read changed."""
    resolver = _stale_resolver(instance, asset_graph)
    names = {StaleStatus.FRESH: "fresh", StaleStatus.STALE: "stale", StaleStatus.MISSING: "missing"}
    out = {}
    for key, partition in keys:
        status = resolver.get_status(key, partition)
        causes = ()
        if status == StaleStatus.STALE:
            causes = tuple(sorted({_cause(key, c) for c in resolver.get_stale_causes(key, partition)}))
        out[(key.to_user_string(), partition)] = (names[status], causes)
    return out


def asset_records(instance: dg.DagsterInstance, graph: GraphSpecs) -> tuple[list[AssetRecord], dict]:
    """Every asset and partition with its latest materialization; and the storage ids of those
    materializations (to tell whether a check ran on the latest)."""
    downstream: dict[dg.AssetKey, set[str]] = {}
    for spec in graph.assets.values():
        for dep in spec.deps:
            downstream.setdefault(dep.asset_key, set()).add(spec.key.to_user_string())
    wanted = [(key, p) for key in sorted(graph.assets, key=lambda k: k.to_user_string())
              for p in partition_keys(graph.assets[key], instance)]
    upstream = {k.to_user_string(): tuple(d.asset_key.to_user_string() for d in s.deps)
                for k, s in graph.assets.items()}
    statuses = propagate_stale(stale_status(instance, graph.asset_graph, wanted), upstream)
    records, storage_ids = [], {}
    for key, partition in wanted:
        spec = graph.assets[key]
        name = key.to_user_string()
        latest = latest_materialization(instance, key, partition)
        status, causes = statuses[(name, partition)]
        common = dict(asset=name, partition=partition, group=spec.group_name or "default",
                      description=spec.description or "",
                      upstream=tuple(sorted(d.asset_key.to_user_string() for d in spec.deps)),
                      downstream=tuple(sorted(downstream.get(key, ()))), code_version=spec.code_version,
                      status=status, stale_causes=causes)
        if latest is None:
            records.append(AssetRecord(**common))
            continue
        storage_ids[(name, partition)] = latest.storage_id
        event = latest.asset_materialization
        tags = event.tags or {}
        records.append(AssetRecord(
            **common, materialized_at=_iso(latest.timestamp), run_id=latest.run_id,
            data_version=tags.get(DATA_VERSION_TAG), materialized_code_version=tags.get(CODE_VERSION_TAG),
            input_data_versions={k[len(INPUT_VERSION_PREFIX):]: v for k, v in tags.items()
                                 if k.startswith(INPUT_VERSION_PREFIX)},
            path=_meta(event, "path"), bytes=_meta(event, "bytes"), sha256=_meta(event, "sha256"),
            artifacts=tuple(artifacts_from_json(_meta(event, ARTIFACTS_KEY)))))
    return records, storage_ids


def latest_evaluation(instance: dg.DagsterInstance, key: dg.AssetCheckKey, partition: str | None):
    """The check's latest finished evaluation of this partition (planned ones of runs that
    stopped before the check never finish), or None."""
    history = instance.event_log_storage.get_asset_check_execution_history(
        key, limit=1, status=COMPLETED, partition_filter=PartitionKeyFilter(key=partition))
    return history[0] if history else None


def check_records(instance: dg.DagsterInstance, graph: GraphSpecs, storage_ids: dict) -> list[CheckRecord]:
    """Each check's latest finished evaluation, per partition for the per-ticker checks."""
    out = []
    for spec in graph.checks:
        asset = spec.asset_key.to_user_string()
        asset_spec = graph.assets.get(spec.asset_key)
        partitions = partition_keys(asset_spec, instance) if asset_spec is not None else [None]
        for partition in partitions:
            record = latest_evaluation(instance, spec.key, partition)
            if record is None:
                out.append(CheckRecord(asset, spec.name, partition, spec.blocking, "not evaluated"))
                continue
            evaluation = record.event.asset_check_evaluation if record.event else None
            target = evaluation.target_materialization_data if evaluation else None
            on_latest = (target is not None and target.storage_id == storage_ids.get((asset, partition))) \
                if evaluation else None
            out.append(CheckRecord(
                asset, spec.name, partition, spec.blocking, CHECK_STATUS[record.status],
                _iso(record.event.timestamp if record.event else record.create_timestamp), record.run_id,
                check_reason(record), on_latest))
    return out


def model_records(instance: dg.DagsterInstance, tracker: Tracker | None, tickers: list[str]) -> list[ModelRecord]:
    """The MLflow run and version behind each model materialization, and its champion: each
    ticker's forecast model, the tick model, the policy."""
    out = []
    for asset in MODEL_ASSETS:
        for ticker in tickers:
            latest = latest_materialization(instance, dg.AssetKey(asset), ticker)
            event = latest.asset_materialization if latest else None
            champion = mlreg.version_by_alias(tracker, ticker, mlreg.CHAMPION) if tracker is not None else None
            out.append(ModelRecord(asset, ticker, _meta(event, "mlflow_model") or mlreg.model_name(ticker),
                                   _meta(event, "mlflow_version"), _meta(event, "mlflow_run_id"),
                                   champion.version if champion else None))
    ticks = latest_materialization(instance, dg.AssetKey("tick_models"), None)
    if ticks is not None:
        event = ticks.asset_materialization
        product = _meta(event, "product")
        champion = tick_version(tracker, product, mlreg.CHAMPION) if tracker is not None and product else None
        out.append(ModelRecord("tick_models", None, _meta(event, "mlflow_model"), _meta(event, "mlflow_version"),
                               _meta(event, "mlflow_run_id"), champion.version if champion else None))
    policy = latest_materialization(instance, dg.AssetKey("ppo_policy"), None)
    if policy is not None:
        out.append(ModelRecord("ppo_policy", None, None, None,
                               _meta(policy.asset_materialization, "mlflow_run_id")))
    return out


def installed_packages(pyproject: Path = PROJECT_ROOT / "pyproject.toml") -> dict[str, Package]:
    """Each dependency of pyproject.toml: the pin, and the version installed."""
    project = tomllib.loads(pyproject.read_text())["project"]
    out = {}
    for line in project["dependencies"]:
        name, pin = re.match(r"\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*([^;]*)", line).groups()
        try:
            installed = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            installed = None
        out[name] = Package(pin.strip() or None, installed)
    return out


def git_commit(root: Path = PROJECT_ROOT) -> tuple[str | None, bool | None]:
    """The commit of the code and whether the tree has uncommitted changes (None outside git)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None, None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return commit.stdout.strip(), bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def collect(instance: dg.DagsterInstance, graph: GraphSpecs, tracker: Tracker | None, tickers: list[str],
            notes: tuple[str, ...] = ()) -> LineageDocument:
    assets, storage_ids = asset_records(instance, graph)
    checks = check_records(instance, graph, storage_ids)
    commit, dirty = git_commit()
    edges = tuple(sorted({(d.asset_key.to_user_string(), s.key.to_user_string())
                          for s in graph.assets.values() for d in s.deps}))
    groups = {k.to_user_string(): s.group_name or "default" for k, s in graph.assets.items()}
    return LineageDocument(
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), code_commit=commit, code_dirty=dirty,
        packages=installed_packages(), assets=tuple(assets), checks=tuple(checks),
        models=tuple(model_records(instance, tracker, tickers)), edges=edges, groups=groups, notes=notes)


def read_bytes(path: str) -> bytes | None:
    """A stored file's bytes by path or fsspec URL (file://, s3://, ...), None when it is gone.
    Raises for a path it cannot read (the verification names it `unreadable`), such as the
    `mlflow-artifacts:` URLs of an MLflow server's proxied artifact store."""
    scheme = re.match(r"([a-z][a-z0-9+.\-]+):", path)
    if scheme and scheme.group(1) not in fsspec.available_protocols():
        raise ValueError(f"no filesystem reads '{scheme.group(1)}:' paths")
    target = UPath(path)
    return target.read_bytes() if target.exists() else None
