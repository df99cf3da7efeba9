"""The loop end to end: champions trained before a regime change; new sessions land in which NVDA
and IEF drift; exactly their drift checks fail and the retraining sensor requests runs for exactly
them (once); a retrain learns the new sessions (its training window moves forward, its model
changes) and becomes champion where its gates pass, and then its drift check passes again
because the reference window follows the champion's training window."""

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from odyssey import registry as mlreg
from odyssey.calendar import next_sessions
from odyssey.drift import psi_kl, window_mean_z
from odyssey.landing import synthetic_days, write_landing
from resources import build_resources, mlflow_resource
from resources.storage import last_landed_day
from sensors.retrain import retrain_on_drift
from tests.dagster_helpers import failed_checks, fast_forecasting_config, gate_settings, quick_settings, run_graph

DRIFTED = ("NVDA", "IEF")
TICKERS = ("NVDA", "SPY", "IEF")


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


def land(settings, instance: dg.DagsterInstance, sessions: int) -> dg.ExecuteInProcessResult:
    """The synthetic market's next sessions written to the landing folder and ingested."""
    profile = settings.profile()
    after = last_landed_day(build_resources(settings)["storage"], profile.end, "bars")
    files = write_landing(synthetic_days(profile, settings.source.synthetic, after, sessions),
                          Path(settings.paths.landing))
    return run_graph(settings, job="ingest", instance=instance,
                     run_config={"ops": {"landed_market": {"config": {"files": [str(f) for f in files]}}}})


def drift_failures(settings, instance) -> set[str]:
    failing = set()
    for ticker in TICKERS:
        result = run_graph(settings, job="drift_monitoring", partition_key=ticker, instance=instance,
                           selection=[dg.AssetKey("feature_drift")])
        assert result.success or failed_checks(result), ticker
        if "feature_drift_check" in failed_checks(result):
            failing.add(ticker)
    return failing


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    settings = quick_settings(tmp_path_factory.mktemp("drift"), universe={"tickers": list(TICKERS)},
                              dates={"end": "2020-12-31"},
                              source={"synthetic": {"drift_date": "2021-01-04", "drift_tickers": list(DRIFTED)}},
                              forecast={"training_years": 2.0})
    with dg.instance_for_test() as instance:
        assert run_graph(settings, instance=instance).success
        for ticker in TICKERS:
            run_graph(settings, job="forecasting", partition_key=ticker, instance=instance,
                      run_config=fast_forecasting_config())
        tracker = mlflow_resource(settings).tracker()
        before = {t: mlreg.version_by_alias(tracker, t, mlreg.CHAMPION) for t in TICKERS}
        assert all(before[t] is not None for t in DRIFTED)
        assert drift_failures(settings, instance) == set()  # before the regime change: nothing drifts
        assert land(settings, instance, 250).success  # the whole of 2021, in which NVDA and IEF drift
        yield settings, instance, tracker, before


@pytest.mark.slow
def test_drift_is_detected_retrained_and_cleared(world):
    settings, instance, tracker, before = world
    assert drift_failures(settings, instance) == set(DRIFTED)
    report = Path(settings.paths.storage_url) / "reports" / "drift" / "NVDA"
    assert (report / "feature_drift.html").stat().st_size > 10_000
    assert json.loads((report / "feature_drift.json").read_text())["metrics"]

    context = dg.build_sensor_context(instance=instance)
    requests = list(retrain_on_drift(context))
    assert sorted(r.partition_key for r in requests) == sorted(DRIFTED)
    assert all("feature_drift_check" in r.tags["odyssey/reason"] for r in requests)
    # one drift event, one run: evaluating again with the new cursor requests nothing
    assert list(retrain_on_drift(dg.build_sensor_context(instance=instance, cursor=context.cursor))) == []

    # the requested retraining. On 2021 alone the drifted NVDA is barely predictable, so its gate
    # accepts any IC change; IEF's candidate must beat its champion by a full IC point, so it fails
    passed = {}
    for request in requests:
        tolerance = -1.0 if request.partition_key == "IEF" else 1.0
        result = run_graph(gate_settings(settings, regression_tolerance=tolerance), job="forecasting",
                           partition_key=request.partition_key, instance=instance, run_config=fast_forecasting_config())
        passed[request.partition_key] = not failed_checks(result)
    assert passed == {"NVDA": True, "IEF": False}
    after = {t: mlreg.version_by_alias(tracker, t, mlreg.CHAMPION) for t in TICKERS}
    assert after["NVDA"].version != before["NVDA"].version
    assert after["IEF"].version == before["IEF"].version
    assert all(after[t] == before[t] for t in TICKERS if t not in DRIFTED)

    # the retrain learnt the landed sessions: its window ends later and the model changed
    old, new = (mlreg.download_model(tracker, v)[1] for v in (before["NVDA"], after["NVDA"]))
    landed_end = str(next_sessions("2020-12-31", 250)[-1].date())
    assert old.data_end == "2020-12-31" and new.data_end == landed_end
    assert new.train_end > "2021-12-01" > old.train_end
    assert new.sha256 != old.sha256 and new.data_sha256 != old.data_sha256

    # the new champion's training window holds the new regime: NVDA's drift clears, IEF's does not
    assert drift_failures(settings, instance) == {"IEF"}
