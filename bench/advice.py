"""Power and false alarms of the two guards on who advises, by simulation.

    python bench/advice.py [--sims 400] [--days 940]

1. The policy gate (policy_earns_its_place). Daily excess returns of a policy over its baseline,
   normal with a tracking error of 4.5 %/yr (what the default market's 563-session interval
   [-4.14, +5.67] %/yr implies) and a true mean of -3, -1, 0 and +2 %/yr, judged by the former
   rule (the 90 % interval's upper bound >= 0, on 563 sessions) and by non-inferiority (its lower
   bound >= -1 %/yr, on the policy's walk-forward: `--days` sessions, 940 on the default market).
   The share of simulations that pass is printed for each.
2. The advisor's guard (strategy_selection). Five candidates' daily excess returns over the
   baseline (a common part and their own, 5 %/yr of tracking error each): none with skill, or one
   with a true information ratio of 1, 2 or 3 a year. Printed: the share of simulations in which
   anything but the baseline advises (none with skill: the false-advice rate) and in which the
   skilled candidate advises (its power), on `--days` and on 184 sessions (the quick preset).

The last line is JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from odyssey import backtest as bt  # noqa: E402
from odyssey.metrics import ANNUAL_DAYS  # noqa: E402
from odyssey.selection import choose_advisor  # noqa: E402

TRACKING_ERROR = 0.045


def _run(returns: np.ndarray, name: str) -> bt.StrategyRun:
    n = len(returns)
    return bt.StrategyRun(name, pd.bdate_range("2017-01-02", periods=n), returns, np.zeros(n), np.zeros(n),
                          np.zeros((n, 1)))


def gate_pass_rates(mean: float, days: int, sims: int, rule: str) -> float:
    passed = 0
    for seed in range(sims):
        rng = np.random.default_rng([seed, days])
        excess = rng.normal(mean / ANNUAL_DAYS, TRACKING_ERROR / np.sqrt(ANNUAL_DAYS), days)
        baseline = rng.normal(0.0003, 0.01, days)
        policy, reference = _run(baseline + excess, "policy"), _run(baseline, "baseline")
        if rule == "former":
            e = bt.excess_over(policy, reference, block=20, level=0.9)
            passed += e["excess_return_ci_high"] >= 0
        else:
            passed += bt.judge_policy(policy, reference, margin=0.01, level=0.9, block=20).passed
    return passed / sims


def advice_rates(ir: float, days: int, sims: int) -> float:
    """Share of simulations in which candidate 0 advises (ir > 0) or anything but the baseline does."""
    hits = 0
    for seed in range(sims):
        rng = np.random.default_rng([seed, days, 7])
        daily_te = 0.05 / np.sqrt(ANNUAL_DAYS)
        excess = (rng.normal(0, daily_te / np.sqrt(2), (days, 1)) + rng.normal(0, daily_te / np.sqrt(2), (days, 5)))
        excess[:, 0] += ir / ANNUAL_DAYS * 0.05
        frame = pd.DataFrame(excess, index=pd.bdate_range("2017-01-02", periods=days),
                             columns=[f"candidate_{i}" for i in range(5)])
        choice = choose_advisor(frame, "equal_weight", {}, min_dsr=0.95, max_pbo=0.5, partitions=16)
        hits += choice.advisor == "candidate_0" if ir > 0 else choice.advisor != "equal_weight"
    return hits / sims


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sims", type=int, default=400)
    parser.add_argument("--days", type=int, default=940)
    args = parser.parse_args()
    started = time.perf_counter()
    gate = {}
    print(f"policy gate, tracking error {TRACKING_ERROR:.1%}/yr, share of {args.sims} simulations that pass")
    print(f"{'true excess /yr':>16} {'former (563 d)':>15} {f'non-inferiority ({args.days} d)':>28}")
    for mean in (-0.03, -0.01, 0.0, 0.02):
        former = gate_pass_rates(mean, 563, args.sims, "former")
        now = gate_pass_rates(mean, args.days, args.sims, "non_inferiority")
        gate[f"{mean:+.0%}"] = {"former": former, "non_inferiority": now}
        print(f"{mean:>+16.0%} {former:>15.3f} {now:>28.3f}")
    advice = {}
    print(f"\nadvisor guard, 5 candidates, share of {args.sims} simulations (IR 0: anything but the baseline advises)")
    print(f"{'true IR /yr':>12} {f'{args.days} sessions':>14} {'184 sessions':>14}")
    for ir in (0.0, 1.0, 2.0, 3.0):
        long, short = advice_rates(ir, args.days, args.sims), advice_rates(ir, 184, args.sims)
        advice[f"{ir:g}"] = {str(args.days): long, "184": short}
        print(f"{ir:>12g} {long:>14.3f} {short:>14.3f}")
    print(f"\n{time.perf_counter() - started:.0f} s")
    print(json.dumps({"sims": args.sims, "days": args.days, "tracking_error": TRACKING_ERROR, "policy_gate": gate,
                      "advisor": advice}))


if __name__ == "__main__":
    main()
