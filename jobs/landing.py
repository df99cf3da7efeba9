"""Emit the synthetic market's next trading sessions as landing files, to watch the loop run.

    python -m jobs.landing --days 3 [--settings FILE]

Writes bars_<first>_<last>.csv, alt_<first>_<last>.csv and, when a split falls in those sessions,
actions_<first>_<last>.csv into the settings' landing folder (default .odyssey/landing),
continuing after the last session stored.
"""

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--settings", help="a settings file (default: $ODYSSEY_SETTINGS, else odyssey.toml)")
    args = parser.parse_args(argv)

    from odyssey.landing import synthetic_days, write_landing
    from odyssey.settings import load_settings
    from resources import build_resources
    from resources.storage import last_landed_day

    settings = load_settings(args.settings)
    if settings.source.kind != "synthetic":
        print("emitting landing files needs the synthetic source (settings source.kind = 'synthetic')", file=sys.stderr)
        return 2
    profile = settings.profile()
    after = last_landed_day(build_resources(settings)["storage"], profile.end, "bars")
    data = synthetic_days(profile, settings.source.synthetic, after, args.days)
    for path in write_landing(data, settings.paths.landing_dirs[0]):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
