"""The vectorised feature builder agrees with the per-ticker reference implementation (quick
profile), with every alternative series and with none."""

import numpy as np
import pandas as pd
import pytest

from bench.reference_features import reference_features
from odyssey import features as F
from odyssey.fitting import ClipThresholds, FeaturePipeline, MarketInputs

ALT_SETS = {"all_alt_series": ("VIX", "DXY", "Gold", "Yield_10Y"), "no_alt_series": ()}


@pytest.fixture(scope="module", params=list(ALT_SETS))
def built(request, quick_pipeline):
    """(vectorised table, reference table, feature names) for one set of alternative series."""
    p = quick_pipeline
    series = ALT_SETS[request.param]
    names = F.feature_names(series)
    alt = p.alt[["date", *series]]
    if series == tuple(p.profile.alt_series):
        params, vectorised = p.params, p.features
    else:
        pipeline = FeaturePipeline(p.profile.benchmark, names, scale=False)
        params, vectorised = pipeline.fit_transform(MarketInputs(p.clean, p.returns, alt),
                                                    end=pd.Timestamp(p.profile.train_end))
        vectorised = vectorised.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    clipped = ClipThresholds().apply(p.returns, params.clip)
    clean = p.clean.sort_values(["ticker", "date"], kind="stable")  # the vectorised table's row order
    reference = reference_features(clean, clipped, alt, params.regime, benchmark=p.profile.benchmark)
    return vectorised, reference, names


def test_reference_has_the_same_layout(built):
    vectorised, reference, names = built
    assert list(reference.columns) == ["date", "ticker", *names]
    assert list(vectorised.columns) == list(reference.columns)
    assert len(reference) == len(vectorised)
    np.testing.assert_array_equal(reference["ticker"].to_numpy(), vectorised["ticker"].to_numpy())
    np.testing.assert_array_equal(reference["date"].to_numpy(), vectorised["date"].to_numpy())


@pytest.mark.parametrize("name", F.FEATURE_NAMES)
def test_feature_matches_reference(built, name):
    vectorised, reference, names = built
    if name not in names:
        assert name not in vectorised.columns and name not in reference.columns
        return
    got = vectorised[name].to_numpy(dtype=float)
    want = reference[name].to_numpy(dtype=float)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{name}: NaN positions differ")
    assert np.isfinite(want).any(), f"{name}: no values to compare"
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9, equal_nan=True, err_msg=name)
