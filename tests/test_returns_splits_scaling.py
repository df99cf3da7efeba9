"""Returns clipping, target construction, purging and train-only scaling."""

import json

import numpy as np
import pandas as pd
import pytest

from odyssey import features as F
from odyssey.quality import scaled_train_moments
from odyssey.returns import clip_returns, fit_clip_thresholds, log_returns
from odyssey.scaling import apply_scaler, fit_scaler
from odyssey.splits import TARGET, make_splits


def test_clip_thresholds_come_from_the_train_period_only(quick_pipeline):
    p = quick_pipeline
    raw = log_returns(p.clean)
    changed = raw.copy()
    after = changed["date"] > pd.Timestamp(p.profile.train_end)
    changed.loc[after, "log_return"] *= 10
    assert fit_clip_thresholds(raw, p.profile.train_end) == fit_clip_thresholds(changed, p.profile.train_end)


def test_clipping_limits_returns_to_mean_plus_minus_three_sigma(quick_pipeline):
    r = quick_pipeline.returns
    th = quick_pipeline.thresholds["tickers"]["NVDA"]
    nvda = r[r["ticker"] == "NVDA"]
    train = nvda[nvda["date"] <= pd.Timestamp(quick_pipeline.profile.train_end)]["log_return"]
    assert th["upper"] == pytest.approx(train.mean() + 3 * train.std())
    assert nvda["log_return_clipped"].max() <= th["upper"] + 1e-15
    assert nvda["log_return_clipped"].min() >= th["lower"] - 1e-15
    assert (nvda["clipped"] == ((nvda["log_return"] > th["upper"]) | (nvda["log_return"] < th["lower"]))).all()
    assert 0 < nvda["clipped"].mean() < 0.05


def test_target_is_the_five_day_forward_log_return(quick_pipeline):
    table, _ = make_splits(quick_pipeline.features, quick_pipeline.clean, quick_pipeline.profile)
    clean = quick_pipeline.clean[quick_pipeline.clean["ticker"] == "AAPL"].reset_index(drop=True)
    row = table[(table["ticker"] == "AAPL")].iloc[300]
    i = clean.index[clean["date"] == row["date"]][0]
    assert row[TARGET] == pytest.approx(np.log(clean["close"].iloc[i + 5] / clean["close"].iloc[i]))


def test_rows_whose_target_crosses_a_boundary_are_purged(quick_pipeline):
    p = quick_pipeline
    table, report = make_splits(p.features, p.clean, p.profile)
    calendar = pd.bdate_range(p.profile.start, p.clean["date"].max())
    for split, end in (("train", p.profile.train_end), ("validation", p.profile.validation_end)):
        last_allowed = calendar[calendar.get_indexer([pd.Timestamp(end)], method="ffill")[0] - 5]
        rows = table[table["split"] == split]
        assert rows["date"].max() <= last_allowed
    n_tickers = len(p.profile.tickers)
    assert report["purged_boundary_rows"] == 2 * 5 * n_tickers
    assert report["dropped_no_target_rows"] == 5 * n_tickers
    assert table[TARGET].notna().all()


def test_scaler_is_fit_on_train_rows_only_and_stored_as_json(quick_pipeline):
    p = quick_pipeline
    table, _ = make_splits(p.features, p.clean, p.profile)
    params = fit_scaler(table, F.FEATURE_NAMES, F.REGISTRY_VERSION)
    shifted = table.copy()
    later = shifted["split"] != "train"
    shifted.loc[later, list(F.FEATURE_NAMES)] += 1000.0
    assert fit_scaler(shifted, F.FEATURE_NAMES, F.REGISTRY_VERSION) == params
    restored = json.loads(json.dumps(params))
    scaled = apply_scaler(table, restored)
    assert scaled_train_moments(scaled, F.FEATURE_NAMES).empty
    assert abs(scaled.loc[scaled["split"] == "test", "RSI_14"].mean()) < 1.0


def test_train_moment_rule_catches_a_scaler_fit_on_everything(quick_pipeline):
    p = quick_pipeline
    table, _ = make_splits(p.features, p.clean, p.profile)
    everything = table.assign(split="train")
    leaky = apply_scaler(table, fit_scaler(everything, F.FEATURE_NAMES, F.REGISTRY_VERSION))
    assert not scaled_train_moments(leaky, F.FEATURE_NAMES).empty
