"""Ingest new trading days dropped in the landing folder.

Each new file is read and judged first: a bad one goes to quarantine with a `.reason.txt` beside
it and nothing stored changes; a link or a special file (pipe, directory, device) named like a
landing file goes there unopened. Good files start one `ingest` run (landing → raw → clean →
features → forecasts); once that run succeeded they move to the archive. If it failed (a blocking
check rejected what they brought, or anything else stopped it), their rows are taken back out of
the landed tables, the files go to quarantine with the run's end as the reason, and the cursor
forgets them: the same days land again when the files are dropped again (corrected, or as they
were once what failed is fixed). The cursor remembers every file by name and SHA-256, so none is ingested twice.

One ingest at a time: while a run of the `ingest` job is queued or under way (this sensor's, the
daily schedule's, or one started by hand), new files stay in the folder unjudged and the tick
says what it waits for; the next tick after that run finished judges them against what it stored.
"""

import json

import dagster as dg

from odyssey.landing import landing_entries, landing_kind, read_landed
from odyssey.settings import DaemonSettings
from resources.settings import SettingsResource
from sensors.cursors import judge_new_files, runs_in_progress, sensor_every, settle_landed
from resources.storage import LANDED_TABLES, Storage, last_landed_day, roll_back_landed

def _landing_sensor(context: dg.SensorEvaluationContext, storage: Storage, settings: SettingsResource):
    landing, archive, quarantine = settings.value.paths.landing_dirs
    profile = settings.profile()
    cursor = json.loads(context.cursor) if context.cursor else {"seen": {}, "pending": {}}
    settle_landed(context, cursor, landing, archive, quarantine,
                  roll_back=lambda run_id, files: roll_back_landed(context.instance, storage, run_id, files))
    waiting = runs_in_progress(context, "ingest", cursor["pending"])
    if waiting:  # one ingest at a time: new files are judged against what that run stores
        pending = {n for names in cursor["pending"].values() for n in names}
        new = [p for p in landing_entries(landing) if p.name not in pending]
        context.update_cursor(json.dumps(cursor))
        yield dg.SkipReason(f"{len(new)} new landing file(s) wait until {'; '.join(waiting)} finished: "
                            "one ingest at a time")
        return
    watermark = {kind: last_landed_day(storage, profile.end, kind) for kind in LANDED_TABLES}
    good = [landed for _, _, landed in judge_new_files(
        context, cursor, landing_entries(landing), quarantine,
        lambda path: read_landed(path, profile.tickers, watermark[landing_kind(path) or "bars"], profile.exchange,
                             "volume" in profile.bar_fields))]
    if good:
        names = sorted(f.path.name for f in good)
        run_key = "landing-" + "-".join(sorted(f.sha256[:12] for f in good))
        cursor["pending"][run_key] = names
        yield dg.RunRequest(
            run_key=run_key,
            run_config={"ops": {"landed_market": {"config": {"files": [str(f.path) for f in good]}}}},
            tags={"odyssey/trigger": "landing", "odyssey/files": ", ".join(names)[:1000]},
        )
    context.update_cursor(json.dumps(cursor))



def landing_sensor_every(seconds: int) -> dg.SensorDefinition:
    return sensor_every(_landing_sensor, seconds, "landing_sensor", "ingest",
                        "Start an ingestion run for new files in the landing folder, one run at a time; "
                        "archive or quarantine them.")


landing_sensor = landing_sensor_every(DaemonSettings().landing_seconds)  # build_definitions uses the settings' own
