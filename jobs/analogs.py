"""Ask the market memory: the past sessions most like a day, and what followed them.

    python -m jobs.analogs --date 2020-03-16 [--ticker SPY] [--k 20] [--settings FILE | --profile quick]

Reads the market states and the index that `make run` (or the market_features job) built for the
settings. Prints the analogs (date, similarity, regime, the forward return that followed), the
fit of the state map that answered and their summary (the analog forecast, mean, spread, share
up), and writes a plot of their subsequent paths under the storage's reports/. A day is answered
by the newest fit that ends before it; a day on or before the first fit's end is refused (exit
2, with the days that can be asked). If the index is busy (being written), the answer comes from
an in-memory copy of the stored states. The launchpad way is to materialize `market_analogs`
with the same fields in its config.
"""

from __future__ import annotations

import argparse
import sys



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--date", default="", help="a session, YYYY-MM-DD (default: the newest)")
    parser.add_argument("--ticker", default="", help="a universe ticker (default: the benchmark)")
    parser.add_argument("--k", type=int, default=None, help="how many analogs (default: the settings' memory.k)")
    parser.add_argument("--settings", help="settings file (default: $ODYSSEY_SETTINGS or odyssey.toml)")
    parser.add_argument("--profile", help="a preset: full or quick")
    args = parser.parse_args(argv)

    from graph import build_definitions
    from jobs.main import open_instance, settings_from
    from odyssey.memory import analog_paths
    from odyssey.report import analog_paths_chart
    from resources import memory_resource
    from resources.accepted import NoAcceptedVersion
    from resources.memory import answer_json, ask

    settings = settings_from(argparse.Namespace(settings=args.settings, profile=args.profile, settings_json=None))
    storage = build_definitions(settings).resources["storage"]
    try:  # the versions downstream assets read: the newest that passed their blocking checks
        with open_instance(settings) as instance:
            states, returns = (storage.accepted_table(instance, "market_states"),
                               storage.accepted_table(instance, "returns"))
    except NoAcceptedVersion as error:
        print(error, file=sys.stderr)
        return 2
    if states is None or returns is None:
        print(f"no market states under {settings.paths.storage_url}: run `make run` (or materialize market_states "
              "and market_state_index) for these settings first", file=sys.stderr)
        return 2
    ticker = args.ticker or settings.universe.benchmark
    try:
        answer, source = ask(memory_resource(settings), states, ticker, args.date, args.k or settings.memory.k,
                             settings.forecast.horizon)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    date = answer.date
    summary = answer_json(answer, source)
    table = answer.neighbours.assign(date=answer.neighbours["date"].dt.date)[
        ["date", "similarity", "regime", "forward_return"]]
    print(f"{ticker} on {date.date()}: the {len(table)} most similar past sessions whose {answer.horizon}-session "
          f"forward return was known by then ({source})")
    print(f"state map   fitted on sessions up to {answer.fit_end.date()} (the newest fit that ends before "
          f"{date.date()})")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"forecast (distance-weighted) {summary['forecast']:+.4f}  mean {summary['mean']:+.4f}  "
          f"spread {summary['spread']:.4f}  share up {summary['share_up']:.0%}")
    paths = analog_paths(returns, ticker, answer.neighbours["date"], answer.horizon)
    folder = storage.path("reports")
    folder.mkdir(parents=True, exist_ok=True)
    plot = folder / f"analogs_{ticker}_{date.date()}.png"
    plot.write_bytes(analog_paths_chart(paths, f"{ticker}: what followed the analogs of {date.date()}"))
    print(f"plot        {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
