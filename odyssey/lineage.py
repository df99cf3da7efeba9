"""The lineage document and its verification, built from plain records (pure: no Dagster here).

`resources/lineage.py` reads the records from Dagster's catalog; this module renders them as
Markdown (with a Mermaid graph) and JSON, and checks stored bytes against them.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from odyssey.hashing import sha256_bytes
from odyssey.signing import Manifest, SignatureError, signature_matches

SIGNED_KINDS = ("model", "policy")
MANIFEST_KIND = "manifest"  # a signed manifest of a model's files (its signature is over its content)
ARTIFACTS_KEY = "artifacts"  # the materialization metadata entry listing an asset's files


@dataclass(frozen=True)
class Artifact:
    """A file an asset wrote beside its stored value: an export, a model, a policy, a report."""

    path: str
    sha256: str
    bytes: int
    kind: str
    signature: str | None = None

    @staticmethod
    def of(path: str, data: bytes, kind: str, signature: str | None = None) -> Artifact:
        return Artifact(str(path), sha256_bytes(data), len(data), kind, signature)


def artifacts_from_json(value: object) -> list[Artifact]:
    names = {f.name for f in dataclasses.fields(Artifact)}
    return [Artifact(**{k: v for k, v in item.items() if k in names}) for item in (value or [])]


@dataclass(frozen=True)
class AssetRecord:
    """One asset, or one partition of a partitioned asset, as the catalog knows it."""

    asset: str
    partition: str | None
    group: str
    description: str
    upstream: tuple[str, ...]
    downstream: tuple[str, ...]
    code_version: str | None
    materialized_at: str | None = None  # ISO time; None: never materialized
    run_id: str | None = None
    data_version: str | None = None
    materialized_code_version: str | None = None
    input_data_versions: dict[str, str] = field(default_factory=dict)
    path: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    status: str = "missing"  # fresh | stale | stale upstream | missing
    stale_causes: tuple[str, ...] = ()
    artifacts: tuple[Artifact, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.asset}[{self.partition}]" if self.partition else self.asset


@dataclass(frozen=True)
class CheckRecord:
    asset: str
    check: str
    partition: str | None
    blocking: bool
    status: str  # passed | failed | not evaluated | running
    evaluated_at: str | None = None
    run_id: str | None = None
    reason: str | None = None
    on_latest: bool | None = None  # evaluated on the asset's latest materialization

    @property
    def label(self) -> str:
        where = f"[{self.partition}]" if self.partition else ""
        return f"{self.asset}{where}:{self.check}"


@dataclass(frozen=True)
class ModelRecord:
    """The MLflow run and registered version behind a model asset, and the ticker's champion."""

    asset: str
    partition: str | None
    registered_model: str | None
    version: str | None
    run_id: str | None
    champion_version: str | None = None


@dataclass(frozen=True)
class Package:
    pinned: str | None  # the specifier in pyproject.toml
    installed: str | None  # the distribution's version, None when it is not installed


@dataclass(frozen=True)
class Summary:
    assets: int
    asset_partitions: int
    materialized: int
    fresh: int
    stale: int
    stale_upstream: int
    missing: int
    sources: int
    features: int
    models: int
    artifacts: int
    checks: int
    checks_passed: int
    checks_failed: int
    checks_not_evaluated: int
    champions: int


@dataclass(frozen=True)
class LineageDocument:
    generated_at: str
    code_commit: str | None
    code_dirty: bool | None
    packages: dict[str, Package]
    assets: tuple[AssetRecord, ...]
    checks: tuple[CheckRecord, ...]
    models: tuple[ModelRecord, ...]
    edges: tuple[tuple[str, str], ...]
    groups: dict[str, str]
    notes: tuple[str, ...] = ()

    def summary(self) -> Summary:
        materialized = [a for a in self.assets if a.materialized_at]
        statuses = Counter(a.status for a in self.assets)
        checks = Counter(c.status for c in self.checks)
        model_assets = {m.asset for m in self.models}
        return Summary(
            assets=len({a.asset for a in self.assets}), asset_partitions=len(self.assets),
            materialized=len(materialized), fresh=statuses["fresh"], stale=statuses["stale"],
            stale_upstream=statuses["stale upstream"], missing=statuses["missing"],
            # where data enters: assets with nothing upstream that feed others
            sources=len({a.asset for a in self.assets if not a.upstream and a.downstream}),
            features=len({a.asset for a in self.assets if a.group == "features"}),
            models=len([a for a in materialized if a.asset in model_assets]),
            artifacts=sum(len(a.artifacts) for a in self.assets), checks=len(self.checks),
            checks_passed=checks["passed"], checks_failed=checks["failed"],
            checks_not_evaluated=len(self.checks) - checks["passed"] - checks["failed"],
            champions=len({(m.asset, m.partition) for m in self.models if m.champion_version}))

    def to_json(self) -> dict:
        return {"generated_at": self.generated_at, "code": {"commit": self.code_commit, "dirty": self.code_dirty},
                "summary": dataclasses.asdict(self.summary()),
                "packages": {k: dataclasses.asdict(v) for k, v in self.packages.items()}, "groups": self.groups,
                "assets": [dataclasses.asdict(a) for a in self.assets],
                "checks": [dataclasses.asdict(c) for c in self.checks],
                "models": [dataclasses.asdict(m) for m in self.models],
                "edges": [list(e) for e in self.edges], "notes": list(self.notes)}


Status = tuple[str, tuple[str, ...]]  # (fresh | stale | stale upstream | missing, causes)


def propagate_stale(statuses: dict[tuple[str, str | None], Status], upstream: dict[str, tuple[str, ...]]
                    ) -> dict[tuple[str, str | None], Status]:
    """Dagster marks stale what changed itself (its code, or the data it read). What is built from
    a stale asset changes once that is rebuilt: it is marked `stale upstream`, naming the stale
    parents. A partition follows the same partition of a partitioned parent, an unpartitioned
    asset every partition of it."""
    partitions: dict[str, list[str | None]] = {}
    for asset, partition in statuses:
        partitions.setdefault(asset, []).append(partition)
    out: dict[tuple[str, str | None], Status] = {}

    def parents(asset: str, partition: str | None) -> list[tuple[str, str | None]]:
        found = []
        for parent in upstream.get(asset, ()):
            keys = partitions.get(parent, [])
            same = partition is not None and partition in keys
            found += [(parent, partition)] if same else [(parent, k) for k in keys]
        return found

    def resolve(entity: tuple[str, str | None]) -> Status:
        if entity not in out:
            status = statuses[entity]
            if status[0] == "fresh":
                stale = sorted({p for p, k in parents(*entity) if resolve((p, k))[0] in ("stale", "stale upstream")})
                if stale:
                    status = ("stale upstream", tuple(f"{p} is stale" for p in stale))
            out[entity] = status
        return out[entity]

    for entity in statuses:
        resolve(entity)
    return out


def _node_id(asset: str) -> str:
    return "a_" + "".join(ch if ch.isalnum() else "_" for ch in asset)


def mermaid(assets: Iterable[AssetRecord], edges: Iterable[tuple[str, str]], groups: dict[str, str]) -> str:
    """A flowchart of the assets, one subgraph per group; a partitioned asset shows its count."""
    partitions = Counter(a.asset for a in assets if a.partition)
    by_group: dict[str, list[str]] = {}
    for asset, group in sorted(groups.items()):
        by_group.setdefault(group, []).append(asset)
    lines = ["flowchart LR"]
    for group, members in sorted(by_group.items()):
        lines.append(f"  subgraph {group}")
        for asset in members:
            suffix = f" x{partitions[asset]}" if partitions[asset] else ""
            lines.append(f'    {_node_id(asset)}["{asset}{suffix}"]')
        lines.append("  end")
    lines += [f"  {_node_id(a)} --> {_node_id(b)}" for a, b in sorted(edges)]
    return "\n".join(lines)


def _short(value: str | None, n: int = 12) -> str:
    return value[:n] if value else "-"


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ") if value not in (None, "") else "-"


def render_markdown(doc: LineageDocument) -> str:
    """The lineage document: summary, Mermaid graph, code and packages, every asset and partition,
    every check, the models behind the model assets."""
    s = doc.summary()
    commit = (doc.code_commit or "not a git checkout") + (" (with uncommitted changes)" if doc.code_dirty else "")
    lines = [
        "# Odyssey lineage", "",
        f"Generated {doc.generated_at} from the Dagster catalog. Code: {commit}.", "",
        "## Summary", "",
        "| | |", "|---|---|",
        f"| assets | {s.assets} ({s.asset_partitions} with partitions), {s.materialized} materialized |",
        f"| status | {s.fresh} fresh, {s.stale} stale, {s.stale_upstream} stale upstream, "
        f"{s.missing} missing |",
        f"| sources | {s.sources} |", f"| features group | {s.features} assets |",
        f"| models | {s.models} materialized (forecast models, the tick model and the policy), {s.champions} "
        "with a champion |",
        f"| files | {s.artifacts} artifacts beside the stored values |",
        f"| checks | {s.checks_passed} passed, {s.checks_failed} failed, {s.checks_not_evaluated} not evaluated "
        f"(of {s.checks}) |", "",
        "## Graph", "", "```mermaid", mermaid(doc.assets, doc.edges, doc.groups), "```", "",
        "## Assets", "",
        "| asset | group | status | materialized | run | code version | data version | inputs | size | path |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in doc.assets:
        status = a.status + (f" ({'; '.join(a.stale_causes)})" if a.stale_causes else "")
        inputs = ", ".join(f"{k} {_short(v, 8)}" for k, v in sorted(a.input_data_versions.items()))
        lines.append(f"| {_cell(a.label)} | {a.group} | {_cell(status)} | {_cell(a.materialized_at)} | "
                     f"{_short(a.run_id, 8)} | {_cell(a.materialized_code_version or a.code_version)} | "
                     f"{_short(a.data_version)} | {_cell(inputs)} | {_cell(a.bytes)} | {_cell(a.path)} |")
    lines += ["", "### Upstream and downstream", "", "| asset | upstream | downstream | description |",
              "|---|---|---|---|"]
    seen = set()
    for a in doc.assets:
        if a.asset not in seen:
            seen.add(a.asset)
            lines.append(f"| {a.asset} | {_cell(', '.join(a.upstream))} | {_cell(', '.join(a.downstream))} | "
                         f"{_cell(a.description.split(chr(10))[0])} |")
    files = [(a, x) for a in doc.assets for x in a.artifacts]
    lines += ["", "## Files beside the stored values", "", "| asset | kind | path | size | SHA-256 | signed |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {_cell(a.label)} | {x.kind} | {_cell(x.path)} | {x.bytes} | {_short(x.sha256, 16)} | "
              f"{'yes' if x.signature else 'no'} |" for a, x in files]
    lines += ["", "## Checks", "", "| check | blocking | result | when | run | on latest | reason |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {_cell(c.label)} | {'yes' if c.blocking else 'no'} | {c.status} | {_cell(c.evaluated_at)} | "
              f"{_short(c.run_id, 8)} | {_cell({True: 'yes', False: 'no'}.get(c.on_latest))} | {_cell(c.reason)} |"
              for c in doc.checks]
    lines += ["", "## Models", "", "| asset | registered model | version | MLflow run | champion |",
              "|---|---|---|---|---|"]
    lines += [f"| {m.asset}[{m.partition}] | {_cell(m.registered_model)} | {_cell(m.version)} | {_cell(m.run_id)} | "
              f"{_cell(m.champion_version)} |" if m.partition else
              f"| {m.asset} | {_cell(m.registered_model)} | {_cell(m.version)} | {_cell(m.run_id)} | "
              f"{_cell(m.champion_version)} |" for m in doc.models]
    lines += ["", "## Packages", "", "| package | pinned | installed |", "|---|---|---|"]
    lines += [f"| {name} | {_cell(v.pinned)} | {_cell(v.installed)} |" for name, v in sorted(doc.packages.items())]
    if doc.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in doc.notes]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Problem:
    kind: str  # mismatch | missing | unreadable | unsigned | bad signature | unrecorded
    where: str
    path: str | None
    detail: str

    def __str__(self) -> str:
        return f"{self.kind:13s} {self.where}: {self.path or '-'} ({self.detail})"


def verify(assets: Iterable[AssetRecord], read: Callable[[str], bytes | None], key: bytes | None) -> list[Problem]:
    """Re-hash every stored value and every artifact of the materialized assets against the
    catalog. `read(path)` returns the bytes, or None when the file is gone. Models and policies
    must carry an HMAC signature made with `key`, and a model's manifest must be signed with it
    (None: signatures are not checked)."""
    problems: list[Problem] = []

    def check(where: str, path: str | None, sha256: str | None, kind: str | None = None,
              signature: str | None = None) -> None:
        if not path or not sha256:
            problems.append(Problem("unrecorded", where, path, "the catalog has no path and SHA-256 for it: "
                                                               "materialize it again"))
            return
        try:
            data = read(path)
        except Exception as error:  # a scheme fsspec does not know, a permission, a network failure
            problems.append(Problem("unreadable", where, path, f"{type(error).__name__}: {error}"))
            return
        if data is None:
            problems.append(Problem("missing", where, path, "the file is gone"))
            return
        actual = sha256_bytes(data)
        if actual != sha256:
            problems.append(Problem("mismatch", where, path, f"SHA-256 {actual[:12]}... on disk, "
                                                             f"{sha256[:12]}... in the catalog"))
            return
        if kind in SIGNED_KINDS:
            if not signature:
                problems.append(Problem("unsigned", where, path, f"a {kind} must carry an HMAC signature"))
            elif key is not None and not signature_matches(data, key, signature):
                problems.append(Problem("bad signature", where, path, "signed with another key, or re-signed"))
        elif kind == MANIFEST_KIND:
            try:
                manifest = Manifest.from_json(data, where)
            except SignatureError:
                problems.append(Problem("unsigned", where, path, "not a signed manifest"))
                return
            if key is not None and not signature_matches(manifest.payload(), key, manifest.signature):
                problems.append(Problem("bad signature", where, path, "signed with another key, or re-signed"))

    for a in assets:
        if not a.materialized_at:
            continue
        check(a.label, a.path, a.sha256)
        for x in a.artifacts:
            check(f"{a.label} {x.kind}", x.path, x.sha256, x.kind, x.signature)
    return problems


def write_document(doc: LineageDocument) -> tuple[bytes, bytes]:
    """The Markdown and JSON bytes of the document."""
    return render_markdown(doc).encode(), json.dumps(doc.to_json(), indent=2, sort_keys=True, default=str).encode()
