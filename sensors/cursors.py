"""The cursors the sensors keep: over an asset's materializations, and over the files of a landing folder."""

import dagster as dg

from odyssey.landing import move, refusal, sha256_regular
from odyssey.sources.csv_source import SourceError


def sensor_every(evaluation, seconds: int, name: str, job_name: str, description: str) -> dg.SensorDefinition:
    """A sensor of `evaluation` that ticks at most every `seconds` (settings `daemon`), stopped
    until a user (or a test) starts it."""
    return dg.sensor(name=name, job_name=job_name, minimum_interval_seconds=seconds,
                     default_status=dg.DefaultSensorStatus.STOPPED, description=description)(evaluation)


def newer_materialization(context: dg.SensorEvaluationContext, key: dg.AssetKey) -> int | None:
    """The storage id of the asset's newest materialization after the sensor's cursor, moving the
    cursor to it; None when there is none."""
    after = int(context.cursor) if context.cursor else 0
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, after_storage_id=after), limit=100, ascending=True).records
    if not records:
        return None
    newest = records[-1].storage_id
    context.update_cursor(str(newest))
    return newest


def after_materializations(key: dg.AssetKey, name: str, job_name: str, trigger: str, description: str,
                           seconds: int) -> dg.SensorDefinition:
    """A sensor that asks for one run of `job_name` when `key` has a new materialization (however
    many arrived since its last tick), tagged odyssey/trigger = `trigger`."""
    def evaluation(context: dg.SensorEvaluationContext):
        newest = newer_materialization(context, key)
        if newest is None:
            return dg.SkipReason(f"no new {key.to_user_string()} materialization")
        return dg.RunRequest(run_key=f"{job_name}-{newest}", tags={"odyssey/trigger": trigger})

    return sensor_every(evaluation, seconds, name, job_name, description)


RUN_KEY_TAG = "dagster/run_key"


def settle_landed(context: dg.SensorEvaluationContext, cursor: dict, landing, archive, quarantine,
                  roll_back=None) -> None:
    """For each finished ingestion run in the cursor's `pending` (run key -> file names, edited in
    place): move its files from the landing folder to the archive when it succeeded, to quarantine
    with the run's end as the reason when it did not. With `roll_back(run_id, files)`, a failed
    run's rows are taken back out of what it stored and its files are forgotten by the cursor, so
    the same files (corrected, or unchanged once what failed is fixed) can be dropped again."""
    pending = cursor["pending"]
    for run_key, files in list(pending.items()):
        runs = context.instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1)
        if not runs or not runs[0].is_finished:
            continue
        run = runs[0]
        if not run.is_success and roll_back is not None:
            for table, done in roll_back(run.run_id, files).items():
                context.log.warning(f"{table}: {done}")
            for name in files:
                cursor["seen"].pop(name, None)
        for name in files:
            path = landing / name
            if path.exists():
                if run.is_success:
                    move(path, archive)
                else:
                    move(path, quarantine, f"ingestion run {run.run_id} ended {run.status.value}")
        del pending[run_key]


IN_PROGRESS = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def runs_in_progress(context: dg.SensorEvaluationContext, job_name: str, pending: dict[str, list[str]]) -> list[str]:
    """What a landing sensor waits for before it requests another run of `job_name`: each run of
    that job queued or under way in the instance (its own, a schedule's, or one started by hand),
    and each run it requested (`pending`, after settle_landed) that the instance does not hold yet."""
    runs = context.instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=IN_PROGRESS))
    waiting = [f"run {run.run_id} ({run.status.value.lower()})" for run in runs]
    keys = {run.tags.get(RUN_KEY_TAG) for run in runs}
    return waiting + [f"the run requested as {key} (not created yet)" for key in pending if key not in keys]


def judge_new_files(context: dg.SensorEvaluationContext, cursor: dict, files, quarantine, judge) -> list[tuple]:
    """(path, SHA-256, judge(path)) for each of `files` not seen before with these bytes and not
    waiting for a run. An entry that is not a regular file (a link, a directory, a pipe, ...) is
    moved to quarantine as it is, unopened, with what it is as the reason; a file `judge` raises
    on is moved to quarantine with the reason (a SourceError's message, else the error's type and
    text). Neither is retried."""
    pending = {n for names in cursor["pending"].values() for n in names}
    good = []
    for path in files:
        if path.name in pending:
            continue
        try:
            refused = refusal(path)
            digest = None if refused else sha256_regular(path)
        except FileNotFoundError:
            continue  # gone since the folder was listed
        except SourceError as error:  # swapped for a link or a special file after it was listed
            refused, digest = str(error), None
        if refused:
            _quarantine(context, path, quarantine, refused)
            cursor["seen"].pop(path.name, None)
            continue
        if cursor["seen"].get(path.name) == digest:
            continue
        cursor["seen"][path.name] = digest
        try:
            good.append((path, digest, judge(path)))
        except Exception as error:  # any file that cannot be read is quarantined, never retried
            reason = str(error) if isinstance(error, SourceError) else f"{path.name}: {type(error).__name__}: {error}"
            _quarantine(context, path, quarantine, reason)
    return good


def _quarantine(context: dg.SensorEvaluationContext, path, quarantine, reason: str) -> None:
    move(path, quarantine, reason)
    context.log.warning(f"quarantined {path.name}: {reason}")
