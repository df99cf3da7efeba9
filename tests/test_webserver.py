"""The UI path end to end: dagster-webserver serves the workspace, and a run launched through
its GraphQL API materializes the raw market assets."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests

from odyssey.settings import ENV_OVERRIDES, SIGNING_KEY_ENV, preset_path

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVER_START_TIMEOUT = 120.0
RUN_TIMEOUT = 180.0
RAW_MARKET_ASSETS = ["raw_prices", "raw_alt_data", "corporate_actions"]
LOCATION = "odyssey"  # workspace.yaml's code location
PLANTED_PASSWORD = "planted-password-7301"
PLANTED_TOKEN = "planted-token-5521"
PLANTED_MLFLOW_URI = f"http://odyssey:{PLANTED_PASSWORD}@127.0.0.1:9/?access_token={PLANTED_TOKEN}"
PLANTED_WEBHOOK = "https://hooks.example.com/services/T0000/B0000/planted-webhook-token-5512"

# With a dagster.yaml, Dagster 1.13 defaults to the QueuedRunCoordinator, which only puts runs
# in a queue that a separately running `dagster-daemon` dequeues. The DefaultRunCoordinator
# (an alias of SyncInMemoryRunCoordinator) hands a submitted run straight to the run launcher,
# and the DefaultRunLauncher starts it in a subprocess via the code server, so no daemon is needed.
DAGSTER_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
run_launcher:
  module: dagster
  class: DefaultRunLauncher
"""

WORKSPACE_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

REPOSITORIES_QUERY = """
query Repositories {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes {
        name
        location { name }
        pipelines { name }
      }
    }
    ... on PythonError { message }
  }
}
"""

ASSET_NODES_QUERY = """
query AssetNodes {
  assetNodes {
    assetKey { path }
    groupName
    opNames
  }
}
"""

LAUNCH_RUN_MUTATION = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PipelineConfigValidationInvalid { errors { message path reason } }
    ... on Error { message }
  }
}
"""

RUN_STATUS_QUERY = """
query RunStatus($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status }
    ... on Error { message }
  }
}
"""

RUN_LOGS_QUERY = """
query RunLogs($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message level stepKey }
        ... on ExecutionStepFailureEvent { error { message stack } }
        ... on RunFailureEvent { pipelineName }
      }
    }
    ... on Error { message }
  }
}
"""

LATEST_MATERIALIZATION_QUERY = """
query LatestMaterialization($assetKey: AssetKeyInput!) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset {
      assetMaterializations(limit: 1) { runId timestamp }
    }
    ... on Error { message }
  }
}
"""


RESOURCES_QUERY = """
query Resources($selector: RepositorySelector!) {
  allTopLevelResourceDetailsOrError(repositorySelector: $selector) {
    __typename
    ... on ResourceDetailsList {
      results { name configuredValues { key value type } }
    }
    ... on Error { message }
  }
}
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(log_path: Path, chars: int = 6000) -> str:
    try:
        return log_path.read_text(errors="replace")[-chars:]
    except OSError:
        return "<no server log>"


class Server:
    """A running dagster-webserver: its base URL, process and log file."""

    def __init__(self, url: str, process: subprocess.Popen, log_path: Path, odyssey_home: Path):
        self.url = url
        self.process = process
        self.log_path = log_path
        self.odyssey_home = odyssey_home

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30.0) -> dict:
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=timeout
        )
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), f"GraphQL errors: {body['errors']}"
        return body["data"]

    def log_tail(self) -> str:
        return _log_tail(self.log_path)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the whole process group (webserver, code server, run workers), then SIGKILL."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # whatever in the group is still alive
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def _wait_until_loaded(server: Server) -> None:
    """Wait for the HTTP server to answer and the code location to finish loading."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    last = "server never answered"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"dagster-webserver exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            requests.get(f"{server.url}/server_info", timeout=5).raise_for_status()
            workspace = server.graphql(WORKSPACE_QUERY)["workspaceOrError"]
        except (requests.RequestException, ValueError) as exc:
            last = repr(exc)
            time.sleep(1)
            continue
        assert workspace["__typename"] == "Workspace", workspace
        entries = workspace["locationEntries"]
        last = repr(entries)
        assert [entry["name"] for entry in entries] == [LOCATION], entries
        if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
            for entry in entries:
                location = entry["locationOrLoadError"]
                assert location and location["__typename"] == "RepositoryLocation", (
                    f"code location {entry['name']} failed to load: {location}"
                )
            return
        time.sleep(1)
    pytest.fail(f"webserver not ready after {SERVER_START_TIMEOUT:.0f} s ({last}):\n{server.log_tail()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    dagster_home = tmp_path_factory.mktemp("dagster_home")
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    odyssey_home = tmp_path_factory.mktemp("odyssey_home")
    log_path = tmp_path_factory.mktemp("webserver_log") / "webserver.log"

    settings_file = odyssey_home / "odyssey.toml"
    settings_file.write_text(f'extends = "{preset_path("quick")}"\n\n[paths]\nhome = "{odyssey_home}"\n')

    # only these settings: no variable of the caller's may redirect tables, MLflow or the instance
    env = {k: v for k, v in os.environ.items() if k not in {*ENV_OVERRIDES, "ODYSSEY_SETTINGS", SIGNING_KEY_ENV}}
    env.update(
        DAGSTER_HOME=str(dagster_home),
        ODYSSEY_SETTINGS=str(settings_file),
        PYTHONUNBUFFERED="1",
        # planted credentials: the UI must never show them, and runs must still work
        MLFLOW_TRACKING_URI=PLANTED_MLFLOW_URI,
        ODYSSEY_ALERT_WEBHOOK=PLANTED_WEBHOOK,
    )
    port = _free_port()
    executable = Path(sys.executable).parent / "dagster-webserver"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(executable), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group, so teardown can kill every descendant
        )
    srv = Server(f"http://127.0.0.1:{port}", process, log_path, odyssey_home)
    try:
        _wait_until_loaded(srv)
        yield srv
    finally:
        _stop(process)


def _repository(server: Server) -> dict:
    repos = server.graphql(REPOSITORIES_QUERY)["repositoriesOrError"]
    assert repos["__typename"] == "RepositoryConnection", repos
    assert len(repos["nodes"]) == 1, repos
    return repos["nodes"][0]


def _run_failure_report(server: Server, run_id: str) -> str:
    logs = server.graphql(RUN_LOGS_QUERY, {"runId": run_id})["logsForRun"]
    lines = []
    for event in logs.get("events", []):
        if event.get("error"):
            lines.append(f"{event['__typename']}: {event['error']['message']}\n{event['error']['stack']}")
        elif event.get("level") in ("ERROR", "CRITICAL") or "Failure" in event["__typename"]:
            lines.append(f"{event['__typename']} [{event.get('stepKey')}]: {event.get('message')}")
    return "\n".join(lines) or repr(logs)


@pytest.mark.slow
def test_webserver_lists_assets_and_materializes_raw_market(server: Server):
    # 1. The asset graph, as the UI sees it.
    nodes = server.graphql(ASSET_NODES_QUERY)["assetNodes"]
    keys = {"/".join(node["assetKey"]["path"]) for node in nodes}
    groups = {node["groupName"] for node in nodes}
    assert {"market", "features", "monitoring"} <= groups, groups
    assert {"raw_prices", "features", "scaled_features", "feature_exports"} <= keys, sorted(keys)
    raw_ops = {op for node in nodes if node["assetKey"]["path"] == ["raw_prices"] for op in node["opNames"]}
    assert raw_ops == {"raw_market"}, raw_ops

    # 2. Launch the raw_market multi-asset through the implicit asset job.
    repository = _repository(server)
    assert repository["location"]["name"] == LOCATION, repository["location"]
    job_names = {job["name"] for job in repository["pipelines"]}
    assert "__ASSET_JOB" in job_names, sorted(job_names)
    assert {"odyssey_main", "market_features", "forecasting", "ingest"} <= job_names, sorted(job_names)
    execution_params = {
        "selector": {
            "repositoryLocationName": repository["location"]["name"],
            "repositoryName": repository["name"],
            "jobName": "__ASSET_JOB",
            "assetSelection": [{"path": [name]} for name in RAW_MARKET_ASSETS],
        },
        "runConfigData": {},
    }
    launched = server.graphql(LAUNCH_RUN_MUTATION, {"executionParams": execution_params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    # 3. Wait for the run to finish.
    deadline = time.monotonic() + RUN_TIMEOUT
    status = launched["run"]["status"]
    while time.monotonic() < deadline:
        run = server.graphql(RUN_STATUS_QUERY, {"runId": run_id})["runOrError"]
        assert run["__typename"] == "Run", run
        status = run["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    if status != "SUCCESS":
        pytest.fail(
            f"run {run_id} ended {status}:\n{_run_failure_report(server, run_id)}\n"
            f"--- webserver log ---\n{server.log_tail()}"
        )

    # 4. Every selected asset now has a materialization from that run.
    for name in RAW_MARKET_ASSETS:
        asset = server.graphql(LATEST_MATERIALIZATION_QUERY, {"assetKey": {"path": [name]}})["assetOrError"]
        assert asset["__typename"] == "Asset", asset
        materializations = asset["assetMaterializations"]
        assert materializations, f"{name} has no materialization"
        assert materializations[0]["runId"] == run_id, materializations

    # 5. The run used the settings the server was started with: the quick universe, stored under its home.
    raw = pd.read_parquet(server.odyssey_home / "storage" / "tables" / "raw_prices.parquet")
    assert sorted(raw["ticker"].unique()) == sorted(["AAPL", "NVDA", "SPY", "QQQ", "IEF"])
    assert str(raw["date"].max().date()) == "2021-12-31"


@pytest.mark.slow
def test_the_ui_shows_no_credential_of_any_resource(server: Server):
    """Every top-level resource's configured values, as the UI reads them through GraphQL: the
    planted MLflow password and webhook appear nowhere; the webhook and the URI with its
    credentials are shown as the names of their environment variables."""
    repository = _repository(server)
    selector = {"repositoryLocationName": repository["location"]["name"], "repositoryName": repository["name"]}
    answer = server.graphql(RESOURCES_QUERY, {"selector": selector})["allTopLevelResourceDetailsOrError"]
    assert answer["__typename"] == "ResourceDetailsList", answer
    shown = json.dumps(answer)
    assert PLANTED_PASSWORD not in shown and PLANTED_TOKEN not in shown and "planted-webhook-token" not in shown
    values = {r["name"]: {v["key"]: (v["type"], v["value"]) for v in r["configuredValues"]} for r in answer["results"]}
    assert values["mlflow"]["tracking_uri"] == ("ENV_VAR", "MLFLOW_TRACKING_URI")
    assert values["settings"]["alert_webhook"] == ("ENV_VAR", "ODYSSEY_ALERT_WEBHOOK")
    document = json.loads(json.loads(values["settings"]["document"][1]))  # a JSON string of the settings' JSON
    assert document["paths"]["mlflow_tracking_uri"] == "http://***@127.0.0.1:9/?access_token=***"
    assert document["paths"]["alert_webhook_env"] == "ODYSSEY_ALERT_WEBHOOK"
