"""Measure the drift decision (odyssey/drift.py, the feature_drift asset's rule) by simulation:
on `--seeds` synthetic quick markets, the champion's reference is 2015-01-02..2021-12-16 (where the
quick preset's final models end their training, ten sessions before the build's last) and the
current window is the last `monitoring.window_days` (126) sessions after it, judged every session
from `monitoring.min_window_days` (20) on, as the asset does. Each seed's market is drawn twice:
healthy, and with the vol_regime scenario's knob (from 2022-01-31 AAPL's and NVDA's idiosyncratic
volatility triples, their beta rises by 0.8 and their volume doubles).

It prints one line per criterion (the share of drifted features, the target's size, the
volatility relative to the benchmark's, and the decision that takes any of them), then one JSON
object (the last line):

* `healthy_false_alarm_rate`: the share of the healthy market's tickers (every one but the
  benchmark) alarmed in their first 126 sessions, `later_false_alarm_rate` in the next 126 among
  those still quiet, and `healthy_market_false_alarm_rate`: the share of healthy markets in which
  any ticker alarmed in the first 126 (what a user of the whole universe sees);
* `detection_rate_within` {30, 60, 80}: the share of the drifted tickers alarmed within that many
  sessions of the change (0: on the change's first session), and `median_detection_sessions`.

    python bench/drift.py [--seeds 20] [--first-seed 1]

The thresholds are the settings' (`monitoring`); the aims it was chosen by are at most 5 % of
healthy ticker-windows alarmed per 126 sessions, and most of a tripled idiosyncratic volatility
found within 60 sessions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from odyssey import features as registry  # noqa: E402
from odyssey.drift import daily_returns, drift_statistics  # noqa: E402
from odyssey.fitting import clean_market_data, feature_pipeline  # noqa: E402
from odyssey.settings import load_settings, preset_path  # noqa: E402
from odyssey.sources.synthetic import generate_market  # noqa: E402
from odyssey.splits import forward_returns, target_name  # noqa: E402

REFERENCE_END, EVENT, DRIFTED = pd.Timestamp("2021-12-16"), pd.Timestamp("2022-01-31"), ("AAPL", "NVDA")
SESSIONS = 252  # two 126-session windows after the reference
CRITERIA = ("share", "size", "relative", "decision")


def judged_market(seed: int, drifted: bool) -> pd.DataFrame:
    """One market's every (ticker, session after the reference) judgement: which criteria fire."""
    synth = {"seed": seed, **({"drift_date": str(EVENT.date()), "drift_tickers": list(DRIFTED)} if drifted else {})}
    settings = load_settings(preset_path("quick"), environ={},
                             overrides={"dates": {"end": "2022-12-30"}, "source": {"synthetic": synth}})
    limits, profile = settings.monitoring, settings.profile()
    clean = clean_market_data(generate_market(profile, settings.source.synthetic).data, profile, settings.cleaning)
    _, table = feature_pipeline(settings, scale=False).fit_transform(clean.inputs, REFERENCE_END)
    names = [n for n in registry.features_of(settings.universe) if not registry.BY_NAME[n].market_wide]
    target = target_name(settings.forecast.horizon)
    rows = table.merge(forward_returns(clean.inputs.clean, settings.forecast.horizon)[["date", "ticker", target]],
                       on=["date", "ticker"]).merge(daily_returns(clean.inputs.clean, profile.benchmark),
                                                    on=["date", "ticker"])
    out = []
    for ticker, frame in rows.groupby("ticker"):
        if ticker == profile.benchmark or (drifted and ticker not in DRIFTED):
            continue  # the vol_regime market's other tickers are the healthy market's, day for day
        frame = frame.sort_values("date")
        reference, after = frame[frame["date"] <= REFERENCE_END], frame[frame["date"] > REFERENCE_END]
        event = int((after["date"] < EVENT).sum())  # the change's first session is after.iloc[event]
        for k in range(limits.min_window_days, min(SESSIONS, len(after)) + 1):
            stats = drift_statistics(reference, after.iloc[:k].tail(limits.window_days), names, target,
                                     limits.z_threshold, limits.psi_threshold)
            out.append({"seed": seed, "market": "vol_regime" if drifted else "healthy", "ticker": ticker,
                        "drifted": drifted, "session": k, "after_event": k - 1 - event,
                        "share": stats.share_drifted > limits.max_share_drifted,
                        "size": stats.target_z > limits.z_threshold,
                        "relative": stats.relative_vol_z > limits.relative_vol_z_threshold,
                        "decision": stats.drifted(limits.max_share_drifted, limits.z_threshold,
                                                  limits.relative_vol_z_threshold)})
    return pd.DataFrame(out)


def rates(judged: pd.DataFrame, criterion: str) -> dict:
    keys = ["seed", "market", "ticker"]
    healthy, changed = judged[~judged["drifted"]], judged[judged["drifted"]]
    first = healthy[healthy["session"] <= 126].groupby(keys)[criterion].any()
    later = healthy[healthy["session"] > 126].groupby(keys)[criterion].any()
    quiet = first[~first].index
    markets = first.groupby(["seed", "market"]).any()
    hits = changed[(changed["after_event"] >= 0) & changed[criterion]].groupby(keys)["after_event"].min()
    delays = hits.reindex(changed.groupby(keys).size().index).fillna(np.inf).to_numpy()
    return {"healthy_false_alarm_rate": float(first.mean()),
            "healthy_market_false_alarm_rate": float(markets.mean()),
            "later_false_alarm_rate": float(later.reindex(quiet).mean()) if len(quiet) and len(later) else None,
            **{f"detection_rate_within_{w}": float(np.mean(delays <= w)) for w in (30, 60, 80)},
            "median_detection_sessions": None if np.isinf(np.median(delays)) else float(np.median(delays)),
            "healthy_windows": int(len(first)), "drifted_windows": int(len(delays))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    judged = pd.concat([judged_market(seed, drifted) for seed in range(args.first_seed, args.first_seed + args.seeds)
                        for drifted in (False, True)], ignore_index=True)
    limits = load_settings(preset_path("quick"), environ={}).monitoring
    result = {c: rates(judged, c) for c in CRITERIA}
    for criterion, r in result.items():
        later = "-" if r["later_false_alarm_rate"] is None else f"{r['later_false_alarm_rate']:5.1%}"
        print(f"{criterion:9s} healthy false alarms {r['healthy_false_alarm_rate']:5.1%} / {later} (first / next 126 "
              f"sessions; markets with any: {r['healthy_market_false_alarm_rate']:5.1%}), drifted found within "
              f"30 / 60 / 80 sessions {r['detection_rate_within_30']:5.1%} / {r['detection_rate_within_60']:5.1%} / "
              f"{r['detection_rate_within_80']:5.1%} (median {r['median_detection_sessions']})", flush=True)
    print(json.dumps({**result["decision"], "criteria": result, "seeds": args.seeds, "first_seed": args.first_seed,
                      "thresholds": {"max_share_drifted": limits.max_share_drifted, "z_threshold": limits.z_threshold,
                                     "relative_vol_z_threshold": limits.relative_vol_z_threshold,
                                     "window_days": limits.window_days},
                      "seconds": round(time.perf_counter() - started, 1)}, allow_nan=False))


if __name__ == "__main__":
    main()
