"""dagster-dask's executor, orchestrated step by step: each step goes to the Dask cluster when the
steps it depends on have finished, as Dagster's own multiprocess executor schedules them.

The executor keeps dagster-dask's configuration (`cluster: existing: address: ...`, or `local:`,
`ssh:`, `kube:`, ...), its clusters and what its worker function does with a step (rebuild the
job from the run's code pointer, plan the one step, execute it against the instance). What
differs from dagster-dask 0.29.27's `DaskExecutor.execute`, and why (each seen with the
`forecasting` job; tests/test_distributed.py checks all but the fourth):

- Dask task keys carry the run id. dagster-dask names a step's task `<job>.<step>`, so two runs of
  one job on one cluster at the same time share task keys: the scheduler hands the second run the
  first run's results, and the second partition is never trained, yet its run succeeds.
- A step runs only after the steps it depends on succeeded. dagster-dask submits the whole plan at
  once and runs every step whatever happened upstream: a failed blocking check (a deployment gate)
  neither skips SHAP nor stops the promotion step. Here Dagster's `ActiveExecution` decides, in the
  run's process, which steps run, are skipped or are abandoned, exactly as in process.
- The step's arguments reach Dask inside a `functools.partial`, its events come back in one
  object. Dask 2026's task spec walks tuples in task arguments, and a partitioned run's
  `DagsterRun` is a tuple holding a Dagster record that refuses iteration, so dagster-dask's
  `client.submit` fails for every partitioned run.
- A worker opens the instance once and keeps it; dagster-dask opens it for every step, and
  opening one checks every storage's schema revision (about an eighth of a worker's CPU time
  on the quick preset's runs).
- Workers that ignore SIGTERM get its default action back (`DefaultSigterm`), or every step would
  wait a minute for its log-capture processes.
- A cluster the executor starts itself (`local:`, ...) is closed at the end of the run.
"""

from __future__ import annotations

import functools
import importlib
import os
import signal
import sys
import time
from collections.abc import Iterator

import dagster as dg
import dask.distributed
from dagster import _check as check
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.api import create_execution_plan, execute_plan
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.instance import DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._serdes import serialize_value
from dagster._utils.error import serializable_error_info_from_exc_info
from dagster_dask import dask_executor as dagster_dask_executor
from dagster_dask.executor import DaskExecutor, get_dask_resource_requirements
from distributed.diagnostics.plugin import WorkerPlugin

# dagster-dask's cluster types that it builds from a class (`existing` is an address, `local` a LocalCluster)
CLUSTER_CLASSES = {
    "yarn": "dask_yarn.YarnCluster", "ssh": "dask.distributed.SSHCluster", "pbs": "dask_jobqueue.PBSCluster",
    "moab": "dask_jobqueue.MoabCluster", "sge": "dask_jobqueue.SGECluster", "lsf": "dask_jobqueue.LSFCluster",
    "slurm": "dask_jobqueue.SLURMCluster", "oar": "dask_jobqueue.OARCluster", "kube": "dask_kubernetes.KubeCluster",
}
POLL_SECONDS = 0.5  # how often the run's process looks for an interrupt while steps run


class StepEvents:
    """The events a step's task returns, held as one object: Dask sizes a result by walking tuples,
    and Dagster's events hold records that refuse iteration (a warning per step otherwise)."""

    __slots__ = ("events",)

    def __init__(self, events: list[DagsterEvent]):
        self.events = events


_INSTANCES: dict[str, DagsterInstance] = {}


def worker_instance(instance_ref: InstanceRef) -> DagsterInstance:
    """The instance of this reference, opened once per worker process and kept: opening one checks
    each storage's schema revision, which cost as much as a short step."""
    key = serialize_value(instance_ref)
    if key not in _INSTANCES:
        _INSTANCES[key] = DagsterInstance.from_ref(instance_ref)
    return _INSTANCES[key]


def execute_step(recon_job, dagster_run, run_config, step_keys, instance_ref, known_state) -> StepEvents:
    """In a worker: what dagster-dask's `query_on_dask_worker` does (rebuild the job from its code
    pointer, plan the one step, execute it), on the worker's open instance."""
    job = recon_job.get_subset(op_selection=dagster_run.resolved_op_selection)
    plan = create_execution_plan(job, run_config=run_config, step_keys_to_execute=step_keys, known_state=known_state)
    return StepEvents(list(execute_plan(plan, job, worker_instance(instance_ref), dagster_run, run_config=run_config)))


class DefaultSigterm(WorkerPlugin):
    """Gives a worker SIGTERM's default action when it ignores the signal. A worker inherits the
    dispositions of the process that started it; a process started in the background has SIGINT
    ignored, and once it has run anything with Dagster, SIGTERM too (Dagster's interrupt handling
    copies SIGINT's disposition onto SIGTERM). The `tail` processes that capture a step's output
    inherit that in turn; Dagster stops them with SIGTERM, so each step would wait twice 30 s for
    them and leave them running (measured: one three-ticker partition 560 s instead of 19 s)."""

    name = "odyssey-default-sigterm"
    idempotent = True  # once per cluster; the scheduler hands it to workers that join later

    def setup(self, worker) -> None:  # in the worker's main thread
        if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def load_job(recon_job) -> int:
    """In a worker: rebuild the job from its code pointer, as each step will; the worker's pid."""
    recon_job.get_definition()
    return os.getpid()


def step_task_key(job_name: str, run_id: str, step_key: str) -> str:
    """The Dask task of one step of one run: unique across the runs sharing a cluster."""
    return f"{job_name}.{run_id}.{step_key}"


class StepwiseDaskExecutor(DaskExecutor):
    """dagster-dask's executor with Dagster's step-by-step orchestration (see the module doc)."""

    def _cluster(self, job_name: str):
        """(the address or cluster to connect to, whether this run started it)."""
        if self.cluster_type == "existing":
            return self.cluster_configuration["address"], False
        if self.cluster_type == "local":
            return dask.distributed.LocalCluster(**self.build_dict(job_name)), True
        if self.cluster_type not in CLUSTER_CLASSES:
            raise ValueError(f"unknown Dask cluster type {self.cluster_type!r}; known: existing, local, "
                             f"{', '.join(CLUSTER_CLASSES)}")
        module, name = CLUSTER_CLASSES[self.cluster_type].rsplit(".", 1)
        return getattr(importlib.import_module(module), name)(**self.build_dict(job_name)), True

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        check.inst_param(plan_context, "plan_context", PlanOrchestrationContext)
        check.invariant(plan_context.instance.is_persistent,
                        "Dask execution requires a persistent DagsterInstance: the workers open it from its reference")
        job_name, run_id = plan_context.job_name, plan_context.run_id
        recon_job, instance_ref = plan_context.reconstructable_job, plan_context.instance.get_ref()
        cluster, started_here = self._cluster(job_name)
        try:
            with dask.distributed.Client(cluster) as client:
                client.register_plugin(DefaultSigterm())
                yield DagsterEvent.engine_event(
                    plan_context, f"Executing steps on the Dask cluster {client.scheduler.address} "
                                  f"(run process pid: {os.getpid()})",
                    event_specific_data=EngineEventData.multiprocess(
                        os.getpid(), step_keys_to_execute=execution_plan.step_keys_to_execute))
                yield from self._orchestrate(plan_context, execution_plan, client, recon_job, instance_ref,
                                             job_name, run_id)
        finally:
            if started_here:
                cluster.close()

    def _orchestrate(self, plan_context, execution_plan, client, recon_job, instance_ref, job_name,
                     run_id) -> Iterator[DagsterEvent]:
        with InstanceConcurrencyContext(plan_context.instance, plan_context.dagster_run) as concurrency, \
                ActiveExecution(execution_plan, retry_mode=self.retries,
                                instance_concurrency_context=concurrency) as active:
            running: dict[str, dask.distributed.Future] = {}
            try:
                while not active.is_complete or running:
                    if active.check_for_interrupts():
                        yield DagsterEvent.engine_event(
                            plan_context, "Dask executor: received termination signal, cancelling the running steps",
                            EngineEventData.interrupted(list(running)))
                        active.mark_interrupted()
                        client.cancel(list(running.values()))
                        raise DagsterExecutionInterruptedError()
                    for step in active.get_steps_to_execute():
                        work = functools.partial(execute_step, recon_job, plan_context.dagster_run,
                                                 plan_context.run_config, [step.key], instance_ref,
                                                 active.get_known_state())
                        running[step.key] = client.submit(work, key=step_task_key(job_name, run_id, step.key),
                                                          resources=get_dask_resource_requirements(step.tags))
                    yield from active.concurrency_event_iterator(plan_context)
                    if running:
                        try:
                            dask.distributed.wait(list(running.values()), timeout=POLL_SECONDS,
                                                  return_when="FIRST_COMPLETED")
                        except TimeoutError:
                            pass
                    elif not active.is_complete:
                        time.sleep(POLL_SECONDS / 10)  # a step waits for a concurrency slot of its pool
                    for key in [k for k, future in running.items() if future.done()]:
                        yield from self._finish(plan_context, active, key, running.pop(key))
                    # steps whose upstream was skipped, failed or stopped by a blocking check
                    yield from active.plan_events_iterator(plan_context)
            finally:
                if running:
                    client.cancel(list(running.values()))

    def _finish(self, plan_context, active: ActiveExecution, key: str,
                future: dask.distributed.Future) -> Iterator[DagsterEvent]:
        """The events of a step that left the cluster; a step whose task raised (the worker could not
        load the job, or died) fails with that error."""
        try:
            events = future.result().events
        except Exception:
            error = serializable_error_info_from_exc_info(sys.exc_info())
            step_context = plan_context.for_step(active.get_step_by_key(key))
            yield DagsterEvent.engine_event(step_context, f"the Dask task of step {key} raised",
                                            EngineEventData.engine_error(error))
            failure = self.log_failure_or_retry_event_after_error(step_context, error, active.get_known_state())
            active.handle_event(failure)
            yield failure
        else:
            for event in events:
                yield check.inst(event, DagsterEvent)
                active.handle_event(event)
        finally:
            future.release()
        active.verify_complete(plan_context, key)


@dg.executor(name="dask", config_schema=dagster_dask_executor.config_schema,
             requirements=dg.multiple_process_executor_requirements())
def dask_executor(init_context) -> StepwiseDaskExecutor:
    """dagster-dask's executor and configuration, each step sent to the cluster once its upstream
    steps finished (see jobs/dask_engine.py)."""
    ((cluster_type, cluster_configuration),) = init_context.executor_config["cluster"].items()
    return StepwiseDaskExecutor(cluster_type, cluster_configuration)
