"""Run Odyssey's Dagster graph in tests against temporary storage."""

import hashlib
from pathlib import Path

import dagster as dg
import pandas as pd

from graph import build_definitions
from odyssey.settings import Settings
from resources import sync_ticker_partitions
from tests.conftest import QUICK

FAST_XGB = {"max_depth": 2, "learning_rate": 0.1, "n_estimators": 60, "early_stopping_rounds": 10, "nthread": 1,
            "min_child_weight": 20.0}


def quick_settings(home: Path | str, **changes) -> Settings:
    """The quick preset with its local state under `home`, and nested `changes`
    (e.g. source={"synthetic": {"drift_date": "2021-01-04"}}). has_skill judges each ticker alone
    (gates.family_method "none") unless `changes` say otherwise: these graphs forecast one ticker
    or two of the universe with small models, and the family-wise rule, which counts the others as
    untried, is tested where the whole universe is forecast (tests/test_family_graph.py)."""
    gates = {"family_method": "none", **changes.pop("gates", {})}
    return QUICK.updated({"paths": {"home": str(home)}, "gates": gates, **changes})


def run_graph(settings: Settings, job: str = "market_features", instance: dg.DagsterInstance | None = None,
              selection=None, partition_key: str | None = None, run_config: dict | None = None,
              tags: dict | None = None) -> dg.ExecuteInProcessResult:
    """Execute one job in process with these settings (ticker partitions synced to the instance)."""
    defs = build_definitions(settings)
    instance = instance or dg.DagsterInstance.ephemeral()
    sync_ticker_partitions(instance, list(settings.universe.tickers))
    return defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False,
                                                        asset_selection=selection, partition_key=partition_key,
                                                        run_config=run_config, tags=tags)


def fast_forecasting_config(xgb: dict | None = None) -> dict:
    """Run config: small XGBoost models for tests (with `xgb` overrides)."""
    params = {**FAST_XGB, **(xgb or {})}
    return {"ops": {"walkforward": {"config": params}, "forecast_models": {"config": params}}}


def signing_key(settings: Settings) -> bytes:
    """The HMAC key the graph signs with under these settings (the key file in their home)."""
    from resources import build_resources

    return build_resources(settings)["signer"].key()


def gate_settings(settings: Settings, **gates) -> Settings:
    return settings.updated({"gates": gates})


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def failed_checks(result: dg.ExecuteInProcessResult) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations() if not e.passed}


def step_errors(result: dg.ExecuteInProcessResult) -> list[str]:
    """Each failed step's error message, with the messages of its causes appended."""
    messages = []
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            error, parts = event.event_specific_data.error, []
            while error is not None:
                parts.append(error.message)
                error = error.cause or error.context
            messages.append(" | ".join(parts))
    return messages


def read_table(settings: Settings, asset: str) -> pd.DataFrame:
    return pd.read_parquet(Path(settings.paths.storage_url) / "tables" / f"{asset}.parquet")


def read_previous_version(settings: Settings, asset: str) -> pd.DataFrame:
    """The version stored before an asset's current one (the IO manager keeps each by its SHA-256)."""
    tables = Path(settings.paths.storage_url) / "tables"
    current = hashlib.sha256((tables / f"{asset}.parquet").read_bytes()).hexdigest()
    versions = sorted((tables / ".versions" / asset).glob("*.parquet"), reverse=True)  # newest first
    return pd.read_parquet(next(p for p in versions if not p.name.endswith(f"-{current}.parquet")))
