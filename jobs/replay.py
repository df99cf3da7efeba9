"""Replay the production system forward, one session at a time, through dagster-daemon.

    python -m jobs.replay [--settings FILE | --scenario NAME] [--from DATE] [--sessions N] [--home DIR]

It builds the whole graph up to DATE (settings dates.end by default) in its own home (default
<paths.home>/replays/<name>, emptied first), starts the sensors and dagster-daemon, and then, for
each of N sessions (settings replay.sessions), drops the synthetic market's next session into
the landing folder and waits until the daemon is done with it: the ingest (features, forecasts
and the forecast log, every ticker's live skill and drift), retraining, gates, promotion,
recommendations, the market memory and the lineage document all come from the real sensors.
The recommendations are traded on a paper book beside the baseline; the book's holdings file
(settings portfolio.holdings_file) is what the next session's recommendations start from.

It ends with the replay report (replay.md, replay.json and its charts in <home>/report): live
skill against the walk-forward per ticker, every check failure, retrain, promotion and demotion
on a timeline, the paper book against the baseline, and, for a scenario (settings/scenarios/),
each expectation judged pass or fail with its detection delay. Exit code 0 when every
expectation passed, 3 when one failed, 1 when the replay could not run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "settings" / "scenarios"
MARK = ".odyssey-replay"  # a folder the replay made (and may empty again)
ODDS = "detection_odds.json"  # what the live-skill monitors promised, as built
JOURNAL = "sessions.jsonl"  # one line per replayed session, so a resumed replay reports them all
CURSORS = "sensor_cursors.json"  # the in-process loop's sensor cursors, so a resumed replay goes on from them
SENSORS = ("landing_sensor", "memory_after_states", "retrain_on_drift", "advise_after_forecasts")
# the replay's own daemon intervals: the follow-up sensors tick every 2 s, so a session takes what
# its runs take (the defaults suit a day, not a replay)
DAEMON = {"landing_seconds": 1, "follow_seconds": 2}
# the sensors whose ticks decide that a session is done: the loop's, and the lineage document's
FOLLOWERS = (*SENSORS, "lineage_after_runs")


def replay_settings_file(source: Path, home: Path, start: str | None, sessions: int | None) -> Path:
    """The replay's settings: `source` with the replay's home, end date, holdings file and
    daemon intervals."""
    lines = [f"extends = {json.dumps(str(source.resolve()))}", "", "[paths]", f"home = {json.dumps(str(home))}", "",
             "[portfolio]", f"holdings_file = {json.dumps(str(home / 'holdings.json'))}", "",
             "[daemon]", *(f"{k} = {v}" for k, v in DAEMON.items())]
    if start:
        lines += ["", "[dates]", f"end = {json.dumps(start)}"]
    if sessions:
        lines += ["", "[replay]", f"sessions = {sessions}"]
    path = home / "settings.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


OUTSIDE_VARIABLES = ("ODYSSEY_ALERT_WEBHOOK", "QDRANT_URL", "QDRANT_API_KEY", "MLFLOW_TRACKING_URI")


def refuse_outside_stores(settings, home: Path, source: Path) -> None:
    """A replay writes only under its home: settings that put a store (or the alerts log)
    elsewhere, or name a Qdrant server, are refused before anything is written."""
    def inside(where: str) -> bool:
        local = where.removeprefix("sqlite:///").removeprefix("file://")
        return "://" not in local and Path(local).resolve().is_relative_to(home.resolve())

    paths = settings.paths
    outside = [f"paths.{name}" for name in ("storage_url", "dagster_home", "landing", "tick_landing", "qdrant",
                                            "mlflow_tracking_uri", "mlflow_artifacts", "alerts_log")
               if not inside(str(getattr(paths, name)))]
    if settings.memory.qdrant_url:
        outside.append("memory.qdrant_url")
    if outside:
        raise SystemExit(f"jobs.replay: {source} sets {', '.join(outside)} outside paths.home ({home}): a replay would "
                         "write into that store; leave them to follow paths.home")


def fresh_home(home: Path) -> None:
    """An empty replay home: a folder the replay made before is emptied; any other that is not
    empty is refused (the replay never deletes what it did not make)."""
    if home.exists() and any(home.iterdir()):
        if not (home / MARK).exists():
            raise SystemExit(f"jobs.replay: {home} is not empty and not a replay's home: choose another --home")
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / MARK).write_text("made by python -m jobs.replay; emptied by the next replay in this folder\n")


def dagster_cli(env: dict, *args: str) -> None:
    """One `dagster` command against Odyssey's code location, in the environment given."""
    subprocess.run([str(Path(sys.executable).parent / "dagster"), *args, "-w", str(ROOT / "workspace.yaml")],
                   cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Daemon:
    """dagster-daemon on the replay's instance, with the loop's sensors started; its log (and its
    runs' console output) goes to a file in the Dagster home, never to an unread pipe."""

    def __init__(self, env: dict, home: Path):
        self.env, self.home = env, home

    def __enter__(self) -> "Daemon":
        for name in SENSORS:
            dagster_cli(self.env, "sensor", "start", name)
        self.log = (self.home / "daemon.log").open("w")
        self.process = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w",
                                         str(ROOT / "workspace.yaml")], cwd=ROOT, env=self.env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def __exit__(self, *exc) -> None:
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


class InProcessLoop:
    """The daemon's part played in this process, for a fast replay: after a landing, every sensor
    of the loop ticks against the instance (cursors kept here, as the daemon keeps them) and the
    runs it asks for execute in process, until a whole round asks for nothing; then the lineage
    document is rebuilt once, as its sensor does after the last run of a burst. The sensors'
    code, the jobs and the instance are the production ones; what differs is that no run pays a
    process start, and nothing runs side by side."""

    def __init__(self, defs, instance, cursor_file: Path):
        import dagster as dg

        self.dg, self.defs, self.instance, self.cursor_file = dg, defs, instance, cursor_file
        # kept in the home, as the daemon keeps its cursors in the instance: a resumed replay's
        # sensors go on from where they were, not from the start of the history
        self.cursors: dict[str, str | None] = json.loads(cursor_file.read_text()) if cursor_file.exists() else {}
        self.resources = defs.resources

    def __enter__(self) -> "InProcessLoop":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def execute(self, job_name: str, request, sensor: str) -> None:
        tags = {**(request.tags or {}), "dagster/sensor_name": sensor}
        if request.run_key:
            tags["dagster/run_key"] = request.run_key
        config = {**(request.run_config or {}), "loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        self.defs.resolve_job_def(job_name).execute_in_process(
            instance=self.instance, run_config=config, partition_key=request.partition_key, tags=tags,
            raise_on_error=False)

    def settle(self, timeout: float) -> None:
        dg = self.dg
        deadline, ran = time.time() + timeout, 0
        while time.time() < deadline:
            asked = 0
            for name in SENSORS:
                sensor = self.defs.resolve_sensor_def(name)
                with dg.build_sensor_context(instance=self.instance, cursor=self.cursors.get(name),
                                             resources=self.resources,
                                             repository_def=self.defs.get_repository_def()) as context:
                    result = sensor(context)  # the sensor's own function, as the daemon calls it
                    results = [result] if isinstance(result, (dg.RunRequest, dg.SkipReason)) or result is None \
                        else list(result)  # one request (a named tuple), or a list or generator of them
                    requests = [r for r in results if isinstance(r, dg.RunRequest)]
                for request in requests:
                    self.execute(sensor.job_name, request, name)
                    asked += 1
                # kept once its runs ran: a replay stopped inside one asks for them again when resumed
                self.cursors[name] = context.cursor
                self.cursor_file.write_text(json.dumps(self.cursors))
            ran += asked
            if not asked:
                break
        else:
            raise TimeoutError(f"jobs.replay: the loop still asked for runs after {timeout:.0f} s")
        if ran:
            self.execute("lineage_document", dg.RunRequest(tags={"odyssey/trigger": "replay"}), "lineage_after_runs")


def wait_for(condition, timeout: float, what: str, every: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(every)
    raise TimeoutError(f"jobs.replay: gave up after {timeout:.0f} s waiting for {what}")


def wait_quiet(instance, timeout: float, since: float, sensors: tuple[str, ...] = FOLLOWERS) -> None:
    """Until no run is queued or under way and every sensor of the loop has ticked since the last
    run ended (or since `since`, the landing) and asked for nothing: proof, from the daemon's own
    tick records, that the session's work is done rather than a pause long enough to look so."""
    import dagster as dg

    active = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]

    def settled() -> bool:
        if instance.get_runs(dg.RunsFilter(statuses=active), limit=1):
            return False
        recent = instance.get_run_records(limit=50)  # newest created first; an older one may end last
        last = max([since, *(max(r.create_timestamp.timestamp(), r.start_time or 0.0, r.end_time or 0.0)
                             for r in recent)])
        states = {s.instigator_name: s for s in instance.all_instigator_state() if s.instigator_name in sensors}
        for name in sensors:
            state = states.get(name)
            if state is None:
                return False
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, after=last, limit=5)
            # a finished tick that began after the last run ended and asked for no run (a failed
            # tick is the sensor's own error, shown in the UI; waiting would not mend it)
            if not any(t.is_completed and t.timestamp > last and not t.run_ids for t in ticks):
                return False
        return True

    wait_for(settled, timeout, "the daemon's runs to finish and every sensor to tick once more", every=0.5)


def read_advice(storage, instance, day: str):
    """The recommendations made for `day` (accepted by their blocking check), or None."""
    from odyssey.replay import Advice
    from resources.accepted import NoAcceptedVersion

    try:
        table = storage.accepted_table(instance, "recommendations")
    except NoAcceptedVersion:
        return None
    if table is None or not len(table) or str(table["as_of"].iloc[0]) != day:
        return None
    return Advice(as_of=day, advisor=str(table["advisor"].iloc[0]),
                  target=dict(zip(table["ticker"], table["target_weight"].astype(float))),
                  baseline=dict(zip(table["ticker"], table["baseline_weight"].astype(float))))


def run_replay(settings, env: dict, home: Path, sessions: int, timeout: float, driver: str = "daemon",
               log=print) -> "ReplayRecord":
    """Walk forward on a built store until `sessions` sessions were replayed in this home (those a
    stopped replay landed, kept in its journal, count), with dagster-daemon (`driver` "daemon") or
    the loop in this process ("inprocess"), and return what happened in all of them."""
    import dagster as dg

    from jobs.main import open_instance
    from odyssey.landing import synthetic_days, write_landing
    from odyssey.portfolio import write_holdings
    from graph import build_definitions
    from resources.storage import last_landed_day
    from odyssey.replay import PENDING, QUARANTINED, Event, ReplayRecord, SessionRecord, read_journal, \
        session_line

    profile = settings.profile()
    defs = build_definitions(settings)
    storage = defs.resources["storage"]
    landing, archive, quarantine = settings.paths.landing_dirs
    journal = home / JOURNAL
    records: list[SessionRecord]
    records, landed_at, pending_files = read_journal(journal.read_text()) if journal.exists() else ([], [], [])
    if records:
        log(f"{len(records)} sessions already replayed here, to {records[-1].day}; {max(0, sessions - len(records))} "
            "to go")
    with open_instance(settings) as instance, (Daemon(env, home) if driver == "daemon" else
                                               InProcessLoop(defs, instance, home / CURSORS)) as loop:
        if driver == "daemon":
            wait_for(lambda: "SENSOR" in instance.get_daemon_heartbeats(), 120, "the daemon's sensor loop")

            def settle() -> None:
                wait_for(lambda: not any(f.exists() for f in files), timeout, f"the landing of {day} to be taken")
                wait_quiet(instance, timeout, since=at)
        else:
            def settle() -> None:
                loop.settle(timeout)
        def conclude(index: int, day: str, at: float, files: list[Path]) -> SessionRecord:
            """The session landed at `at`, once the loop is quiet: its record, journaled, with the
            holdings moved to its advice."""
            runs = instance.get_runs(dg.RunsFilter(created_after=dt(at)))
            ingests = [r for r in runs if r.job_name == "ingest"]  # newest first
            status = ingests[0].status.value if ingests else "none"
            advice = read_advice(storage, instance, day)
            if advice is not None:
                write_holdings(Path(settings.portfolio.holdings_file), advice.target, day)
            record = SessionRecord(index=index, day=day, ingest=status,
                                   quarantined=any((quarantine / f.name).exists() for f in files),
                                   seconds=round(time.time() - at, 2), runs=len(runs), advice=advice)
            with journal.open("a") as out:
                out.write(session_line(record, at, files) + "\n")
            return record

        pending = bool(records) and records[-1].ingest == PENDING
        files, day, at = ([Path(f) for f in pending_files], records[-1].day, landed_at[-1]) if pending \
            else ([], "the build", time.time())
        settle()  # the followers' first ticks take the build's newest state (and a stopped session's files)
        if pending:  # stopped inside its session: concluded now
            last = records.pop()
            records.append(conclude(last.index, last.day, at, files))
            log(f"session {last.index:>3}/{sessions} {last.day} (landed before the stop): ingest "
                f"{records[-1].ingest.lower()}")
        if not records:  # the book starts in cash, and so do the first session's recommendations
            write_holdings(Path(settings.portfolio.holdings_file), {t: 0.0 for t in profile.tickers}, profile.end)
        started = time.time()
        after = last_landed_day(storage, profile.end, "bars")  # profile.end, unless resumed
        if records:  # resumed: a rejected session leaves the landed tables, not the replay
            after = max(after, pd.Timestamp(records[-1].day))
        for index in range(len(records) + 1, sessions + 1):
            data = synthetic_days(profile, settings.source.synthetic, after, 1)
            day = str(data.prices["date"].max().date())
            at = time.time()
            files = write_landing(data, landing)
            landed_at.append(at)
            with journal.open("a") as out:  # landed: a replay stopped before it concludes knows it
                out.write(session_line(SessionRecord(index, day, PENDING, False, 0.0, 0, None), at, files) + "\n")
            settle()
            record = conclude(index, day, at, files)
            records.append(record)
            log(f"session {index:>3}/{sessions} {day}: ingest {record.ingest.lower()}"
                f"{' (quarantined)' if record.quarantined else ''}, {record.runs} runs, {record.seconds:.1f} s"
                + (f", advice from {record.advice.advisor}" if record.advice else ", no advice"))
            after = pd.Timestamp(day)
        log(f"{sessions} sessions replayed; these in {time.time() - started:.0f} s")
        events, served, judged = timeline(instance, landed_at, [r.day for r in records],
                                          landed_at[0] if landed_at else started, tuple(profile.tickers))
        events += [Event(r.index, r.day, QUARANTINED, None, "the session's files went to quarantine")
                   for r in records if r.quarantined]
        record = ReplayRecord(scenario=settings.name, tickers=tuple(profile.tickers), sessions=records,
                              events=sorted(events, key=lambda e: (e.session, e.kind, e.ticker or "")),
                              event_day=settings.replay.event, served=served, judged=judged, driver=driver)
        fill_stored_facts(record, settings, storage, instance)
    return record


def timeline(instance, landed_at: list[float], days: list[str], since: float,
             tickers: tuple[str, ...]) -> tuple[list, dict[str, int], dict[str, dict[str, int]]]:
    """What the loop did in each session, from the instance: failed runs, failed checks (drift
    by ticker, live skill lost, any other), retrains, promotions and demotions; per ticker the
    sessions a champion forecast it; and per monitor and ticker the evaluations that judged it
    (not "not yet evaluable"). A run belongs to the session whose landing preceded it."""
    import bisect

    import dagster as dg

    from jobs.main import error_text
    from odyssey.drift import DRIFTED_KEY
    from odyssey.live_skill import LOST_KEY
    from odyssey.replay import (CHECK_FAILED, DEMOTION, DRIFTED, INGEST_FAILED, LIVE_ALARM, PROMOTION, RETRAIN,
                                RUN_FAILED, Event)

    # check -> (the monitor it is, its metadata's map of failing tickers, the timeline's kind)
    monitors = {"feature_drift_check": ("drift", DRIFTED_KEY, DRIFTED),
                "live_skill_check": ("live skill", LOST_KEY, LIVE_ALARM)}
    events: list[Event] = []
    served: dict[str, int] = {}
    judged: dict[str, dict[str, int]] = {name: {} for name, _, _ in monitors.values()}

    def count(monitor: str, ticker: str) -> None:
        judged[monitor][ticker] = judged[monitor].get(ticker, 0) + 1
    runs = sorted(instance.get_run_records(dg.RunsFilter(created_after=dt(since))),
                  key=lambda r: r.create_timestamp.timestamp())

    def value(metadata, key, default=None):
        entry = metadata.get(key)
        return default if entry is None else entry.value

    for run_record in runs:
        run = run_record.dagster_run
        session = bisect.bisect_right(landed_at, run_record.create_timestamp.timestamp())
        if session == 0:
            continue
        day = days[session - 1]
        partition = run.tags.get("dagster/partition")

        def add(kind, ticker, detail):
            events.append(Event(session, day, kind, ticker, detail))

        if run.job_name == "forecasting" and run.tags.get("odyssey/trigger") == "drift":
            add(RETRAIN, partition, f"{run.tags.get('odyssey/reason', 'requested by retrain_on_drift')} "
                                    f"(the run ended {run.status.value})")
        elif run.job_name != "ingest" and run.status != dg.DagsterRunStatus.SUCCESS:
            add(RUN_FAILED, partition, f"{run.job_name} ended {run.status.value}")
        failed_checks = []
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = entry.dagster_event.event_specific_data
            ticker = evaluation.partition or partition
            monitor = monitors.get(evaluation.check_name)
            if monitor is not None and evaluation.partition:
                continue  # one ticker's, from before every ticker was judged in one: it names none
            if monitor is not None:  # one evaluation for every ticker: those it names failed
                waiting = dict(value(evaluation.metadata, "not_yet_evaluable", {}) or {})
                for judged_ticker in tickers:
                    if judged_ticker not in waiting:
                        count(monitor[0], judged_ticker)
                if not evaluation.passed:
                    for failed, why in dict(value(evaluation.metadata, monitor[1], {}) or {}).items():
                        add(monitor[2], failed, str(why))
                continue
            if evaluation.passed:
                continue
            reason = value(evaluation.metadata, "reason", "failed")
            failed_checks.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}: {reason}")
            add(CHECK_FAILED, ticker, failed_checks[-1])
        if run.job_name == "ingest" and run.status == dg.DagsterRunStatus.FAILURE:
            failures = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
            error = failures[0].dagster_event.step_failure_data.error if failures else None
            add(INGEST_FAILED, None, "; ".join(failed_checks) or (error_text(error) if error else "the run failed"))
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            materialization = entry.dagster_event.event_specific_data.materialization
            name, metadata = materialization.asset_key.to_user_string(), materialization.metadata
            if name == "deployed_models":
                before, now = value(metadata, "previous_champion", "none"), value(metadata, "champion_version")
                if str(before) != str(now):
                    add(PROMOTION, materialization.partition, f"v{now} replaces {before}")
            elif name == "forecasts" and run.job_name == "ingest":
                lost = [t for t in str(value(metadata, "live_skill_lost", "none")).split(", ") if t != "none"]
                for ticker in lost:
                    add(DEMOTION, ticker, "no model with skill: live skill lost")
                for ticker in str(value(metadata, "served_by_champion", "none")).split(", "):
                    if ticker != "none":
                        served[ticker] = served.get(ticker, 0) + 1
    return events, served, judged


def dt(epoch: float):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def fill_stored_facts(record, settings, storage, instance) -> None:
    """What the expectations read from the store: the forecast log's newest session, and whether
    each planted bad print was repaired exactly (the clean return into and out of that session,
    in the version of clean_prices downstream reads, equal the true market's)."""
    import numpy as np

    from odyssey.sources.synthetic import generate_market

    log = storage.stored_table("forecast_log", columns=["date"])
    record.forecast_log_last = str(log["date"].max().date()) if log is not None and len(log) else None
    planted = settings.source.synthetic.bad_prints
    if not planted or not record.sessions:
        return
    clean = storage.accepted_table(instance, "clean_prices", columns=["date", "ticker", "close"])
    truth = generate_market(settings.profile().with_end(record.sessions[-1].day),
                            settings.source.synthetic).adjusted_close
    for item in planted:
        ticker, day = item.split()
        series = clean[clean["ticker"] == ticker].set_index("date")["close"].sort_index()
        when = np.searchsorted(series.index, np.datetime64(day))
        if when == 0 or when + 1 >= len(series) or series.index[when] != np.datetime64(day):
            record.repairs[item] = False
            continue
        window = series.iloc[when - 1:when + 2].to_numpy()
        true = truth[ticker].reindex(series.index[when - 1:when + 2]).to_numpy()
        record.repairs[item] = bool(np.allclose(window[1:] / window[:-1], true[1:] / true[:-1], rtol=1e-6))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--settings", help="a settings file (default: $ODYSSEY_SETTINGS, else odyssey.toml)")
    which.add_argument("--scenario", help=f"a scenario in settings/scenarios/ ({', '.join(scenario_names())})")
    parser.add_argument("--from", dest="start", help="build up to this date, then replay the sessions after it "
                                                     "(default: the settings' dates.end)")
    parser.add_argument("--sessions", type=int, help="sessions to replay (default: the settings' replay.sessions)")
    parser.add_argument("--home", help="the replay's home (default: <paths.home>/replays/<name>), emptied first")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for one session's runs")
    parser.add_argument("--resume", action="store_true",
                        help="go on from the last session a replay in this home landed (no new build) until "
                             "it has replayed its sessions; the report covers them all")
    parser.add_argument("--driver", choices=("daemon", "inprocess"), default="daemon",
                        help="daemon: dagster-daemon runs the sensors and launches the runs (the production path); "
                             "inprocess: the same sensors and jobs, ticked and executed in this process (faster)")
    args = parser.parse_args(argv)

    from odyssey.settings import child_environment, load_settings, settings_file

    source = SCENARIOS / f"{args.scenario}.toml" if args.scenario else settings_file(args.settings)
    if not source.exists():
        raise SystemExit(f"jobs.replay: no settings file {source}"
                         + (f" (scenarios: {', '.join(scenario_names())})" if args.scenario else ""))
    base = load_settings(source)
    if base.source.kind != "synthetic":
        raise SystemExit("jobs.replay lands the synthetic market's next sessions: it needs source.kind = 'synthetic'")
    name = args.scenario or base.name
    home = Path(args.home).resolve() if args.home else Path(base.paths.home) / "replays" / name
    refuse_outside_stores(load_settings(source, overrides={"paths": {"home": str(home)}}), home, source)
    resume = args.resume and (home / MARK).exists() and (home / "settings.toml").exists()
    if not resume:
        fresh_home(home)
    path = replay_settings_file(source, home, args.start, args.sessions)
    settings = load_settings(path)
    refuse_outside_stores(settings, home, source)
    # the replay's runs alert nobody and reach no outside index: its failures are planted
    env = child_environment({"DAGSTER_HOME": settings.paths.dagster_home, "ODYSSEY_SETTINGS": str(path)},
                            drop=OUTSIDE_VARIABLES)
    if resume:
        print(f"replay {name}: resuming on the store in {home}", flush=True)
    else:
        print(f"replay {name}: building the graph up to {settings.profile().end} in {home}", flush=True)
        built = time.time()
        with (home / "build.log").open("w") as out:
            code = subprocess.run([sys.executable, "-m", "jobs.main", "--settings", str(path)], cwd=ROOT, env=env,
                                  stdout=out, stderr=subprocess.STDOUT).returncode
        if code not in (0, 2):  # 2: a blocking check stopped part of the graph (a null market deploys nothing)
            print(f"jobs.replay: the build failed (exit {code}); see {home / 'build.log'}", file=sys.stderr)
            return 1
        print(f"built in {time.time() - built:.0f} s (exit {code})", flush=True)
        (home / ODDS).write_text(json.dumps([dataclasses.asdict(o) for o in detection_odds(settings)], indent=1))
    record = run_replay(settings, env, home, settings.replay.sessions, args.timeout, args.driver,
                        log=lambda line: print(line, flush=True))

    verdicts, report = write_report(record, settings, home / "report")
    for verdict in verdicts:
        print(f"  {'PASS' if verdict.passed else 'FAIL'}  {verdict.kind}: {verdict.detail}")
    print(f"report: {report}")
    return 0 if all(v.passed for v in verdicts) else 3


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIOS.glob("*.toml"))



def detection_odds(settings) -> list:
    """For every ticker a live_skill_alarm expectation names, what the monitor of its champion as
    built (before the first session) promises at that champion's own skill: the answer a
    scenario's detection can be held to. Tickers without a champion have none."""
    from graph import build_definitions
    from jobs.main import open_instance
    from odyssey import replay as rp

    from odyssey.calendar import next_sessions
    from resources.accepted import NoAcceptedVersion

    storage = build_definitions(settings).resources["storage"]
    profile = settings.profile()
    days = [str(d.date()) for d in next_sessions(pd.Timestamp(profile.end), settings.replay.sessions, profile.exchange)]
    left = len(days) - days.index(settings.replay.event) - 1 if settings.replay.event in days else len(days)
    wanted = {t: e.within if e.within is not None else left for e in settings.replay.expect
              if e.kind == "live_skill_alarm" for t in (e.tickers or settings.universe.tickers)}
    if not wanted:
        return []
    try:
        with open_instance(settings) as instance:
            clean = storage.accepted_table(instance, "clean_prices")
            forecasts = storage.accepted_table(instance, "forecasts")
    except NoAcceptedVersion:  # the build stopped before them: no champion to promise anything
        return []
    if clean is None or forecasts is None:
        return []
    deployed = set(forecasts.loc[forecasts["status"] == "champion", "ticker"])
    odds = []
    for ticker, within in wanted.items():
        path = storage.path("tables", "walkforward_forecasts", f"{ticker}.parquet")
        if ticker in deployed and path.exists():
            odds.append(rp.detection_odds(ticker, pd.read_parquet(path), clean, within, settings.gates))
    return odds


def write_report(record, settings, folder: Path) -> tuple[list, Path]:
    """replay.md, replay.json and the charts in `folder`, from the record and the stored tables."""
    import numpy as np

    from graph import build_definitions
    from jobs.main import open_instance
    from odyssey import replay as rp

    folder.mkdir(parents=True, exist_ok=True)
    storage = build_definitions(settings).resources["storage"]
    profile = settings.profile()
    verdicts = [rp.judge(expectation, record) for expectation in settings.replay.expect]
    with open_instance(settings) as instance:
        returns = storage.accepted_table(instance, "returns")  # the version downstream reads
    tickers = tuple(profile.tickers)
    wide = returns.pivot_table(index="date", columns="ticker", values="log_return").sort_index()
    book = rp.paper_book(record.sessions, np.expm1(wide), settings.costs.rate, tickers)
    log = storage.stored_table("forecast_log")
    live = rp.live_ic(log if log is not None else pd.DataFrame(columns=["date", "ticker", "prediction"]), returns,
                      settings.forecast.horizon, profile.end)
    walkforward_ic = {}
    for ticker in tickers:
        summary = storage.path("tables", "walkforward_summary", f"{ticker}.json")
        if summary.exists():
            walkforward_ic[ticker] = float(json.loads(summary.read_text())["summary"]["oos_ic"])
    saved = folder.parent / ODDS
    odds = [rp.DetectionOdds(**o) for o in json.loads(saved.read_text())] if saved.exists() else []  # as built
    charts = {}
    if len(live):
        charts["live_skill.png"] = rp.live_skill_chart(live, walkforward_ic, record.events, record.sessions)
    if book:
        charts["paper_book.png"] = rp.book_chart(book)
    for name, png in charts.items():
        (folder / name).write_bytes(png)
    markdown = rp.render_markdown(record, verdicts, book, live, walkforward_ic, settings.replay.description,
                                  list(charts), odds)
    (folder / "replay.md").write_text(markdown)
    data = rp.as_dict(record, verdicts, book)
    data["walkforward_ic"] = walkforward_ic
    data["detection_odds"] = [dataclasses.asdict(o) for o in odds]
    data["live_ic_last"] = {t: float(g["live_ic"].iloc[-1]) for t, g in live.groupby("ticker")}
    (folder / "replay.json").write_text(json.dumps(data, indent=1, default=str))
    return verdicts, folder / "replay.md"


if __name__ == "__main__":
    sys.exit(main())
