"""Benchmark the leakage canary's cost: for every ticker of the preset, the canary (the settings'
folds and cuts, from raw data through cleaning, fold building and training) as a share of that
ticker's whole walk-forward (all folds, on the cleaned data), both timed in this process,
interleaved ticker by ticker and repeated (the best of `--repeats` each) so that load from other
processes on a shared machine falls on both alike. The last line printed is one JSON object.

    python bench/canary.py [--preset full] [--tickers AAPL NVDA ...] [--repeats 3] [--threads 1]

On a loaded machine XGBoost's and scikit-learn's threads wait for each other far more in the
walk-forward (mostly training) than in the canary, which flatters the canary's wall-clock share;
`--threads 1` limits every thread pool to one thread, so that CPU seconds measure work.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from odyssey.canary import leakage_canary  # noqa: E402
from odyssey.fitting import clean_market_data  # noqa: E402
from odyssey.settings import load_settings, preset_path  # noqa: E402
from odyssey.sources.synthetic import generate_market  # noqa: E402
from odyssey.walkforward import walkforward_from_settings  # noqa: E402

AIM = 0.30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="full", help="settings preset (settings/)")
    parser.add_argument("--tickers", nargs="*", default=None, help="default: every ticker of the preset")
    parser.add_argument("--repeats", type=int, default=3, help="times each is run per ticker; the best counts")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for XGBoost and every native thread pool (default: the settings')")
    args = parser.parse_args()

    settings = load_settings(preset_path(args.preset), environ={})
    if args.threads:
        settings = settings.updated({"forecast": {"xgboost": {"nthread": args.threads}}})
        threadpool_limits(args.threads)
    profile, gates = settings.profile(), settings.gates
    raw = generate_market(profile, settings.source.synthetic).data

    def clean(data):
        return clean_market_data(data, profile, settings.cleaning).inputs

    inputs = clean(raw)  # as the market assets store it; the walk-forward and the canary read it
    wf = walkforward_from_settings(settings)
    tickers = args.tickers or list(profile.tickers)
    wf.run(inputs, tickers[0])  # first calls (imports, XGBoost start-up) stay out of the timings

    def timed(fn):
        started, cpu = time.perf_counter(), time.process_time()
        out = fn()
        return time.perf_counter() - started, time.process_time() - cpu, out

    rows = []
    for ticker in tickers:
        walks, canaries = [], []
        for _ in range(max(args.repeats, 1)):  # interleaved: a burst of load falls on both
            walks.append(timed(lambda: wf.run(inputs, ticker)))
            canaries.append(timed(lambda: leakage_canary(wf, raw, ticker, clean, gates.canary_folds,
                                                         gates.canary_cuts, gates.canary_seed, cleaned=inputs)))
        seconds, cpu_seconds, result = min(walks, key=lambda t: t[0])
        canary_seconds, canary_cpu, canary = min(canaries, key=lambda t: t[0])
        rows.append({"ticker": ticker, "folds": len(result.folds), "seconds": seconds, "cpu_seconds": cpu_seconds,
                     "canary_seconds": canary_seconds, "canary_cpu_seconds": canary_cpu, "passed": canary.passed,
                     "share": canary_seconds / seconds, "cpu_share": canary_cpu / cpu_seconds})
        r = rows[-1]
        print(f"  {ticker:<6} walk-forward {seconds:6.2f} s ({cpu_seconds:6.2f} cpu)  canary {canary_seconds:5.2f} s "
              f"({canary_cpu:5.2f} cpu)  share {r['share']:6.1%} ({r['cpu_share']:6.1%} cpu)  "
              f"{'pass' if canary.passed else 'FAIL: ' + canary.reason}", flush=True)
    table = pd.DataFrame(rows)
    load = os.getloadavg()
    print()
    print(f"preset {settings.name}: {len(tickers)} tickers, {int(table['folds'].iloc[0])} walk-forward folds each; "
          f"canary {gates.canary_folds} folds x {gates.canary_cuts} cut; best of {args.repeats}; XGBoost nthread "
          f"{settings.forecast.xgboost.nthread}; {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / "
          f"{load[2]:.1f} at the end")
    print(f"{'measurement':<66} {'value':>12}")
    print(f"{'walk-forward, all tickers (s)':<66} {table['seconds'].sum():>12.1f}")
    print(f"{'leakage canary, all tickers (s)':<66} {table['canary_seconds'].sum():>12.1f}")
    print(f"{'canary / the ticker`s whole walk-forward, mean (aim < 30 %)':<66} {table['share'].mean():>12.1%}")
    print(f"{'canary / the ticker`s whole walk-forward, worst':<66} {table['share'].max():>12.1%}")
    print(f"{'the same in CPU seconds, mean':<66} {table['cpu_share'].mean():>12.1%}")
    print(f"{'honest pipeline passes the canary':<66} {int(table['passed'].sum()):>9}/{len(table)}")
    print(json.dumps({
        "bench": "canary",
        "preset": settings.name,
        "canary_folds": gates.canary_folds,
        "canary_cuts": gates.canary_cuts,
        "repeats": args.repeats,
        "walkforward_seconds": {r.ticker: round(r.seconds, 3) for r in table.itertuples()},
        "canary_seconds": {r.ticker: round(r.canary_seconds, 3) for r in table.itertuples()},
        "canary_share": round(float(table["share"].mean()), 4),
        "canary_share_max": round(float(table["share"].max()), 4),
        "canary_cpu_share": round(float(table["cpu_share"].mean()), 4),
        "canary_within_aim": bool(table["share"].max() < AIM),
        "canary_passed": int(table["passed"].sum()),
        "tickers": len(table),
    }))


if __name__ == "__main__":
    main()
