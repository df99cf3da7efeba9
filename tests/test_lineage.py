"""Lineage and audit: code versions derived from source, data versions that are the stored bytes'
SHA-256, stale status after a code change, the lineage document against the definitions, and
`python -m jobs.lineage --verify` against tampered files."""

import hashlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from graph import ALL_ASSETS, UNVERSIONED_ASSETS, build_definitions, with_code_versions
from jobs.lineage import main as lineage_main
from jobs.main import open_instance
from odyssey import backtest, calendar, indicators
from odyssey.lineage import Artifact, AssetRecord, propagate_stale, verify
from odyssey.signing import sign, sign_manifest
from odyssey.versions import CodeVersions, canonical_source
from resources import storage
from resources.lineage import GraphSpecs, asset_records, read_bytes, stale_status
from sensors.lineage import lineage_after_runs
from tests.conftest import QUICK
from tests.dagster_helpers import run_graph
from tests.main_run import REPO, SETTINGS_VARIABLES


def _versions(defs: dg.Definitions) -> dict[str, str | None]:
    return {spec.key.to_user_string(): spec.code_version for spec in defs.resolve_all_asset_specs()}


def _edited(target, old: str, new: str):
    """A source reader that edits one function's code."""
    def source_of(obj):
        text = inspect.getsource(obj)
        return text.replace(old, new) if obj is target else text
    return source_of


def _op_versions(versions: CodeVersions) -> dict[str, str]:
    return {a.op.name: versions.version(a.op.compute_fn.decorated_fn) for a in UNVERSIONED_ASSETS}


# --- code versions ---------------------------------------------------------------------------------

def test_every_asset_has_a_code_version_derived_from_its_code():
    versions = {spec.key.to_user_string(): spec.code_version for a in ALL_ASSETS for spec in a.specs}
    assert all(versions.values()), [k for k, v in versions.items() if not v]
    # the hand-set feature registry version stays in front of the digest
    assert versions["features"].startswith("v2-") and versions["feature_registry"].startswith("v2-")
    # the same code gives the same versions in a new pass
    assert _op_versions(CodeVersions()) == _op_versions(CodeVersions())


def test_editing_a_feature_formula_changes_exactly_the_versions_of_the_code_that_computes_features():
    before = _op_versions(CodeVersions())
    after = _op_versions(CodeVersions(_edited(indicators.rsi, "100.0", "99.0")))
    changed = {op for op in before if before[op] != after[op]}
    # the data layer, the market states (a state map fitted per fit of the memory), the walk-forward
    # (features fitted inside each fold), the final model, the forecasts, SHAP and the monitoring of
    # the live model compute RSI; nothing else does
    assert {"features", "market_states", "walkforward", "forecast_models", "forecasts", "shap_importance",
            "feature_drift"} <= changed
    assert changed.isdisjoint({"raw_market", "clean_market", "returns", "dataset_splits", "scaled_features",
                               "market_state_index", "ppo_policy", "backtest", "lineage"})


def test_code_imported_inside_a_function_is_part_of_its_version():
    """The portfolio assets import the policy's torch code when they run, not when the code
    location loads: an edit there still changes exactly the versions of the assets that use it."""
    from odyssey import policy

    before = _op_versions(CodeVersions())
    after = _op_versions(CodeVersions(_edited(policy.train_ppo, "settings.seed", "settings.seed + 1")))
    assert {op for op in before if before[op] != after[op]} == {"ppo_policy"}
    after = _op_versions(CodeVersions(_edited(policy.onnx_decider, "float32", "float64")))
    assert {op for op in before if before[op] != after[op]} == {"backtest", "recommendations"}


def test_remembered_code_versions_are_the_computed_ones_and_follow_every_source_file(tmp_path, monkeypatch):
    """Loading the code location reads the versions remembered under the digest of the sources;
    they equal a fresh computation, and any edit to a project file is another digest."""
    import graph

    fresh = {s.key: s.code_version for a in with_code_versions(UNVERSIONED_ASSETS) for s in a.specs}
    assert {s.key: s.code_version for a in ALL_ASSETS for s in a.specs} == fresh
    root = tmp_path / "repo"
    for package in ("odyssey", "resources", "assets"):
        for path in (graph.ROOT / package).rglob("*.py"):
            target = root / path.relative_to(graph.ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    (root / "graph.py").write_bytes((graph.ROOT / "graph.py").read_bytes())
    first = graph.cached_code_versions(UNVERSIONED_ASSETS, root)
    written = list((root / "__pycache__").glob("odyssey_code_versions.*.json"))
    assert len(written) == 1 and written[0].name == f"odyssey_code_versions.{graph.source_key(root)}.json"
    # the second load reads them: nothing is computed
    monkeypatch.setattr(graph, "with_code_versions", lambda assets: pytest.fail("versions computed again"))
    again = graph.cached_code_versions(UNVERSIONED_ASSETS, root)
    assert [s.code_version for a in again for s in a.specs] == [s.code_version for a in first for s in a.specs]
    monkeypatch.undo()
    # a one-character edit anywhere in the project is another digest, so they are computed again
    key = graph.source_key(root)
    rsi = root / "odyssey" / "indicators.py"
    rsi.write_text(rsi.read_text() + "\n# edited\n")
    assert graph.source_key(root) != key


def test_comments_docstrings_and_layout_do_not_change_a_version():
    source = inspect.getsource(indicators.rsi)
    body = source.split('"""')
    assert len(body) >= 3, "rsi has a docstring"
    reworded = body[0] + '"""Another docstring."""' + '"""'.join(body[2:])
    noisy = reworded.replace("\n", "  # a comment\n", 1)
    assert canonical_source(noisy) == canonical_source(source)
    plain = _op_versions(CodeVersions())
    assert _op_versions(CodeVersions(_edited(indicators.rsi, source, noisy))) == plain


def test_what_a_process_did_at_run_time_is_not_code():
    """A step's reads, remembered for its outputs' metadata, change no code version: versions
    computed after runs in the same process equal those at import (else every asset of a
    long-lived process, a test session or a code server, looks changed)."""
    from resources.accepted import Resolution, StoredVersion, note_read

    def versions():
        return {s.key: s.code_version for a in with_code_versions(UNVERSIONED_ASSETS) for s in a.specs}

    plain = versions()
    note_read("run", "step", Resolution(StoredVersion("raw_prices", None, 1, "run", 0.0, "abc", ())))
    assert versions() == plain


def test_defaults_cached_functions_and_the_io_manager_are_part_of_a_version(monkeypatch):
    plain = _op_versions(CodeVersions())
    # a default argument's value (the stress scenarios) is code
    windows, shocks = backtest.stress_tests.__defaults__
    monkeypatch.setattr(backtest.stress_tests, "__defaults__",
                        ({**windows, "one_more": ("2020-02-19", "2020-03-23")}, shocks))
    changed = _op_versions(CodeVersions())
    assert {op for op in plain if plain[op] != changed[op]} == {"stress_tests"}
    monkeypatch.undo()
    # a function behind functools.lru_cache is followed
    assert "odyssey.calendar._calendar" in CodeVersions().closure(calendar.sessions)
    # how a value is stored is part of its version: every asset follows its IO manager's code
    edited = with_code_versions(UNVERSIONED_ASSETS, CodeVersions(_edited(storage.record_stored_bytes,
                                                                         "len(data)", "len(data) + 0")))
    before = {s.key: s.code_version for a in ALL_ASSETS for s in a.specs}
    after = {s.key: s.code_version for a in edited for s in a.specs}
    assert all(before[k] != after[k] for k in before)


def test_stale_parents_make_their_children_stale_upstream_partition_by_partition():
    statuses = {("prices", None): ("fresh", ()), ("model", "A"): ("stale", ("has a new code version",)),
                ("model", "B"): ("fresh", ()), ("drift", "A"): ("fresh", ()), ("drift", "B"): ("fresh", ()),
                ("report", None): ("fresh", ()), ("new", "A"): ("missing", ())}
    upstream = {"model": ("prices",), "drift": ("model", "prices"), "report": ("drift",), "new": ("model",)}
    out = propagate_stale(statuses, upstream)
    assert out[("model", "A")] == ("stale", ("has a new code version",))
    assert out[("drift", "A")] == ("stale upstream", ("model is stale",))
    assert out[("model", "B")] == out[("drift", "B")] == out[("prices", None)] == ("fresh", ())
    # an unpartitioned child reads every partition of its parent
    assert out[("report", None)] == ("stale upstream", ("drift is stale",))
    assert out[("new", "A")] == ("missing", ())


# --- verification (pure) ----------------------------------------------------------------------------

def _record(path: str, sha: str, artifacts=()) -> AssetRecord:
    return AssetRecord("a", None, "g", "", (), (), "v", materialized_at="2024-01-01", path=path, sha256=sha,
                       artifacts=tuple(artifacts))


def test_verify_names_mismatches_missing_unsigned_and_badly_signed_files():
    key = b"k" * 32
    files = {"/s/table": b"table", "/s/model": b"model", "/s/policy": b"policy", "/s/export": b"export"}
    sha = {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}
    good = _record("/s/table", sha["/s/table"], [
        Artifact("/s/model", sha["/s/model"], 5, "model", sign(b"model", key)),
        Artifact("/s/export", sha["/s/export"], 6, "export")])
    assert verify([good], files.get, key) == []
    records = [
        _record("/s/table", sha["/s/export"]),                                            # mismatch
        _record("/s/gone", sha["/s/table"]),                                              # missing
        _record("/s/table", sha["/s/table"], [Artifact("/s/policy", sha["/s/policy"], 6, "policy")]),  # unsigned
        _record("/s/table", sha["/s/table"], [Artifact("/s/model", sha["/s/model"], 5, "model",
                                                       sign(b"model", b"other"))]),       # bad signature
        _record(None, None),                                                              # unrecorded
    ]
    found = [(p.kind, p.path) for p in verify(records, files.get, key)]
    assert found == [("mismatch", "/s/table"), ("missing", "/s/gone"), ("unsigned", "/s/policy"),
                     ("bad signature", "/s/model"), ("unrecorded", None)]
    # a path no filesystem reads (an MLflow server's proxied artifacts) is named, not taken for missing
    remote = _record("/s/table", sha["/s/table"], [Artifact("mlflow-artifacts:/1/model.ubj", sha["/s/model"], 5,
                                                            "model", sign(b"model", key))])
    [problem] = verify([remote], lambda path: files[path] if path in files else read_bytes(path), key)
    assert problem.kind == "unreadable" and "mlflow-artifacts:" in problem.detail


def test_verify_checks_the_signature_of_a_models_manifest():
    key = b"k" * 32
    files = {"model.ubj": b"model", "card.json": b"{}"}
    good = sign_manifest("forecast model", "odyssey-forecast-SPY", "SPY", "run", files, key).to_json().encode()
    other = sign_manifest("forecast model", "odyssey-forecast-SPY", "SPY", "run", files, b"other").to_json().encode()
    stored = {"/m/good": good, "/m/other": other, "/m/plain": b'{"files": {}}'}
    records = [_record("/m/good", hashlib.sha256(good).hexdigest(),
                       [Artifact.of(path, data, "manifest") for path, data in stored.items()])]
    found = [(p.kind, p.path) for p in verify(records, stored.get, key)]
    assert found == [("bad signature", "/m/other"), ("unsigned", "/m/plain")]
    # without a key, signatures are not checked; a file that is no signed manifest still is named
    assert [(p.kind, p.path) for p in verify(records, stored.get, None)] == [("unsigned", "/m/plain")]


# --- the graph built by the main command ------------------------------------------------------------

def _expected_entities(defs: dg.Definitions, tickers: list[str]) -> set[tuple[str, str | None]]:
    return {(spec.key.to_user_string(), p) for spec in defs.resolve_all_asset_specs()
            for p in (tickers if spec.partitions_def is not None else [None])}


@pytest.mark.slow
def test_make_run_leaves_a_lineage_document_covering_every_asset_partition_and_check(three_ticker_run):
    assert three_ticker_run.done.returncode == 0, three_ticker_run.done.stdout[-2000:]
    settings = three_ticker_run.settings
    tickers = list(settings.universe.tickers)
    defs = build_definitions(settings)
    reports = three_ticker_run.home / "storage" / "reports"
    doc = json.loads((reports / "lineage.json").read_text())
    markdown = (reports / "lineage.md").read_text()

    entities = {(a["asset"], a["partition"]) for a in doc["assets"]}
    assert entities == _expected_entities(defs, tickers)
    checks = {(c["asset"], c["check"], c["partition"]) for c in doc["checks"]}
    graph = GraphSpecs.of(defs.get_repository_def())
    expected_checks = {(c.asset_key.to_user_string(), c.name, p) for c in graph.checks
                       for p in (tickers if graph.assets[c.asset_key].partitions_def is not None else [None])}
    assert checks == expected_checks

    versions = _versions(defs)
    for a in doc["assets"]:
        if a["asset"] == "lineage":
            continue  # the document is written before its own materialization is logged
        where = f"{a['asset']}[{a['partition']}]"
        assert a["materialized_at"] and a["run_id"], where
        assert a["status"] == "fresh", (where, a["stale_causes"])
        assert a["materialized_code_version"] == a["code_version"] == versions[a["asset"]], where
        # the data version is the SHA-256 of the stored bytes, which are on disk at the recorded path
        assert a["data_version"] == a["sha256"] == hashlib.sha256(Path(a["path"]).read_bytes()).hexdigest(), where
        assert a["bytes"] == Path(a["path"]).stat().st_size, where
        upstream = set(a["upstream"])
        assert set(a["input_data_versions"]) <= upstream, where
    by_entity = {(a["asset"], a["partition"]): a for a in doc["assets"]}
    # an input data version is the upstream materialization's data version
    features = by_entity[("features", None)]
    assert features["input_data_versions"]["returns"] == by_entity[("returns", None)]["data_version"]
    assert all(c["status"] == "passed" or c["check"] == "policy_earns_its_place" for c in doc["checks"])
    models = [m for m in doc["models"] if m["asset"] == "forecast_models"]
    assert sorted(m["partition"] for m in models) == sorted(tickers)
    assert all(m["run_id"] and m["version"] and m["champion_version"] for m in models)
    kinds = {x["kind"] for a in doc["assets"] for x in a["artifacts"]}
    assert kinds == {"export", "model", "card", "manifest", "policy", "raw", "report"}
    ticks = [m for m in doc["models"] if m["asset"] == "tick_models"]
    assert [(m["registered_model"], m["version"], m["champion_version"]) for m in ticks] == [
        ("odyssey-ticks-BTC-USD", "1", "1")]
    summary = doc["summary"]
    assert summary["asset_partitions"] == len(entities) and summary["checks"] == len(expected_checks)
    assert summary["champions"] == len(tickers) + 1  # and the tick model
    assert doc["packages"]["dagster"] == {"pinned": "==1.13.27", "installed": "1.13.27"}
    assert "```mermaid" in markdown and all(f'["{k}' in markdown for k, _ in entities)
    # the UI shows the document as Markdown metadata on the lineage asset
    with open_instance(settings) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("lineage")).asset_materialization
        assert "```mermaid" in event.metadata["document"].value
        assert event.tags["dagster/data_version"] == event.metadata["sha256"].value


def _descendants(defs: dg.Definitions, roots: set[str]) -> set[str]:
    graph = defs.get_repository_def().asset_graph
    found, frontier = set(roots), set(roots)
    while frontier:
        frontier = {k.to_user_string() for d in frontier for k in graph.get(dg.AssetKey(d)).child_entity_keys
                    if isinstance(k, dg.AssetKey)} - found
        found |= frontier
    return found


@pytest.mark.slow
def test_changing_one_features_code_marks_it_stale_and_exactly_its_downstream_stale_upstream(three_ticker_run):
    settings = three_ticker_run.settings
    defs = build_definitions(settings)
    edited = build_definitions(settings, assets=with_code_versions(
        UNVERSIONED_ASSETS, CodeVersions(_edited(indicators.rsi, "100.0", "99.0"))))
    before, after = _versions(defs), _versions(edited)
    now = _versions(build_definitions(settings, assets=with_code_versions(UNVERSIONED_ASSETS)))
    assert before == now, f"code versions moved since import: {sorted(k for k in now if now[k] != before[k])}"
    changed = {k for k in before if before[k] != after[k]}
    assert "features" in changed and "returns" not in changed, sorted(changed)
    keys = [(dg.AssetKey(a), p) for a, p in _expected_entities(defs, list(settings.universe.tickers))
            if a != "lineage"]
    with open_instance(settings) as instance:
        fresh = stale_status(instance, defs.get_repository_def().asset_graph, keys)
        direct = stale_status(instance, edited.get_repository_def().asset_graph, keys)
        records, _ = asset_records(instance, GraphSpecs.of(edited.get_repository_def()))
    assert {k for k, (status, _) in fresh.items() if status != "fresh"} == set()
    # Dagster (and the UI) marks stale exactly the assets whose own code changed ...
    assert {k for k, (status, _) in direct.items() if status == "stale"} == {
        (a.to_user_string(), p) for a, p in keys if a.to_user_string() in changed}
    assert direct[("features", None)] == ("stale", ("has a new code version",))
    # ... and the document adds everything built from them, and nothing else
    status = {(r.asset, r.partition): r for r in records if r.asset != "lineage"}
    downstream = _descendants(edited, changed)
    assert {k for k, r in status.items() if r.status != "fresh"} == {k for k in status if k[0] in downstream}
    assert status[("dataset_splits", None)].status == status[("scaled_features", None)].status == "stale upstream"
    assert "features is stale" in status[("dataset_splits", None)].stale_causes
    assert status[("scaled_features", None)].stale_causes == ("dataset_splits is stale",)
    assert status[("returns", None)].status == status[("clean_prices", None)].status == "fresh"
    assert status[("ppo_policy", None)].status == "stale upstream"  # it learnt from the walk-forward forecasts


@pytest.mark.slow
def test_new_bytes_upstream_make_the_children_stale_and_the_same_bytes_do_not(three_ticker_run):
    settings = three_ticker_run.settings
    registry = [dg.AssetKey("feature_registry")]
    graph = build_definitions(settings).get_repository_def().asset_graph
    watched = [(dg.AssetKey(a), None) for a in ("feature_registry", "features", "returns", "scaled_features")]
    with open_instance(settings) as instance:
        assert run_graph(settings, "market_features", instance=instance, selection=registry).success
        assert {s for s, _ in stale_status(instance, graph, watched).values()} == {"fresh"}  # same bytes
        other = settings.updated({"universe": {"alt_series": ["VIX"]}})
        try:
            assert run_graph(other, "market_features", instance=instance, selection=registry).success
            changed = stale_status(instance, graph, watched)
            assert changed[("features", None)] == ("stale", ("has a new dependency data version: feature_registry",))
            assert changed[("returns", None)][0] == changed[("scaled_features", None)][0] == "fresh"
        finally:
            assert run_graph(settings, "market_features", instance=instance, selection=registry).success
        assert {s for s, _ in stale_status(instance, graph, watched).values()} == {"fresh"}


@pytest.mark.slow
def test_verify_is_clean_on_an_untouched_store_and_names_each_tampered_file(three_ticker_run, capsys):
    settings = three_ticker_run.settings
    home = three_ticker_run.home
    args = ["--settings", str(three_ticker_run.settings_file), "--verify"]
    assert lineage_main(args) == 0
    assert "all as recorded" in capsys.readouterr().out

    forecast = json.loads((home / "storage" / "tables" / "forecast_models" / "AAPL.json").read_text())
    model = Path(forecast["source"].removeprefix("file://")) / "model.ubj"
    tampered = {home / "storage" / "exports" / "global" / "train.parquet": "feature_exports export",
                model: "forecast_models[AAPL] model",
                home / "storage" / "tables" / "returns.parquet": "returns"}
    gone = home / "storage" / "reports" / "recommendations.csv"
    originals = {p: p.read_bytes() for p in [*tampered, gone]}
    try:
        for path in tampered:
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
        gone.unlink()
        assert lineage_main(args) == 1
        out = capsys.readouterr().out
        lines = out.splitlines()
        for path, where in tampered.items():
            assert any(line.startswith("mismatch") and f" {where}: " in line and str(path) in line for line in lines), \
            (where, lines)
        assert any(line.startswith("missing") and str(gone) in line for line in lines), out
        assert "4 problem(s)" in out
    finally:
        for path, data in originals.items():
            path.write_bytes(data)
    assert lineage_main(args) == 0


@pytest.mark.slow
def test_verify_names_an_edited_model_card_and_tick_card(three_ticker_run, capsys):
    home = three_ticker_run.home
    args = ["--settings", str(three_ticker_run.settings_file), "--verify"]
    tables = home / "storage" / "tables"
    forecast = json.loads((tables / "forecast_models" / "AAPL.json").read_text())
    ticks = json.loads((tables / "tick_models.json").read_text())
    cards = {Path(forecast["source"].removeprefix("file://")) / "card.json": ("forecast_models[AAPL] card",
                                                                              ("walkforward", "oos_ic"), 0.9),
             Path(ticks["source"].removeprefix("file://")) / "card.json": ("tick_models card", ("tau",), 1e-9)}
    originals = {p: p.read_text() for p in cards}
    try:
        for path, (_, keys, value) in cards.items():
            card = json.loads(originals[path])
            target = card
            for k in keys[:-1]:
                target = target[k]
            target[keys[-1]] = value
            path.write_text(json.dumps(card, indent=2, sort_keys=True))
        assert lineage_main(args) == 1
        lines = capsys.readouterr().out.splitlines()
        for path, (where, _, _) in cards.items():
            assert any(line.startswith("mismatch") and f" {where}: " in line and str(path) in line for line in lines), \
                (where, lines)
    finally:
        for path, text in originals.items():
            path.write_text(text)
    assert lineage_main(args) == 0


@pytest.mark.slow
def test_the_lineage_sensor_follows_successful_runs_but_not_its_own(three_ticker_run):
    settings = three_ticker_run.settings
    with open_instance(settings) as instance:
        runs = {r.job_name: r for r in instance.get_runs()}
        event = instance.get_records_for_run(runs["lineage_document"].run_id,
                                             of_type=dg.DagsterEventType.RUN_SUCCESS).records[0].event_log_entry
        success = event.dagster_event

        def evaluate(run):
            context = dg.build_run_status_sensor_context(sensor_name="lineage_after_runs", dagster_event=success,
                                                         dagster_instance=instance, dagster_run=run)
            return lineage_after_runs(context)

        request = evaluate(runs["portfolio"])
        assert isinstance(request, dg.RunRequest) and request.run_key == f"lineage-after-{runs['portfolio'].run_id}"
        assert isinstance(evaluate(runs["lineage_document"]), dg.SkipReason)
        # a rebuild that has not started yet will see this run too: no second one
        instance.add_run(dg.DagsterRun(job_name="lineage_document", run_id="0" * 32,
                                       status=dg.DagsterRunStatus.NOT_STARTED))
        skipped = evaluate(runs["portfolio"])
        assert isinstance(skipped, dg.SkipReason) and "waiting to start" in skipped.skip_message
        instance.delete_run("0" * 32)
        # while another run of the burst is under way, the document waits for the last one
        instance.add_run(dg.DagsterRun(job_name="live_monitoring", run_id="1" * 32,
                                       status=dg.DagsterRunStatus.STARTED))
        try:
            skipped = evaluate(runs["portfolio"])
            assert isinstance(skipped, dg.SkipReason) and "last run of this burst" in skipped.skip_message
        finally:
            instance.delete_run("1" * 32)
        assert isinstance(evaluate(runs["portfolio"]), dg.RunRequest)


OPENLINEAGE_RUN = """
import sys
import dagster as dg
from graph import build_definitions
from tests.dagster_helpers import quick_settings, run_graph

home, dagster_home = sys.argv[1], sys.argv[2]
settings = quick_settings(home).updated({"lineage": {"openlineage": True}})
defs = build_definitions(settings)
sensor = defs.resolve_sensor_def("openlineage_sensor")
with dg.DagsterInstance.from_config(dagster_home) as instance:
    assert run_graph(settings, "lineage_document", instance=instance).success
    cursor = None
    for _ in range(20):
        tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                            repository_def=defs.get_repository_def()))
        if tick.cursor == cursor:
            break
        cursor = tick.cursor
"""

CONSOLIDATED_INSTANCE = """\
telemetry:
  enabled: false
event_log_storage:
  module: dagster._core.storage.event_log
  class: ConsolidatedSqliteEventLogStorage
  config:
    base_dir: {base}
"""


@pytest.mark.slow
def test_openlineage_events_are_an_option(tmp_path):
    """[lineage] openlineage = true adds dagster-openlineage's sensor; on an instance with one event log
    (Postgres, or consolidated SQLite) it sends the runs and the assets they wrote as OpenLineage events."""
    assert QUICK.lineage.openlineage is False  # off unless asked for
    assert "openlineage_sensor" not in {s.name for s in build_definitions(QUICK).get_repository_def().sensor_defs}
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(CONSOLIDATED_INSTANCE.format(base=dagster_home / "history"))
    events = tmp_path / "events.jsonl"
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES and not k.startswith("OPENLINEAGE")}
    env.update(OPENLINEAGE__TRANSPORT__TYPE="file", OPENLINEAGE__TRANSPORT__LOG_FILE_PATH=str(events),
               OPENLINEAGE__TRANSPORT__APPEND="true")
    done = subprocess.run([sys.executable, "-c", OPENLINEAGE_RUN, str(tmp_path / "home"), str(dagster_home)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    sent = [json.loads(line) for line in events.read_text().splitlines()]
    jobs = {(e["job"]["name"], e["eventType"]) for e in sent}
    assert {("lineage_document", "START"), ("lineage_document", "COMPLETE")} <= jobs
    assert any(o["name"] == "lineage" for e in sent for o in e["outputs"])


def test_every_form_of_a_function_level_import_is_followed(tmp_path, monkeypatch):
    """`from pkg.mod import f`, `from pkg import mod` and `import pkg.mod as m` inside a function:
    an edit to what they bring changes the function's version."""
    package = tmp_path / "lazypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "mod.py").write_text("def f(x):\n    return x + 1\n")
    (package / "user.py").write_text(
        "def by_name(x):\n    from lazypkg.mod import f\n    return f(x)\n\n\n"
        "def by_module(x):\n    from lazypkg import mod\n    return mod.f(x)\n\n\n"
        "def by_alias(x):\n    import lazypkg.mod as m\n    return m.f(x)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    user = importlib.import_module("lazypkg.user")
    mod = importlib.import_module("lazypkg.mod")
    for function in (user.by_name, user.by_module, user.by_alias):
        plain = CodeVersions(packages=("lazypkg",)).version(function)
        edited = CodeVersions(_edited(mod.f, "x + 1", "x + 2"), packages=("lazypkg",)).version(function)
        assert plain != edited, function.__name__
