"""Emit the synthetic market's next trading days as landing files, to watch the loop run.

    python -m jobs.landing --days 3

Writes bars_<first>_<last>.csv and alt_<first>_<last>.csv into the landing folder
(ODYSSEY_LANDING, default .odyssey/landing), continuing after the last day stored.
"""

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=1)
    args = parser.parse_args(argv)

    from odyssey.landing import synthetic_days, write_landing
    from resources import build_resources, landing_dirs
    from assets.market import last_landed_day

    resources = build_resources()
    market, storage = resources["market"], resources["storage"]
    if market.source != "synthetic":
        print("emitting landing files needs the synthetic source (ODYSSEY_SOURCE=synthetic)", file=sys.stderr)
        return 2
    after = last_landed_day(storage, market, "bars")
    data = synthetic_days(market.universe(), market.synthetic_config(), after, args.days)
    for path in write_landing(data, landing_dirs()[0]):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
