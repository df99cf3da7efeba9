"""The forecasting chain on a Dask cluster (jobs/distributed.py, jobs/dask_engine.py): two ticker
partitions, one Dagster run each, side by side on a local cluster of two worker processes, against
one persistent instance the workers share; and a deployment gate that fails on the cluster stops
SHAP and the promotion, as it does in process. The workers start with SIGINT and SIGTERM ignored,
as under a launcher running in the background."""

import os
import signal

import dagster as dg
import pytest

from jobs.dask_engine import step_task_key
from jobs.distributed import load_code_on_workers, local_cluster, run_partition, run_partitions_on_dask
from jobs.main import open_instance
from odyssey.settings import load_settings
from resources import sync_ticker_partitions
from tests.dagster_helpers import FAST_XGB, run_graph
from tests.main_run import three_tickers_file

PARTITIONS = ["AAPL", "MSFT"]
PER_TICKER = {"walkforward_forecasts", "walkforward_summary", "forecast_models", "shap_importance", "deployed_models",
              "analog_forecasts", "analog_summary"}
STEPS = {"walkforward", "forecast_models", "shap_importance", "deployed_models",
         *(f"forecast_models_{g}" for g in ("has_skill", "leakage_canary", "no_regression", "plausible_accuracy",
                                            "signature_and_registry_version"))}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The three-ticker market's data layer, built once in process into a persistent instance."""
    # two of the three tickers with small models: each ticker's skill judged alone (the family-wise
    # rule would count the third as untried), leniently; what is tested is where the steps run
    settings = load_settings(three_tickers_file(tmp_path_factory.mktemp("distributed")), environ={}).updated(
        {"gates": {"family_method": "none", "family_rate": 0.5}})
    with open_instance(settings) as instance:
        sync_ticker_partitions(instance, list(settings.universe.tickers))
        assert run_graph(settings, "market_features", instance=instance).success
    return settings


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes, started the way a launcher in the background starts them: with SIGINT
    ignored, and SIGTERM too once Dagster ran in it (its interrupt handling copies SIGINT's
    disposition onto SIGTERM). The workers inherit both."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        cluster = local_cluster(2)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    with cluster, cluster.get_client() as client:
        assert all(client.run(sigterm_ignored).values())
        yield cluster, client


def sigterm_ignored() -> bool:
    return signal.getsignal(signal.SIGTERM) is signal.SIG_IGN


def child_processes() -> list[str]:
    import psutil

    return [" ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)]


def step_starts(instance: dg.DagsterInstance, run_id: str) -> dict[str, int]:
    """Step key -> pid of the process that ran it, from the run's STEP_START events."""
    return {e.dagster_event.step_key: e.dagster_event.pid
            for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)}


@pytest.mark.slow
def test_two_partitions_run_side_by_side_on_both_workers(built, cluster):
    settings = built
    cluster, client = cluster
    worker_pids = load_code_on_workers(client, settings)  # worker address -> pid
    assert len(set(worker_pids.values())) == 2

    client.get_task_stream()  # starts the scheduler's task-stream record
    records = run_partitions_on_dask(settings, cluster.scheduler_address, PARTITIONS, runs=2, xgboost=FAST_XGB)
    tasks = client.get_task_stream()

    assert [r["partition"] for r in records] == PARTITIONS
    assert all(r["errors"] == [] and r["materialized"] == len(PER_TICKER) for r in records), records
    with open_instance(settings) as instance:
        runs = {r["partition"]: instance.get_run_record_by_id(r["run_id"]) for r in records}
        assert all(rec.dagster_run.status == dg.DagsterRunStatus.SUCCESS for rec in runs.values())
        assert {p: rec.dagster_run.tags["dagster/partition"] for p, rec in runs.items()} == {p: p for p in PARTITIONS}
        a, b = runs.values()
        assert a.start_time < b.end_time and b.start_time < a.end_time  # the two runs overlapped

        for partition, rec in runs.items():
            # each partition's assets were materialized by that partition's own run
            for asset in PER_TICKER:
                latest = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1)
                assert [r.run_id for r in latest.records] == [rec.dagster_run.run_id], (asset, partition)
            checks = [c for r in records if r["partition"] == partition for c in r["checks"]]
            assert len(checks) == 5 and all(c["passed"] for c in checks)

        # every step ran in a Dask worker process, and the two workers shared the steps
        started = {r["partition"]: step_starts(instance, r["run_id"]) for r in records}
    assert all(set(steps) == STEPS for steps in started.values())
    pids = {pid for steps in started.values() for pid in steps.values()}
    assert pids == set(worker_pids.values()), (pids, worker_pids)
    assert os.getpid() not in pids

    # each step's output-capture processes ended with the step: Dagster stops them with SIGTERM,
    # which the workers had inherited ignored and the executor gave back its default action
    assert client.run(child_processes) == {worker: [] for worker in worker_pids}
    assert not any(client.run(sigterm_ignored).values())

    # the scheduler saw each step of each run as its own task, on the worker whose pid the step recorded
    by_key = {t["key"]: t["worker"] for t in tasks}
    for r in records:
        for step, pid in started[r["partition"]].items():
            worker = by_key[step_task_key("forecasting", r["run_id"], step)]
            assert worker_pids[worker] == pid


@pytest.mark.slow
def test_a_failed_gate_on_the_cluster_stops_shap_and_promotion(built, cluster):
    settings = built
    cluster, _ = cluster
    # any accuracy now counts as implausible: the candidate fails plausible_accuracy
    strict = settings.updated({"gates": {"implausible_direction_accuracy": 0.0, "naive_margin": -1.0}})
    rec = run_partition(strict.model_dump_json(), "SPY", cluster.scheduler_address, xgboost=FAST_XGB)

    assert rec["errors"] == []  # a blocking check stopped the run: reported, not a step error
    assert {c["check"] for c in rec["checks"] if not c["passed"]} == {"plausible_accuracy"}
    with open_instance(settings) as instance:
        assert instance.get_run_by_id(rec["run_id"]).status == dg.DagsterRunStatus.FAILURE
        ran = set(step_starts(instance, rec["run_id"]))
        assert "forecast_models" in ran and not ran & {"shap_importance", "deployed_models"}
        for asset, built_now in (("forecast_models", True), ("shap_importance", False), ("deployed_models", False)):
            latest = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=["SPY"]), limit=1)
            assert bool(latest.records) == built_now, asset
