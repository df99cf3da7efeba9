"""List an asset's stored versions, and put an earlier one back as its current version.

    python -m jobs.restore [--settings FILE | --profile full|quick] ASSET [--partition P] [--list]
                           [--version SHA_OR_TIME] [--force] [--limit N]

Without --version (or with --list): the versions of ASSET (of its partition P for the per-ticker
assets), newest first: when each was materialized, its data version (the SHA-256 of its stored
bytes), whether those bytes are still stored, and what its blocking checks said; `*` marks the
version downstream assets read (the newest whose blocking checks passed).

--version puts one back: a prefix of its data version, or a time (the newest version
materialized at or before it, e.g. 2026-05-04T09:30). Its bytes, checked against the version,
become the current value, and a materialization with that data version is reported to the
Dagster instance (with the version it restored), so readers load it from now on and what was
built from another version shows as stale in the UI. A version a blocking check rejected, or one
its checks never evaluated, is refused unless --force.

Exit code: 0 listed or restored, 1 refused or not found.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import re
import sys


def _stored_digests(tables, asset: str, partition: str | None, extension: str) -> set[str]:
    from odyssey.hashing import sha256_bytes
    from resources.storage import current_path, stored_versions, version_folder

    current = current_path(tables, asset, partition, extension)
    digests = {digest for _, digest, _ in stored_versions(version_folder(tables, current), extension)}
    if current.exists():
        digests.add(sha256_bytes(current.read_bytes()))
    return digests


def choose(versions, spec: str):
    """The version `spec` names: a data-version prefix, else a time (the newest version
    materialized at or before it). None when none matches; ValueError when ambiguous or unreadable."""
    import pandas as pd

    if re.fullmatch(r"[0-9a-fA-F]{4,64}", spec):
        matches = {v.data_version: v for v in versions if (v.data_version or "").startswith(spec.lower())}
        if len(matches) > 1:
            raise ValueError(f"version prefix {spec} is ambiguous: {', '.join(sorted(d[:12] for d in matches))}")
        if matches:
            # the same bytes may have been materialized more than once: the newest materialization
            return next(v for v in versions if v.data_version in matches)
        if not re.fullmatch(r"\d{4}(-?\d{2}){0,2}", spec):
            return None
    try:
        moment = pd.Timestamp(spec)
    except ValueError as error:
        raise ValueError(f"--version {spec!r} is neither a data-version prefix nor a time: {error}") from None
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    return next((v for v in versions if v.timestamp <= moment.timestamp()), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("asset", help="the asset, e.g. raw_prices")
    parser.add_argument("--partition", help="the partition (ticker) of a per-ticker asset")
    parser.add_argument("--list", action="store_true", help="list the versions (the default without --version)")
    parser.add_argument("--version", help="the version to put back: a data-version prefix or a time")
    parser.add_argument("--force", action="store_true", help="restore even a version its blocking checks rejected "
                                                             "or never evaluated")
    parser.add_argument("--limit", type=int, default=20, help="versions listed (default 20)")
    parser.add_argument("--settings", help="a settings file (default: $ODYSSEY_SETTINGS, else odyssey.toml)")
    parser.add_argument("--profile", help="a preset in settings/ (full, quick) instead of a settings file")
    parser.add_argument("--settings-json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from graph import BLOCKING_CHECKS, build_definitions
    from jobs.main import open_instance, settings_from
    from resources.accepted import iso, judged_versions, label
    from resources.storage import restore_version

    settings = settings_from(args)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    defs = build_definitions(settings)
    repository = defs.get_repository_def()
    key = next((k for k in repository.asset_graph.get_all_asset_keys() if k.to_user_string() == args.asset), None)
    if key is None:
        names = sorted(k.to_user_string() for k in repository.asset_graph.get_all_asset_keys())
        print(f"no asset {args.asset!r}; the assets are: {', '.join(names)}", file=sys.stderr)
        return 1
    assets_def = repository.assets_defs_by_key[key]
    partitioned = assets_def.partitions_def is not None
    if partitioned != (args.partition is not None):
        fix = "partitioned by ticker: give --partition" if partitioned else "not partitioned: drop --partition"
        print(f"{args.asset} is {fix}", file=sys.stderr)
        return 1
    io_manager = defs.resources[assets_def.get_io_manager_key_for_asset_key(key)]
    extension = io_manager.create_io_manager(None).extension
    tables = defs.resources["storage"].path("tables")
    blocking = BLOCKING_CHECKS.get(args.asset, [])
    name = label(args.asset, args.partition)

    with open_instance(settings) as instance:
        versions = judged_versions(instance, args.asset, args.partition, blocking)
        if args.version is None or args.list:
            shown = list(itertools.islice(versions, args.limit))
            if not shown:
                print(f"{name} has never been materialized in the Dagster instance at {settings.paths.dagster_home}")
                return 1
            stored = _stored_digests(tables, args.asset, args.partition, extension)
            read = next((v for v in shown if v.verdict == "accepted"), None)
            print(f"{name}: the newest {len(shown)} version(s), newest first; blocking checks: "
                  f"{', '.join(blocking) or 'none'}; * = the version downstream assets read")
            print(f"  {'materialized':<24}{'version':<14}{'stored':<8}verdict")
            for v in shown:
                mark = "*" if v is read else " "
                print(f"{mark} {iso(v.timestamp):<24}{v.short:<14}{'yes' if v.data_version in stored else 'no':<8}"
                      f"{v.verdict}: {v.describe()}")
            if read is None:
                print(f"  none of these passed its blocking checks: downstream assets refuse to read {name}")
            if args.version is None:
                return 0
            versions = judged_versions(instance, args.asset, args.partition, blocking)
        try:
            chosen = choose(list(versions), args.version)
        except ValueError as error:
            print(str(error), file=sys.stderr)
            return 1
        if chosen is None:
            print(f"{name} has no version {args.version!r}: see python -m jobs.restore {args.asset}"
                  + (f" --partition {args.partition}" if args.partition else "") + " --list", file=sys.stderr)
            return 1
        if chosen.verdict != "accepted" and not args.force:
            print(f"refused: version {chosen.short} of {name} (materialized {iso(chosen.timestamp)}) was "
                  f"{chosen.describe()}; add --force to restore it anyway", file=sys.stderr)
            return 1
        try:
            digest = restore_version(instance, tables, args.asset, args.partition, extension, chosen,
                                     forced=chosen.verdict != "accepted")
        except RuntimeError as error:
            print(f"{name}: {error}", file=sys.stderr)
            return 1
    print(f"restored {name} to version {digest[:12]} (materialized {iso(chosen.timestamp)}, run "
          f"{chosen.run_id[:8] or 'restore'}; {chosen.describe()}): downstream assets read it from now on; "
          f"materialize them to rebuild from it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
