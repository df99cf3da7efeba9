"""Measure the live-skill monitor (odyssey/live_skill.py) by simulation of the test alone: for
each next-session skill, `--windows` champions are fitted on simulated walk-forward forecasts,
then watched live with the signal dead from the first live session, reversed, and healthy for
two 126-session windows. It prints one line per skill, then one JSON object (the last line):
at `--skill` (default: the median next-session skill of the default market's champions),
`signal_death_detection_rate` (alarmed within 60 sessions), `median_detection_sessions` and
`healthy_false_alarm_rate` (the larger of the first and the second window's rate), the curve
over skills, and the smallest skill of the curve where both aims hold (detection >= 90 %,
false alarms <= 5 % per 126 sessions), or null.

    python bench/replay.py [--windows 200] [--skill 0.09] [--skills 0.1 0.2 ...]

The default market's champions have a next-session skill (the walk-forward mean contribution,
a Gaussian-rank correlation of forecast and next return) of 0.06 to 0.11; the planted signal of
the quick preset is stronger. What any monitor can detect in n sessions is bounded by about
skill * sqrt(n) standard errors: the curve shows where 60 sessions suffice.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from odyssey.live_skill import simulate_power  # noqa: E402
from odyssey.settings import GateSettings  # noqa: E402

DETECTION_AIM, FALSE_ALARM_AIM, WITHIN = 0.90, 0.05, 60
DEFAULT_MARKET_SKILL = 0.09  # median over the 15 champions of make run's default market


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--skill", type=float, default=DEFAULT_MARKET_SKILL)
    parser.add_argument("--skills", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    parser.add_argument("--reference-days", type=int, default=1250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--false-alarm", type=float, default=GateSettings().live_false_alarm,
                        help="the rate the monitor is calibrated to (default: the settings' gates.live_false_alarm)")
    args = parser.parse_args()
    started = time.perf_counter()
    curve = []
    for skill in sorted({*args.skills, args.skill}):
        power = simulate_power(skill, args.windows, reference_days=args.reference_days, within=WITHIN,
                               false_alarm=args.false_alarm, seed=args.seed)
        false_alarms = max(power.false_alarm_rate, power.later_false_alarm_rate)
        row = {"skill": skill, "signal_death_detection_rate": power.detection_rate,
               "median_detection_sessions": None if math.isinf(power.median_detection_sessions)
               else power.median_detection_sessions,
               "healthy_false_alarm_rate": false_alarms, "first_window_false_alarm_rate": power.false_alarm_rate,
               "second_window_false_alarm_rate": power.later_false_alarm_rate,
               "reversal_detection_rate": power.reversal_detection_rate,
               "aims_hold": power.detection_rate >= DETECTION_AIM and false_alarms <= FALSE_ALARM_AIM}
        curve.append(row)
        print(f"skill {skill:.2f}: death detected within {WITHIN} sessions {power.detection_rate:6.1%} "
              f"(median {row['median_detection_sessions']}), reversal {power.reversal_detection_rate:6.1%}, "
              f"healthy false alarms {power.false_alarm_rate:5.1%} / {power.later_false_alarm_rate:5.1%} "
              f"(first / second 126 sessions)", flush=True)
    at = next(r for r in curve if r["skill"] == args.skill)
    print(json.dumps({**{k: at[k] for k in ("skill", "signal_death_detection_rate", "median_detection_sessions",
                                              "healthy_false_alarm_rate")},
                      "windows": args.windows, "within_sessions": WITHIN, "calibrated_false_alarm": args.false_alarm, "reference_days": args.reference_days,
                      "aims_hold_from_skill": next((r["skill"] for r in curve if r["aims_hold"]), None),
                      "curve": curve, "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
