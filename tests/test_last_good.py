"""A table a blocking check rejected never becomes what downstream reads: it stays in the catalog
(with its failure) and in the version store, while downstream assets materialized on their own
read the newest version that passed, or refuse when there is none; forecasting never trains on a
rejected table; the version store keeps the version readers need; `python -m jobs.restore` lists
the versions and puts one back."""

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from graph import build_definitions
from jobs.main import open_instance, record, summarize
from jobs.restore import choose, main as restore
from odyssey.sources.csv_source import write_csv_folder
from resources import mlflow_resource
from resources.accepted import CheckOutcome, NoAcceptedVersion, StoredVersion, accepted_version
from resources.lineage import stale_status
from tests import last_good_graph as small
from tests.dagster_helpers import (failed_checks, fast_forecasting_config, materialized, quick_settings, read_table,
                                   run_graph, step_errors)
from tests.main_run import REPO

RAW_BLOCKING = ["raw_prices_all_tickers_present", "raw_prices_bar_fields", "raw_prices_schema",
                "raw_prices_volume_reported"]
BUILT_BEFORE_THE_GATE = {"landed_bars", "landed_alt_data", "landed_actions", "raw_prices", "raw_alt_data",
                         "corporate_actions", "feature_registry"}
# what reads raw_prices, directly or not: the UI's "Materialize" on them, after a rejected load
DOWNSTREAM = {"clean_prices", "clean_alt_data", "returns", "return_clip_thresholds", "regime_model", "features",
              "dataset_splits", "scaler_params", "scaled_features", "feature_exports", "data_quality_report",
              "state_embedding", "market_states"}
FEATURES_AND_AFTER = [dg.AssetKey(a) for a in sorted(DOWNSTREAM)]


def _edit(path: Path, fn) -> None:
    frame = pd.read_csv(path, dtype=str)
    fn(frame)
    frame.to_csv(path, index=False)


def negative_close(folder: Path) -> None:
    """AAPL's close below zero on one day: raw_prices_schema rejects raw_prices."""
    _edit(folder / "AAPL.csv", lambda f: f.__setitem__("close", f["close"].where(f.index != 100, "-5.0")))


def quoted_in_cents(folder: Path) -> None:
    """AAPL in cents from one day on, no split listed: raw_prices passes, clean_prices_no_unlisted_split
    rejects clean_prices."""
    def cents(f):
        later = f.index >= 1000
        for column in ("open", "high", "low", "close"):
            f.loc[later, column] = (f.loc[later, column].astype(float) * 100).astype(str)
    _edit(folder / "AAPL.csv", cents)


def csv_settings(home: Path, folder: Path):
    return quick_settings(home, source={"kind": "csv", "csv_path": str(folder)})


def latest(instance: dg.DagsterInstance, asset: str, partition: str | None = None):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None),
        limit=1).records
    return records[0]


def data_version(instance: dg.DagsterInstance, asset: str) -> str:
    return latest(instance, asset).asset_materialization.tags["dagster/data_version"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class World:
    settings: object
    instance: dg.DagsterInstance
    good: dict[str, pd.DataFrame]
    good_raw: str  # the data version of the raw_prices that passed
    bad_raw: str  # the data version of the raw_prices that raw_prices_schema rejected
    good_clean: str  # the data version of the clean_prices built from good_raw
    csv: Path

    @property
    def raw_prices_file(self) -> Path:
        return Path(self.settings.paths.storage_url) / "tables" / "raw_prices.parquet"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, quick_market):
    """A good build of the data layer, then a load whose raw_prices raw_prices_schema rejected
    (nothing downstream ran), in the settings' own Dagster instance."""
    good_csv = write_csv_folder(quick_market.data, tmp_path_factory.mktemp("good_csv"))
    folder = tmp_path_factory.mktemp("csv")
    shutil.copytree(good_csv, folder, dirs_exist_ok=True)
    settings = csv_settings(tmp_path_factory.mktemp("home"), folder)
    with open_instance(settings) as instance:
        assert run_graph(settings, instance=instance).success
        good = {a: read_table(settings, a) for a in ("raw_prices", "clean_prices", "returns", "features")}
        good_raw, good_clean = data_version(instance, "raw_prices"), data_version(instance, "clean_prices")
        negative_close(folder)
        rejected = run_graph(settings, instance=instance)
        assert not rejected.success and "raw_prices_schema" in failed_checks(rejected)
        assert materialized(rejected) == BUILT_BEFORE_THE_GATE
        bad_raw = data_version(instance, "raw_prices")
    assert bad_raw != good_raw
    return settings, good, good_raw, bad_raw, good_clean, good_csv


@pytest.fixture
def world(pristine, tmp_path):
    """Each test on its own copy of the pristine home (storage and Dagster instance), its settings
    reading a copy of the good csv folder."""
    settings, good, good_raw, bad_raw, good_clean, folder = pristine
    shutil.copytree(Path(settings.paths.home), tmp_path / "home")
    shutil.copytree(folder, tmp_path / "csv")
    own = csv_settings(tmp_path / "home", tmp_path / "csv")
    with open_instance(own) as instance:
        yield World(own, instance, good, good_raw, bad_raw, good_clean, tmp_path / "csv")


def _materialization(result: dg.ExecuteInProcessResult, asset: str):
    return next(e.materialization for e in result.get_asset_materialization_events()
                if e.asset_key == dg.AssetKey(asset))


# --- the data layer materialized downstream alone ------------------------------------------------------

def test_downstream_alone_reads_the_last_version_that_passed(world):
    # what would be read if the rejected table were current: it has the negative close
    current = pd.read_parquet(world.raw_prices_file)
    assert (current["close"] <= 0).any() and sha256(world.raw_prices_file) == world.bad_raw

    result = run_graph(world.settings, instance=world.instance, selection=FEATURES_AND_AFTER)
    assert result.success and materialized(result) == DOWNSTREAM
    for asset in ("clean_prices", "returns", "features"):
        pd.testing.assert_frame_equal(read_table(world.settings, asset), world.good[asset])
    clean = _materialization(result, "clean_prices")
    # the catalog records the version read, not the newer rejected one
    assert clean.tags["dagster/input_data_version/raw_prices"] == world.good_raw
    read = clean.metadata["input_versions"].value
    assert f"| raw_prices | {world.good_raw[:12]} |" in read
    assert f"{world.bad_raw[:12]} rejected by raw_prices_schema at " in read and "close" in read
    # the rejected version stays in the catalog, and its bytes in the version store
    assert data_version(world.instance, "raw_prices") == world.bad_raw
    assert list((world.raw_prices_file.parent / ".versions" / "raw_prices").glob(f"*-{world.bad_raw}.parquet"))


@pytest.mark.slow
def test_a_table_loaded_in_the_same_step_as_a_rejected_one_is_not_read_either(world):
    """raw_alt_data passed its own check in the load whose raw_prices was rejected; read with the
    raw_prices that passed, it would mix two loads: downstream reads the raw_alt_data of that one."""
    good_alt = read_table(world.settings, "clean_alt_data")
    _edit(world.csv / "alt_data.csv", lambda f: f.__setitem__("VIX", (f["VIX"].astype(float) * 2).astype(str)))
    negative_close(world.csv)
    rejected = run_graph(world.settings, instance=world.instance)
    assert set(failed_checks(rejected)) == {"raw_prices_schema"} and "raw_alt_data" in materialized(rejected)
    result = run_graph(world.settings, instance=world.instance, selection=FEATURES_AND_AFTER)
    assert result.success
    pd.testing.assert_frame_equal(read_table(world.settings, "clean_alt_data"), good_alt)
    read = _materialization(result, "clean_alt_data").metadata["input_versions"].value
    assert re.search(r"\| raw_alt_data \| \w{12} \|.*rejected by raw_prices:raw_prices_schema at ", read), read


def test_the_outputs_of_one_step_are_read_from_the_same_run_when_a_check_fails_or_never_evaluates(tmp_path):
    """Two tables built in one step, each with a blocking check: when one's check fails, or
    raises so it never evaluates, the other of that run is not read either; both come from the
    last run where every check passed."""
    from graph import blocking_checks
    from resources.storage import ParquetIOManager

    class Load(dg.Config):
        n: int
        crash: bool = False

    @dg.multi_asset(outs={"a": dg.AssetOut(), "b": dg.AssetOut()})
    def load(config: Load):
        frame = pd.DataFrame({"v": [config.n], "crash": [config.crash]})
        return frame, frame

    @dg.asset_check(asset="a", blocking=True)
    def a_ok(a: pd.DataFrame) -> dg.AssetCheckResult:
        if a["crash"].iloc[0]:
            raise RuntimeError("the check itself failed")
        return dg.AssetCheckResult(passed=bool((a["v"] >= 0).all()))

    @dg.asset_check(asset="b", blocking=True)
    def b_ok(b: pd.DataFrame) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    checks = blocking_checks([load], [a_ok, b_ok])
    assert checks == {"a": ["a_ok", "b:b_ok"], "b": ["b_ok", "a:a_ok"]}
    resources = {"io_manager": ParquetIOManager(base_path=str(tmp_path), blocking_checks=checks)}
    with dg.instance_for_test() as instance:
        def load_run(n: int, crash: bool = False) -> str:
            result = dg.materialize([load, a_ok, b_ok], instance=instance, resources=resources, raise_on_error=False,
                                    run_config={"ops": {"load": {"config": {"n": n, "crash": crash}}}})
            return result.run_id

        good = load_run(1)
        load_run(2, crash=True)  # a_ok raises: it never evaluates a, and b waits with it
        assert {t: accepted_version(instance, t, None, checks[t]).version.run_id for t in "ab"} == {"a": good, "b": good}
        load_run(-1)  # a_ok fails: b of that run is rejected with it
        b = next(iter(accepted_version(instance, "b", None, checks["b"]).skipped))
        assert b.verdict == "rejected" and b.describe().startswith("rejected by a:a_ok at ")
        assert accepted_version(instance, "b", None, checks["b"]).version.run_id == good


def test_direct_reads_of_a_checked_table_get_the_last_version_that_passed(world):
    storage = build_definitions(world.settings).resources["storage"]
    pd.testing.assert_frame_equal(storage.accepted_table(world.instance, "raw_prices"), world.good["raw_prices"])
    assert (storage.stored_table("raw_prices")["close"] <= 0).any()  # the current file is the rejected one


def test_with_no_version_that_passed_downstream_refuses(tmp_path, quick_market):
    folder = write_csv_folder(quick_market.data, tmp_path / "csv")
    negative_close(folder)
    settings = csv_settings(tmp_path / "home", folder)
    with open_instance(settings) as instance:
        assert "raw_prices_schema" in failed_checks(run_graph(settings, instance=instance))
        result = run_graph(settings, instance=instance, selection=FEATURES_AND_AFTER)
        assert not result.success and not materialized(result)
        errors = " ".join(step_errors(result))
        # the main command's summary says it too, not the error that wraps it
        text, code = summarize(settings, [record(result)], 1, 0.0)
        assert code == 1 and re.search(r"step error  clean_market: NoAcceptedVersion: \w+ has no version that "
                                       r"passed its blocking checks", text), text
        # the first input loaded names it: raw_prices, or a table loaded with it (rejected with it)
        assert re.search(r"(raw_prices|raw_alt_data|corporate_actions) has no version that passed its blocking "
                         r"checks \(latest rejected by (raw_prices:)?raw_prices_schema at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: raw_prices: .*"
                         r"'close must be > 0' in column 'close': 1 row\(s\) fail, AAPL \S+ \(AAPL\.csv line \d+\) "
                         r"value -5\.0.*; 1 version\(s\) judged\); fix the input or restore a version: "
                         r"python -m jobs\.restore \w+ --list", errors), errors


def test_forecasting_refuses_a_rejected_clean_prices_and_trains_nothing(tmp_path, quick_market):
    folder = write_csv_folder(quick_market.data, tmp_path / "csv")
    quoted_in_cents(folder)
    settings = csv_settings(tmp_path / "home", folder)
    with open_instance(settings) as instance:
        data = run_graph(settings, instance=instance)
        assert set(failed_checks(data)) == {"clean_prices_no_unlisted_split"}
        result = run_graph(settings, job="forecasting", partition_key="SPY", instance=instance,
                           run_config=fast_forecasting_config())
        assert not result.success and not materialized(result)
        errors = " ".join(step_errors(result))
        assert re.search(r"(clean_prices|clean_alt_data) has no version that passed its blocking checks \(latest "
                         r"rejected by (clean_prices:)?clean_prices_no_unlisted_split at ", errors), errors
        assert "AAPL.csv line" in errors
    tracker = mlflow_resource(settings).tracker()
    assert not tracker.client().search_registered_models()  # no candidate was trained or registered


@pytest.mark.slow
def test_forecasting_trains_on_the_last_clean_prices_that_passed(world):
    quoted_in_cents(world.csv)
    data = run_graph(world.settings, instance=world.instance)
    assert set(failed_checks(data)) == {"clean_prices_no_unlisted_split"}
    rejected = data_version(world.instance, "clean_prices")
    result = run_graph(world.settings, job="forecasting", partition_key="SPY", instance=world.instance,
                       run_config=fast_forecasting_config(), selection=[dg.AssetKey("walkforward_forecasts"),
                                                                        dg.AssetKey("walkforward_summary"),
                                                                        dg.AssetKey("analog_forecasts"),
                                                                        dg.AssetKey("analog_summary")])
    assert result.success
    made = _materialization(result, "walkforward_forecasts")
    assert made.tags["dagster/input_data_version/clean_prices"] == world.good_clean != rejected
    assert f"{rejected[:12]} rejected by clean_prices_no_unlisted_split" in \
        made.metadata["input_versions"].value


# --- python -m jobs.restore -----------------------------------------------------------------------------

def test_restore_lists_the_versions_and_puts_one_back(world, tmp_path, capsys):
    settings_json = tmp_path / "settings.json"
    settings_json.write_text(world.settings.model_dump_json())
    command = ["raw_prices", "--settings-json", str(settings_json)]

    assert restore(command) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith("raw_prices: the newest 2 version(s), newest first")
    assert re.match(rf"  \d{{4}}-.* {world.bad_raw[:12]}  yes     rejected: rejected by raw_prices_schema at .*close",
                    listed[2]), listed[2]
    assert re.match(rf"\* \d{{4}}-.* {world.good_raw[:12]}  yes     accepted: blocking checks passed", listed[3])

    assert restore([*command, "--version", world.bad_raw[:8]]) == 1
    assert "refused: version" in capsys.readouterr().err and sha256(world.raw_prices_file) == world.bad_raw

    # built from the version that passed while a newer one was rejected: stale in the catalog, as it should be
    clean_alone = [dg.AssetKey("clean_prices"), dg.AssetKey("clean_alt_data")]
    assert run_graph(world.settings, instance=world.instance, selection=clean_alone).success
    graph = build_definitions(world.settings).get_repository_def().asset_graph
    status, causes = stale_status(world.instance, graph, [(dg.AssetKey("clean_prices"), None)])[("clean_prices", None)]
    assert status == "stale" and any("raw_prices" in c for c in causes), causes

    assert restore([*command, "--version", world.good_raw[:10]]) == 0
    assert f"restored raw_prices to version {world.good_raw[:12]}" in capsys.readouterr().out
    assert sha256(world.raw_prices_file) == world.good_raw
    restored = latest(world.instance, "raw_prices")
    assert restored.run_id == "" and restored.asset_materialization.tags["dagster/data_version"] == world.good_raw
    assert restored.asset_materialization.metadata["restored_version"].value == world.good_raw
    resolution = accepted_version(world.instance, "raw_prices", None, RAW_BLOCKING)
    assert resolution.version.storage_id == restored.storage_id and not resolution.skipped

    # the catalog sees it: what was built from that version is fresh again
    assert stale_status(world.instance, graph, [(dg.AssetKey("clean_prices"), None)])[("clean_prices", None)][0] \
        == "fresh"
    # downstream now reads the restored version, with nothing skipped
    result = run_graph(world.settings, instance=world.instance, selection=clean_alone)
    assert result.success
    pd.testing.assert_frame_equal(read_table(world.settings, "clean_prices"), world.good["clean_prices"])
    read = _materialization(result, "clean_prices").metadata["input_versions"].value
    assert f"| raw_prices | {world.good_raw[:12]} |" in read and "| none |" in read

    # forced, a rejected version comes back too, and says so
    assert restore([*command, "--version", world.bad_raw[:8], "--force"]) == 0
    forced = accepted_version(world.instance, "raw_prices", None, RAW_BLOCKING).version
    assert forced.data_version == world.bad_raw and forced.forced and "(forced)" in forced.describe()


def test_restore_names_what_it_cannot_find(world, tmp_path, capsys):
    settings_json = tmp_path / "settings.json"
    settings_json.write_text(world.settings.model_dump_json())
    assert restore(["raw_price", "--settings-json", str(settings_json)]) == 1
    assert "no asset 'raw_price'; the assets are: " in capsys.readouterr().err
    assert restore(["forecast_models", "--settings-json", str(settings_json)]) == 1
    assert "forecast_models is partitioned by ticker: give --partition" in capsys.readouterr().err
    assert restore(["raw_prices", "--settings-json", str(settings_json), "--version", "ffffffff"]) == 1
    assert "raw_prices has no version 'ffffffff'" in capsys.readouterr().err


def _version(data_version: str, timestamp: float, rejected: bool = False) -> StoredVersion:
    outcome = CheckOutcome("raw_prices_schema", True, not rejected, rejected, "r", timestamp)
    return StoredVersion("raw_prices", None, int(timestamp), "run", timestamp, data_version, (outcome,))


def test_a_version_is_chosen_by_its_data_version_or_by_time():
    newest, middle, oldest = (_version("abcd1" + "0" * 59, 3000.0), _version("abcd2" + "1" * 59, 2000.0),
                              _version("cd56" + "2" * 60, 1000.0))
    versions = [newest, middle, oldest]
    assert choose(versions, "cd56") is oldest and choose(versions, "ABCD2") is middle
    with pytest.raises(ValueError, match="ambiguous: abcd10000000, abcd21111111"):
        choose(versions, "abcd")
    assert choose(versions, "1970-01-01T00:40:00") is middle  # 2400 s: the newest at or before
    assert choose(versions, "1970-01-01T00:10:00") is None
    assert choose(versions, "eeee") is None


# --- the resolution on partitions, in process and in the multiprocess executor; the version store --------

def _quotes(instance, base: str, partition: str, price: float, keep: int = 5, checks: bool = True):
    selection = [small.quotes] if checks else dg.AssetSelection.assets(small.quotes).without_checks()
    return dg.materialize(small.ASSETS, instance=instance, partition_key=partition, selection=selection,
                          resources={"io_manager": small.io_manager(base, keep)}, raise_on_error=False,
                          run_config={"ops": {"quotes": {"config": {"price": price}}}})


def test_partitions_read_their_last_version_that_passed_and_the_store_keeps_it(tmp_path):
    base = str(tmp_path / "tables")
    with dg.instance_for_test() as instance:
        assert _quotes(instance, base, "A", 1.0, keep=2).success
        assert _quotes(instance, base, "B", 5.0, keep=2).success
        for price in (-1.0, -2.0, -3.0, -4.0):
            assert not _quotes(instance, base, "A", price, keep=2).success
        assert _quotes(instance, base, "A", 7.0, keep=2, checks=False).success  # stored, never judged
        # kept: the two newest versions of A and its newest that passed
        stored = sorted(p.name.split("-", 1)[1] for p in (tmp_path / "tables" / ".versions" / "quotes" / "A").iterdir())
        digests = {price: _digest("A", price) for price in (1.0, -4.0, 7.0)}
        assert stored == sorted(f"{d}.parquet" for d in digests.values())

        resources = {"io_manager": small.io_manager(base)}
        doubled = dg.materialize(small.ASSETS, instance=instance, partition_key="A", selection=[small.doubled],
                                 resources=resources)
        assert doubled.output_for_node("doubled")["price"].tolist() == [2.0]
        read = _metadata_of(doubled, "doubled")["input_versions"].value
        assert "quotes_positive has not evaluated" in read and "rejected by quotes_positive" in read
        # the partition's data version the catalog records is the one read (Dagster hashes partitions' versions)
        good_a, b = digests[1.0], _digest("B", 5.0)
        assert _tags_of(doubled, "doubled")["dagster/input_data_version/quotes"] == _sha(good_a)
        total = dg.materialize(small.ASSETS, instance=instance, selection=[small.total], resources=resources)
        assert total.output_for_node("total")["price"].tolist() == [6.0]  # A's 1 and B's 5
        assert _tags_of(total, "total")["dagster/input_data_version/quotes"] == _sha(good_a + b)

        # without the bound map the IO manager takes the blocking checks the job knows
        unbound = dg.materialize(small.ASSETS, instance=instance, partition_key="A", selection=[small.doubled],
                                 resources={"io_manager": small.io_manager(base, bound=False)})
        assert unbound.output_for_node("doubled")["price"].tolist() == [2.0]


def test_a_partition_without_a_version_that_passed_is_refused(tmp_path):
    base = str(tmp_path / "tables")
    with dg.instance_for_test() as instance:
        assert not _quotes(instance, base, "A", -1.0).success
        result = dg.materialize(small.ASSETS, instance=instance, partition_key="A", selection=[small.doubled],
                                resources={"io_manager": small.io_manager(base)}, raise_on_error=False)
        assert not result.success
        assert re.search(r"quotes\[A\] has no version that passed its blocking checks \(latest rejected by "
                         r"quotes_positive at .*: 1 price\(s\) <= 0; 1 version\(s\) judged\); fix the input or restore "
                         r"a version: python -m jobs\.restore quotes --partition A --list",
                         " ".join(step_errors(result)))
        with pytest.raises(NoAcceptedVersion, match=r"quotes\[B\] has never been materialized"):
            accepted_version(instance, "quotes", "B", ["quotes_positive"])


@pytest.mark.slow
def test_the_multiprocess_executor_reads_the_last_version_that_passed(tmp_path):
    base = str(tmp_path / "tables")
    with dg.instance_for_test() as instance:
        assert _quotes(instance, base, "A", 3.0).success
        assert not _quotes(instance, base, "A", -3.0).success
        job = dg.build_reconstructable_job("tests.last_good_graph", "doubled_job", (base,),
                                           reconstructor_working_directory=str(REPO))
        with dg.execute_job(job, instance, tags={"dagster/partition": "A"}) as result:
            assert result.success
        assert pd.read_parquet(tmp_path / "tables" / "doubled" / "A.parquet")["price"].tolist() == [6.0]


def _metadata_of(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    return _materialization(result, asset).metadata


def _tags_of(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    return _materialization(result, asset).tags


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _digest(ticker: str, price: float) -> str:
    """The data version of a `quotes` value: the SHA-256 of its stored Parquet bytes."""
    frame = pd.DataFrame({"ticker": [ticker], "price": [price]})
    return hashlib.sha256(frame.to_parquet(compression="zstd", index=False)).hexdigest()
