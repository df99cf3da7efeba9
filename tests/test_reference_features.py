"""The vectorised feature builder agrees with the per-ticker reference implementation (quick profile)."""

import numpy as np
import pytest

from bench.reference_features import reference_features
from odyssey import features as F


@pytest.fixture(scope="module")
def reference(quick_pipeline):
    p = quick_pipeline
    return reference_features(p.clean, p.returns, p.alt, p.regime_model, benchmark="SPY")


def test_reference_has_the_same_layout(quick_pipeline, reference):
    vectorised = quick_pipeline.features
    assert list(reference.columns) == ["date", "ticker", *F.FEATURE_NAMES]
    assert list(vectorised.columns) == list(reference.columns)
    assert len(reference) == len(vectorised)
    np.testing.assert_array_equal(reference["ticker"].to_numpy(), vectorised["ticker"].to_numpy())
    np.testing.assert_array_equal(reference["date"].to_numpy(), vectorised["date"].to_numpy())


@pytest.mark.parametrize("name", F.FEATURE_NAMES)
def test_feature_matches_reference(quick_pipeline, reference, name):
    got = quick_pipeline.features[name].to_numpy(dtype=float)
    want = reference[name].to_numpy(dtype=float)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{name}: NaN positions differ")
    assert np.isfinite(want).any(), f"{name}: no values to compare"
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9, equal_nan=True, err_msg=name)
