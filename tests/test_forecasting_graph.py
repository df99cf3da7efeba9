"""The forecasting partitions in Dagster: MLflow registration, gates that stop deployment in the
same run, champion promotion, and verified batch inference."""

import dagster as dg
import pandas as pd
import pytest

from odyssey import registry as mlreg
from resources import mlflow_from_env
from tests.dagster_helpers import (check_results, failed_checks, fast_forecasting_config, materialized,
                                   quick_source, run_graph)

PER_TICKER = {"walkforward_forecasts", "walkforward_summary", "forecast_models", "shap_importance", "deployed_models"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    storage = tmp_path_factory.mktemp("forecast_storage")
    home = storage / "state"
    data = run_graph(storage, quick_source(), home=home)
    assert data.success
    tracker = mlflow_from_env(home).tracker()
    return storage, home, tracker


def _forecast(env, ticker, xgb=None, **gates):
    storage, home, _ = env
    return run_graph(storage, quick_source(), job="forecasting", partition_key=ticker, home=home,
                     run_config=fast_forecasting_config(xgb, **gates))


@pytest.mark.slow
def test_first_candidate_passes_the_gates_and_becomes_champion(env):
    _, _, tracker = env
    result = _forecast(env, "SPY")
    assert result.success
    assert materialized(result) == PER_TICKER
    checks = check_results(result)
    assert checks == {"leakage_canary": True, "plausible_accuracy": True, "signature_and_registry_version": True,
                      "no_regression": True}
    assert mlreg.version_by_alias(tracker, "SPY", mlreg.CHAMPION).version == "1"
    assert mlreg.version_by_alias(tracker, "SPY", mlreg.CANDIDATE).version == "1"
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert meta["walkforward_forecasts"]["folds"].value == 6
    assert "fold_metrics" in meta["walkforward_forecasts"] and "plot" in meta["shap_importance"]
    run = tracker.client().get_run(meta["forecast_models"]["mlflow_run_id"].value)
    assert run.data.params["registry_version"] == "v1" and "oos_ic" in run.data.metrics
    assert run.data.tags["ticker"] == "SPY"


@pytest.mark.slow
def test_a_failed_gate_stops_deployment_in_the_same_run_and_keeps_the_champion(env):
    _, _, tracker = env
    # a different candidate must now beat the champion's IC by a full point: impossible
    result = _forecast(env, "SPY", xgb={"max_depth": 3}, regression_tolerance=-1.0)
    assert not result.success
    assert set(failed_checks(result)) == {"no_regression"}
    built = materialized(result)
    assert "forecast_models" in built and "deployed_models" not in built and "shap_importance" not in built
    assert mlreg.version_by_alias(tracker, "SPY", mlreg.CANDIDATE).version == "2"
    assert mlreg.version_by_alias(tracker, "SPY", mlreg.CHAMPION).version == "1"
    reason = failed_checks(result)["no_regression"].metadata["reason"].value
    assert "worse by more than -1.0" in reason


@pytest.mark.slow
def test_an_implausible_accuracy_is_treated_as_leakage(env):
    _, _, tracker = env
    result = _forecast(env, "QQQ", implausible_direction_accuracy=0.0, naive_margin=-1.0)
    assert set(failed_checks(result)) == {"plausible_accuracy"}
    assert "suspected leakage" in failed_checks(result)["plausible_accuracy"].metadata["reason"].value
    assert mlreg.version_by_alias(tracker, "QQQ", mlreg.CHAMPION) is None


@pytest.mark.slow
def test_batch_forecasts_use_verified_champions(env):
    storage, home, tracker = env
    result = run_graph(storage, quick_source(), job="batch_forecasts", home=home)
    assert result.success
    table = pd.read_parquet(storage / "tables" / "forecasts.parquet")
    assert table["ticker"].tolist() == ["SPY"]
    assert table["model_version"].tolist() == ["1"]
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert "QQQ" in meta["without_champion"].value


@pytest.mark.slow
def test_a_champion_signed_with_another_key_is_refused(env, monkeypatch):
    storage, home, _ = env
    monkeypatch.setenv("ODYSSEY_SIGNING_KEY", "not-the-key-the-model-was-signed-with")
    result = run_graph(storage, quick_source(), job="batch_forecasts", home=home)
    assert not result.success
    errors = [e.event_specific_data.error for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    text = " ".join((e.message + " " + (e.cause.message if e.cause else "")) for e in errors)
    assert "HMAC signature does not verify" in text
