"""The lineage document, and verification of the store against the catalog.

    python -m jobs.lineage [--settings FILE | --profile full|quick]            rebuild the document
    python -m jobs.lineage [--settings FILE | --profile full|quick] --verify   re-hash the store

--verify re-hashes every stored value, exported file, model and policy artifact that the latest
materializations recorded, checks the models' and policies' signatures, prints each mismatch,
missing file and unsigned artifact, and exits 1 when there is one (0: the store is as recorded).
"""

from __future__ import annotations

import argparse
import logging
import sys


def verify_instance(instance, graph, key: bytes | None) -> tuple[list, int, int]:
    """(problems, stored values checked, files checked): the latest materializations' records
    against the bytes in the store."""
    from odyssey.lineage import verify
    from resources.lineage import asset_records, read_bytes

    records, _ = asset_records(instance, graph)
    built = [r for r in records if r.materialized_at]
    return verify(built, read_bytes, key), len(built), sum(len(r.artifacts) for r in built)


def verify_store(settings) -> tuple[list, int, int, bool]:
    """verify_instance on the settings' instance and store, and whether there was a signing key
    (an audit never creates one: without it, signatures are not checked)."""
    from graph import build_definitions
    from jobs.main import open_instance
    from resources.lineage import GraphSpecs

    defs = build_definitions(settings)
    key = defs.resources["signer"].existing_key()
    with open_instance(settings) as instance:
        problems, values, files = verify_instance(instance, GraphSpecs.of(defs.get_repository_def()), key)
    return problems, values, files, key is not None


def build_document(settings) -> tuple[bool, str]:
    """Materialize the `lineage` asset; (success, where the document is)."""
    from graph import build_definitions
    from jobs.main import open_instance

    defs = build_definitions(settings)
    with open_instance(settings) as instance:
        result = defs.resolve_job_def("lineage_document").execute_in_process(instance=instance, raise_on_error=False)
    return result.success, str(defs.resources["storage"].path("reports", "lineage.md"))


def main(argv: list[str] | None = None) -> int:
    from jobs.main import settings_from

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", help="a settings file (default: $ODYSSEY_SETTINGS, else odyssey.toml)")
    parser.add_argument("--profile", help="a preset in settings/ (full, quick) instead of a settings file")
    parser.add_argument("--settings-json", help=argparse.SUPPRESS)
    parser.add_argument("--verify", action="store_true", help="re-hash the store against the catalog")
    args = parser.parse_args(argv)
    settings = settings_from(args)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    if not args.verify:
        ok, where = build_document(settings)
        print(f"lineage document: {where}" if ok else "the lineage run failed: see the Dagster UI")
        return 0 if ok else 1
    problems, values, files, signed = verify_store(settings)
    if not signed:
        print("no signing key (ODYSSEY_SIGNING_KEY or the key file): signatures were not checked")
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {values} stored values and {files} files")
        return 1
    print(f"verified {values} stored values and {files} files against the catalog: all as recorded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
