"""The tick pipeline: the synthetic market and NDJSON messages, features against the streaming
reference, the honest label and the check that catches a label reading the current window, the
models and their metrics, honesty on a market without clustering, and the `ticks` group in
Dagster (gates, champion, replay, landing, drift and retraining)."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from odyssey.settings import TickSettings, TickSourceSettings
from odyssey.signing import SignatureError
from odyssey.sources.csv_source import SourceError
from odyssey.ticks.features import FEATURES, StreamingFeaturizer, Windows, order_ticks, tick_features, timestamp_ns
from odyssey.ticks.labels import PURGED, LabelSpec, label_dependence, label_table, split_labels
from odyssey.ticks.models import (LogisticModel, Scored, TreeTable, XGBoostModel, average_precision, block_weights,
                                  evaluate)
from odyssey.ticks.source import generate_ticks, next_days, read_tick_file, read_tick_files, tick_files, write_days
from odyssey.ticks.training import (beats_baseline_gate, beats_positive_rate_gate, candidate_card, load_tick_model,
                                    train_tick_models)

DATA = Path(__file__).parent / "data" / "ticks"
SMALL = TickSourceSettings(days=2, ticks_per_day=20_000)
NULL_MARKET = dict(branching_ratio=0.0, vol_of_vol=0.0, intensity_coupling=0.0)


@pytest.fixture(scope="module")
def small_ticks() -> pd.DataFrame:
    return order_ticks(generate_ticks(SMALL))


# --- source ---------------------------------------------------------------------------------------
def test_generator_is_seeded_and_more_days_continue_the_same_market():
    two = generate_ticks(SMALL)
    assert two.equals(generate_ticks(SMALL))
    three = generate_ticks(SMALL.model_copy(update={"days": 3}))
    assert three.iloc[:len(two)].reset_index(drop=True).equals(two)
    assert not generate_ticks(SMALL.model_copy(update={"seed": 12})).equals(two)
    assert (two["best_bid"] < two["best_ask"]).all() and two["timestamp"].is_monotonic_increasing
    assert two["price"].isin(pd.concat([two["best_bid"], two["best_ask"]])).all()


def _dispersion(ticks: pd.DataFrame) -> float:
    """Variance over mean of the messages per minute: 1 for Poisson arrivals, above for bursts."""
    counts = np.bincount((timestamp_ns(ticks["timestamp"]) // 60_000_000_000).astype(np.int64))
    counts = counts[counts.nonzero()[0][0]:]
    return float(counts.var() / counts.mean())


def test_arrivals_self_excite_and_the_null_market_does_not(small_ticks):
    assert _dispersion(small_ticks) > 3
    null = generate_ticks(SMALL.model_copy(update=NULL_MARKET))
    assert 0.7 < _dispersion(null) < 1.3
    assert abs(len(null) / 40_000 - 1) < 0.05 and abs(len(small_ticks) / 40_000 - 1) < 0.25


def test_drift_knob_raises_volatility_and_spread_from_its_day():
    ticks = order_ticks(generate_ticks(SMALL.model_copy(update={"drift_from_day": 1, "drift_multiplier": 3.0})))
    features = tick_features(ticks)
    day = features["timestamp"].dt.day - features["timestamp"].dt.day.min()
    before, after = features[day == 0], features[day == 1]
    assert after["rolling_vol"].median() > 2.2 * before["rolling_vol"].median()
    assert after["spread"].mean() > 1.5 * before["spread"].mean()


def test_ndjson_round_trip_is_exact(tmp_path, small_ticks):
    files = write_days(small_ticks, tmp_path)
    assert [p.name for p in files] == ["ticks_BTC-USD_20251117.ndjson", "ticks_BTC-USD_20251118.ndjson"]
    back, read = read_tick_files(tick_files(tmp_path), "BTC-USD")
    columns = ["timestamp", "product_id", "price", "best_bid", "best_ask"]
    pd.testing.assert_frame_equal(back[columns], small_ticks[columns])
    first = json.loads(files[0].read_text().splitlines()[0])
    assert first["channel"] == "ticker" and first["events"][0]["tickers"][0]["product_id"] == "BTC-USD"
    assert not list(tmp_path.glob(".*.tmp"))


def test_exchange_format_file_loads_through_the_same_path():
    """Messages in the exchange's format: the seed document's message, extra ticker fields, other
    channels and products, two tickers in one message, a blank line and a missing bid."""
    tick_file = read_tick_file(DATA / "ticker_messages.ndjson", "BTC-USD")
    ticks = tick_file.ticks
    assert ticks["source_line"].tolist() == [2, 4, 6, 8]
    assert ticks["timestamp"].iloc[0] == pd.Timestamp("2025-11-17T00:34:11.02474387Z")
    assert ticks.iloc[0][["price", "best_bid", "best_ask"]].tolist() == [94655.99, 94655.98, 94655.99]
    assert ticks.iloc[3]["best_bid"] == 94650.00  # a missing bid falls back to the price
    assert tick_file.skipped == 4
    assert len(read_tick_file(DATA / "ticker_messages.ndjson", "ETH-USD").ticks) == 2


def test_bad_lines_are_named_by_file_and_line(tmp_path):
    good = (DATA / "ticker_messages.ndjson").read_text().splitlines()
    path = tmp_path / "ticks_bad.ndjson"
    path.write_text("\n".join([good[1], "{not json", good[3], '{"channel":"ticker","events":[]}']) + "\n")
    with pytest.raises(SourceError, match=r"ticks_bad.ndjson: not JSON on line 2; a ticker message needs "
                                          r"'timestamp' .* on line 4"):
        read_tick_file(path, "BTC-USD")
    path.write_text("\n".join([good[1].replace('"94655.98"', '"abc"'), good[3], good[1].replace('"94655.98"', '"x"'),
                               good[1].replace('"tickers": [{', '"tickers": ["BTC-USD", {')]) + "\n")
    with pytest.raises(SourceError, match=r"ticks_bad.ndjson: field 'best_bid' is not a number on lines 1, 3; "
                                          r"a ticker is not an object on line 4"):
        read_tick_file(path, "BTC-USD")
    path.write_text(good[1].replace("2025-11-17T00:34:11.02474387Z", "yesterday") + "\n")
    with pytest.raises(SourceError, match=r"field 'timestamp' is not an ISO-8601 time on line 1"):
        read_tick_file(path, "BTC-USD")


# --- features -------------------------------------------------------------------------------------
def test_vectorised_features_equal_the_streaming_featurizer(small_ticks):
    ticks = small_ticks.iloc[:5000]
    table = tick_features(ticks)
    stream = StreamingFeaturizer()
    t = (timestamp_ns(ticks["timestamp"]) - timestamp_ns(ticks["timestamp"])[0]) / 1e9
    rows = [out for out in (stream.update(*x) for x in zip(t, ticks["price"], ticks["best_bid"], ticks["best_ask"]))
            if out is not None]
    reference = pd.DataFrame(rows)
    assert len(reference) == len(table) == len(ticks) - 60
    for name in FEATURES:
        np.testing.assert_allclose(table[name], reference[name], rtol=1e-7, atol=1e-12, err_msg=name)


def test_features_at_a_message_never_see_later_messages(small_ticks):
    full = tick_features(small_ticks.iloc[:3000])
    cut = tick_features(small_ticks.iloc[:2000])
    pd.testing.assert_frame_equal(full.iloc[:len(cut)], cut)


def test_window_features_on_a_hand_built_tape():
    times = [0.0, 10.0, 20.0, 30.0, 100.0, 101.0]
    mids = [100.0, 101.0, 100.0, 102.0, 102.0, 101.0]
    ticks = pd.DataFrame({"timestamp": pd.to_datetime(np.array(times) * 1e9, utc=True), "product_id": "X",
                          "best_bid": np.array(mids) - 0.5, "best_ask": np.array(mids) + 0.5,
                          "price": [100.5, 100.5, 99.5, 102.5, 101.5, 100.5]})
    table = tick_features(ticks, Windows(ticks=3, short_ticks=2, seconds=25.0))
    r = np.diff(np.log(mids))
    assert table["tick"].tolist() == [3, 4, 5]
    np.testing.assert_allclose(table["rolling_vol"], [np.std(r[i - 3:i], ddof=1) for i in (3, 4, 5)])
    np.testing.assert_allclose(table["trade_intensity"], [3 / 30, 3 / 90, 3 / 81])
    assert table["messages_s"].tolist() == [3.0, 1.0, 2.0]  # (5, 30], (75, 100], (76, 101]
    np.testing.assert_allclose(table["realised_vol_s"], [np.sqrt(np.sum(r[0:3] ** 2)), abs(r[3]),
                                                         np.sqrt(r[3] ** 2 + r[4] ** 2)])
    # sides: +1 at the ask, -1 at the bid: +1 -1 -1 +1 -1 -1
    np.testing.assert_allclose(table["trade_imbalance"], [-1 / 3, -1 / 3, -1 / 3])
    # price changes: 0 0 -1 +1 -1 -1
    np.testing.assert_allclose(table["tick_rule_imbalance"], [0.0, -1 / 3, -1 / 3], atol=1e-15)
    assert table["spread"].tolist() == [1.0, 1.0, 1.0]


# --- labels ---------------------------------------------------------------------------------------
def test_forward_label_reads_only_the_next_messages(small_ticks):
    features = tick_features(small_ticks.iloc[:2000])
    spec = LabelSpec(horizon=60)
    forward = spec.quantity(features)
    r = features["midprice_return"].to_numpy()
    for i in (0, 500, 1000):
        assert forward[i] == pytest.approx(np.std(r[i + 1:i + 61], ddof=1), rel=1e-9)
    assert np.isnan(forward[-60:]).all() and np.isfinite(forward[:-60]).all()


def test_split_is_chronological_with_purged_boundaries():
    labelled = np.r_[np.ones(1000, bool), np.zeros(60, bool)]
    split = split_labels(1060, labelled, 0.6, 0.2, purge=60)
    assert (split[:540] == "train").all() and (split[540:600] == PURGED).all()
    assert (split[600:740] == "validation").all() and (split[740:800] == PURGED).all()
    assert (split[800:1000] == "test").all() and (split[1000:] == "unlabelled").all()


def test_tau_is_fitted_on_the_train_part_only(small_ticks):
    features = tick_features(small_ticks)
    table, params = label_table(features, LabelSpec(), 0.6, 0.2)
    train = table[table["split"] == "train"]
    assert params["tau"] == np.quantile(train["forward_vol"], 0.95)
    assert (table.loc[table["split"] == PURGED, "tick"].diff().dropna() > 0).all()
    calmer = features.copy()
    later = table["split"].isin(["validation", "test"]).to_numpy()
    calmer.loc[later, "midprice_return"] *= 0.1
    assert label_table(calmer, LabelSpec(), 0.6, 0.2)[1]["tau"] == params["tau"]


def test_dependence_check_passes_the_forward_label_and_rejects_planted_leaks(small_ticks):
    windows = Windows()
    honest = label_dependence(small_ticks, LabelSpec("forward"), windows, cuts=10)
    assert honest.passed and honest.changed == 0 and honest.tried == 10
    seed_label = label_dependence(small_ticks, LabelSpec("contemporaneous"), windows, cuts=10)
    assert not seed_label.passed and seed_label.changed == 10

    class OffByOne(LabelSpec):
        """A forward window that starts one message early: returns i .. i+H-1."""

        def quantity(self, features):
            return np.r_[LabelSpec.quantity(self, features)[-1:], LabelSpec.quantity(self, features)[:-1]]

    leak = label_dependence(small_ticks, OffByOne("forward"), windows, cuts=10)
    assert not leak.passed and leak.changed == 10


def test_dependence_check_holds_the_stored_labels_to_the_definition(small_ticks):
    features = tick_features(small_ticks)
    table, _ = label_table(features, LabelSpec(), 0.6, 0.2)
    stored = table.set_index("tick")["forward_vol"]
    assert label_dependence(small_ticks, LabelSpec(), Windows(), cuts=5, stored=stored).passed
    shifted = stored.shift(1)  # labels stored one message off
    result = label_dependence(small_ticks, LabelSpec(), Windows(), cuts=5, stored=shifted)
    assert not result.passed and "stored labels differ" in result.reason


def test_label_quantity_of_a_short_table_is_unlabelled():
    features = tick_features(order_ticks(generate_ticks(SMALL)).iloc[:100])  # 40 rows, horizon 60
    assert np.isnan(LabelSpec(horizon=60).quantity(features)).all()


# --- models and metrics ---------------------------------------------------------------------------
def test_average_precision_matches_scikit_learn_with_ties_and_weights():
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=3000) < 0.1).astype(float)
    score = np.round(y * 0.3 + rng.uniform(size=3000), 2)  # many ties
    assert average_precision(y, score) == pytest.approx(average_precision_score(y, score), abs=1e-12)
    weights = rng.integers(0, 3, 3000).astype(float)
    assert average_precision(y, score, weights) == pytest.approx(
        average_precision_score(y, score, sample_weight=weights), abs=1e-12)


def test_block_weights_are_the_counts_of_whole_resampled_blocks():
    """Against the index-matrix bootstrap the daily models use (odyssey.metrics), same seed."""
    from odyssey.metrics import block_bootstrap_indices

    indices = block_bootstrap_indices(1000, block=50, reps=5, seed=1)
    for rep, weights in enumerate(block_weights(1000, 50, 5, seed=1)):
        np.testing.assert_array_equal(weights, np.bincount(indices[rep], minlength=1000))
    assert all((w == 1).all() for w in block_weights(300, 300, 3))  # one block: the rows themselves


@pytest.fixture(scope="module")
def trained(small_ticks):
    features = tick_features(small_ticks)
    table, params = label_table(features, LabelSpec(), 0.6, 0.2)
    data = features.merge(table[["tick", "split", "y"]], on="tick")
    settings = TickSettings(bootstrap_reps=60)
    return data, params["tau"], settings, train_tick_models(data, params["tau"], settings)


def test_tree_table_scores_a_message_as_xgboost_does(trained):
    data, _, _, training = trained
    model: XGBoostModel = training.models["xgboost"]
    rows = data[data["split"] == "test"].iloc[:200]
    table = TreeTable.of(model)
    ours = np.array([table.score_row(x) for x in rows[list(model.features)].to_numpy(np.float32)])
    np.testing.assert_allclose(ours, model.score(rows), rtol=1e-5, atol=1e-6)
    # a model without class weights: XGBoost fits a base score away from 0.5, which the table must carry
    import xgboost as xgb

    train = data[data["split"] == "train"]
    plain = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1, "seed": 0},
                      xgb.DMatrix(train[list(model.features)].to_numpy(np.float32), label=train["y"].to_numpy(),
                                  feature_names=list(model.features)), 20)
    unweighted = XGBoostModel(plain, model.features, 19)
    assert TreeTable.of(unweighted).base_margin < -1  # about 5 % positives
    np.testing.assert_allclose([TreeTable.of(unweighted).score_row(x) for x in rows[list(model.features)].to_numpy(
        np.float32)], unweighted.score(rows), rtol=1e-5, atol=1e-6)
    x = rows[list(model.features)].to_numpy(np.float32)[0].copy()
    x[1] = np.nan  # a missing value takes XGBoost's default branch
    assert table.score_row(x) == pytest.approx(float(model.booster.inplace_predict(
        x[None, :], iteration_range=(0, model.best_iteration + 1))[0]), rel=1e-5)


def test_models_are_stored_without_pickle_and_tampering_is_caught(trained):
    data, tau, settings, training = trained
    key = b"k" * 32
    for kind in ("logistic", "xgboost"):
        payload, card = candidate_card(dataclasses.replace(training, candidate=kind), settings, data, tau, "sha", key)
        assert not payload.startswith(b"\x80")  # not a pickle
        if kind == "logistic":
            assert json.loads(payload)["kind"] == "logistic"
        model = load_tick_model(payload, card, key)
        rows = data[data["split"] == "test"]
        np.testing.assert_allclose(model.score(rows), training.models[kind].score(rows), rtol=1e-6)
        with pytest.raises(SignatureError, match="SHA-256 mismatch"):
            load_tick_model(payload[:-1] + bytes([payload[-1] ^ 1]), card, key)
        with pytest.raises(SignatureError, match="HMAC"):
            load_tick_model(payload, card, b"another key")
    assert LogisticModel.from_json(training.models["logistic"].to_json()) == training.models["logistic"]


def test_default_market_models_beat_the_baseline_and_the_positive_rate(trained):
    data, tau, settings, training = trained
    table = training.evaluation.set_index(["model", "split"])
    candidate = table.loc[(training.candidate, "test")]
    assert candidate["pr_auc"] > table.loc[("baseline", "test"), "pr_auc"]
    assert candidate["pr_auc_ci_low"] > candidate["positive_rate"]
    _, card = candidate_card(training, settings, data, tau, "sha", b"k")
    assert beats_positive_rate_gate(card).passed
    assert beats_baseline_gate(card, settings.baseline_margin).passed
    assert training.models["logistic"].iterations <= settings.models.logistic_max_iter


def _train_on(source: TickSourceSettings, label: str = "forward"):
    ticks = order_ticks(generate_ticks(source))
    features = tick_features(ticks)
    spec = LabelSpec(label)
    table, params = label_table(features, spec, 0.6, 0.2)
    data = features.merge(table[["tick", "split", "y"]], on="tick")
    settings = TickSettings(bootstrap_reps=100, label=label)
    training = train_tick_models(data, params["tau"], settings)
    return training, candidate_card(training, settings, data, params["tau"], "sha", b"k")[1]


def test_on_a_market_without_clustering_no_model_finds_skill():
    training, card = _train_on(TickSourceSettings(days=3, ticks_per_day=20_000, **NULL_MARKET))
    table = training.evaluation.set_index(["model", "split"])
    for model in ("logistic", "xgboost"):
        row = table.loc[(model, "test")]
        assert row["pr_auc_ci_low"] <= row["positive_rate"] <= row["pr_auc_ci_high"], model
        assert abs(row["pr_auc"] - row["positive_rate"]) < 0.03, model
    assert not beats_positive_rate_gate(card).passed
    assert not beats_baseline_gate(card, 0.02).passed


def test_the_seed_label_scores_near_one_and_means_nothing():
    training, _ = _train_on(SMALL, label="contemporaneous")
    table = training.evaluation.set_index(["model", "split"])
    assert table.loc[("baseline", "test"), "pr_auc"] == pytest.approx(1.0)
    assert table.loc[("logistic", "test"), "pr_auc"] > 0.95


def test_paired_difference_of_a_model_with_itself_is_zero():
    rng = np.random.default_rng(3)
    y = (rng.uniform(size=2000) < 0.1).astype(float)
    score = rng.uniform(size=2000)
    decided = (score > 0.9).astype(np.int8)
    table = evaluate([Scored("baseline", "test", y, score, decided), Scored("same", "test", y, score, decided)],
                     block=50, reps=50, level=0.9).set_index("model")
    assert table.loc["same", "pr_auc_minus_baseline"] == 0
    assert table.loc["same", "pr_auc_minus_baseline_ci_low"] == table.loc["same", "pr_auc_minus_baseline_ci_high"] == 0


def test_next_days_continue_after_the_last_stored_tick():
    ticks = generate_ticks(SMALL)
    more = next_days(SMALL, "BTC-USD", ticks["timestamp"].max(), 1)
    assert more["timestamp"].min() >= pd.Timestamp("2025-11-19", tz="UTC") > ticks["timestamp"].max()
    expected = generate_ticks(SMALL.model_copy(update={"days": 3}))
    pd.testing.assert_frame_equal(more, expected.iloc[len(ticks):].reset_index(drop=True))


def test_messages_stamped_at_the_same_time_stay_causal_and_streamable():
    """A burst of messages with one timestamp (exchanges batch them): the window's elapsed time is
    0, and the intensity must still use nothing later and agree with the streaming featurizer."""
    stamps = np.r_[np.arange(70) * 0.5, np.full(70, 40.0), 40.0 + np.arange(1, 61) * 0.25]
    mids = 100 + np.cumsum(np.random.default_rng(4).normal(0, 0.01, len(stamps)))
    ticks = pd.DataFrame({"timestamp": pd.to_datetime(stamps * 1e9, utc=True), "product_id": "X",
                          "best_bid": mids - 0.005, "best_ask": mids + 0.005, "price": mids + 0.005})
    full = tick_features(ticks)
    assert full["trade_intensity"].max() == 60 / 1e-3
    for end in (135, 150, 200):
        pd.testing.assert_frame_equal(full.iloc[:end - 60], tick_features(ticks.iloc[:end]))
    stream = StreamingFeaturizer()
    rows = [out for out in (stream.update(*x) for x in zip(stamps, ticks["price"], ticks["best_bid"],
                                                            ticks["best_ask"])) if out is not None]
    np.testing.assert_allclose(full["trade_intensity"], pd.DataFrame(rows)["trade_intensity"])


def test_same_data_and_settings_give_the_same_models_and_numbers(trained):
    data, tau, settings, first = trained
    again = train_tick_models(data, tau, settings)
    pd.testing.assert_frame_equal(first.evaluation, again.evaluation)
    assert first.models["xgboost"].to_bytes() == again.models["xgboost"].to_bytes()
    assert first.models["logistic"] == again.models["logistic"]
