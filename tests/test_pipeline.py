"""The whole graph on the quick profile: wiring, checks, storage, determinism."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from upath import UPath

from definitions import ALL_ASSETS, build_definitions, defs
from odyssey import features as F
from odyssey.exports import verify_exports
from tests.dagster_helpers import check_results, materialized, quick_source, read_table, run_graph

EXPECTED_ASSETS = {
    "landed_bars", "landed_alt_data", "raw_prices", "raw_alt_data", "corporate_actions", "clean_prices", "clean_alt_data", "returns",
    "return_clip_thresholds", "feature_registry", "features", "regime_model", "dataset_splits", "scaled_features",
    "scaler_params", "feature_exports", "data_quality_report",
}


def test_definitions_are_wired():
    """The equivalent of `dagster definitions validate`: everything resolves."""
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert EXPECTED_ASSETS <= keys
    for job in ("odyssey_main", "market_features", "forecasting", "drift_monitoring", "batch_forecasts", "portfolio",
                "ingest"):
        assert defs.resolve_job_def(job).asset_layer is not None
    assert defs.resolve_job_def("forecasting").partitions_def.get_partition_keys() == ["AAPL", "NVDA", "SPY", "QQQ", "IEF"]
    assert {s.name for s in repo.sensor_defs} == {"run_failure_alerts", "retrain_on_drift", "landing_sensor"}
    assert {s.name for s in repo.schedule_defs} == {"daily_ingest"}
    groups = {spec.group_name for a in ALL_ASSETS for spec in a.specs}
    assert groups == {"market", "features", "forecasting", "portfolio", "monitoring"}
    gates = {c.name for c in defs.resolve_asset_graph().asset_check_keys if c.asset_key.to_user_string() == "forecast_models"}
    assert gates == {"leakage_canary", "plausible_accuracy", "signature_and_registry_version", "no_regression"}
    for asset in ALL_ASSETS:
        for spec in asset.specs:
            assert spec.description, spec.key


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    storage = tmp_path_factory.mktemp("storage")
    result = run_graph(storage, quick_source())
    return storage, result


@pytest.mark.slow
def test_quick_graph_materializes_everything_and_all_checks_pass(quick_run):
    storage, result = quick_run
    assert result.success
    assert materialized(result) == EXPECTED_ASSETS
    checks = check_results(result)
    assert len(checks) >= 14 and all(checks.values()), checks
    features = read_table(storage, "features")
    assert list(features.columns) == ["date", "ticker", *F.FEATURE_NAMES]
    manifest = json.loads((storage / "exports" / "manifest.json").read_text())
    assert manifest["registry_version"] == F.REGISTRY_VERSION and manifest["n_features"] == 94
    assert verify_exports(storage / "exports", manifest) == []
    assert (storage / "exports" / "per_asset" / "AAPL" / "test.parquet").exists()
    scaler = json.loads((storage / "tables" / "scaler_params.json").read_text())
    assert scaler["fit_on"] == "train" and set(scaler["features"]) == set(F.FEATURE_NAMES)


@pytest.mark.slow
def test_same_config_same_numbers(quick_run, tmp_path):
    storage, _ = quick_run
    again = run_graph(tmp_path, quick_source())
    assert again.success
    for asset in ("features", "scaled_features", "dataset_splits"):
        pd.testing.assert_frame_equal(read_table(storage, asset), read_table(tmp_path, asset))


@pytest.mark.slow
def test_an_object_store_url_works_the_same_way():
    url = "memory://odyssey-test"
    result = run_graph(url, quick_source(), job="market_features")
    assert result.success
    root = UPath(url)
    with (root / "tables" / "features.parquet").open("rb") as handle:
        assert len(pd.read_parquet(handle)) > 0
    manifest = json.loads((root / "exports" / "manifest.json").read_text())
    assert verify_exports(root / "exports", manifest) == []


def test_metadata_users_look_at(quick_run):
    storage, result = quick_run
    events = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    for key in ("rows", "tickers", "first_date", "last_date", "nan_cells", "preview", "sha256"):
        assert key in events["features"], key
    assert "plot" in events["features"] and "base64" in events["features"]["plot"].value
    assert events["clean_prices"]["tickers"].value == 5
    assert "purged_boundary_rows" in events["dataset_splits"]
    assert "global_files" in events["feature_exports"]
