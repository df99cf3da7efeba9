"""Rebuild the lineage document after successful runs, so the catalog's own document (and the
Markdown the UI shows on the `lineage` asset) never lags what was built: once per burst of runs
(a landing and the runs that follow it), after its last run when that one succeeds. When the last
run of a burst fails, the document waits for the next success (at the latest the next landing's
runs)."""

import time

import dagster as dg

from odyssey.settings import DaemonSettings

from jobs import lineage_job

WAITING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]
UNFINISHED = [*WAITING, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
# a run created longer ago than this is not part of the present burst: one stuck run never holds the
# document back for long
BURST_SECONDS = 600


def _lineage_after_runs(context: dg.RunStatusSensorContext):
    run = context.dagster_run
    if run.job_name == lineage_job.name:
        return dg.SkipReason("the lineage job's own run")
    waiting = context.instance.get_runs(dg.RunsFilter(job_name=lineage_job.name, statuses=WAITING), limit=1)
    if waiting:
        return dg.SkipReason(f"a lineage run ({waiting[0].run_id[:8]}) is waiting to start: it will see run "
                             f"{run.run_id[:8]}")
    burst = time.time() - BURST_SECONDS
    others = [r.dagster_run for r in context.instance.get_run_records(dg.RunsFilter(statuses=UNFINISHED), limit=20)
              if r.dagster_run.job_name != lineage_job.name and r.dagster_run.run_id != run.run_id
              and r.create_timestamp.timestamp() > burst]
    if others:  # a burst of runs (a landing's followers) is documented once, after its last run
        return dg.SkipReason(f"run {others[0].run_id[:8]} ({others[0].job_name}) has not finished: the lineage "
                             "document follows the last run of this burst")
    return dg.RunRequest(run_key=f"lineage-after-{run.run_id}", tags={"odyssey/after_run": run.run_id})



def lineage_after_runs_every(seconds: int) -> dg.SensorDefinition:
    """`lineage_after_runs`, ticking at most every `seconds` (settings `daemon`)."""
    return dg.run_status_sensor(name="lineage_after_runs",
                                run_status=dg.DagsterRunStatus.SUCCESS,
                                request_job=lineage_job,
                                minimum_interval_seconds=seconds,
                                default_status=dg.DefaultSensorStatus.RUNNING,
                                description="After each successful run (other than the lineage job's own), rebuild the "
                                            "lineage document, unless a rebuild is already waiting to start.",
                                )(_lineage_after_runs)


lineage_after_runs = lineage_after_runs_every(DaemonSettings().follow_seconds)  # build_definitions uses the settings' own
