"""How much of the planted signal the walk-forward recovers, and which tickers earn deployment,
on the full preset's synthetic market (settings/full.toml); the last line printed is one JSON
object.

1. For the XGBoost presets "regularized" (the default) and "seed": the walk-forward of every
   ticker; per preset the mean out-of-sample rank IC, the mean IC of the market's true planted
   signal (`SyntheticMarket.true_signal`, the oracle) over the same rows, their ratio (the share
   of the oracle recovered), and how many tickers pass the skill gate (the family-wise rule of
   odyssey/skill.py over the universe, the settings' method and rate) and the plausibility gate.
2. With the default preset only: how many tickers earn deployment (skill and plausibility both
   pass) on the default market, on a null market (no planted signal, no drift) and on a market
   with a stronger planted signal (0.35).

The leakage canary, the signature and the no-regression gate are not run here: the first is
benchmarked in bench/canary.py, the other two concern model files and champions.
Single process, XGBoost nthread=2. Each walk-forward of all tickers takes minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from odyssey.cleaning import clean_alt, clean_prices  # noqa: E402
from odyssey.fitting import MarketInputs, log_returns  # noqa: E402
from odyssey.gates import plausibility_gate  # noqa: E402
from odyssey.skill import daily_simple_returns, family_decision, skill_evidence  # noqa: E402
from odyssey.metrics import spearman_ic  # noqa: E402
from odyssey.settings import XGB_PRESETS, Settings, load_settings, preset_path  # noqa: E402
from odyssey.sources.synthetic import SyntheticMarket, generate_market  # noqa: E402
from odyssey.walkforward import summary_metrics, walkforward_from_settings  # noqa: E402

PLANTED_STRENGTH = 0.35


def market_and_inputs(settings: Settings) -> tuple[SyntheticMarket, MarketInputs]:
    """The synthetic market of the settings, and the walk-forward's inputs built from it as the
    Dagster assets chain them (clean prices, daily log returns, clean alternative series)."""
    profile = settings.profile()
    market = generate_market(profile, settings.source.synthetic)
    rules = settings.cleaning
    cleaned = clean_prices(market.data.prices, market.data.actions, list(profile.tickers), profile.start,
                           rules=rules, exchange=profile.exchange)
    calendar = pd.DatetimeIndex(sorted(cleaned.prices["date"].unique()), name="date")
    alt = clean_alt(market.data.alt, calendar, rules.max_fill_days)
    alt = alt[[c for c in alt.columns if c == "date" or c in profile.alt_series]]
    return market, MarketInputs(cleaned.prices, log_returns(cleaned.prices), alt)


def evaluate(settings: Settings, preset: str, label: str) -> tuple[pd.DataFrame, float]:
    """Walk-forward of every ticker with an XGBoost preset: per ticker the out-of-sample IC, the
    oracle's IC on the same rows, and the skill and plausibility gates (the settings' levels)."""
    market, inputs = market_and_inputs(settings)
    params = XGB_PRESETS[preset].model_copy(update={"nthread": 2})
    wf = walkforward_from_settings(settings, params)
    costs, gates = settings.costs, settings.gates
    oracle = market.true_signal
    rows = []
    started = time.perf_counter()
    print(f"{label}: preset {preset!r}, signal_strength {settings.source.synthetic.signal_strength}, "
          f"annual_drift {settings.source.synthetic.annual_drift}", flush=True)
    for ticker in settings.universe.tickers:
        t0 = time.perf_counter()
        result = wf.run(inputs, ticker)
        predictions = result.predictions
        summary = summary_metrics(predictions, costs.cost_bps, costs.slippage_bps, level=gates.skill_level)
        evidence = skill_evidence(predictions, daily_simple_returns(inputs.returns, ticker), wf.horizon, costs.rate)
        plausible = plausibility_gate(predictions, gates.implausible_direction_accuracy, gates.naive_margin)
        rows_with_oracle = predictions.merge(oracle, on=["date", "ticker"], how="left")
        if rows_with_oracle["true_signal"].isna().any():
            raise AssertionError(f"{ticker}: out-of-sample rows without a true signal")
        oracle_ic = spearman_ic(rows_with_oracle["target"].to_numpy(), rows_with_oracle["true_signal"].to_numpy())
        rows.append({"ticker": ticker, "folds": len(result.folds), "oos_n": int(summary["oos_n"]),
                     "ic": summary["oos_ic"], "ic_ci_low": summary["oos_ic_ci_low"], "oracle_ic": oracle_ic,
                     "direction_accuracy": summary["oos_direction_accuracy"],
                     "accuracy_edge": summary["oos_accuracy_edge"],
                     "accuracy_edge_ci_low": summary["oos_accuracy_edge_ci_low"],
                     "skill_p": evidence.p, "plausible": plausible.passed,
                     "median_best_iteration": float(result.folds["best_iteration"].median()),
                     "seconds": time.perf_counter() - t0})
        r = rows[-1]
        print(f"  {ticker:<6} IC {r['ic']:+.3f} (low {r['ic_ci_low']:+.3f})  oracle {oracle_ic:+.3f}  "
              f"acc {r['direction_accuracy']:.3f}  skill p {evidence.p:.2g}  "
              f"plausible {'pass' if plausible.passed else 'FAIL'}  {r['seconds']:.1f} s", flush=True)
    table = pd.DataFrame(rows)
    decision = family_decision(dict(zip(table["ticker"], table["skill_p"])), gates.variants_tried,
                               gates.family_method, gates.family_rate)
    table["skill"] = table["ticker"].map(decision.passes) & (table["oos_n"] >= gates.min_skill_days)
    return table, time.perf_counter() - started


def deployable(table: pd.DataFrame) -> int:
    return int((table["skill"] & table["plausible"]).sum())


def recovery(table: pd.DataFrame) -> float:
    oracle = float(table["oracle_ic"].mean())
    return float(table["ic"].mean()) / oracle if oracle else float("nan")


def print_table(title: str, table: pd.DataFrame, seconds: float) -> None:
    print()
    print(f"{title}  ({seconds / 60:.1f} min)")
    print(f"{'ticker':<7} {'oos days':>8} {'IC':>7} {'IC low':>7} {'oracle IC':>9} {'share':>6} {'dir acc':>7} "
          f"{'edge':>7} {'edge low':>8} {'best':>6} {'skill':>6} {'plaus.':>6} {'deploy':>6}")
    for r in table.itertuples():
        share = r.ic / r.oracle_ic if r.oracle_ic else float("nan")
        print(f"{r.ticker:<7} {r.oos_n:>8d} {r.ic:>+7.3f} {r.ic_ci_low:>+7.3f} {r.oracle_ic:>+9.3f} {share:>6.2f} "
              f"{r.direction_accuracy:>7.3f} {r.accuracy_edge:>+7.3f} {r.accuracy_edge_ci_low:>+8.3f} "
              f"{r.median_best_iteration:>6.0f} {'pass' if r.skill else 'fail':>6} "
              f"{'pass' if r.plausible else 'FAIL':>6} {'yes' if r.skill and r.plausible else 'no':>6}")
    print(f"{'mean':<7} {'':>8} {table['ic'].mean():>+7.3f} {'':>7} {table['oracle_ic'].mean():>+9.3f} "
          f"{recovery(table):>6.2f} {table['direction_accuracy'].mean():>7.3f} {table['accuracy_edge'].mean():>+7.3f} "
          f"{'':>8} {'':>6} {int(table['skill'].sum()):>3}/{len(table):<2} {int(table['plausible'].sum()):>3}/{len(table):<2}"
          f" {deployable(table):>3}/{len(table):<2}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="full", help="settings preset (settings/) whose market is used")
    args = parser.parse_args()
    started = time.perf_counter()
    settings = load_settings(preset_path(args.preset), environ={})
    default = settings.forecast.xgboost
    default_name = next((name for name, p in XGB_PRESETS.items()
                         if p == default.model_copy(update={"nthread": p.nthread})), None)
    if default_name is None:
        raise SystemExit(f"the settings' XGBoost parameters are none of the presets {sorted(XGB_PRESETS)}")

    results: dict[str, tuple[pd.DataFrame, float]] = {}
    for name in ("regularized", "seed"):
        results[name] = evaluate(settings, name, f"default market, preset {name}")
    synthetic = settings.source.synthetic
    markets = {
        "default": settings,
        "null": settings.updated({"source": {"synthetic": {"signal_strength": 0.0, "annual_drift": 0.0}}}),
        "planted": settings.updated({"source": {"synthetic": {"signal_strength": PLANTED_STRENGTH}}}),
    }
    market_results: dict[str, tuple[pd.DataFrame, float]] = {"default": results[default_name]}
    for name in ("null", "planted"):
        market_results[name] = evaluate(markets[name], default_name, f"{name} market, preset {default_name}")

    tickers = len(settings.universe.tickers)
    g = settings.gates
    print()
    print(f"preset {settings.name}: {tickers} tickers, {settings.dates.start} .. {settings.dates.end}, horizon "
          f"{settings.forecast.horizon}, skill {g.family_method} at {g.family_rate}, plausibility bound "
          f"{g.implausible_direction_accuracy} (naive margin {g.naive_margin}); XGBoost nthread=2, one process")
    for name, (table, seconds) in results.items():
        print_table(f"default market (signal_strength {synthetic.signal_strength}), XGBoost preset {name!r}",
                    table, seconds)
    for name in ("null", "planted"):
        s = markets[name].source.synthetic
        print_table(f"{name} market (signal_strength {s.signal_strength}, annual_drift {s.annual_drift}), XGBoost "
                    f"preset {default_name!r}", *market_results[name])

    print()
    print(f"{'XGBoost preset':<16} {'mean IC':>8} {'oracle IC':>9} {'recovered':>9} {'skill':>7} {'plausible':>9} "
          f"{'deployable':>10}")
    for name, (table, _) in results.items():
        print(f"{name:<16} {table['ic'].mean():>+8.4f} {table['oracle_ic'].mean():>+9.4f} {recovery(table):>9.1%} "
              f"{int(table['skill'].sum()):>4}/{tickers:<2} {int(table['plausible'].sum()):>6}/{tickers:<2} "
              f"{deployable(table):>7}/{tickers:<2}")
    print()
    print(f"{'market (preset ' + repr(default_name) + ')':<34} {'signal':>7} {'drift':>6} {'mean IC':>8} "
          f"{'oracle IC':>9} {'deployable':>10}")
    for name in ("default", "null", "planted"):
        table, _ = market_results[name]
        s = markets[name].source.synthetic
        print(f"{name:<34} {s.signal_strength:>7.2f} {s.annual_drift:>6.3f} {table['ic'].mean():>+8.4f} "
              f"{table['oracle_ic'].mean():>+9.4f} {deployable(table):>7}/{tickers:<2}")
    total = time.perf_counter() - started
    print(f"total {total / 60:.1f} min")

    def rounded(x: float) -> float:
        return round(float(x), 4)

    out = {"bench": "recovery", "preset": settings.name, "tickers": tickers, "default_xgboost": default_name}
    for name, (table, seconds) in results.items():
        out.update({f"recovery_{name}": rounded(recovery(table)), f"ic_{name}": rounded(table["ic"].mean()),
                    f"oracle_ic_{name}": rounded(table["oracle_ic"].mean()),
                    f"skill_pass_{name}": int(table["skill"].sum()),
                    f"plausible_pass_{name}": int(table["plausible"].sum()),
                    f"deployable_{name}": deployable(table), f"walkforward_minutes_{name}": round(seconds / 60, 2)})
    for name in ("default", "null", "planted"):
        table, _ = market_results[name]
        out[f"deployable_{name}"] = deployable(table)
        out[f"ic_{name}_market"] = rounded(table["ic"].mean())
    out["planted_signal_strength"] = PLANTED_STRENGTH
    out["seconds"] = round(total, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
