"""The tick pipeline from the command line.

    python -m jobs.ticks --replay [--out FILE] [--settings FILE]
    python -m jobs.ticks --land DAYS [--settings FILE]

--replay rebuilds the tick features from the raw NDJSON files the stored `raw_ticks` were read
from (the archive, or the landing folder for a run not yet settled), exactly as the asset does,
and compares them with the stored `tick_features` value by value (SHA-256 of every value); both
tables as downstream assets read them (the newest version that passed its blocking checks in the
settings' Dagster instance). It prints both digests; exit code 0 when they are bit-identical, 1
when they differ, 2 when there is nothing stored to compare (or no version passed). --out also
writes the replayed features (Parquet).

--land writes the synthetic market's next DAYS days (after the last tick stored, archived or
waiting) into the tick landing folder, one NDJSON file per day, for the landing sensor.
"""

import argparse
import sys


def _accepted(settings, asset: str, columns: list[str] | None = None):
    """The version of a tick table downstream assets read: the newest that passed its blocking
    checks in the settings' Dagster instance."""
    from graph import build_definitions
    from jobs.main import open_instance

    storage = build_definitions(settings).resources["storage"]
    with open_instance(settings) as instance:
        return storage.accepted_table(instance, asset, columns)


def replay_command(settings, out: str | None) -> int:
    from odyssey.hashing import frame_sha256
    from odyssey.ticks.features import replay
    from odyssey.ticks.training import windows_of
    from resources.accepted import NoAcceptedVersion

    try:
        stored = _accepted(settings, "tick_features")
        sources = _accepted(settings, "raw_ticks", columns=["source_file"])
    except NoAcceptedVersion as error:
        print(error, file=sys.stderr)
        return 2
    if stored is None or sources is None:
        print("no stored tick_features or raw_ticks: materialize the ticks group first (make run, or the job "
              "'ticks')", file=sys.stderr)
        return 2
    landing, archive, _ = settings.paths.tick_landing_dirs
    result = replay(sources["source_file"].drop_duplicates().tolist(), landing, archive, settings.ticks.product,
                    windows_of(settings.ticks))
    if result.missing:
        print(f"raw files are gone: {[str(p) for p in result.missing[:5]]}", file=sys.stderr)
        return 1
    if out:
        result.features.to_parquet(out, index=False)
    digest = frame_sha256(stored)
    same = result.sha256 == digest
    print(f"files     {len(result.paths)} ({result.paths[0].parent})")
    print(f"rows      stored {len(stored)}, replayed {len(result.features)}")
    print(f"stored    {digest}")
    print(f"replayed  {result.sha256}")
    print("identical" if same else "DIFFERENT")
    return 0 if same else 1


def land(settings, days: int) -> int:
    import pandas as pd

    from odyssey.sources.csv_source import SourceError
    from odyssey.ticks.source import next_days, read_tick_file, tick_files, write_days
    from resources.accepted import NoAcceptedVersion

    ticks = settings.ticks
    if ticks.source_kind != "synthetic":
        print("emitting tick files needs the synthetic source (settings ticks.source_kind = 'synthetic')",
              file=sys.stderr)
        return 2
    landing, archive, _ = settings.paths.tick_landing_dirs
    try:
        stored = _accepted(settings, "raw_ticks", columns=["timestamp"])
    except NoAcceptedVersion:
        stored = None  # no accepted ticks yet: the newest waiting or archived file decides
    candidates = [stored["timestamp"].max()] if stored is not None and len(stored) else []
    for path in [*tick_files(landing), *tick_files(archive)[-1:]]:  # what waits, and the newest archived day
        try:
            candidates.append(read_tick_file(path, ticks.product).ticks["timestamp"].max())
        except SourceError:
            continue  # a file the sensor will quarantine
    after = max((c for c in candidates if not pd.isna(c)), default=None)
    for path in write_days(next_days(ticks.source, ticks.product, after, days), landing):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--replay", action="store_true", help="rebuild the features from the raw files and compare")
    action.add_argument("--land", type=int, metavar="DAYS", help="write the synthetic market's next days to landing")
    parser.add_argument("--out", help="with --replay: write the replayed features to this Parquet file")
    parser.add_argument("--settings", help="a settings file (default: $ODYSSEY_SETTINGS, else odyssey.toml)")
    args = parser.parse_args(argv)

    from odyssey.settings import load_settings

    settings = load_settings(args.settings)
    if args.replay:
        return replay_command(settings, args.out)
    return land(settings, args.land)


if __name__ == "__main__":
    sys.exit(main())
