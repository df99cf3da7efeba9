"""How long the lineage document and the verification take on a store `make run` built (default:
the settings' own, .odyssey, which `make run` fills on the full preset); the last line printed is
one JSON object.

- `document_seconds`: reading every asset partition, check, model run and package from the
  catalog, the stale status, and rendering Markdown + JSON (what the `lineage` asset does, less
  writing two files). Aim: <= 5 s.
- `catalog_seconds` (reference): only the latest materialization of every asset partition, with
  the public `fetch_materializations`, one query each: the least any document must read.
- `verify_seconds`: `python -m jobs.lineage --verify`'s work: the records, then every stored value
  and artifact read and re-hashed. `hash_seconds` (reference): the same files read and hashed with
  `hashlib` in one loop, nothing else.

Each figure is the median of `--repeat` runs in this process, after one warm-up run (imports and
SQLite pages cached), all in full, none scaled.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from graph import build_definitions  # noqa: E402
from jobs.main import open_instance, settings_from  # noqa: E402
from jobs.lineage import verify_instance  # noqa: E402
from odyssey.lineage import write_document  # noqa: E402
from resources.lineage import GraphSpecs, asset_records, collect, latest_materialization, partition_keys, \
    read_bytes  # noqa: E402


def timed(function, repeat: int) -> tuple[float, object]:
    result = function()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings")
    parser.add_argument("--profile")
    parser.add_argument("--settings-json", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    settings = settings_from(args)
    defs = build_definitions(settings)
    graph = GraphSpecs.of(defs.get_repository_def())
    tracker = defs.resources["mlflow"].tracker()
    key = defs.resources["signer"].existing_key()
    tickers = list(settings.universe.tickers)
    with open_instance(settings) as instance:
        document_seconds, doc = timed(lambda: write_document(collect(instance, graph, tracker, tickers)), args.repeat)

        def catalog():
            return [latest_materialization(instance, k, p) for k, spec in graph.assets.items()
                    for p in partition_keys(spec, instance)]

        catalog_seconds, latest = timed(catalog, args.repeat)

        verify_seconds, (problems, _, _) = timed(lambda: verify_instance(instance, graph, key), args.repeat)
        records, _ = asset_records(instance, graph)
    paths = [p for r in records if r.materialized_at for p in [r.path, *(a.path for a in r.artifacts)] if p]

    def hash_all():
        return [hashlib.sha256(data).hexdigest() for data in (read_bytes(p) for p in paths) if data is not None]

    hash_seconds, _ = timed(hash_all, args.repeat)
    summary = json.loads(doc[1])["summary"]
    size = sum(Path(p.removeprefix("file://")).stat().st_size for p in paths
               if Path(p.removeprefix("file://")).exists())
    print(f"store of {settings.name}: {summary['asset_partitions']} asset partitions "
          f"({sum(1 for x in latest if x is not None)} materialized), {summary['checks']} check results, "
          f"{len(paths)} files, {size / 1e6:.0f} MB")
    print(f"document      {document_seconds:7.2f} s   (aim <= 5 s; Markdown {len(doc[0]) / 1e3:.0f} kB, "
          f"JSON {len(doc[1]) / 1e3:.0f} kB)")
    print(f"catalog only  {catalog_seconds:7.2f} s   document / catalog read = "
          f"{document_seconds / catalog_seconds:.1f}x")
    print(f"verify        {verify_seconds:7.2f} s   {len(problems)} problem(s)")
    print(f"hash only     {hash_seconds:7.2f} s   verify / hashing alone = {verify_seconds / hash_seconds:.2f}x")
    print(json.dumps({"asset_partitions": summary["asset_partitions"], "checks": summary["checks"],
                      "files": len(paths), "bytes": size, "document_seconds": round(document_seconds, 3),
                      "catalog_seconds": round(catalog_seconds, 3), "verify_seconds": round(verify_seconds, 3),
                      "hash_seconds": round(hash_seconds, 3), "problems": len(problems),
                      "aim_document_seconds": 5.0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
