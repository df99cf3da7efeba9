"""Drift end to end: a market where NVDA and IEF drift; their drift checks fail, the retraining
sensor requests runs for exactly those partitions (once), and after the runs a new champion
exists only where the deployment gates passed."""

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from odyssey import registry as mlreg
from odyssey.drift import psi_kl, window_mean_z
from resources import mlflow_from_env
from sensors.retrain import retrain_on_drift
from tests.dagster_helpers import failed_checks, fast_forecasting_config, quick_source, run_graph

DRIFTED = ("NVDA", "IEF")
TICKERS = ("AAPL", "NVDA", "SPY", "QQQ", "IEF")


def test_window_mean_z_on_known_series():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=2000)
    assert window_mean_z(ref, rng.normal(size=100)) < 3
    assert window_mean_z(ref, rng.normal(loc=1.0, size=100)) > 5
    assert window_mean_z(np.ones(500), np.ones(50)) == 0.0


def test_psi_and_kl_on_known_distributions():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=20000)
    same_psi, same_kl = psi_kl(ref, rng.normal(size=20000))
    shifted_psi, shifted_kl = psi_kl(ref, rng.normal(loc=1.0, size=20000))
    assert same_psi < 0.01 and same_kl < 0.01
    assert shifted_psi > 0.5 and shifted_kl > 0.3


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    storage = tmp_path_factory.mktemp("drift_storage")
    home = storage / "state"
    market = quick_source(drift_date="2021-01-04", drift_tickers=list(DRIFTED))
    with dg.instance_for_test() as instance:
        assert run_graph(storage, market, instance=instance, home=home).success
        for ticker in TICKERS:
            result = run_graph(storage, market, job="forecasting", partition_key=ticker, instance=instance,
                               home=home, run_config=fast_forecasting_config())
            assert result.success, ticker
        yield storage, home, market, instance


@pytest.mark.slow
def test_drift_checks_fail_for_exactly_the_drifted_tickers_and_the_sensor_retrains_them(world):
    storage, home, market, instance = world
    tracker = mlflow_from_env(home).tracker()
    failing = set()
    for ticker in TICKERS:
        result = run_graph(storage, market, job="drift_monitoring", partition_key=ticker, instance=instance,
                           home=home, selection=[dg.AssetKey("feature_drift")])
        if "feature_drift_check" in failed_checks(result):
            failing.add(ticker)
    assert failing == set(DRIFTED)
    report = storage / "reports" / "drift" / "NVDA"
    assert (report / "feature_drift.html").stat().st_size > 10_000
    assert json.loads((report / "feature_drift.json").read_text())["metrics"]

    context = dg.build_sensor_context(instance=instance)
    requests = list(retrain_on_drift(context))
    assert sorted(r.partition_key for r in requests) == sorted(DRIFTED)
    assert all("feature_drift_check" in r.tags["odyssey/reason"] for r in requests)
    # one drift event, one run: evaluating again with the new cursor requests nothing
    again = dg.build_sensor_context(instance=instance, cursor=context.cursor)
    assert list(retrain_on_drift(again)) == []

    # run the requested retraining with a different model; NVDA's gates accept any IC change,
    # IEF's candidate must beat its champion by a full IC point, so its gate fails
    before = {t: mlreg.version_by_alias(tracker, t, mlreg.CHAMPION).version for t in TICKERS}
    passed = {}
    for request in requests:
        tolerance = -1.0 if request.partition_key == "IEF" else 1.0
        result = run_graph(storage, market, job="forecasting", partition_key=request.partition_key, instance=instance,
                           home=home, run_config=fast_forecasting_config({"max_depth": 3}, regression_tolerance=tolerance))
        passed[request.partition_key] = not failed_checks(result)
    after = {t: mlreg.version_by_alias(tracker, t, mlreg.CHAMPION).version for t in TICKERS}
    assert passed == {"NVDA": True, "IEF": False}
    assert before["NVDA"] == "1" and after["NVDA"] == "2"
    assert after["IEF"] == before["IEF"] == "1"
    assert mlreg.version_by_alias(tracker, "IEF", mlreg.CANDIDATE).version == "2"
    assert all(after[t] == before[t] for t in TICKERS if t not in DRIFTED)
