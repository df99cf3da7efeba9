"""Which stored version of an asset (partition) downstream reads: the newest materialization whose
blocking checks passed, judged from the instance's check evaluations. A version a blocking check
rejected stays in the catalog with its failure, and its bytes stay in the version store, but no
reader gets it; with no accepted version a reader refuses with `NoAcceptedVersion`.

The rule, per materialization of an asset that has blocking checks (an asset without any is
always read at its latest):
- rejected: a blocking check evaluated on it failed with severity ERROR (what stops downstream
  steps in the run that built it; a blocking check that fails with severity WARN orders the run
  but rejects nothing);
- pending: a blocking check has no evaluation on it yet (its run has not reached the check, the
  check step raised, or the asset was materialized without its checks): not accepted until the
  check evaluates it;
- accepted: every blocking check evaluated on it passed (or failed with WARN); or it is a version
  `python -m jobs.restore` put back (the restore checked it, or was forced) and no check has
  evaluated it since.

The outputs of one step are judged together: a blocking check of an asset built in the same step
counts on the materialization of the same run (raw_alt_data of a run whose raw_prices was rejected
is rejected too), so a reader does not mix a table from one load with its sibling from another.
While the run that built them is under way, a sibling's check that has not evaluated yet holds
nothing back (`returns` reads `clean_prices` without `clean_alt_data`, and Dagster may run it
before `clean_alt_data`'s checks); once that run ended without evaluating it, the version is not
accepted until the check evaluates it, as for its own checks.

Cost: one query for the newest 20 materializations of the asset partition and one per blocking
check for its newest 20 evaluations; more pages only when more than 20 newer versions were not
accepted or a check was re-run that often.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator, Literal, Sequence

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from resources.metadata import check_reason

PAGE = 20
SAME_STEP_SECONDS = 86400.0  # how far apart in time one step's outputs may be stored
COMPLETED = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
DATA_VERSION_TAG = "dagster/data_version"
# Metadata of a materialization reported by `python -m jobs.restore`.
RESTORED_FROM = "restored_version"
RESTORE_FORCED = "restore_forced"

Verdict = Literal["accepted", "rejected", "pending"]


def iso(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if timestamp else "?"


def label(asset: str, partition: str | None) -> str:
    return f"{asset}[{partition}]" if partition else asset


def evaluation_reason(record) -> str:
    """Why a check evaluation (an execution record of the instance) came out as it did: its
    `reason`, else its short metadata values (counts, names)."""
    reason = check_reason(record)
    if reason is not None:
        return reason
    evaluation = record.evaluation
    metadata = evaluation.metadata or {}
    shown = []
    for name, value in metadata.items():
        raw = getattr(value, "value", value)
        if isinstance(raw, (int, float, bool)) or (isinstance(raw, str) and len(raw) <= 80 and "\n" not in raw):
            shown.append(f"{name} {raw}")
    return ", ".join(shown[:4]) or ("passed" if evaluation.passed else "failed")


@dataclass(frozen=True)
class CheckOutcome:
    """One blocking check on one version: its newest evaluation of exactly that materialization."""

    check: str
    evaluated: bool
    passed: bool = False
    rejects: bool = False  # failed with severity ERROR
    reason: str = ""
    evaluated_at: float | None = None

    def describe(self) -> str:
        if not self.evaluated:
            return f"{self.check} has not evaluated it"
        state = "passed" if self.passed else ("failed" if self.rejects else "failed (severity WARN)")
        return f"{self.check} {state} at {iso(self.evaluated_at)}: {self.reason}"


@dataclass(frozen=True)
class StoredVersion:
    """One materialization of an asset (partition) and what its blocking checks said of it."""

    asset: str
    partition: str | None
    storage_id: int
    run_id: str
    timestamp: float
    data_version: str | None
    outcomes: tuple[CheckOutcome, ...]
    restored_from: str | None = None  # the data version a restore put back
    forced: bool = False

    @property
    def verdict(self) -> Verdict:
        if any(o.rejects for o in self.outcomes):
            return "rejected"
        if any(not o.evaluated for o in self.outcomes) and self.restored_from is None:
            return "pending"
        return "accepted"

    @property
    def short(self) -> str:
        return (self.data_version or "no-data-version")[:12]

    def describe(self) -> str:
        """The verdict with its cause: 'rejected by raw_prices_schema at <time>: <reason>'."""
        verdict = self.verdict
        if verdict == "rejected":
            failed = [o for o in self.outcomes if o.rejects]
            return (f"rejected by {', '.join(o.check for o in failed)} at {iso(failed[0].evaluated_at)}: "
                    f"{failed[0].reason}")
        if verdict == "pending":
            missing = [o.check for o in self.outcomes if not o.evaluated]
            return (f"not accepted yet: {', '.join(missing)} ha{'s' if len(missing) == 1 else 've'} not evaluated "
                    f"the version materialized at {iso(self.timestamp)} (re-run the check, or restore a version)")
        if self.restored_from is not None:
            return (f"restored from version {self.restored_from[:12]}" + (" (forced)" if self.forced else "")
                    + f" at {iso(self.timestamp)}")
        return "blocking checks passed" if self.outcomes else "no blocking checks"


@dataclass(frozen=True)
class Resolution:
    """The version a reader gets, and the newer versions it passed over."""

    version: StoredVersion
    skipped: tuple[StoredVersion, ...] = ()

    def summary(self) -> str:
        v = self.version
        text = (f"read {label(v.asset, v.partition)} version {v.short} (materialized {iso(v.timestamp)}, run "
                f"{v.run_id[:8] or 'restore'}): the newest whose blocking checks passed")
        if self.skipped:
            text += f"; skipped {len(self.skipped)} newer: " + "; ".join(
                f"{s.short} {s.describe()}" for s in self.skipped[:3])
        return text


class NoAcceptedVersion(RuntimeError):
    """No materialization of the asset (partition) passed its blocking checks."""


def _materializations(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None):
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition is not None else None),
            limit=PAGE, cursor=cursor)
        yield from page.records
        if not page.has_more or not page.records:
            return
        cursor = page.cursor


class _Evaluations:
    """A blocking check's finished evaluations by the materialization they evaluated, fetched a
    page at a time, newest first, only as far back as the versions being judged."""

    def __init__(self, instance: dg.DagsterInstance, key: dg.AssetCheckKey, partition: str | None):
        self.instance, self.key, self.partition = instance, key, partition
        self.by_target: dict[int, object] = {}
        self.cursor: int | None = None
        self.done = False
        self.oldest_target: int | None = None

    def of(self, storage_id: int):
        while not self.done and (self.oldest_target is None or self.oldest_target > storage_id):
            self._fetch()
        return self.by_target.get(storage_id)

    def _fetch(self) -> None:
        page = self.instance.event_log_storage.get_asset_check_execution_history(
            self.key, limit=PAGE, cursor=self.cursor, status=COMPLETED,
            partition_filter=PartitionKeyFilter(key=self.partition))
        for record in page:
            evaluation = record.evaluation
            target = evaluation.target_materialization_data if evaluation is not None else None
            if target is None:
                continue
            self.by_target.setdefault(target.storage_id, record)  # the newest evaluation of each version
            self.oldest_target = target.storage_id if self.oldest_target is None \
                else min(self.oldest_target, target.storage_id)
        self.done = len(page) < PAGE
        self.cursor = page[-1].id if page else self.cursor


def _outcome(name: str, record) -> CheckOutcome:
    if record is None:
        return CheckOutcome(name, evaluated=False)
    evaluation = record.evaluation
    rejects = not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    return CheckOutcome(name, True, bool(evaluation.passed), rejects, evaluation_reason(record),
                        record.event.timestamp if record.event else record.create_timestamp)


def _meta(materialization, name: str):
    value = materialization.metadata.get(name) if materialization is not None else None
    return getattr(value, "value", value) if value is not None else None


def _sibling_materialization(instance: dg.DagsterInstance, run_id: str, timestamp: float, asset: str,
                             partition: str | None) -> int | None:
    """The storage id of `asset`'s (partition's) materialization in the run that made another
    output of its step at `timestamp`, if the run made one (looked for within a day of it)."""
    key = dg.AssetKey.from_user_string(asset)
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition is not None else None,
                                  after_timestamp=timestamp - SAME_STEP_SECONDS,
                                  before_timestamp=timestamp + SAME_STEP_SECONDS),
            limit=PAGE, cursor=cursor)
        for record in page.records:
            if record.run_id == run_id:
                return record.storage_id
        if not page.has_more or not page.records:
            return None
        cursor = page.cursor


def _sibling_outcomes(instance: dg.DagsterInstance, record, partition: str | None,
                      sibling_evaluations: list[tuple[str, "_Evaluations"]]) -> list[CheckOutcome]:
    """The blocking checks of the assets built in the same step, on their materializations of the
    run that made `record`. While that run is under way, a reader (in that run, or one that does
    not read the sibling) does not wait for a sibling's check; once it ended without evaluating
    it, the version waits like any unjudged one."""
    made = {other: _sibling_materialization(instance, record.run_id, record.timestamp, other, partition)
            for other in {o for o, _ in sibling_evaluations}}
    outcomes, running = [], None
    for other, evaluations in sibling_evaluations:
        if made[other] is None:
            continue
        found = evaluations.of(made[other])
        if found is None:
            if running is None:
                run = instance.get_run_by_id(record.run_id)
                running = run is not None and not run.is_finished
            if running:
                continue
        outcomes.append(_outcome(f"{other}:{evaluations.key.name}", found))
    return outcomes


def judged_versions(instance: dg.DagsterInstance, asset: str, partition: str | None,
                    blocking: Sequence[str]) -> Iterator[StoredVersion]:
    """The asset partition's materializations, newest first, each with its blocking checks'
    outcomes (lazily: stop iterating and no further page is fetched). A check named
    `sibling:check` is the blocking check of an asset built in the same step (graph.blocking_checks):
    it judges that asset's materialization of the same run; while that run is under way a missing
    evaluation holds nothing back (a reader that does not read the sibling may run before it), once
    the run ended it counts as not evaluated. A restored version (put back on its own) is not
    judged by it."""
    key = dg.AssetKey.from_user_string(asset)
    own = [name for name in blocking if ":" not in name]
    siblings = [tuple(name.split(":", 1)) for name in blocking if ":" in name]
    evaluations = [_Evaluations(instance, dg.AssetCheckKey(key, name), partition) for name in own]
    sibling_evaluations = [(other, _Evaluations(instance, dg.AssetCheckKey(dg.AssetKey.from_user_string(other), name),
                                                partition)) for other, name in siblings]
    for record in _materializations(instance, key, partition):
        materialization = record.asset_materialization
        tags = (materialization.tags or {}) if materialization is not None else {}
        restored = _meta(materialization, RESTORED_FROM)
        outcomes = [_outcome(e.key.name, e.of(record.storage_id)) for e in evaluations]
        if restored is None and sibling_evaluations:
            outcomes += _sibling_outcomes(instance, record, partition, sibling_evaluations)
        yield StoredVersion(asset, partition, record.storage_id, record.run_id, record.timestamp,
                            tags.get(DATA_VERSION_TAG), tuple(outcomes),
                            str(restored) if restored is not None else None,
                            bool(_meta(materialization, RESTORE_FORCED)))


def restore_command(asset: str, partition: str | None) -> str:
    return f"python -m jobs.restore {asset}" + (f" --partition {partition}" if partition else "") + " --list"


def accepted_version(instance: dg.DagsterInstance, asset: str, partition: str | None,
                     blocking: Sequence[str]) -> Resolution:
    """The newest version of the asset partition whose blocking checks passed, and the newer ones
    skipped; NoAcceptedVersion (saying why) when there is none."""
    skipped: list[StoredVersion] = []
    for version in judged_versions(instance, asset, partition, blocking):
        if version.verdict == "accepted":
            return Resolution(version, tuple(skipped))
        skipped.append(version)
    name = label(asset, partition)
    if not skipped:
        raise NoAcceptedVersion(
            f"{name} has never been materialized in this Dagster instance, so no version of it passed its blocking "
            f"checks ({', '.join(blocking)}): materialize it with its checks first")
    raise NoAcceptedVersion(
        f"{name} has no version that passed its blocking checks (latest {skipped[0].describe()}; "
        f"{len(skipped)} version(s) judged); fix the input or restore a version: {restore_command(asset, partition)}")


# --- what a step read, for its log, its output metadata and its provenance -----------------------

class _ReadLog:
    """What the steps of this process read, by (run, step), the newest steps only. Run-time state,
    not code: an object, so a code version (odyssey/versions.py) never follows its contents."""

    KEEP_STEPS = 256

    def __init__(self) -> None:
        self._reads: OrderedDict[tuple[str, str], list[Resolution]] = OrderedDict()

    def note(self, run_id: str, step_key: str, resolution: Resolution) -> None:
        self._reads.setdefault((run_id, step_key), []).append(resolution)
        self._reads.move_to_end((run_id, step_key))
        while len(self._reads) > self.KEEP_STEPS:
            self._reads.popitem(last=False)

    def of(self, run_id: str, step_key: str) -> list[Resolution]:
        return list(self._reads.get((run_id, step_key), ()))


_READS = _ReadLog()


def note_read(run_id: str, step_key: str, resolution: Resolution) -> None:
    """Remember a resolved read for the outputs of the same step (bounded: the newest steps)."""
    _READS.note(run_id, step_key, resolution)


def reads_of(run_id: str, step_key: str) -> list[Resolution]:
    return _READS.of(run_id, step_key)


def reads_markdown(reads: Sequence[Resolution]) -> str:
    rows = ["| input | version | materialized | run | newer versions skipped |", "|---|---|---|---|---|"]
    for r in reads:
        v = r.version
        skipped = "; ".join(f"{s.short} {s.describe()}" for s in r.skipped[:3]) or "none"
        rows.append(f"| {label(v.asset, v.partition)} | {v.short} | {iso(v.timestamp)} | {v.run_id[:8] or 'restore'} "
                    f"| {skipped.replace('|', '/')} |")
    return "\n".join(rows)


def partitions_data_version(versions: Sequence[str]) -> str:
    """Dagster's data version of several partitions of an input: SHA-256 of their data versions
    joined in partition-key order (dagster's DataVersionCache does the same)."""
    return hashlib.sha256("".join(versions).encode()).hexdigest()
