"""The honesty tests' walk-forwards on the three synthetic markets, computed once per test process
for XGBoost and the analog forecast (tests/test_honesty.py) on the same folds."""

import functools

import pandas as pd

from odyssey.memory import AnalogFolds
from odyssey.sources.synthetic import generate_market
from odyssey.walkforward import XGBoostFolds, walkforward_from_settings
from tests.conftest import QUICK, run_pipeline


@functools.lru_cache(maxsize=None)
def walkforwards(synthetic: tuple) -> tuple[object, dict[str, dict[str, pd.DataFrame]], pd.DataFrame]:
    """The quick market of these synthetic settings, and every ticker's out-of-sample predictions
    of the default XGBoost and of the analog forecast (market memory) on the same folds, and the
    daily log returns; cached, as the analog's honesty tests use the same markets."""
    settings = QUICK.updated({"source": {"synthetic": dict(synthetic)}})
    profile = settings.profile()
    market = generate_market(profile, settings.source.synthetic)
    inputs = run_pipeline(profile, market.data).inputs
    wf = walkforward_from_settings(settings, settings.forecast.xgboost.model_copy(update={"nthread": 2}))
    out: dict[str, dict[str, pd.DataFrame]] = {"xgboost": {}, "analog": {}}
    for ticker in profile.tickers:
        analog = AnalogFolds(settings.memory.dimensions, settings.memory.k)
        results = wf.run_models(inputs, ticker, {"xgboost": XGBoostFolds(wf), "analog": analog})
        for model, result in results.items():
            out[model][ticker] = result.predictions
    return market, out, inputs.returns


def walkforward_all(synthetic: dict, model: str) -> tuple[pd.DataFrame, object, dict[str, pd.DataFrame]]:
    """(every ticker's predictions pooled, the market, predictions per ticker) of `model`."""
    market, predictions, _ = walkforwards(tuple(sorted(synthetic.items())))
    results = predictions[model]
    return pd.concat(results.values(), ignore_index=True), market, results


def family_deploys(synthetic: dict, model: str = "xgboost") -> tuple[str, ...]:
    """The tickers the family-wise skill rule (the quick preset's gates) deploys on this market."""
    from odyssey.skill import daily_simple_returns, family_decision, skill_evidence

    _, predictions, returns = walkforwards(tuple(sorted(synthetic.items())))
    gates, horizon, rate = QUICK.gates, QUICK.forecast.horizon, QUICK.costs.rate
    p = {ticker: skill_evidence(frame, daily_simple_returns(returns, ticker), horizon, rate).p
         for ticker, frame in predictions[model].items()}
    return family_decision(p, gates.variants_tried, gates.family_method, gates.family_rate).deploy
