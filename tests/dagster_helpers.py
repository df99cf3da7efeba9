"""Run Odyssey's Dagster graph in tests against temporary storage."""

from pathlib import Path

import dagster as dg
import pandas as pd

from definitions import build_definitions
from resources import MarketSource, build_resources


def quick_source(**overrides) -> MarketSource:
    return MarketSource(**{"profile": "quick", **overrides})


FAST_XGB = {"max_depth": 2, "learning_rate": 0.1, "n_estimators": 60, "early_stopping_rounds": 10, "nthread": 1}


def run_graph(storage: Path | str, market: MarketSource, job: str = "market_features",
              instance: dg.DagsterInstance | None = None, selection=None, partition_key: str | None = None,
              run_config: dict | None = None, home: Path | None = None,
              tags: dict | None = None) -> dg.ExecuteInProcessResult:
    """Execute one job in process against temporary storage (and MLflow/signing key under `home`)."""
    local_home = home or (Path(storage) / "state" if "://" not in str(storage) else None)
    defs = build_definitions(build_resources(market=market, base_url=str(storage), home=local_home))
    job_def = defs.resolve_job_def(job)
    return job_def.execute_in_process(instance=instance, raise_on_error=False, asset_selection=selection,
                                      partition_key=partition_key, run_config=run_config, tags=tags)


def fast_forecasting_config(xgb: dict | None = None, **gates) -> dict:
    """Run config: small XGBoost models for tests (with `xgb` overrides), and optional
    deployment-gate settings."""
    params = {**FAST_XGB, **(xgb or {})}
    ops = {"walkforward": {"config": params}, "forecast_models": {"config": params}}
    if gates:
        for check in ("leakage_canary", "plausible_accuracy", "no_regression"):
            ops[f"forecast_models_{check}"] = {"config": gates}
    return {"ops": ops}


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


def read_table(storage: Path | str, asset: str) -> pd.DataFrame:
    return pd.read_parquet(Path(storage) / "tables" / f"{asset}.parquet")


def read_previous_version(storage: Path | str, asset: str) -> pd.DataFrame:
    """The version an asset's latest materialization replaced (kept by the IO manager)."""
    folder = Path(storage) / "tables" / ".history" / f"{asset}.parquet"
    return pd.read_parquet(sorted(folder.iterdir())[-1])
