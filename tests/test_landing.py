"""New sessions through the landing folder: judged, ingested once, archived; bad files quarantined
with a reason (naming the file's own lines) and nothing stored changed; links and special files
quarantined unopened; one ingest at a time (sensor, run queue, pool, lock), so no session is lost."""

import os
import stat
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
import dagster as dg
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._utils.tags import TagConcurrencyLimitsCounter

from assets.market import landed_market
from graph import BLOCKING_CHECKS, build_definitions
from jobs.main import INSTANCE_YAML

from odyssey.calendar import next_sessions
from odyssey.landing import move, read_landed, synthetic_days, write_landing
from odyssey.sources.columns import MarketData
from odyssey.sources.csv_source import SourceError
from odyssey.sources.synthetic import generate_market
from resources import SettingsResource, Storage, build_resources
from sensors.landing import landing_sensor
from sensors.ticks import tick_landing_sensor
from tests.dagster_helpers import quick_settings, read_table, run_graph

REPO = Path(__file__).resolve().parent.parent


def test_synthetic_days_continue_the_same_market_on_sessions(quick_profile, quick_settings, tmp_path):
    after = pd.Timestamp(quick_profile.end)            # 2021-12-31
    config = quick_settings.source.synthetic
    data = synthetic_days(quick_profile, config, after, 11)
    days = next_sessions(after, 11)
    longer = generate_market(quick_profile.with_end(days[-1]), config).data.prices
    expected = longer[longer["date"] > after].reset_index(drop=True)
    pd.testing.assert_frame_equal(data.prices, expected)
    assert sorted(data.prices["date"].unique()) == list(days)
    assert days[-1] == pd.Timestamp("2022-01-18")       # the 11th session: Martin Luther King Jr. Day skipped
    assert pd.Timestamp("2022-01-17") not in set(data.prices["date"]) | set(data.alt["date"])
    bars, alt = write_landing(data, tmp_path)
    landed = read_landed(bars, quick_profile.tickers, after, quick_profile.exchange)
    assert landed.kind == "bars" and len(landed.frame) == len(expected)
    assert read_landed(alt, quick_profile.tickers, after, quick_profile.exchange).kind == "alt"


def test_bad_landing_files_are_named_precisely(quick_profile, quick_settings, tmp_path):
    after = pd.Timestamp(quick_profile.end)
    data = synthetic_days(quick_profile, quick_settings.source.synthetic, after, 2)
    bars, _ = write_landing(data, tmp_path)
    # rows are ticker by ticker: the first session's bars are on lines 2, 4, 6, 8, 10
    with pytest.raises(SourceError, match=r"repeats days already stored \(on or before 2022-01-03\) "
                                          r"in lines 2, 4, 6, 8, 10$"):
        read_landed(bars, quick_profile.tickers, next_sessions(after, 1)[0])
    frame = pd.read_csv(bars)
    frame.loc[0, "ticker"] = "ZZZ"
    frame.to_csv(tmp_path / "bars_unknown.csv", index=False)
    with pytest.raises(SourceError, match=r"bars_unknown.csv: column 'ticker' has tickers outside the universe: \['ZZZ'\]"):
        read_landed(tmp_path / "bars_unknown.csv", quick_profile.tickers, after)
    frame = pd.read_csv(bars)
    frame.loc[3, "close"] = -1.0
    frame.to_csv(tmp_path / "bars_negative.csv", index=False)
    with pytest.raises(SourceError, match=r"bars_negative.csv: .*column 'close': close must be > 0 \(1 failing, line 5\)$"):
        read_landed(tmp_path / "bars_negative.csv", quick_profile.tickers, after)
    frame = pd.read_csv(bars)
    frame["volume"] = frame["volume"].astype(float)
    frame.loc[[2, 6], "volume"] = float("nan")
    frame.to_csv(tmp_path / "bars_no_volume.csv", index=False)
    with pytest.raises(SourceError, match=r"bars_no_volume.csv: column 'volume' is empty in lines 4, 8$"):
        read_landed(tmp_path / "bars_no_volume.csv", quick_profile.tickers, after)
    # a market whose settings leave volume out (universe.bar_fields) lands bars without it
    assert read_landed(tmp_path / "bars_no_volume.csv", quick_profile.tickers, after, volume=False).frame[
        "volume"].isna().sum() == 2
    frame = pd.read_csv(bars)
    frame.loc[1, "date"] = "2022-01-17"                 # a holiday of the exchange
    frame.to_csv(tmp_path / "bars_holiday.csv", index=False)
    with pytest.raises(SourceError, match=r"bars_holiday.csv: column 'date' has days that are not XNYS sessions "
                                          r"in line 3 \(e\.g\. 2022-01-17\)"):
        read_landed(tmp_path / "bars_holiday.csv", quick_profile.tickers, after, "XNYS")
    assert read_landed(tmp_path / "bars_holiday.csv", quick_profile.tickers, after).kind == "bars"
    (tmp_path / "prices.csv").write_text("x")
    with pytest.raises(SourceError, match="landing files are named"):
        read_landed(tmp_path / "prices.csv", quick_profile.tickers, after)
    target = move(tmp_path / "prices.csv", tmp_path / "q", "bad name")
    assert (tmp_path / "q" / "prices.csv.reason.txt").read_text() == "bad name\n" and target.exists()


@pytest.mark.slow
def test_landing_sensor_ingests_new_days_once_and_quarantines_bad_files(tmp_path, quick_profile):
    settings = quick_settings(tmp_path)
    landing, archive, quarantine = settings.paths.landing_dirs
    assert (landing, archive, quarantine) == (tmp_path / "landing", tmp_path / "landing_archive",
                                              tmp_path / "landing_quarantine")
    with dg.instance_for_test() as instance:
        assert run_graph(settings, instance=instance).success
        before = read_table(settings, "features")
        data = synthetic_days(quick_profile, settings.source.synthetic, pd.Timestamp(quick_profile.end), 2)
        write_landing(data, landing)
        bad = data.prices.copy()
        bad["date"] = bad["date"].dt.strftime("%Y-%m-%d")
        bad.loc[0, "close"] = -1.0
        bad.to_csv(landing / "bars_bad.csv", index=False)

        resources = {"storage": Storage(base_path=settings.paths.storage_url),
                     "settings": SettingsResource.of(settings)}
        context = dg.build_sensor_context(instance=instance, resources=resources)
        requests = list(landing_sensor(context))
        assert len(requests) == 1
        request = requests[0]
        assert sorted(p.rsplit("/", 1)[-1] for p in request.run_config["ops"]["landed_market"]["config"]["files"]) == \
            sorted(p.name for p in landing.iterdir() if p.name != "bars_bad.csv")
        reason = (quarantine / "bars_bad.csv.reason.txt").read_text()
        assert "bars_bad.csv" in reason and "close must be > 0" in reason and "line 2)" in reason

        result = run_graph(settings, job="ingest", instance=instance, run_config=request.run_config,
                           tags={"dagster/run_key": request.run_key})
        assert result.success
        after = read_table(settings, "features")
        assert after["date"].max() == data.prices["date"].max()
        assert len(after) == len(before) + len(data.prices)
        pd.testing.assert_frame_equal(after[after["date"] <= before["date"].max()].reset_index(drop=True),
                                      before.reset_index(drop=True))

        context = dg.build_sensor_context(instance=instance, resources=resources, cursor=context.cursor)
        assert list(landing_sensor(context)) == []
        assert sorted(p.name for p in archive.iterdir()) == sorted(
            f"{k}_{data.prices['date'].min().date()}_{data.prices['date'].max().date()}.csv" for k in ("alt", "bars"))
        assert list(landing.iterdir()) == []
        context = dg.build_sensor_context(instance=instance, resources=resources, cursor=context.cursor)
        assert list(landing_sensor(context)) == []


@pytest.mark.slow
def test_a_landing_that_a_blocking_check_rejects_is_rolled_back_and_its_days_land_again_corrected(tmp_path,
                                                                                                    quick_profile):
    """A file that reads well but brings an unlisted 2:1 split (AAPL's close halved on a new day):
    the ingest run stops at clean_prices_no_unlisted_split. The next tick quarantines the file and
    takes its rows back out of the landed tables, so the same days land again once corrected, and
    the landed tables then hold each day once."""
    settings = quick_settings(tmp_path)
    landing, archive, quarantine = settings.paths.landing_dirs
    resources = _sensor_resources(settings)
    with dg.instance_for_test() as instance:
        assert run_graph(settings, instance=instance).success
        before = read_table(settings, "landed_bars")
        before_end = pd.Timestamp(quick_profile.end)
        data = synthetic_days(quick_profile, settings.source.synthetic, before_end, 2)
        halved = data.prices.copy()
        on = (halved["ticker"] == "AAPL") & (halved["date"] == halved["date"].max())
        halved.loc[on, ["open", "high", "low", "close"]] /= 2
        write_landing(MarketData(prices=halved, alt=data.alt, actions=data.actions), landing)

        def tick(cursor=None):
            context = dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor)
            requests = list(landing_sensor(context))
            for request in requests:
                result = run_graph(settings, job="ingest", instance=instance, run_config=request.run_config,
                                   tags={"dagster/run_key": request.run_key})
                yield request, result
            yield None, context.cursor

        (_, failed), (_, cursor) = list(tick())
        assert not failed.success
        assert read_table(settings, "landed_bars")["date"].max() == data.prices["date"].max()  # stored before the check
        # the daily schedule's ingest (no file) runs before the sensor's next tick: it stores the
        # landed tables again, and fails on the same rows
        assert not run_graph(settings, job="ingest", instance=instance,
                             run_config={"ops": {"landed_market": {"config": {"files": []}}}}).success
        [(_, cursor)] = list(tick(cursor))  # the next tick settles the failed run
        first, last = data.prices["date"].min().date(), data.prices["date"].max().date()
        assert sorted(p.name for p in quarantine.iterdir() if not p.name.endswith(".reason.txt")) == \
            [f"alt_{first}_{last}.csv", f"bars_{first}_{last}.csv"]
        assert not list(landing.iterdir())
        assert "ended FAILURE" in next(quarantine.glob("bars_*.reason.txt")).read_text()
        # the first landing: the tables go back to holding no landed day
        assert len(before) == 0 and len(read_table(settings, "landed_bars")) == 0
        assert len(read_table(settings, "landed_alt_data")) == 0
        assert "source_file" in read_table(settings, "landed_bars").columns

        write_landing(data, landing)  # the same days, corrected
        (_, ingested), (_, cursor) = list(tick(cursor))
        assert ingested.success
        landed = read_table(settings, "landed_bars")
        assert len(landed) == len(before) + len(data.prices) and not landed.duplicated(["ticker", "date"]).any()
        # every landed row names its file and line, and so do the raw prices built from them
        assert set(landed["source_file"]) == {f"bars_{first}_{last}.csv"}
        raw = read_table(settings, "raw_prices")
        assert (raw.loc[raw["date"] > before_end, "source_row"] >= 2).all()
        assert read_table(settings, "features")["date"].max() == data.prices["date"].max()


def test_splits_land_with_their_sessions_and_reach_the_corporate_actions(tmp_path):
    """NVDA split 4:1 on 2021-07-20: landed with the sessions around it, the split is applied and
    the clean series has no level change there (without it the level-shift check would stop it)."""
    settings = quick_settings(tmp_path, dates={"end": "2021-06-30"})
    profile = settings.profile()
    data = synthetic_days(profile, settings.source.synthetic, pd.Timestamp(profile.end), 30)
    assert data.actions[["ticker", "ratio"]].values.tolist() == [["NVDA", 4.0]]
    files = write_landing(data, tmp_path / "landing")
    assert sorted(f.name.split("_")[0] for f in files) == ["actions", "alt", "bars"]
    with dg.instance_for_test() as instance:
        assert run_graph(settings, instance=instance).success
        result = run_graph(settings, job="ingest", instance=instance,
                           run_config={"ops": {"landed_market": {"config": {"files": [str(f) for f in files]}}}})
        assert result.success
    actions = read_table(settings, "corporate_actions")
    assert ((actions["ticker"] == "NVDA") & (actions["date"] == pd.Timestamp("2021-07-20"))).sum() == 1
    nvda = read_table(settings, "clean_prices").query("ticker == 'NVDA'").set_index("date")["close"]
    move = nvda.loc["2021-07-20"] / nvda.loc["2021-07-19"]
    assert 0.8 < move < 1.25


# --- Safe landing: links and special files, one ingest at a time, no session lost ---

SECRET = "SECRET-CELL-4242"


def _one_day(data: MarketData, day: pd.Timestamp) -> MarketData:
    return MarketData(prices=data.prices[data.prices["date"] == day].reset_index(drop=True),
                      alt=data.alt[data.alt["date"] == day].reset_index(drop=True), actions=data.actions.iloc[0:0])


def _sensor_resources(settings) -> dict:
    return {"storage": Storage(base_path=settings.paths.storage_url, blocking_checks=BLOCKING_CHECKS),
            "settings": SettingsResource.of(settings)}


def _request_files(request: dg.RunRequest) -> list[str]:
    return sorted(Path(p).name for p in request.run_config["ops"]["landed_market"]["config"]["files"])


def test_links_and_special_files_are_quarantined_unread(tmp_path, quick_profile, capsys):
    """A symbolic link (to a secret file, or even to a valid landing file), a named pipe and a
    directory named like landing files are moved to quarantine as they are (the link itself, its
    target untouched) with a reason; none is opened, and nothing of the secret reaches a reason or a log."""
    settings = quick_settings(tmp_path)
    landing, _, quarantine = settings.paths.landing_dirs
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "system.csv"
    secret.write_text(f"{SECRET},other\n1,2\n")
    data = synthetic_days(quick_profile, settings.source.synthetic, pd.Timestamp(quick_profile.end), 2)
    days = sorted(data.prices["date"].unique())
    valid_bars, valid_alt = write_landing(_one_day(data, days[1]), outside)   # valid files, outside the folder
    good = write_landing(_one_day(data, days[0]), landing)
    (landing / "bars_secret.csv").symlink_to(secret)
    (landing / "bars_linked.csv").symlink_to(valid_bars)
    (landing / "alt_linked.csv").symlink_to(valid_alt)
    os.mkfifo(landing / "bars_pipe.csv")
    (landing / "bars_folder.csv").mkdir()
    (landing / "bars_folder.csv" / "inside.csv").write_text("x\n")

    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=_sensor_resources(settings))
        requests = [r for r in landing_sensor(context) if isinstance(r, dg.RunRequest)]
    logs = capsys.readouterr().err   # the sensor's log (Dagster's console logger)
    assert len(requests) == 1 and _request_files(requests[0]) == sorted(p.name for p in good)

    assert sorted(p.name for p in landing.iterdir()) == sorted(p.name for p in good)
    for name in ("bars_secret.csv", "bars_linked.csv", "alt_linked.csv"):
        moved = quarantine / name
        assert moved.is_symlink(), f"{name}: the link itself is quarantined"
        assert "symbolic link" in (quarantine / f"{name}.reason.txt").read_text()
    assert os.readlink(quarantine / "bars_secret.csv") == str(secret)
    assert secret.read_text() == f"{SECRET},other\n1,2\n" and valid_bars.exists() and valid_alt.exists()
    assert stat.S_ISFIFO((quarantine / "bars_pipe.csv").lstat().st_mode)
    assert "named pipe" in (quarantine / "bars_pipe.csv.reason.txt").read_text()
    assert (quarantine / "bars_folder.csv" / "inside.csv").read_text() == "x\n"
    assert "directory" in (quarantine / "bars_folder.csv.reason.txt").read_text()
    reasons = " ".join(p.read_text() for p in quarantine.glob("*.reason.txt"))
    assert SECRET not in reasons and SECRET not in logs
    assert "quarantined bars_secret.csv: bars_secret.csv: a symbolic link" in logs


def test_landed_market_refuses_a_link_named_in_its_config(tmp_path, quick_profile):
    """A run started by hand (UI, CLI) with a link among its files fails naming the link, unread."""
    secret = tmp_path / "system.csv"
    secret.write_text(f"{SECRET},other\n1,2\n")
    (tmp_path / "bars_x.csv").symlink_to(secret)
    with pytest.raises(SourceError, match=r"^bars_x.csv: a symbolic link") as caught:
        read_landed(tmp_path / "bars_x.csv", quick_profile.tickers, None)
    assert SECRET not in str(caught.value)
    os.mkfifo(tmp_path / "bars_pipe.csv")   # opening it for reading would wait for a writer
    with pytest.raises(SourceError, match=r"^bars_pipe.csv: a named pipe"):
        read_landed(tmp_path / "bars_pipe.csv", quick_profile.tickers, None)


def test_tick_landing_quarantines_links_unread(tmp_path, capsys):
    settings = quick_settings(tmp_path)
    landing, _, quarantine = settings.paths.tick_landing_dirs
    landing.mkdir(parents=True)
    secret = tmp_path / "system.ndjson"
    secret.write_text(f'{{"channel": "{SECRET}"}}\n')
    (landing / "ticks_BTC-USD_20251117.ndjson").symlink_to(secret)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=_sensor_resources(settings))
        assert [r for r in tick_landing_sensor(context) if isinstance(r, dg.RunRequest)] == []
    logs = capsys.readouterr().err
    assert (quarantine / "ticks_BTC-USD_20251117.ndjson").is_symlink() and not any(landing.iterdir())
    reason = (quarantine / "ticks_BTC-USD_20251117.ndjson.reason.txt").read_text()
    assert "symbolic link" in reason and SECRET not in reason + logs
    assert "quarantined ticks_BTC-USD_20251117.ndjson" in logs


def _run(instance: dg.DagsterInstance, job: str, status: dg.DagsterRunStatus,
         tags: dict | None = None) -> dg.DagsterRun:
    """A run of `job` in the instance as the daemon's queue holds it (not executed)."""
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("odyssey"), "__repository__"), job)
    return instance.run_storage.add_run(dg.DagsterRun(job_name=job, status=status, tags=tags or {},
                                                      remote_job_origin=origin))


def _report(instance: dg.DagsterInstance, run: dg.DagsterRun, event: dg.DagsterEventType) -> None:
    instance.report_dagster_event(dg.DagsterEvent(event.value, job_name=run.job_name), run.run_id)


def test_sensor_waits_while_an_ingest_run_is_pending(tmp_path, quick_profile):
    """While an ingest run is queued or started (the sensor's own, or one started by hand), new
    files wait in the folder unjudged and no run is requested; once it finished, they are."""
    settings = quick_settings(tmp_path)
    landing, archive, _ = settings.paths.landing_dirs
    data = synthetic_days(quick_profile, settings.source.synthetic, pd.Timestamp(quick_profile.end), 2)
    days = sorted(data.prices["date"].unique())
    resources = _sensor_resources(settings)
    with dg.instance_for_test() as instance:
        by_hand = _run(instance, "ingest", dg.DagsterRunStatus.QUEUED)
        first = write_landing(_one_day(data, days[0]), landing)
        context = dg.build_sensor_context(instance=instance, resources=resources)
        (skip,) = list(landing_sensor(context))
        assert isinstance(skip, dg.SkipReason) and by_hand.run_id in skip.skip_message
        assert "2 new landing file(s)" in skip.skip_message
        instance.report_run_canceled(by_hand)

        context = dg.build_sensor_context(instance=instance, resources=resources, cursor=context.cursor)
        (request,) = list(landing_sensor(context))
        assert isinstance(request, dg.RunRequest) and _request_files(request) == sorted(p.name for p in first)
        context = dg.build_sensor_context(instance=instance, resources=resources, cursor=context.cursor)
        (skip,) = list(landing_sensor(context))   # requested, not yet in the instance
        assert isinstance(skip, dg.SkipReason) and f"{request.run_key} (not created yet)" in skip.skip_message
        # the run as the daemon queues it
        run = _run(instance, "ingest", dg.DagsterRunStatus.QUEUED, {"dagster/run_key": request.run_key})
        second = write_landing(_one_day(data, days[1]), landing)
        for event in (None, dg.DagsterEventType.RUN_START):
            if event is not None:
                _report(instance, run, event)
            context = dg.build_sensor_context(instance=instance, resources=resources, cursor=context.cursor)
            (skip,) = list(landing_sensor(context))
            assert isinstance(skip, dg.SkipReason), skip
            assert run.run_id in skip.skip_message and "2 new landing file(s)" in skip.skip_message
            assert all(p.exists() for p in [*first, *second])

        _report(instance, run, dg.DagsterEventType.RUN_SUCCESS)
        context = dg.build_sensor_context(instance=instance, resources=resources, cursor=context.cursor)
        (request,) = list(landing_sensor(context))
        assert isinstance(request, dg.RunRequest) and _request_files(request) == sorted(p.name for p in second)
        assert sorted(p.name for p in archive.iterdir()) == sorted(p.name for p in first)


GATES: dict[str, threading.Event] = {}


class InterleavedStorage(Storage):
    """Storage that makes two landings overlap: the "first" stops once it has read the stored
    landed tables, until the "second" has reached them too (read them, or waits to)."""

    who: str

    def stored_table(self, asset: str, columns: list[str] | None = None):
        table = super().stored_table(asset, columns)
        if self.who == "second" and asset == "landed_bars":
            GATES["second arrived"].set()
        if self.who == "first" and asset == "landed_actions":
            GATES["first read"].set()
            assert GATES["second arrived"].wait(120), "the second landing never reached the landed tables"
        return table

    def exclusive(self, name: str):
        if self.who == "second":
            GATES["second arrived"].set()
        return super().exclusive(name)


def _land(settings, instance, storage: Storage, files: list[Path], results: dict, name: str) -> None:
    """Materialize landed_market with `files` (a run as the landing sensor requests it)."""
    results[name] = dg.materialize(
        [landed_market], instance=instance, raise_on_error=False,
        resources={"settings": SettingsResource.of(settings), "storage": storage,
                   "io_manager": build_resources(settings)["io_manager"]},
        run_config={"ops": {"landed_market": {"config": {"files": [str(f) for f in files]}}}})


def test_two_overlapping_landings_lose_no_session(tmp_path, quick_profile):
    """Two ingests of two landing files (one session each) run at the same time on the same
    storage and instance: the second waits for the first's landed tables, so both sessions stay."""
    settings = quick_settings(tmp_path)
    data = synthetic_days(quick_profile, settings.source.synthetic, pd.Timestamp(quick_profile.end), 2)
    days = sorted(data.prices["date"].unique())
    files = [write_landing(_one_day(data, day), tmp_path / f"in{i}") for i, day in enumerate(days)]
    GATES.clear()
    GATES.update({"first read": threading.Event(), "second arrived": threading.Event()})
    results: dict = {}
    with dg.instance_for_test() as instance:
        threads = [threading.Thread(target=_land, args=(settings, instance, InterleavedStorage(
            base_path=settings.paths.storage_url, who=who), day_files, results, who))
            for who, day_files in zip(("first", "second"), files)]
        threads[0].start()
        assert GATES["first read"].wait(120)
        threads[1].start()
        for thread in threads:
            thread.join()
    assert results["first"].success and results["second"].success
    assert sorted(read_table(settings, "landed_bars")["date"].unique()) == days
    assert sorted(read_table(settings, "landed_alt_data")["date"].unique()) == days
    assert len(read_table(settings, "landed_bars")) == len(data.prices)


def test_landed_market_waits_for_its_pool(tmp_path, quick_profile):
    """With the instance's pools at one slot, a landing waits while another run holds the slot
    of the landed tables, and lands once it is freed."""
    settings = quick_settings(tmp_path)
    data = synthetic_days(quick_profile, settings.source.synthetic, pd.Timestamp(quick_profile.end), 1)
    files = write_landing(data, tmp_path / "in")
    pool = landed_market.op.pool
    assert pool, "landed_market has no concurrency pool"
    results: dict = {}
    with dg.instance_for_test(overrides={"concurrency": {"pools": {"default_limit": 1}}}) as instance:
        slots = instance.event_log_storage
        slots.initialize_concurrency_limit_to_default(pool)
        assert slots.claim_concurrency_slot(pool, "another-ingest", "landed_market").is_claimed
        storage = Storage(base_path=settings.paths.storage_url)
        thread = threading.Thread(target=_land, args=(settings, instance, storage, files, results, "alone"))
        thread.start()
        poll, deadline = threading.Event(), time.monotonic() + 120
        while thread.is_alive() and not slots.get_concurrency_info(pool).pending_run_ids \
                and time.monotonic() < deadline:
            poll.wait(0.05)   # until the run's landed_market step queues for the pool's slot
        assert thread.is_alive(), "landed_market ran while another run held the pool's slot"
        assert slots.get_concurrency_info(pool).pending_run_ids
        assert storage.stored_table("landed_bars") is None
        slots.free_concurrency_slot_for_step("another-ingest", "landed_market")
        thread.join()
    assert results["alone"].success
    assert sorted(read_table(settings, "landed_bars")["date"].unique()) == sorted(data.prices["date"].unique())


def _concurrency_of(text: str) -> dict:
    return yaml.safe_load(text)["concurrency"]


@pytest.mark.parametrize("config", ["jobs/main.py", "deploy/dagster.yaml"])
def test_run_queue_runs_one_ingest_at_a_time(config, tmp_path):
    """The run queue of both instance configurations holds a second ingest run while one is in
    progress, and lets other jobs through."""
    text = INSTANCE_YAML if config == "jobs/main.py" else (REPO / config).read_text()
    defs = build_definitions(quick_settings(tmp_path))
    with dg.instance_for_test(overrides={"concurrency": _concurrency_of(text)}) as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        ingest_tags = defs.resolve_job_def("ingest").run_tags
        running = _run(instance, "ingest", dg.DagsterRunStatus.STARTED, ingest_tags)
        queued = _run(instance, "ingest", dg.DagsterRunStatus.QUEUED, ingest_tags)
        other = _run(instance, "forecasting", dg.DagsterRunStatus.QUEUED, defs.resolve_job_def("forecasting").run_tags)
        counter = TagConcurrencyLimitsCounter(limits, [running])
        assert counter.is_blocked(queued)
        assert not counter.is_blocked(other)
        assert not TagConcurrencyLimitsCounter(limits, []).is_blocked(queued)
