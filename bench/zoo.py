"""A model zoo on the same walk-forward folds, scored as a cross-sectional research table.

    python bench/zoo.py [--seeds 5] [--tickers 9] [--skip-real]

Models (odyssey/zoo.py, every one a `walkforward.FoldModel` on the same fold inputs, or pooled
from them): XGBoost (the settings' preset), LightGBM and ridge per ticker, one pooled LightGBM
lambdarank model ranking all tickers each day, the analog forecast (market memory) and the naive
forecast (the training rows' mean).

Markets: the quick preset's dates (2015-2021) on the full preset's first `--tickers` tickers,
synthetic seeds 100, 101, ... (each with its planted signal); then the real daily bars in
tests/data/real_bars (AAPL, GOOG, NVDA, 2013-2023) through the CSV source.

Columns: daily IC and rank IC across tickers of the forecast with the realised 5-session return,
their mean over their standard deviation (ICIR, per day, not annualised), and a long-only
portfolio of the top k forecasts (k a third of the universe) traded at every close with 15 bps
on traded value: its annualised return, its annualised excess over equal weight of the universe
(which pays its own costs), the information ratio of that excess, and its maximum drawdown.
Synthetic rows are mean +- std over the seeds. The last line is JSON, one entry per model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from odyssey.calendar import sessions  # noqa: E402
from odyssey.cleaning import clean_alt, clean_prices  # noqa: E402
from odyssey.fitting import MarketInputs, log_returns  # noqa: E402
from odyssey.memory import AnalogFolds  # noqa: E402
from odyssey.settings import Settings, load_settings, preset_path  # noqa: E402
from odyssey.sources.csv_source import read_csv_folder  # noqa: E402
from odyssey.sources.synthetic import generate_market  # noqa: E402
from odyssey.walkforward import XGBoostFolds, walkforward_from_settings  # noqa: E402
from odyssey.zoo import (FoldCollector, LightGBMFolds, NaiveFolds, RidgeFolds, pooled_ranker,  # noqa: E402
                         zoo_table)

MODELS = ("xgboost", "lightgbm", "ridge", "lightgbm_pooled_rank", "analog", "naive")
COLUMNS = ("ic", "rank_ic", "icir", "rank_icir", "annual_return", "excess_return", "information_ratio",
           "max_drawdown")
REAL_BARS = ROOT / "tests" / "data" / "real_bars"


def inputs_of(settings: Settings, data) -> MarketInputs:
    profile = settings.profile()
    cleaned = clean_prices(data.prices, data.actions, list(profile.tickers), profile.start, rules=settings.cleaning,
                           exchange=profile.exchange)
    calendar = pd.DatetimeIndex(sorted(cleaned.prices["date"].unique()), name="date")
    alt = clean_alt(data.alt, calendar, settings.cleaning.max_fill_days)
    alt = alt[[c for c in alt.columns if c == "date" or c in profile.alt_series]]
    return MarketInputs(cleaned.prices, log_returns(cleaned.prices), alt)


def run_zoo(settings: Settings, inputs: MarketInputs, seed: int) -> pd.DataFrame:
    """Every model's out-of-sample predictions on the same folds, scored by `zoo_table`."""
    wf = walkforward_from_settings(settings, settings.forecast.xgboost.model_copy(update={"nthread": 2,
                                                                                          "seed": seed}))
    collector = FoldCollector()
    predictions: dict[str, list[pd.DataFrame]] = {m: [] for m in MODELS}
    frames = {}
    for ticker in settings.universe.tickers:
        frames[ticker] = wf.frame(inputs, ticker)
        results = wf.run_models(inputs, ticker, {
            "xgboost": XGBoostFolds(wf), "lightgbm": LightGBMFolds(seed=seed), "ridge": RidgeFolds(),
            "analog": AnalogFolds(settings.memory.dimensions, settings.memory.k), "naive": NaiveFolds(),
            "collect": collector})
        for name in MODELS:
            if name in results:
                predictions[name].append(results[name].predictions)
    predictions["lightgbm_pooled_rank"] = [pooled_ranker(collector.folds, frames, seed=seed)]
    k = max(1, len(settings.universe.tickers) // 3)
    return zoo_table({m: pd.concat(predictions[m], ignore_index=True) for m in MODELS}, k, settings.costs.rate)


def synthetic_settings(tickers: int, seed: int) -> Settings:
    full = load_settings(preset_path("full"), environ={})
    quick = load_settings(preset_path("quick"), environ={})
    chosen = list(full.universe.tickers[:tickers])
    return quick.updated({"universe": {"tickers": chosen, "benchmark": "SPY" if "SPY" in chosen else chosen[0]},
                          "source": {"synthetic": {"seed": seed}}})


def real_settings() -> Settings:
    quick = load_settings(preset_path("quick"), environ={})
    return quick.updated({"universe": {"tickers": ["AAPL", "GOOG", "NVDA"], "benchmark": "AAPL", "alt_series": []},
                          "dates": {"start": "2013-01-02", "end": "2023-09-29", "train_end": "2017-12-29",
                                    "validation_end": "2019-12-31"},
                          "source": {"kind": "csv", "csv_path": str(REAL_BARS)}})


def _print(title: str, table: pd.DataFrame) -> None:
    print(f"\n{title}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:+.4f}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tickers", type=int, default=9)
    parser.add_argument("--skip-real", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    tables = []
    for i in range(args.seeds):
        settings = synthetic_settings(args.tickers, 100 + i)
        profile = settings.profile()
        t0 = time.perf_counter()
        table = run_zoo(settings, inputs_of(settings, generate_market(profile, settings.source.synthetic).data), seed=i)
        tables.append(table.assign(seed=100 + i))
        _print(f"synthetic seed {100 + i} ({len(profile.tickers)} tickers, {time.perf_counter() - t0:.0f} s)", table)
    pooled = pd.concat(tables, ignore_index=True)
    mean = pooled.groupby("model", sort=False)[list(COLUMNS)].mean()
    std = pooled.groupby("model", sort=False)[list(COLUMNS)].std(ddof=1)
    summary = pd.DataFrame({c: [f"{m:+.4f} ± {s:.4f}" for m, s in zip(mean[c], std[c])] for c in COLUMNS},
                           index=mean.index).reset_index()
    print(f"\nmean ± std over {args.seeds} synthetic seeds")
    print(summary.to_string(index=False))
    result = {"seeds": args.seeds, "tickers": args.tickers, "models": {
        m: {"synthetic": {c: {"mean": float(mean.loc[m, c]), "std": float(std.loc[m, c])} for c in COLUMNS}}
        for m in mean.index}}
    if not args.skip_real:
        settings = real_settings()
        profile = settings.profile()
        data = read_csv_folder(REAL_BARS, profile.tickers, sessions(profile.start, profile.end, profile.exchange))
        real = run_zoo(settings, inputs_of(settings, data), seed=0)
        _print("real bars: AAPL, GOOG, NVDA (tests/data/real_bars), k = 1", real)
        for row in real.to_dict("records"):
            result["models"][row["model"]]["real_bars"] = {c: float(row[c]) for c in COLUMNS}
    print(f"\n{time.perf_counter() - started:.0f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
