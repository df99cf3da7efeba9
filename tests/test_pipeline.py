"""The whole graph on the quick preset: wiring, checks, storage, determinism."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from upath import UPath

from checks.data_quality import ALL_CHECKS as DATA_CHECKS
from definitions import defs
from graph import ALL_ASSETS, build_definitions
from odyssey import features as F
from odyssey.exports import verify_exports
from resources import sync_ticker_partitions, ticker_partitions
from tests.conftest import QUICK
from tests.dagster_helpers import check_results, materialized, quick_settings, read_table, run_graph

EXPECTED_ASSETS = {
    "landed_bars", "landed_alt_data", "landed_actions", "raw_prices", "raw_alt_data", "corporate_actions", "clean_prices", "clean_alt_data", "returns",
    "return_clip_thresholds", "feature_registry", "features", "regime_model", "dataset_splits", "scaled_features",
    "scaler_params", "feature_exports", "data_quality_report", "market_states", "state_embedding",
}
DATA_CHECK_NAMES = {spec.name for check in DATA_CHECKS for spec in check.check_specs}


def test_definitions_are_wired():
    """The equivalent of `dagster definitions validate`: everything resolves."""
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert EXPECTED_ASSETS | {"forecast_log", "forecasts", "forecast_outcomes", "analog_forecasts", "market_state_index",
                              "market_analogs", "lineage"} <= keys
    # one writer of the market-state index at a time
    [writer] = [a for a in ALL_ASSETS if dg.AssetKey("market_state_index") in a.keys]
    assert writer.op.pool == "qdrant_index"
    assert "forecast_quality" not in keys
    for job in ("odyssey_main", "market_features", "market_memory", "forecasting", "live_monitoring", "drift_reports",
                "batch_forecasts", "portfolio", "advice", "ingest", "lineage_document", "ticks", "tick_ingest", "tick_training"):
        assert defs.resolve_job_def(job).asset_layer is not None
    assert {s.name for s in repo.sensor_defs} == {"run_failure_alerts", "retrain_on_drift", "landing_sensor",
                                                  "universe_partitions", "memory_after_states",
                                                  "lineage_after_runs", "tick_landing_sensor",
                                                  "retrain_ticks_on_drift", "advise_after_forecasts"}
    assert {s.name for s in repo.schedule_defs} == {"daily_ingest", "daily_drift_reports"}
    groups = {spec.group_name for a in ALL_ASSETS for spec in a.specs}
    assert groups == {"market", "features", "memory", "forecasting", "portfolio", "monitoring", "ticks"}
    gates = {c.name for c in defs.resolve_asset_graph().asset_check_keys if c.asset_key.to_user_string() == "forecast_models"}
    assert gates == {"leakage_canary", "plausible_accuracy", "has_skill", "signature_and_registry_version",
                     "no_regression"}
    blocking = {spec.name: spec.blocking for check in DATA_CHECKS for spec in check.check_specs}
    assert [name for name, blocks in blocking.items() if not blocks] == ["raw_prices_up_to_date"]
    for asset in ALL_ASSETS:
        for spec in asset.specs:
            assert spec.description, spec.key


def test_the_code_location_loads_without_the_heavy_libraries():
    """Every run the daemon launches, and the webserver, load the code location: the libraries
    that only some steps use are imported by those steps, not by the load."""
    import subprocess
    import sys

    heavy = ["torch", "stable_baselines3", "sklearn", "xgboost", "scipy", "mlflow", "shap", "evidently",
             "qdrant_client", "onnxruntime", "matplotlib"]
    probe = f"import sys, definitions; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=Path(__file__).resolve().parent.parent,
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_each_job_has_the_executor_its_weight_asks_for_and_the_sensors_tick_as_set(tmp_path):
    from graph import PRELOADED

    fast = build_definitions(quick_settings(tmp_path, daemon={"landing_seconds": 7, "follow_seconds": 11}))
    in_process = {"ingest", "advice", "live_monitoring", "drift_reports", "batch_forecasts", "lineage_document",
                  "market_memory", "tick_ingest"}
    for job in ("ingest", "live_monitoring", "market_features", "forecasting", "portfolio", "odyssey_main"):
        name = fast.resolve_job_def(job).executor_def.name
        assert name == ("in_process" if job in in_process else "multiprocess_forkserver"), job
    assert "definitions" in PRELOADED and "torch" not in PRELOADED
    intervals = {s.name: s.minimum_interval_seconds for s in fast.sensors}
    assert intervals["landing_sensor"] == 7
    assert {intervals[n] for n in ("retrain_on_drift", "memory_after_states",
                                   "lineage_after_runs", "advise_after_forecasts")} == {11}


def test_ticker_partitions_follow_the_settings_universe():
    quick = build_definitions(QUICK)
    assert quick.resolve_job_def("forecasting").partitions_def == ticker_partitions
    instance = dg.DagsterInstance.ephemeral()
    sync_ticker_partitions(instance, ["AAPL", "ZZZ"])
    assert sync_ticker_partitions(instance, list(QUICK.universe.tickers)) == {
        "added": ["NVDA", "SPY", "QQQ", "IEF"], "removed": ["ZZZ"]}
    assert sorted(ticker_partitions.get_partition_keys(dynamic_partitions_store=instance)) == \
        sorted(["AAPL", "NVDA", "SPY", "QQQ", "IEF"])
    assert sync_ticker_partitions(instance, list(QUICK.universe.tickers)) == {"added": [], "removed": []}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    settings = quick_settings(tmp_path_factory.mktemp("home"))
    result = run_graph(settings)
    return settings, result


@pytest.mark.slow
def test_quick_graph_materializes_everything_and_all_checks_pass(quick_run):
    settings, result = quick_run
    storage = Path(settings.paths.storage_url)
    names = F.feature_names(settings.universe.alt_series)
    assert result.success
    assert materialized(result) == EXPECTED_ASSETS
    checks = check_results(result)
    assert set(checks) == DATA_CHECK_NAMES and all(checks.values()), checks
    features = read_table(settings, "features")
    assert list(features.columns) == ["date", "ticker", *names]
    manifest = json.loads((storage / "exports" / "manifest.json").read_text())
    assert manifest["registry_version"] == F.REGISTRY_VERSION and manifest["n_features"] == 94 == len(names)
    assert verify_exports(storage / "exports", manifest) == []
    assert (storage / "exports" / "per_asset" / "AAPL" / "test.parquet").exists()
    scaler = json.loads((storage / "tables" / "scaler_params.json").read_text())
    splits = read_table(settings, "dataset_splits")
    train = splits[splits["split"] == "train"]
    assert scaler["rows"] == len(train) and scaler["train_end"] == str(train["date"].max().date())
    assert scaler["train_end"] <= settings.profile().train_end
    assert set(scaler["features"]) == set(names)


@pytest.mark.slow
def test_same_config_same_numbers(quick_run, tmp_path):
    settings, _ = quick_run
    again = quick_settings(tmp_path)
    assert run_graph(again).success
    for asset in ("features", "scaled_features", "dataset_splits"):
        pd.testing.assert_frame_equal(read_table(settings, asset), read_table(again, asset))


@pytest.mark.slow
def test_an_object_store_url_works_the_same_way(tmp_path):
    url = "memory://odyssey-test"
    result = run_graph(quick_settings(tmp_path, paths={"storage_url": url}), job="market_features")
    assert result.success
    root = UPath(url)
    with (root / "tables" / "features.parquet").open("rb") as handle:
        assert len(pd.read_parquet(handle)) > 0
    manifest = json.loads((root / "exports" / "manifest.json").read_text())
    assert verify_exports(root / "exports", manifest) == []
    assert not (tmp_path / "storage").exists()


def test_metadata_users_look_at(quick_run):
    settings, result = quick_run
    events = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    for key in ("rows", "tickers", "first_date", "last_date", "nan_cells", "preview", "sha256"):
        assert key in events["features"], key
    assert "plot" in events["features"] and "base64" in events["features"]["plot"].value
    assert events["clean_prices"]["tickers"].value == 5
    # the quick market's two planted bad prints (NVDA 2018-12-13, QQQ 2019-11-21), repaired
    assert events["clean_prices"]["bad_prints_repaired"].value == 2
    assert "NVDA" in events["clean_prices"]["repaired"].value and "2019-11-21" in events["clean_prices"]["repaired"].value
    assert events["clean_prices"]["off_calendar_rows"].value == 0
    assert "purged_boundary_rows" in events["dataset_splits"]
    assert "global_files" in events["feature_exports"]
