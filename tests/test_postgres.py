"""deploy/dagster.yaml on a real PostgreSQL server (deploy/postgres.py): the data layer and one
ticker's forecasting chain run in process on that instance, as jobs.main.run_all runs them, and
what they recorded (runs, their partition tags, materializations, asset-check evaluations) is read
back from PostgreSQL, both through a fresh instance and straight from its tables. The queue's
per-ticker limit is matched against the tags Dagster put on the forecasting run."""

import shutil
import tempfile
from contextlib import closing
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from dagster._utils.tags import TagConcurrencyLimitsCounter  # how the queue daemon matches tag limits
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from deploy.postgres import PostgresError, Server, free_port
from graph import build_definitions
from jobs.main import prepare_shared_state, record
from resources import sync_ticker_partitions
from tests.dagster_helpers import fast_forecasting_config, quick_settings

REPO = Path(__file__).resolve().parent.parent
DEPLOY_YAML = REPO / "deploy" / "dagster.yaml"
TICKER = "SPY"
FORECASTING = {"walkforward_forecasts", "walkforward_summary", "forecast_models", "shap_importance", "deployed_models",
               "analog_forecasts", "analog_summary"}
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def server(request) -> Server:
    """A PostgreSQL server of its own on a free port, stopped and removed after the test. Its folder
    is not under pytest's temporary folder, which only root may enter: as root the server runs as
    the postgres system user."""
    folder = Path(tempfile.mkdtemp(prefix="odyssey-postgres-"))
    pg = Server(folder, port=free_port(), user="odyssey", password="odyssey-test-pw", database="odyssey_test")

    def stop():
        try:
            pg.stop()
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    request.addfinalizer(stop)
    return pg


def start(server: Server) -> None:
    """Start the server; a server that does not start fails the test (it is what the test is about)."""
    try:
        server.start()
        return
    except PostgresError as error:
        reason = str(error)
    pytest.fail(f"the PostgreSQL server for deploy/dagster.yaml did not start: {reason}", pytrace=False)


def instance_of(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home))


def test_runs_materializations_and_checks_live_in_postgres(server, tmp_path, monkeypatch):
    start(server)
    for name, value in server.environ().items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")
    settings = quick_settings(tmp_path / "odyssey")
    defs = build_definitions(settings)

    with instance_of(home) as instance:
        # every storage of the instance is the PostgreSQL one, and the queue has the file's limits
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == 1
        queue = concurrency.run_queue_config
        assert queue.max_concurrent_runs == 2
        assert queue.tag_concurrency_limits == [
            {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
            {"key": "odyssey/queue", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]

        # as jobs.main.run_all: the partitions, the data layer, the shared state, then the ticker's chain
        sync_ticker_partitions(instance, list(settings.universe.tickers))
        data = record(defs.resolve_job_def("market_features").execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET))
        assert not data["errors"], data
        prepare_shared_state(defs)
        # small XGBoost models, as the forecasting graph tests use: the storage is under test here
        forecast = record(defs.resolve_job_def("forecasting").execute_in_process(
            instance=instance, raise_on_error=False, partition_key=TICKER,
            run_config={**QUIET, **fast_forecasting_config()}), TICKER)
        assert not forecast["errors"], forecast
    ran = {data["run_id"]: data, forecast["run_id"]: forecast}

    # a fresh instance from the same file sees everything
    with instance_of(home) as fresh:
        runs = {r.run_id: r for r in fresh.get_runs()}
        assert set(runs) == set(ran)
        assert {r.job_name: r.status for r in runs.values()} == {"market_features": dg.DagsterRunStatus.SUCCESS,
                                                                  "forecasting": dg.DagsterRunStatus.SUCCESS}
        training = runs[forecast["run_id"]]
        assert training.tags["dagster/partition"] == TICKER
        assert "dagster/partition" not in runs[data["run_id"]].tags
        assert sorted(fresh.get_dynamic_partitions("ticker")) == sorted(settings.universe.tickers)
        assert fresh.get_latest_materialization_event(dg.AssetKey("features")).run_id == data["run_id"]
        for asset in FORECASTING:
            assert fresh.get_materialized_partitions(dg.AssetKey(asset)) == {TICKER}, asset
        for run_id, rec in ran.items():
            stored = [e.dagster_event.event_specific_data
                      for e in fresh.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
            assert sorted((e.asset_key.to_user_string(), e.check_name, e.passed) for e in stored) == sorted(
                (c["asset"], c["check"], c["passed"]) for c in rec["checks"])
        assert forecast["checks"] and all(c["passed"] for c in forecast["checks"] if c["blocking"])

        # the queue: a second run of this ticker waits for the first, another ticker's does not
        limits = fresh.get_concurrency_config().run_queue_config.tag_concurrency_limits
        counter = TagConcurrencyLimitsCounter(limits, [training])
        assert counter.is_blocked(training)
        assert not counter.is_blocked(training.with_tags({**training.tags, "dagster/partition": "AAPL"}))
        assert not counter.is_blocked(runs[data["run_id"]])

    # and the rows are PostgreSQL's, read with no Dagster in between
    with closing(psycopg2.connect(host="127.0.0.1", port=server.port, user=server.user, password=server.password,
                                  dbname=server.database)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT run_id, pipeline_name, status FROM runs")
        assert {row[0]: row[1:] for row in cursor.fetchall()} == {
            data["run_id"]: ("market_features", "SUCCESS"), forecast["run_id"]: ("forecasting", "SUCCESS")}
        cursor.execute("SELECT value FROM run_tags WHERE run_id = %s AND key = 'dagster/partition'",
                       (forecast["run_id"],))
        assert cursor.fetchall() == [(TICKER,)]
        cursor.execute("SELECT run_id, asset_key, partition FROM event_logs "
                       "WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
        materialized = cursor.fetchall()
        assert (data["run_id"], '["features"]', None) in materialized
        assert {(r, k) for r, k, p in materialized if p == TICKER} == {
            (forecast["run_id"], f'["{asset}"]') for asset in FORECASTING}
        assert len(materialized) == data["materialized"] + forecast["materialized"]
        cursor.execute("SELECT run_id, count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_CHECK_EVALUATION' "
                       "GROUP BY run_id")
        assert dict(cursor.fetchall()) == {run_id: len(rec["checks"]) for run_id, rec in ran.items()}
        cursor.execute("SELECT check_name, execution_status FROM asset_check_executions WHERE run_id = %s",
                       (forecast["run_id"],))
        assert sorted(cursor.fetchall()) == sorted(
            (c["check"], "SUCCEEDED" if c["passed"] else "FAILED") for c in forecast["checks"])
