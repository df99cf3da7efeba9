"""Returns and their clipping, target construction, purging and train-only scaling."""

import json

import numpy as np
import pandas as pd
import pytest

from odyssey import features as F
from odyssey.calendar import sessions
from odyssey.fitting import ClipThresholds, Scaler, log_returns
from odyssey.quality import scaled_train_moments
from odyssey.splits import forward_returns, make_splits, target_name

TARGET = target_name(5)


@pytest.fixture(scope="module")
def splits(quick_pipeline):
    p = quick_pipeline
    return make_splits(p.features, p.clean, p.profile, horizon=5)


def _with_dividends(clean: pd.DataFrame) -> pd.DataFrame:
    """The clean table with an adjusted close that also accrues 2 bp of distributions a session."""
    out = clean.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    sessions_in = out.groupby("ticker").cumcount().to_numpy()
    return out.assign(adj_close=out["close"] * np.exp(0.0002 * sessions_in))


def test_returns_are_total_log_returns_from_the_adjusted_close(quick_pipeline):
    p = quick_pipeline
    assert list(p.returns.columns) == ["date", "ticker", "log_return"]
    adjusted = _with_dividends(p.clean)
    aapl = adjusted[adjusted["ticker"] == "AAPL"]
    r = log_returns(adjusted)
    got = r.loc[r["ticker"] == "AAPL", "log_return"].to_numpy()
    assert np.isnan(got[0])
    np.testing.assert_allclose(got[1:], np.diff(np.log(aapl["adj_close"].to_numpy())), rtol=1e-12)
    assert np.nanmean(got - np.r_[np.nan, np.diff(np.log(aapl["close"].to_numpy()))]) == pytest.approx(0.0002)
    # without an adjusted close, from the close
    plain = log_returns(adjusted.drop(columns="adj_close"))
    np.testing.assert_allclose(plain.loc[plain["ticker"] == "AAPL", "log_return"].to_numpy()[1:],
                               np.diff(np.log(aapl["close"].to_numpy())), rtol=1e-12)


def test_clip_thresholds_come_from_the_train_period_only(quick_pipeline):
    p = quick_pipeline
    raw = log_returns(p.clean)
    end = pd.Timestamp(p.profile.train_end)
    changed = raw.copy()
    changed.loc[changed["date"] > end, "log_return"] *= 10
    clip = ClipThresholds(3.0)
    assert clip.fit(raw, None, end) == clip.fit(changed, None, end)
    # with a window start, returns before it do not count either
    start = pd.Timestamp("2016-01-04")
    earlier = raw.copy()
    earlier.loc[earlier["date"] < start, "log_return"] *= 10
    assert clip.fit(raw, start, end) == clip.fit(earlier, start, end)
    assert clip.fit(raw, start, end) != clip.fit(raw, None, end)


def test_clipping_limits_returns_to_mean_plus_minus_three_sigma(quick_pipeline):
    p = quick_pipeline
    th = p.params.clip["tickers"]["NVDA"]
    assert p.params.clip["n_sigma"] == 3.0 and p.params.clip["train_end"] == p.profile.train_end
    r = ClipThresholds().apply(p.returns, p.params.clip)
    nvda = r[r["ticker"] == "NVDA"]
    train = nvda[nvda["date"] <= pd.Timestamp(p.profile.train_end)]["log_return"]
    assert th["upper"] == pytest.approx(train.mean() + 3 * train.std())
    assert th["lower"] == pytest.approx(train.mean() - 3 * train.std())
    assert nvda["log_return_clipped"].max() <= th["upper"] + 1e-15
    assert nvda["log_return_clipped"].min() >= th["lower"] - 1e-15
    assert (nvda["clipped"] == ((nvda["log_return"] > th["upper"]) | (nvda["log_return"] < th["lower"]))).all()
    assert 0 < nvda["clipped"].mean() < 0.05
    with pytest.raises(ValueError, match=r"no clip thresholds for tickers \['XYZ'\]"):
        ClipThresholds().apply(p.returns.assign(ticker="XYZ"), p.params.clip)


def test_target_is_the_five_day_forward_log_return(quick_pipeline, splits):
    table, _ = splits
    clean = quick_pipeline.clean[quick_pipeline.clean["ticker"] == "AAPL"].reset_index(drop=True)
    row = table[(table["ticker"] == "AAPL")].iloc[300]
    i = clean.index[clean["date"] == row["date"]][0]
    assert row[TARGET] == pytest.approx(np.log(clean["adj_close"].iloc[i + 5] / clean["adj_close"].iloc[i]))
    # a total return: from the adjusted close when the table has one, else the close
    adjusted = _with_dividends(quick_pipeline.clean)
    aapl = adjusted[adjusted["ticker"] == "AAPL"].reset_index(drop=True)
    target = forward_returns(adjusted, 5)
    got = target.loc[target["ticker"] == "AAPL"].reset_index(drop=True)
    assert got.loc[300, TARGET] == pytest.approx(np.log(aapl["adj_close"][305] / aapl["adj_close"][300]))
    assert got.loc[300, "target_end"] == aapl["date"][305]
    assert got[TARGET].isna().sum() == 5
    plain = forward_returns(adjusted.drop(columns="adj_close"), 3)
    plain = plain.loc[plain["ticker"] == "AAPL"].reset_index(drop=True)
    assert plain.loc[300, target_name(3)] == pytest.approx(np.log(aapl["close"][303] / aapl["close"][300]))


def test_rows_whose_target_crosses_a_boundary_are_purged(quick_pipeline, splits):
    p = quick_pipeline
    table, report = splits
    calendar = sessions(p.profile.start, p.clean["date"].max(), p.profile.exchange)
    for split, end in (("train", p.profile.train_end), ("validation", p.profile.validation_end)):
        # the last row whose 5-session target ends on or before the boundary's session
        last_allowed = calendar[calendar.get_indexer([pd.Timestamp(end)], method="ffill")[0] - 5]
        rows = table[table["split"] == split]
        assert rows["date"].max() == last_allowed
    n_tickers = len(p.profile.tickers)
    assert report["purged_boundary_rows"] == 2 * 5 * n_tickers
    assert report["dropped_no_target_rows"] == 5 * n_tickers
    assert table[TARGET].notna().all()


def test_scaler_is_fit_on_train_rows_only_and_stored_as_json(quick_pipeline, splits):
    p = quick_pipeline
    table, _ = splits
    scaler = Scaler(F.FEATURE_NAMES)
    params = scaler.fit_rows(table[table["split"] == "train"])
    assert scaler.fit(table, None, pd.Timestamp(p.profile.train_end)) == params  # the date window is the split
    shifted = table.copy()
    later = shifted["split"] != "train"
    shifted.loc[later, list(F.FEATURE_NAMES)] += 1000.0
    assert scaler.fit_rows(shifted[shifted["split"] == "train"]) == params
    assert scaler.fit(shifted, None, pd.Timestamp(p.profile.train_end)) == params
    restored = json.loads(json.dumps(params))
    scaled = scaler.apply(table, restored)
    assert scaled_train_moments(scaled, F.FEATURE_NAMES).empty
    assert abs(scaled.loc[scaled["split"] == "test", "RSI_14"].mean()) < 1.0


def test_train_moment_rule_catches_a_scaler_fit_on_everything(splits):
    table, _ = splits
    scaler = Scaler(F.FEATURE_NAMES)
    leaky = scaler.apply(table, scaler.fit_rows(table))
    assert not scaled_train_moments(leaky, F.FEATURE_NAMES).empty
