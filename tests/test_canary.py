"""The leakage canary passes the honest walk-forward and fails on each planted leak: a feature
that looks one day ahead, folds with no purge or embargo, and a scaler fitted on all rows."""

import dataclasses

import pandas as pd
import pytest

from odyssey.canary import leakage_canary
from odyssey.fitting import FeaturePipeline
from odyssey.settings import WalkForwardSettings, XGBParams
from odyssey.walkforward import WalkForward
from tests.dagster_helpers import FAST_XGB

TICKER = "NVDA"


@dataclasses.dataclass(frozen=True)
class LookAheadPipeline(FeaturePipeline):
    """Return_1d replaced by the next session's return: one day into the future."""

    def fit_transform(self, *args, **kwargs):
        params, table = super().fit_transform(*args, **kwargs)
        table = table.sort_values(["ticker", "date"]).copy()
        table["Return_1d"] = table.groupby("ticker")["Return_1d"].shift(-1)
        return params, table


@dataclasses.dataclass(frozen=True)
class ScalerOnAllRows(FeaturePipeline):
    """The scaler fitted on every row, the future included."""

    def fit_transform(self, inputs, end, start=None, tickers=None, unfitted=None, scaler_rows=None):
        return super().fit_transform(inputs, end, start, tickers, unfitted, scaler_rows=pd.DataFrame(
            {"date": inputs.clean["date"], "ticker": inputs.clean["ticker"]}))


@pytest.fixture(scope="module")
def pipeline(quick_pipeline):
    profile = quick_pipeline.profile
    from odyssey import features as F

    return dict(benchmark=profile.benchmark, names=F.feature_names(profile.alt_series))


def _walkforward(pipeline_class, pipeline, **folds) -> WalkForward:
    return WalkForward(pipeline_class(**pipeline), XGBParams(**FAST_XGB), WalkForwardSettings(), horizon=5, **folds)


@pytest.mark.parametrize("case, walkforward, passes", [
    ("honest", lambda p: _walkforward(FeaturePipeline, p), True),
    ("feature one day ahead", lambda p: _walkforward(LookAheadPipeline, p), False),
    ("folds without purge or embargo", lambda p: _walkforward(FeaturePipeline, p, purge=0, embargo=0), False),
    ("scaler fitted on all rows", lambda p: _walkforward(ScalerOnAllRows, p), False),
])
def test_the_canary_fails_every_planted_leak_and_passes_the_honest_pipeline(quick_pipeline, pipeline, case,
                                                                            walkforward, passes):
    # the honest pipeline on three folds; a planted leak shows on the first fold already
    folds = 3 if passes else 1
    result = leakage_canary(walkforward(pipeline), quick_pipeline.inputs, TICKER, n_folds=folds)
    assert result.passed is passes, (case, result.reason)
    assert result.details()["folds_checked"] == folds
    if not passes:
        assert "suspected leakage" in result.reason
        assert result.details()["rows_changed"] > 0
