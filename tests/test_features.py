"""The feature registry and spot checks of feature values against hand computations."""

import json

import numpy as np
import pandas as pd
import pytest

from odyssey import features as F
from odyssey.fitting import ClipThresholds, MarketInputs
from tests.conftest import pipeline_for


def test_registry_has_94_unique_features_in_the_stated_categories():
    assert len(F.REGISTRY) == 94
    assert len(set(F.FEATURE_NAMES)) == 94
    counts = pd.Series([f.category for f in F.REGISTRY]).value_counts().to_dict()
    assert counts == F.CATEGORY_COUNTS
    table = F.registry_table()
    assert (table["version"] == F.REGISTRY_VERSION).all()
    assert table["formula"].str.len().min() > 2
    assert table["present"].all() and F.feature_names() == F.FEATURE_NAMES


ALT = set(F.ALL_ALT_SERIES)


def test_features_needing_an_absent_alternative_series_are_left_out():
    needs = {f.name: set(f.needs) & ALT for f in F.REGISTRY}
    assert {n for n, s in needs.items() if s} == {
        "Correlation_VIX_20d", "Correlation_Yield10Y_60d", "VIX_percentile_20d", "VIX_percentile_60d", "VIX_level",
        "VIX_change_5d", "Yield_10Y_change_20d", "DXY_return_20d", "Gold_return_20d"}
    none = F.feature_names(())
    assert len(none) == 94 - 9 and all(not needs[n] for n in none)
    assert list(none) == [n for n in F.FEATURE_NAMES if n in set(none)]  # registry order
    assert set(F.feature_names(("VIX",))) == set(none) | {n for n, s in needs.items() if s == {"VIX"}}
    table = F.registry_table(("DXY",))
    assert set(table.loc[table["present"], "name"]) == set(none) | {"DXY_return_20d"}
    assert table.set_index("name").loc["Correlation_Yield10Y_60d", "needs"] == "Yield_10Y"


def test_a_closes_only_market_leaves_out_the_volume_and_range_features():
    closes = F.feature_names((), ("close",))
    with_volume = F.feature_names((), ("close", "volume"))
    assert len(closes) == 85 - 22 and len(with_volume) == 85 - 14
    assert not any(f in closes for f in ("Volume_SMA_20_ratio", "ATR_14_rel", "VWAP_rel", "Garman_Klass_Vol"))
    assert "Volume_SMA_20_ratio" in with_volume and "VWAP_rel" not in with_volume
    assert {"RSI_14", "Realized_Vol_20", "Beta_SPY_60d", "Regime"} <= set(closes)


@pytest.mark.parametrize("field", ["open", "high", "low", "volume"])
def test_the_declared_bar_fields_are_exactly_what_each_feature_reads(quick_pipeline, field):
    """Change one bar field everywhere: the features that move are exactly those declaring it."""
    inputs = quick_pipeline.inputs
    pipeline = pipeline_for(quick_pipeline.profile)
    params = quick_pipeline.params
    base = pipeline.transform(inputs, params)
    rng = np.random.default_rng(0)
    clean = inputs.clean.copy()
    clean[field] = clean[field] * np.exp(rng.normal(0, 0.05, len(clean)))
    moved = pipeline.transform(MarketInputs(clean, inputs.returns, inputs.alt), params)
    changed = {n for n in pipeline.names
               if not np.allclose(base[n].to_numpy(), moved[n].to_numpy(), equal_nan=True, rtol=1e-12, atol=0)}
    declared = {n for n in pipeline.names if field in F.BY_NAME[n].needs}
    assert changed == declared


def test_feature_table_layout(quick_pipeline):
    table = quick_pipeline.features
    assert list(table.columns) == ["date", "ticker", *F.FEATURE_NAMES]
    assert len(table) == len(quick_pipeline.clean)
    assert not np.isinf(table[list(F.FEATURE_NAMES)].to_numpy()).any()


@pytest.mark.parametrize("ticker", ["AAPL", "SPY", "IEF"])
def test_lookback_is_exactly_the_leading_nan_window(quick_pipeline, ticker):
    rows = quick_pipeline.features[quick_pipeline.features["ticker"] == ticker]
    for feature in F.REGISTRY:
        isnan = rows[feature.name].isna().to_numpy()
        assert isnan[: feature.lookback].all(), feature.name
        assert not isnan[feature.lookback:].any(), feature.name


def _series(p, ticker, column, source="clean"):
    frame = p.clean if source == "clean" else ClipThresholds().apply(p.returns, p.params.clip)
    rows = frame[frame["ticker"] == ticker]
    return rows[column].to_numpy(dtype=float)


def _feature(p, ticker, name):
    return p.features.loc[p.features["ticker"] == ticker, name].to_numpy()


def test_moving_average_and_oscillator_values(quick_pipeline):
    p = quick_pipeline
    close = _series(p, "AAPL", "close")
    high = _series(p, "AAPL", "high")
    low = _series(p, "AAPL", "low")
    i = 700
    assert _feature(p, "AAPL", "SMA_20_rel")[i] == pytest.approx(close[i - 19 : i + 1].mean() / close[i] - 1, rel=1e-9)
    assert _feature(p, "AAPL", "Price_SMA_200_ratio")[i] == pytest.approx(close[i] / close[i - 199 : i + 1].mean() - 1, rel=1e-9)
    hh, ll = high[i - 13 : i + 1].max(), low[i - 13 : i + 1].min()
    assert _feature(p, "AAPL", "Stochastic_K")[i] == pytest.approx(100 * (close[i] - ll) / (hh - ll), rel=1e-9)
    assert _feature(p, "AAPL", "Williams_%R")[i] == pytest.approx(-100 * (hh - close[i]) / (hh - ll), rel=1e-9)
    assert _feature(p, "AAPL", "Momentum_12_1")[i] == pytest.approx(close[i - 21] / close[i - 252] - 1, rel=1e-9)
    # RSI with Wilder smoothing, written as the recursion
    delta = np.diff(close)
    gain, loss = np.clip(delta, 0, None), np.clip(-delta, 0, None)
    ag, al = gain[0], loss[0]
    for k in range(1, i):
        ag = ag + (gain[k] - ag) / 14
        al = al + (loss[k] - al) / 14
    assert _feature(p, "AAPL", "RSI_14")[i] == pytest.approx(100 - 100 / (1 + ag / al), rel=1e-9)


def test_return_volatility_and_beta_values(quick_pipeline):
    p = quick_pipeline
    r = _series(p, "NVDA", "log_return_clipped", "returns")
    spy = _series(p, "SPY", "log_return_clipped", "returns")
    i = 900
    window, market = r[i - 59 : i + 1], spy[i - 59 : i + 1]
    assert _feature(p, "NVDA", "Realized_Vol_20")[i] == pytest.approx(r[i - 19 : i + 1].std(ddof=1) * np.sqrt(252), rel=1e-9)
    assert _feature(p, "NVDA", "Return_20d")[i] == pytest.approx(r[i - 19 : i + 1].sum(), rel=1e-9)
    beta = np.cov(window, market, ddof=1)[0, 1] / market.var(ddof=1)
    assert _feature(p, "NVDA", "Beta_SPY_60d")[i] == pytest.approx(beta, rel=1e-7)
    assert _feature(p, "NVDA", "Correlation_SPY_60d")[i] == pytest.approx(np.corrcoef(window, market)[0, 1], rel=1e-7)
    assert np.nanmax(np.abs(_feature(p, "SPY", "Beta_SPY_60d") - 1.0)) < 1e-9


def test_market_wide_features_are_shared_and_correct(quick_pipeline):
    p = quick_pipeline
    table = p.features
    day = table["date"].unique()[500]
    rows = table[table["date"] == day]
    for name in ("Regime", "VIX_percentile_20d", "Market_breadth", "VIX_level"):
        assert rows[name].nunique() == 1, name
    closes = p.clean.pivot(index="date", columns="ticker", values="close")
    sma20 = closes.rolling(20).mean()
    assert rows["Market_breadth"].iloc[0] == pytest.approx((closes.loc[day] > sma20.loc[day]).mean())
    vix = p.alt.set_index("date")["VIX"]
    window = vix.loc[:day].iloc[-20:]
    assert rows["VIX_percentile_20d"].iloc[0] == pytest.approx((window <= window.iloc[-1]).mean())


def test_regimes_are_ordered_by_vix_and_durations_count_runs(quick_pipeline):
    p = quick_pipeline
    spy = p.features[p.features["ticker"] == "SPY"].dropna(subset=["Regime"])
    train = spy[spy["date"] <= pd.Timestamp(p.profile.train_end)]
    by_regime = np.log(train["VIX_level"]).groupby(train["Regime"]).mean()  # the clustered quantity
    assert list(by_regime.index) == [0.0, 1.0, 2.0]
    assert by_regime.is_monotonic_increasing
    regime = spy["Regime"].to_numpy()
    duration = spy["Regime_duration"].to_numpy()
    expected = np.ones(len(regime))
    for k in range(1, len(regime)):
        expected[k] = expected[k - 1] + 1 if regime[k] == regime[k - 1] else 1
    assert np.array_equal(duration, expected)
    assert p.params.regime["train_end"] == p.profile.train_end


def test_missing_benchmark_is_a_clear_error(quick_pipeline):
    p = quick_pipeline
    clean = p.clean[p.clean["ticker"] != "SPY"]
    returns = p.returns[p.returns["ticker"] != "SPY"]
    with pytest.raises(ValueError, match="benchmark 'SPY'"):
        pipeline_for(p.profile).fit_transform(MarketInputs(clean, returns, p.alt),
                                              end=pd.Timestamp(p.profile.train_end))
    with pytest.raises(ValueError, match="benchmark 'SPY'"):
        F.build_context(clean, None, p.alt, "SPY")


def test_a_zero_volume_day_does_not_blank_the_illiquidity_feature(quick_pipeline):
    p = quick_pipeline
    clean = p.clean.copy()
    row = clean.index[clean["ticker"] == "AAPL"][500]
    clean.loc[row, "volume"] = 0.0
    table = pipeline_for(p.profile).transform(MarketInputs(clean, p.returns, p.alt), p.params, ["AAPL"])
    aapl = table[table["ticker"] == "AAPL"]
    assert aapl["Amihud_illiquidity_20"].iloc[F.BY_NAME["Amihud_illiquidity_20"].lookback:].notna().all()


def test_fitted_parameters_do_not_depend_on_the_thread_count():
    """The regime K-means and the state map's PCA sum in an order that depends on the number of
    threads: fitted with 1 or 2, on the same data, they must be the same bit for bit (else the
    same config gives other numbers on another machine, or beside other work)."""
    import sklearn.cluster  # noqa: F401 - loads the OpenMP runtime, so the limits below reach it
    from threadpoolctl import threadpool_limits

    from odyssey.fitting import RegimeModel
    from odyssey.memory import StateEmbedding

    rng = np.random.default_rng(1)
    dates = pd.bdate_range("2010-01-04", periods=2500)
    state = pd.DataFrame(rng.standard_normal((2500, 4)), index=dates, columns=list("abcd"))
    rows = pd.DataFrame(rng.standard_normal((20000, 90)), columns=[f"f{i}" for i in range(90)])
    rows["date"] = np.repeat(dates[:2000], 10)
    embedding = StateEmbedding(columns=tuple(f"f{i}" for i in range(90)), dimensions=8)
    fits = []
    for threads in (1, 2):
        with threadpool_limits(threads):
            fits.append((RegimeModel().fit(state, None, dates[-1]), embedding.fit_rows(rows)))
    def exact(value) -> str:
        return json.dumps(value, sort_keys=True, default=lambda a: np.asarray(a).tolist())

    assert exact(fits[0][0]) == exact(fits[1][0])
    assert exact(fits[0][1]) == exact(fits[1][1])
