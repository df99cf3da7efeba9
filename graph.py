"""Odyssey's asset graph: every asset, check, job, schedule and sensor, and `build_definitions`,
which adds the resources of one `Settings`. Importing it reads no settings."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from pathlib import Path

import dagster as dg

# Per-partition asset checks are a preview feature of Dagster 1.13; Odyssey relies on them for the
# per-ticker deployment gates, so their warning (one per check spec, on every load) tells a user
# nothing they can act on. Set before the checks are defined.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from assets import features as feature_assets
from assets import forecasting as forecasting_assets
from assets import lineage as lineage_assets
from assets import market as market_assets
from assets import memory as memory_assets
from assets import monitoring as monitoring_assets
from assets import portfolio as portfolio_assets
from assets import ticks as tick_assets
from checks import ALL_CHECKS
from jobs import ALL_JOBS, ALL_SCHEDULES
from odyssey.settings import Settings
from odyssey.versions import PROJECT_PACKAGES, CodeVersions
from resources import build_resources
from resources.lineage import DefinitionsCatalog
from resources.storage import JsonIOManager, ParquetIOManager
from sensors import sensors_for

ROOT = Path(__file__).resolve().parent
ASSET_MODULES = [market_assets, feature_assets, memory_assets, forecasting_assets, monitoring_assets,
                 portfolio_assets, tick_assets, lineage_assets]


# The IO managers of resources.build_resources, by key: how an asset's value is stored is part of its code.
IO_MANAGERS = {"io_manager": ParquetIOManager, "json_io_manager": JsonIOManager}


def with_code_versions(assets: list, versions: CodeVersions | None = None) -> list[dg.AssetsDefinition]:
    """Each asset's code version: the digest of its compute function, of the IO manager that stores
    it and of the project code they reach (odyssey/versions.py), after a hand-set version when
    there is one (the feature registry's `v2`). Dagster then marks an asset stale when the code
    behind it changes."""
    versions = versions or CodeVersions()

    def versioned(assets_def: dg.AssetsDefinition) -> dg.AssetsDefinition:
        def version(spec: dg.AssetSpec) -> dg.AssetSpec:
            storer = IO_MANAGERS[assets_def.get_io_manager_key_for_asset_key(spec.key)]
            digest = versions.version(assets_def.op.compute_fn.decorated_fn, storer)
            return spec.replace_attributes(code_version=f"{spec.code_version}-{digest}" if spec.code_version
                                           else digest)

        return assets_def.map_asset_specs(version)

    return [versioned(a) for a in assets]


def source_key(root: Path = ROOT) -> str:
    """A digest of every source file code versions can depend on (the project packages and this
    module), and of the Python that parses them: while it is unchanged, so are the versions."""
    digest = hashlib.sha256(sys.version.encode())
    files = [root / "graph.py", *(f for package in PROJECT_PACKAGES for f in (root / package).rglob("*.py"))]
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cached_code_versions(assets: list[dg.AssetsDefinition], root: Path = ROOT) -> list[dg.AssetsDefinition]:
    """`with_code_versions`, remembered in `__pycache__/` (beside the bytecode) under the digest of
    the sources: loading the code location then skips following every asset's code (about 2 s),
    until a source file changes. A folder that cannot be written only costs that time."""
    cache = root / "__pycache__" / f"odyssey_code_versions.{source_key(root)}.json"
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = None
    if known is not None:
        def remembered(assets_def: dg.AssetsDefinition) -> dg.AssetsDefinition:
            return assets_def.map_asset_specs(
                lambda spec: spec.replace_attributes(code_version=known[spec.key.to_user_string()]))

        if all(spec.key.to_user_string() in known for a in assets for spec in a.specs):
            return [remembered(a) for a in assets]
    versioned = with_code_versions(assets)
    try:
        cache.parent.mkdir(exist_ok=True)
        for stale in cache.parent.glob("odyssey_code_versions.*.json"):
            if stale != cache:
                stale.unlink(missing_ok=True)
        partial = cache.with_suffix(f".{os.getpid()}.partial")
        partial.write_text(json.dumps({spec.key.to_user_string(): spec.code_version for a in versioned
                                       for spec in a.specs}, sort_keys=True))
        os.replace(partial, cache)  # whole or not at all, for a process loading beside this one
    except OSError:
        pass
    return versioned


UNVERSIONED_ASSETS = dg.load_assets_from_modules(ASSET_MODULES)
ALL_ASSETS = cached_code_versions(UNVERSIONED_ASSETS)


def blocking_checks(assets: list[dg.AssetsDefinition], checks: list[dg.AssetChecksDefinition]) -> dict[str, list[str]]:
    """Each asset's blocking checks, by name: a reader loads the newest version of an asset that
    all of them passed (resources/accepted.py). The outputs of one step are judged together: an
    asset built beside others in one step (raw_alt_data beside raw_prices) also names theirs, as
    `sibling:check` (a raw_alt_data loaded with a raw_prices that was rejected is not read either)."""
    specs = [spec for definition in [*assets, *checks] for spec in definition.check_specs]
    own: dict[str, list[str]] = {}
    for spec in sorted(specs, key=lambda s: s.name):
        if spec.blocking:
            own.setdefault(spec.asset_key.to_user_string(), []).append(spec.name)
    out = {asset: list(names) for asset, names in own.items()}
    for definition in assets:
        keys = sorted(k.to_user_string() for k in definition.keys)
        for key in keys:
            siblings = [f"{other}:{name}" for other in keys if other != key for name in own.get(other, ())]
            if siblings:
                out[key] = [*out.get(key, []), *siblings]
    return dict(sorted(out.items()))


BLOCKING_CHECKS = blocking_checks(ALL_ASSETS, ALL_CHECKS)


def optional_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    """dagster-openlineage's sensor when the settings ask for OpenLineage events ([lineage]
    openlineage = true): run, step and asset events, sent where OPENLINEAGE_URL or openlineage.yml say."""
    if not settings.lineage.openlineage:
        return []
    from dagster_openlineage import openlineage_sensor

    return [openlineage_sensor(include_asset_events=True, minimum_interval_seconds=30)]


# Runs of the heavy jobs launched from the UI, a sensor, a schedule or the CLI execute each step in
# a process of its own (jobs/__init__.py runs the light ones in process). Forked from a server that
# imported the code location and the libraries the steps use once (multiprocessing's forkserver),
# a step process starts without importing them again. torch is not preloaded: only the
# portfolio's few steps use it (it is there anyway after a load that had to work out the code
# versions, which follow the code into odyssey/policy.py). Jobs with an executor of their own (the
# Dask cluster's) keep it.
PRELOADED = ["definitions", "pyarrow.parquet", "xgboost", "sklearn.cluster", "sklearn.decomposition",
             "sklearn.preprocessing", "scipy.stats", "mlflow"]
STEP_PROCESSES = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": PRELOADED}}}, name="multiprocess_forkserver")


def build_definitions(settings: Settings, resources: dict | None = None,
                      assets: list[dg.AssetsDefinition] | None = None) -> dg.Definitions:
    """Definitions for these settings (resources built from them unless given; the versioned
    assets unless given)."""
    catalog = DefinitionsCatalog()
    return catalog.bind(dg.Definitions(
        assets=assets or ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=ALL_JOBS,
        schedules=ALL_SCHEDULES,
        sensors=[*sensors_for(settings.daemon, settings.monitoring), *optional_sensors(settings)],
        resources={**(resources or build_resources(settings, BLOCKING_CHECKS)), "catalog": catalog},
        executor=STEP_PROCESSES,
    ))

