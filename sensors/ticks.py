"""Sensors of the `ticks` group: new NDJSON files in the tick landing folder, and retraining when
the tick drift check starts failing.

Landing works like the bars landing folder: each new file is read and judged first (a bad one goes
to quarantine with a `.reason.txt`, and nothing stored changes; a link or a special file named like
a tick file goes there unopened); good files start one `tick_ingest` run, and move to the archive
once it succeeded (to quarantine if it failed). The cursor remembers every file by name and
SHA-256, so none is ingested twice; in name order, each file must start after everything stored or
accepted before it, so two files holding the same messages are never both ingested. One ingestion
runs at a time: new files wait while a tick_ingest run is queued or under way, and until the last
run's files were archived, because raw_ticks reads the archive. Anything that writes
whole NDJSON files of ticker messages into the folder plugs in: the synthetic market
(`python -m jobs.ticks --land`), a recorder of the exchange's WebSocket, or a consumer of a
message queue that rolls its files by day.
"""

import json

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from odyssey import schemas
from odyssey.sources.csv_source import SourceError, _lines
from odyssey.landing import landing_entries
from odyssey.ticks.source import SUFFIX, read_tick_file, tick_files
from resources.accepted import NoAcceptedVersion
from resources.settings import SettingsResource
from resources.storage import Storage
from sensors.cursors import judge_new_files, runs_in_progress, settle_landed
from sensors.retrain import new_evaluations, reason_of


def _judge(path, product: str, watermark: dict, archived: set[str]) -> None:
    """Raise SourceError unless the file holds the product's messages, passes the raw_ticks
    schema, and starts after everything stored or accepted before it (`watermark["after"]`,
    moved to this file's last time when it is good)."""
    if path.name in archived:
        raise SourceError(f"{path.name}: a file of this name is archived already")
    ticks = read_tick_file(path, product).ticks.assign(source_file=path.name)
    if ticks.empty:
        raise SourceError(f"{path.name}: no {product} ticker messages")
    outcome = schemas.validate(schemas.raw_ticks_schema(product), ticks)
    if not outcome.passed:
        cases = outcome.failure_cases
        raise SourceError(f"{path.name}: " + "; ".join(
            f"{check} on {_lines(set(group['source_line'].dropna()), limit=5)}"
            for check, group in cases.groupby("check", sort=False)))
    after = watermark["after"]
    if after is not None and (ticks["timestamp"] <= after).any():
        raise SourceError(f"{path.name}: field 'timestamp' repeats times already stored or landed (at or before "
                          f"{after}) on {_lines(ticks.loc[ticks['timestamp'] <= after, 'source_line'], limit=5)}")
    watermark["after"] = ticks["timestamp"].max()


@dg.sensor(job_name="tick_ingest", minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Start a tick ingestion run for new NDJSON files in the tick landing folder; archive or "
                       "quarantine them.")
def tick_landing_sensor(context: dg.SensorEvaluationContext, storage: Storage, settings: SettingsResource):
    landing, archive, quarantine = settings.value.paths.tick_landing_dirs
    product = settings.value.ticks.product
    cursor = json.loads(context.cursor) if context.cursor else {"seen": {}, "pending": {}}
    settle_landed(context, cursor, landing, archive, quarantine)
    waiting = runs_in_progress(context, "tick_ingest", cursor["pending"])
    if waiting:  # one ingestion at a time: raw_ticks reads the archive, so the last run must settle
        context.update_cursor(json.dumps(cursor))
        yield dg.SkipReason(f"new tick files wait until {'; '.join(waiting)} finished: one ingestion at a time")
        return
    archived = {p.name for p in tick_files(archive)}
    try:  # the ticks downstream assets read (the newest raw_ticks that passed its schema)
        stored = storage.accepted_table(context.instance, "raw_ticks", columns=["timestamp", "source_file"])
    except NoAcceptedVersion:
        stored = None
    if stored is not None:
        stored = stored[stored["source_file"].isin(archived)]  # rows of a failed run's files do not count
    watermark = {"after": stored["timestamp"].max() if stored is not None and len(stored) else None}
    good = [(path, digest) for path, digest, _ in judge_new_files(
        context, cursor, landing_entries(landing, (SUFFIX,)), quarantine,
        lambda path: _judge(path, product, watermark, archived))]
    if good:
        names = sorted(p.name for p, _ in good)
        run_key = "ticks-" + "-".join(sorted(d[:12] for _, d in good))
        cursor["pending"][run_key] = names
        yield dg.RunRequest(
            run_key=run_key,
            run_config={"ops": {"raw_ticks": {"config": {"files": [str(p) for p, _ in sorted(good)]}}}},
            tags={"odyssey/trigger": "tick landing", "odyssey/files": ", ".join(names)[:1000]},
        )
    context.update_cursor(json.dumps(cursor))


TICK_DRIFT = dg.AssetCheckKey(dg.AssetKey("tick_drift"), "tick_drift_check")


@dg.sensor(job_name="tick_training", minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Retrain the tick models (candidate, gates, champion) when the tick drift check starts failing.")
def retrain_ticks_on_drift(context: dg.SensorEvaluationContext):
    cursor = json.loads(context.cursor) if context.cursor else {"seen": [], "failing": False}
    seen: list[int] = cursor["seen"]
    failing: bool = cursor["failing"]
    request = None
    for record in new_evaluations(context.instance, set(seen), (TICK_DRIFT,)):
        seen.append(record.id)
        now_failing = record.status == AssetCheckExecutionRecordStatus.FAILED
        if now_failing and not failing:
            request = dg.RunRequest(run_key=f"tick-retrain-{record.id}",
                                    tags={"odyssey/trigger": "drift", "odyssey/reason": reason_of(record)[:1000]})
        failing = now_failing
    if request is not None:
        yield request
    context.update_cursor(json.dumps({"seen": seen[-1000:], "failing": failing}))
