"""The honesty tests' walk-forwards on the three synthetic markets, computed once per test session
for XGBoost (tests/test_honesty.py) and the analog forecast (tests/test_memory.py) on the same
folds: in one process, or across the session's processes through a shared folder (each market
computed by whichever process asks first, under a lock; the others read its predictions)."""

import functools
import hashlib
import json
from pathlib import Path

import pandas as pd
from filelock import FileLock

from odyssey.memory import AnalogFolds
from odyssey.sources.synthetic import generate_market
from odyssey.walkforward import XGBoostFolds, walkforward_from_settings
from tests.conftest import QUICK, run_pipeline

MODELS = ("xgboost", "analog")


def _settings(synthetic: tuple):
    return QUICK.updated({"source": {"synthetic": dict(synthetic)}})


def _compute(synthetic: tuple) -> dict[str, dict[str, pd.DataFrame]]:
    """Every ticker's out-of-sample predictions of the default XGBoost and of the analog
    forecast (market memory) on the same folds, on the quick market of these synthetic settings."""
    settings = _settings(synthetic)
    profile = settings.profile()
    market = generate_market(profile, settings.source.synthetic)
    inputs = run_pipeline(profile, market.data).inputs
    wf = walkforward_from_settings(settings, settings.forecast.xgboost.model_copy(update={"nthread": 2}))
    out: dict[str, dict[str, pd.DataFrame]] = {model: {} for model in MODELS}
    for ticker in profile.tickers:
        analog = AnalogFolds(settings.memory.dimensions, settings.memory.k)
        results = wf.run_models(inputs, ticker, {"xgboost": XGBoostFolds(wf), "analog": analog})
        for model, result in results.items():
            out[model][ticker] = result.predictions
    return out


def _shared(synthetic: tuple, folder: Path) -> dict[str, dict[str, pd.DataFrame]]:
    key = hashlib.sha256(json.dumps(synthetic).encode()).hexdigest()[:16]
    place = folder / "honesty" / key
    place.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(place) + ".lock"):
        if not (place / "done").exists():
            place.mkdir(exist_ok=True)
            for model, by_ticker in _compute(synthetic).items():
                for ticker, frame in by_ticker.items():
                    frame.to_parquet(place / f"{model}-{ticker}.parquet")
            (place / "done").write_text(json.dumps(list(_settings(synthetic).profile().tickers)))
        tickers = json.loads((place / "done").read_text())
    return {model: {t: pd.read_parquet(place / f"{model}-{t}.parquet") for t in tickers} for model in MODELS}


@functools.lru_cache(maxsize=None)
def walkforwards(synthetic: tuple, folder: Path | None = None) -> tuple[object, dict[str, dict[str, pd.DataFrame]]]:
    """The quick market of these synthetic settings and its predictions (`_compute`), cached in
    the process and, with `folder` (one the session's processes share), across processes."""
    settings = _settings(synthetic)
    market = generate_market(settings.profile(), settings.source.synthetic)
    return market, (_shared(synthetic, folder) if folder is not None else _compute(synthetic))


def walkforward_all(synthetic: dict, model: str, folder: Path | None = None
                    ) -> tuple[pd.DataFrame, object, dict[str, pd.DataFrame]]:
    """(every ticker's predictions pooled, the market, predictions per ticker) of `model`."""
    market, predictions = walkforwards(tuple(sorted(synthetic.items())), folder)
    results = predictions[model]
    return pd.concat(results.values(), ignore_index=True), market, results
