"""How often a market with nothing to predict gets a model deployed, by the family-wise skill rule
(odyssey/skill.py) and by the rules it replaced; the last line printed is one JSON object.

For each of `--seeds` synthetic markets of the null scenario (settings/scenarios/null.toml: the
quick preset's five tickers, no planted signal, no drift), the default XGBoost walk-forward of
every ticker, its skill evidence, and the deployment decision of

* `holm` (the default: Holm at gates.family_rate over tickers x variants), `bh` (Benjamini-
  Hochberg at the same rate) and `none` (each ticker alone at the rate);
* `raw_ic` — the former rule: the rank IC's 90 % block-bootstrap interval above 0, or the direction
  accuracy's edge over the naive forecast above 0, per ticker, uncorrected.

A run "deploys" when any ticker passes. Only the skill gate is judged: on honest models the
others (leakage canary, plausibility, signature, no regression) pass. With `--planted`, the same
on the quick preset's planted market (signal 0.35) for the same seeds: how many of the five
tickers each rule still deploys.

Single process, XGBoost nthread=1; about a minute per market on one core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.recovery import market_and_inputs  # noqa: E402
from odyssey.settings import Settings, load_settings, preset_path  # noqa: E402
from odyssey.skill import daily_simple_returns, family_decision, skill_evidence  # noqa: E402
from odyssey.walkforward import summary_metrics, walkforward_from_settings  # noqa: E402

RULES = ("holm", "bh", "none", "raw_ic")


def deployments(settings: Settings) -> dict[str, list[str]]:
    """The tickers each rule deploys on the settings' market."""
    market, inputs = market_and_inputs(settings)
    wf = walkforward_from_settings(settings, settings.forecast.xgboost.model_copy(update={"nthread": 1}))
    gates, costs = settings.gates, settings.costs
    p, raw = {}, []
    for ticker in settings.universe.tickers:
        predictions = wf.run(inputs, ticker).predictions
        p[ticker] = skill_evidence(predictions, daily_simple_returns(inputs.returns, ticker), wf.horizon,
                                   costs.rate).p
        summary = summary_metrics(predictions, costs.cost_bps, costs.slippage_bps, level=0.9)
        if summary["oos_ic_ci_low"] > 0 or summary["oos_accuracy_edge_ci_low"] > 0:
            raw.append(ticker)
    out = {method: list(family_decision(p, gates.variants_tried, method, gates.family_rate).deploy)
           for method in ("holm", "bh", "none")}
    return {**out, "raw_ic": raw, "p": {t: round(v, 5) for t, v in p.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1000, help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--planted", action="store_true", help="also the quick preset's planted market")
    args = parser.parse_args()
    null = load_settings(preset_path("scenarios/null"), environ={})
    planted = load_settings(preset_path("quick"), environ={})
    g = null.gates
    started = time.perf_counter()
    result: dict = {"seeds": args.seeds, "tickers": len(null.universe.tickers), "family_method": g.family_method,
                    "family_rate": g.family_rate, "variants": g.variants_tried}
    markets = [("null", null)] + ([("planted", planted)] if args.planted else [])
    for name, base in markets:
        runs = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            t0 = time.perf_counter()
            settings = base.updated({"source": {"synthetic": {"seed": seed}}})
            runs.append(deployments(settings))
            print(f"{name} seed {seed}: " + "  ".join(f"{r} {runs[-1][r] or '-'}" for r in RULES)
                  + f"  p {runs[-1]['p']}  ({time.perf_counter() - t0:.0f} s)", flush=True)
        for rule in RULES:
            counts = np.array([len(r[rule]) for r in runs])
            if name == "null":
                key = "runs_with_any_deploy_fraction" if rule == g.family_method else f"{rule}_any_deploy_fraction"
                result[key] = float(np.mean(counts > 0))
            result[f"{name}_{rule}_tickers_deployed_mean"] = float(counts.mean())
            result[f"{name}_{rule}_tickers_deployed_std"] = float(counts.std(ddof=1)) if len(counts) > 1 else 0.0
    result["seconds"] = round(time.perf_counter() - started, 1)
    print()
    print(f"{args.seeds} null markets ({result['tickers']} tickers): a run deploys anything with "
          + ", ".join(f"{r} {result.get(f'{r}_any_deploy_fraction', result['runs_with_any_deploy_fraction']):.0%}"
                      for r in RULES))
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
