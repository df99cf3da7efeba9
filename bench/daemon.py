"""Time a new trading day through the production path: dagster-daemon, its landing sensor and the
run it launches, on the store that `make run` builds (the settings' `paths.home`; built first
with `python -m jobs.main` when it has no runs). The last line printed is one JSON object:

- `code_load_seconds`: a fresh Python process importing the code location (`definitions`), the
  least of three; every run the daemon launches, and the webserver, pay it once; and
  `code_load_cold_seconds`, the first load after a code change, which works out the code versions;
- `new_day_seconds`: from the new session's files appearing in the landing folder to the end of
  the `ingest` run the sensor started (landing -> raw -> clean -> features -> forecasts and the
  forecast log -> every ticker's live skill and drift), aim <= 30 s; with its parts: until the sensor asked for
  the run (`request_seconds`), until the run started (`launch_seconds`), and the run itself;
- `followups_seconds`: until the runs that follow it (the market memory, the recommendations, the
  lineage document) finished too.

    python bench/daemon.py [--settings odyssey.toml] [--timeout 900]

It advances the store by one synthetic session, as the landing of a real day would (the files
are archived, the champions log their forecasts); the sensors it starts are stopped again. The
daemon's log is in the Dagster home, bench_daemon.log.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# after the repository is on the path
from jobs.replay import dagster_cli as dagster, wait_for, wait_quiet  # noqa: E402

LANDING, FOLLOWERS = "landing_sensor", ("memory_after_states", "advise_after_forecasts")
AIM = 30.0


def code_load_seconds(env: dict) -> tuple[float, float]:
    """A fresh process importing the code location: the first load after a code change (no code
    versions remembered: they are worked out, and the cache written), then the least of three."""
    def load() -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import definitions"], cwd=ROOT, env=env, check=True)
        return time.perf_counter() - started

    for cache in (ROOT / "__pycache__").glob("odyssey_code_versions.*.json"):
        cache.unlink()
    cold = load()
    return cold, min(load() for _ in range(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default=None, help="settings file (default: odyssey.toml or $ODYSSEY_SETTINGS)")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()

    import dagster as dg

    from jobs.main import open_instance, prepare_home
    from odyssey.landing import synthetic_days, write_landing
    from odyssey.settings import load_settings
    from resources.storage import last_landed_day
    from graph import build_definitions

    settings = load_settings(args.settings) if args.settings else load_settings()
    if settings.source.kind != "synthetic":
        raise SystemExit("bench/daemon.py lands a synthetic session: it needs source.kind = 'synthetic'")
    env = {**os.environ, "DAGSTER_HOME": str(prepare_home(settings))}
    if args.settings:
        env["ODYSSEY_SETTINGS"] = str(Path(args.settings).resolve())
    with open_instance(settings) as instance:
        built = bool(instance.get_runs(dg.RunsFilter(job_name="portfolio"), limit=1))
    if not built:
        print("no store yet: building it with python -m jobs.main", flush=True)
        subprocess.run([sys.executable, "-m", "jobs.main", *(["--settings", args.settings] if args.settings else [])],
                       cwd=ROOT, env=env, check=True)
    cold, load = code_load_seconds(env)
    print(f"code location load: {load:.2f} s ({cold:.2f} s the first time after a code change)", flush=True)

    defs = build_definitions(settings)
    landing = Path(settings.paths.landing_dirs[0])
    dagster(env, "sensor", "start", LANDING)
    log_path = Path(env["DAGSTER_HOME"]) / "bench_daemon.log"
    log = log_path.open("w")  # the daemon's and its runs' console logs (never an unread pipe: it would block them)
    daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    started_followers = False
    try:
        with open_instance(settings) as instance:
            wait_for(lambda: "SENSOR" in instance.get_daemon_heartbeats(), 120, "the daemon's sensor loop")
            time.sleep(settings.daemon.landing_seconds + 2)  # the landing sensor's first tick has read the folder
            before = {r.run_id for r in instance.get_runs(dg.RunsFilter(job_name="ingest"))}
            profile = settings.profile()
            after = last_landed_day(defs.resources["storage"], profile.end, "bars")
            data = synthetic_days(profile, settings.source.synthetic, after, 1)
            landed = time.time()
            write_landing(data, landing)
            day = str(data.prices["date"].max().date())
            print(f"landed {day} in {landing}", flush=True)

            def ingest_run():
                runs = [r for r in instance.get_runs(dg.RunsFilter(job_name="ingest")) if r.run_id not in before]
                return runs[0] if runs else None

            run = wait_for(ingest_run, args.timeout, "the sensor's ingest run")
            done = wait_for(lambda: (r := instance.get_run_record_by_id(run.run_id)) and r.dagster_run.is_finished
                            and r, args.timeout, "the ingest run to finish")
            created = done.create_timestamp.timestamp()
            started, ended = done.start_time, done.end_time
            status = done.dagster_run.status.value
            # the sensors that follow the ingest start now: their first tick sees its materializations
            # as the newest (started earlier, they would take make run's for new ones)
            for name in FOLLOWERS:
                dagster(env, "sensor", "start", name)
            started_followers = True

            followers_at = time.time()

            # done when no run is under way and each follower (and the lineage document's sensor, on
            # by default) has ticked since the last run ended and asked for nothing (the daemon's
            # own tick records)
            wait_quiet(instance, args.timeout, since=followers_at, sensors=(*FOLLOWERS, "lineage_after_runs"))
            followed = time.time()
            followups = [r.job_name for r in instance.get_runs(dg.RunsFilter(created_after=done.create_timestamp))]
    finally:
        os.killpg(daemon.pid, signal.SIGINT)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
        log.close()
        for name in (LANDING, *(FOLLOWERS if started_followers else ())):
            dagster(env, "sensor", "stop", name)

    result = {"bench": "daemon", "new_day_seconds": round(ended - landed, 2), "code_load_seconds": round(load, 2),
              "code_load_cold_seconds": round(cold, 2),
              "request_seconds": round(created - landed, 2), "launch_seconds": round(started - created, 2),
              "run_seconds": round(ended - started, 2), "followups_seconds": round(followed - landed, 2),
              "followup_runs": len(followups), "status": status, "day": day, "aim_seconds": AIM,
              "landing_sensor_seconds": settings.daemon.landing_seconds, "tickers": len(settings.universe.tickers)}
    print(f"new day {day}: landing -> ingest run finished {result['new_day_seconds']:.1f} s (sensor "
          f"{result['request_seconds']:.1f} s, launch {result['launch_seconds']:.1f} s, run {result['run_seconds']:.1f} "
          f"s; {status}); {len(followups)} follow-up runs done after {result['followups_seconds']:.1f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
