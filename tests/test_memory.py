"""Market memory: the index answers exactly what a brute-force search answers, never returns a
state whose forward return was not yet realised, persists across processes and refuses a second
process cleanly, updates incrementally, and the analog forecast is honest on the null and planted
markets."""

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from qdrant_client import models

from jobs.analogs import main as analogs_command
from jobs.main import open_instance
from odyssey.memory import (AnalogFolds, IndexBusy, QuestionTooEarly, StateEmbedding, build_states, day_number,
                            embed, exact_neighbours, fit_ends, in_memory_index, newest_fit, payload_hash, point_id,
                            realised_days, route, walkforward_analogs)
from odyssey.fitting import MarketInputs, feature_pipeline, log_returns
from odyssey.settings import load_settings, preset_path
from odyssey.walkforward import Fold, FoldData, walkforward_from_settings
from resources.memory import QdrantIndex, ask
from sensors.memory import memory_after_states
from tests.conftest import QUICK
from tests.dagster_helpers import materialized, quick_settings, read_table, run_graph, step_errors

REPO = Path(__file__).resolve().parent.parent


def _states(tickers=("AAA", "BBB"), days=600, dims=8, horizon=5, seed=0, fit_end="2014-12-31") -> pd.DataFrame:
    """Random states on business days from 2015, embedded by one fit ending on `fit_end`; the last
    `horizon` sessions of each ticker not yet realised."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-01", periods=days)
    frames = []
    for ticker in tickers:
        realised = pd.Series(dates).shift(-horizon)
        frame = pd.DataFrame({"fit_end": pd.Timestamp(fit_end), "id": [point_id(ticker, d) for d in dates],
                              "date": dates, "ticker": ticker,
                              "regime": rng.integers(0, 3, days).astype(float),
                              "forward_return": np.where(realised.notna(), rng.normal(0, 0.02, days), np.nan),
                              "realised_date": realised})
        vectors = pd.DataFrame(rng.standard_normal((days, dims)).astype(np.float32),
                               columns=[f"v{i}" for i in range(dims)])
        frames.append(pd.concat([frame, vectors], axis=1))
    states = pd.concat(frames, ignore_index=True)
    return states.assign(hash=payload_hash(states))


def _index(tmp_path, states) -> QdrantIndex:
    resource = QdrantIndex(path=str(tmp_path / "qdrant"))
    with resource.open() as index:
        index.sync(states, "test")
    return resource


def test_the_local_index_finds_exactly_the_brute_force_neighbours_for_1000_queries(tmp_path):
    states = _states(days=300)
    resource = _index(tmp_path, states)
    rng = np.random.default_rng(1)
    vectors = states[[f"v{i}" for i in range(8)]].to_numpy(np.float32)
    realised_day = realised_days(states["realised_date"])
    mismatches = 0
    with resource.open() as index:
        for _ in range(1000):
            ticker = rng.choice(["AAA", "BBB"])
            date = states["date"].iloc[rng.integers(20, 300)]
            query = rng.standard_normal(8).astype(np.float32)
            found = index.analogs(ticker, date, query, k=20)
            mine = (states["ticker"] == ticker).to_numpy()
            rows, distances = exact_neighbours(vectors[mine], realised_day[mine], query[None, :],
                                               day_number([date]), 20)
            expected = states.loc[mine, "id"].to_numpy()[rows[0][rows[0] >= 0]]
            mismatches += found["id"].tolist() != expected.tolist()
            np.testing.assert_allclose(found["distance"], distances[0][rows[0] >= 0], rtol=1e-4)
    assert mismatches == 0


def test_a_query_never_returns_a_state_realised_after_its_day(tmp_path):
    states = _states()
    resource = _index(tmp_path, states)
    with resource.open() as index:
        for position in (10, 100, 300, 599):
            date = states["date"].iloc[position]
            # the query is the state of `date` itself and of the sessions just before it, whose
            # forward windows end after `date`: the nearest vectors there are, yet never returned
            for back in range(5):
                row = states[(states["ticker"] == "AAA")].iloc[position - back]
                vector = row[[f"v{i}" for i in range(8)]].to_numpy(np.float32)
                found = index.analogs("AAA", date, vector, k=50)
                assert (found["realised_day"] <= day_number([date])[0]).all()
                assert row["id"] not in set(found["id"])
            # and every realised state is eligible: with k large, all of them come back
            realised = states[(states["ticker"] == "AAA") & (states["realised_date"] <= date)]
            assert len(index.analogs("AAA", date, vector, k=1000)) == len(realised)


def test_a_query_on_the_newest_session_needs_no_filter_and_answers_the_same(tmp_path):
    states = _states()
    resource = _index(tmp_path, states)
    aaa = states[states["ticker"] == "AAA"]
    vectors = aaa[[f"v{i}" for i in range(8)]].to_numpy(np.float32)
    realised_day = realised_days(aaa["realised_date"])
    with resource.open() as index:
        newest = index.client.get_collection(index.collection("AAA")).config.metadata["newest_realised_day"]
        assert newest == day_number([aaa["realised_date"].max()])[0]
        for date in (aaa["date"].max(), aaa["realised_date"].max()):  # on or after it: the unfiltered path
            found = index.analogs("AAA", date, vectors[-1], k=20)
            rows, _ = exact_neighbours(vectors, realised_day, vectors[-1][None, :], day_number([date]), 20)
            assert found["id"].tolist() == aaa["id"].to_numpy()[rows[0]].tolist()


def test_updates_are_incremental_and_a_new_embedding_rebuilds(tmp_path):
    newest = _states(days=300)
    # the day before: one session fewer, so the forward return the newest session realises was not known
    before = newest[newest["date"] < newest["date"].max()].copy()
    pending = before["realised_date"] >= newest["date"].max()
    before.loc[pending, ["forward_return", "realised_date"]] = [np.nan, pd.NaT]
    before["hash"] = payload_hash(before)
    resource = QdrantIndex(path=str(tmp_path / "qdrant"))
    with resource.open() as index:
        # the memory holds the states whose forward return is realised: 299 - 5 per ticker
        first, known = index.sync(before, "e1")
        assert first["rebuilt"] == 2 and first["upserted"] == first["points"] == 2 * 294
        assert first["awaiting_forward_return"] == 2 * 5
        # a new session realises one more state per ticker (5 sessions back); the same whether the
        # last sync's table is passed or the stored points are read back
        again, known = index.sync(newest, "e1", known)
        assert again == {"points": 590, "awaiting_forward_return": 10, "upserted": 2, "deleted": 0, "rebuilt": 0}
        assert index.sync(newest, "e1")[0]["upserted"] == 0
        # a state restated in the source is rewritten; one dropped from the source is deleted
        restated = newest.copy()
        restated.loc[10, "v0"] += 1.0
        restated["hash"] = payload_hash(restated)
        counts, known = index.sync(restated.drop(index=[20]), "e1", known)
        assert (counts["points"], counts["upserted"], counts["deleted"]) == (589, 1, 1)
        counts, known = index.sync(newest, "e1", known)
        assert counts["upserted"] == 2
        # a ledger that no longer matches the index (a point lost behind its back) is not trusted
        index.client.delete(index.collection("BBB"), points_selector=models.PointIdsList(points=[int(newest.id[400])]))
        assert index.sync(newest, "e1", known)[0]["upserted"] == 1
        rebuilt = index.sync(newest, "e2")[0]
        assert (rebuilt["points"], rebuilt["upserted"], rebuilt["rebuilt"]) == (590, 590, 2)
        assert index.count() == 590
        # a ticker leaves the universe: its collection goes
        assert index.sync(newest[newest["ticker"] == "AAA"], "e2")[0]["deleted"] == 295
        assert index.tickers() == ["AAA"] and index.count() == 295


def test_a_restarted_process_gets_the_same_answers_and_a_second_process_gets_a_clear_error(tmp_path):
    states = _states(days=200)
    resource = _index(tmp_path, states)
    states.to_parquet(tmp_path / "states.parquet")
    with resource.open() as index:
        here = index.ask(states, "BBB", states["date"].iloc[150], 10, 5).neighbours["id"].tolist()
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        import pandas as pd
        from resources.memory import QdrantIndex
        states = pd.read_parquet({str(tmp_path / 'states.parquet')!r})
        with QdrantIndex(path={str(tmp_path / 'qdrant')!r}).open() as index:
            print(index.ask(states, "BBB", states["date"].iloc[150], 10, 5).neighbours["id"].tolist(), flush=True)
            if len(sys.argv) > 1:
                print("holding", flush=True)
                time.sleep(float(sys.argv[1]))
    """)
    restarted = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout.strip() == str(here)
    holder = subprocess.Popen([sys.executable, "-c", script, "30"], stdout=subprocess.PIPE, text=True)
    try:
        holder.stdout.readline()
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(IndexBusy, match="open in another process"):
            with resource.open():
                pass
        # a reader that cannot wait asks a copy built in memory from the stored states: same answer
        copy = in_memory_index(states).ask(states, "BBB", states["date"].iloc[150], 10, 5)
        assert copy.neighbours["id"].tolist() == here
    finally:
        holder.kill()
        holder.wait()
    with resource.open() as index:  # the holder never wrote: the index is whole
        assert index.count() == int(states["forward_return"].notna().sum())


def test_the_embedding_is_fitted_on_training_rows_only():
    rng = np.random.default_rng(0)
    dates = pd.bdate_range("2018-01-01", periods=400)
    table = pd.DataFrame(rng.standard_normal((400, 6)), columns=list("abcdef")).assign(date=dates)
    embedding = StateEmbedding(tuple("abcdef"), dimensions=3)
    params = embedding.fit(table, None, dates[199])
    changed = table.copy()
    changed.loc[200:, list("abcdef")] *= 50.0
    assert embedding.fit(changed, None, dates[199]) == params
    assert params["rows"] == 200 and len(params["components"]) == 3


# -- in the graph ---------------------------------------------------------------------------------

def _metadata(result, asset: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    return {k: v.value for k, v in event.materialization.metadata.items()}


@pytest.mark.slow
def test_the_memory_assets_build_and_a_new_session_upserts_only_what_changed(tmp_path, capsys):
    settings = quick_settings(tmp_path)
    # the settings' own instance: the analogs command reads the versions it accepted
    with open_instance(settings) as instance:
        data = run_graph(settings, instance=instance)
        assert data.success and {"market_states", "state_embedding"} <= materialized(data)
        # new market states: the sensor asks for the memory job, once
        context = dg.build_sensor_context(instance=instance)
        request = memory_after_states(context)
        assert isinstance(request, dg.RunRequest)
        assert isinstance(memory_after_states(dg.build_sensor_context(instance=instance, cursor=context.cursor)),
                          dg.SkipReason)
        memory = run_graph(settings, job="market_memory", instance=instance)
        assert memory.success and materialized(memory) == {"market_state_index", "market_analogs"}
        states = newest_fit(read_table(settings, "market_states"))
        profile = settings.profile()
        assert len(states) == len(read_table(settings, "features"))
        assert (states["fit_end"] == pd.Timestamp(profile.train_end)).all()
        # the newest `horizon` sessions of each ticker await their forward return; all others are realised
        rank = states.groupby("ticker")["date"].rank(ascending=False)
        assert (states["forward_return"].isna() == (rank <= settings.forecast.horizon)).all()
        assert (states.loc[states["forward_return"].isna(), "date"] > profile.validation_end).all()
        written = _metadata(memory, "market_state_index")
        realised = int(states["forward_return"].notna().sum())
        assert written["upserted"] == written["points"] == written["stored"] == realised
        assert written["awaiting_forward_return"] == len(states) - realised
        analogs = _metadata(memory, "market_analogs")
        assert analogs["ticker"] == settings.universe.benchmark and analogs["date"] == str(states["date"].max().date())
        assert analogs["analogs"] == settings.memory.k and "paths" in analogs

        # three sessions later: each ticker's memory gains the three states those sessions realise
        later = quick_settings(tmp_path, dates={"end": str((pd.Timestamp(profile.end) + pd.offsets.BDay(3)).date())})
        assert run_graph(later, instance=instance).success
        again = run_graph(later, job="market_memory", instance=instance)
        assert again.success
        written = _metadata(again, "market_state_index")
        tickers = len(settings.universe.tickers)
        assert written["rebuilt"] == 0 and written["deleted"] == 0
        assert written["points"] == realised + 3 * tickers
        assert written["upserted"] == 3 * tickers

        # ask the memory from the command line, as a user would
        settings_file = tmp_path / "odyssey.toml"
        settings_file.write_text(f'extends = "{preset_path("quick")}"\n\n[paths]\nhome = "{tmp_path}"\n')
        capsys.readouterr()
        assert analogs_command(["--settings", str(settings_file), "--date", "2020-03-16", "--ticker", "QQQ",
                                "--k", "5"]) == 0
        out = capsys.readouterr().out
        assert "QQQ on 2020-03-16: the 5 most similar past sessions" in out and "share up" in out
        listed = [pd.Timestamp(line.split()[0]) for line in out.splitlines()[3:8]]
        assert all(day + pd.offsets.BDay(5) <= pd.Timestamp("2020-03-16") for day in listed)  # all realised by then
        assert (tmp_path / "storage" / "reports" / "analogs_QQQ_2020-03-16.png").stat().st_size > 1000
        assert analogs_command(["--settings", str(settings_file), "--date", "2020-03-15", "--ticker", "QQQ"]) == 2
        assert "no market state for QQQ on 2020-03-15" in capsys.readouterr().err


def test_a_qdrant_server_is_a_settings_change_and_its_key_is_never_stored(tmp_path):
    from odyssey.settings import load_settings
    from resources import build_resources

    path = tmp_path / "odyssey.toml"
    path.write_text(f'extends = "{preset_path("quick")}"\n')
    quick = load_settings(path, environ={})
    local = build_resources(quick)["memory"]
    assert local.url is None and local.path == str(Path(quick.paths.home) / "qdrant") and local.api_key is None
    settings = load_settings(path, environ={"QDRANT_URL": "http://qdrant.internal:6333", "QDRANT_API_KEY": "s3cret"})
    assert settings.memory.qdrant_url == "http://qdrant.internal:6333"
    assert settings.memory.qdrant_api_key_env == "QDRANT_API_KEY"
    assert "s3cret" not in settings.model_dump_json()
    server = build_resources(settings)["memory"]
    assert server.url == "http://qdrant.internal:6333" and server.where() == "http://qdrant.internal:6333"
    assert isinstance(server.api_key, dg.EnvVar) and server.api_key.env_var_name == "QDRANT_API_KEY"


# -- fits in time ---------------------------------------------------------------------------------
#
# A question about day d must be answered with a state map fitted on sessions before d, or refused.

ASKED = "2018-06-01"  # inside the quick market's training split: the train_end fit saw the sessions after it


def _moved_prices(clean: pd.DataFrame, day, seed: int = 7) -> pd.DataFrame:
    """Every ticker's prices after `day` on another path (a random walk of 3 % daily steps on top)
    and its volume scrambled; everything up to `day` as it was."""
    clean = clean.copy()
    later = (clean["date"] > pd.Timestamp(day)).to_numpy()
    rng = np.random.default_rng(seed)
    steps = pd.Series(rng.normal(0.0, 0.03, int(later.sum())), index=clean.index[later])
    walk = np.exp(steps.groupby(clean.loc[later, "ticker"]).cumsum())
    for column in ("open", "high", "low", "close", "adj_close"):
        if column in clean:
            clean.loc[later, column] *= walk
    clean.loc[later, "volume"] *= rng.uniform(0.2, 5.0, int(later.sum()))
    return clean


def _moved_after(inputs: MarketInputs, day) -> MarketInputs:
    """The market's inputs with the prices after `day` moved (`_moved_prices`)."""
    clean = _moved_prices(inputs.clean, day)
    return MarketInputs(clean, log_returns(clean), inputs.alt)


def _two_fits() -> pd.DataFrame:
    """States of two fits: one ending 2015-06-30, embedding the sessions up to the next fit's
    end, 2015-09-30, which embeds every session."""
    early = _states(days=300, fit_end="2015-06-30")
    return pd.concat([early[early["date"] <= pd.Timestamp("2015-09-30")],
                      _states(days=300, seed=1, fit_end="2015-09-30")], ignore_index=True)


def test_the_fits_end_at_the_cadence_and_the_last_at_train_end(quick_profile):
    sessions = quick_profile.sessions
    dates = lambda *days: tuple(pd.Timestamp(d) for d in days)  # noqa: E731
    assert fit_ends(sessions, quick_profile.train_end, 24, 12) == dates("2016-12-30", "2017-12-29", "2018-12-31")
    assert fit_ends(sessions, quick_profile.train_end, 24, 0) == dates("2018-12-31")
    assert fit_ends(sessions, quick_profile.train_end, 48, 12) == dates("2018-12-31")
    full = load_settings(preset_path("full"), environ={}).profile()
    assert fit_ends(full.sessions, full.train_end, 24, 24) == dates("2012-01-03", "2014-01-03", "2015-12-31",
                                                                    "2017-12-29")


def test_a_question_goes_to_the_newest_fit_that_ends_before_its_day_and_earlier_ones_are_refused():
    states = _two_fits()
    assert route(states, "AAA", "2015-07-01").fit_end == pd.Timestamp("2015-06-30")
    # the later fit ends on the day itself: it saw the day, so the earlier fit answers
    assert route(states, "AAA", "2015-09-30").fit_end == pd.Timestamp("2015-06-30")
    question = route(states, "AAA", "2015-10-01")
    assert question.fit_end == pd.Timestamp("2015-09-30") and question.newest
    late = states[(states["fit_end"] == question.fit_end) & (states["ticker"] == "AAA")
                  & (states["date"] == pd.Timestamp("2015-10-01"))]
    np.testing.assert_array_equal(question.vector, late[[f"v{i}" for i in range(8)]].to_numpy(np.float32)[0])
    with pytest.raises(QuestionTooEarly) as refused:
        route(states, "AAA", "2015-06-30")
    message = str(refused.value)
    assert message.startswith("AAA on 2015-06-30: ")
    assert "fitted on sessions up to 2015-06-30 (then refitted up to 2015-09-30)" in message
    assert "answer with the future" in message
    assert f"ask about a session from 2015-07-01 to {states['date'].max().date()}" in message
    with pytest.raises(ValueError, match="no market state for AAA on 2015-10-03"):  # a Saturday
        route(states, "AAA", "2015-10-03")


def test_each_day_is_answered_from_its_fit_and_the_index_refuses_the_days_its_fit_saw(tmp_path):
    states = _two_fits()
    resource = QdrantIndex(path=str(tmp_path / "qdrant"))
    with resource.open() as index:
        with pytest.raises(ValueError, match="the index holds the states of one fit"):
            index.sync(states, "both")
        index.sync(newest_fit(states), "late")
    for day, fit_end, where in (("2015-08-03", "2015-06-30", "an in-memory index of the fit up to 2015-06-30"),
                                ("2015-11-02", "2015-09-30", "the index at")):
        answer, source = ask(resource, states, "AAA", day, 10, 5)
        assert answer.fit_end == pd.Timestamp(fit_end) and source.startswith(where)
        mine = states[(states["fit_end"] == pd.Timestamp(fit_end)) & (states["ticker"] == "AAA")]
        vectors = mine[[f"v{i}" for i in range(8)]].to_numpy(np.float32)
        query = vectors[(mine["date"] == pd.Timestamp(day)).to_numpy()]
        rows, _ = exact_neighbours(vectors, realised_days(mine["realised_date"]), query, day_number([day]), 10)
        assert answer.neighbours["id"].tolist() == mine["id"].to_numpy()[rows[0]].tolist()
    with resource.open() as index:
        vector = np.zeros(8, dtype=np.float32)
        with pytest.raises(ValueError, match="fit on sessions up to 2015-09-30: it cannot answer for 2015-09-30"):
            index.analogs("AAA", "2015-09-30", vector, 10)
        with pytest.raises(ValueError, match="answered by the fit on sessions up to 2015-06-30, and this index holds"):
            index.ask(states, "AAA", "2015-08-03", 10, 5)
    with pytest.raises(QuestionTooEarly):
        ask(resource, states, "AAA", "2015-03-02", 10, 5)


def test_the_state_of_a_day_under_the_fit_that_answers_it_ignores_the_sessions_after_it(quick_profile,
                                                                                          quick_pipeline):
    inputs = quick_pipeline.inputs
    pipeline = feature_pipeline(QUICK, scale=False)
    ends = fit_ends(inputs.dates, quick_profile.train_end, 24, 12)
    states, fits = build_states(inputs, pipeline, 5, 8, ends)
    moved, moved_fits = build_states(_moved_after(inputs, ASKED), pipeline, 5, 8, ends)
    for fit in fits:  # every part of each fit saw only the sessions up to its end
        end = str(fit.end.date())
        assert fit.pipeline.clip["train_end"] == fit.pipeline.regime["train_end"] == end
        assert fit.pipeline.scaler["train_end"] == fit.embedding["train_end"] == end
        mine = states[states["fit_end"] == fit.end]
        assert len(mine) == fit.states and (fit.until is None or mine["date"].max() == fit.until)
    vectors = [f"v{i}" for i in range(8)]
    for ticker in quick_profile.tickers:
        question, again = route(states, ticker, ASKED), route(moved, ticker, ASKED)
        assert question.fit_end == again.fit_end == pd.Timestamp("2017-12-29")
        np.testing.assert_array_equal(question.vector, again.vector)
        # the states it searches (realised by the day) are the same too
        searched = [s[(s["fit_end"] == question.fit_end) & (s["ticker"] == ticker)
                      & (s["realised_date"] <= pd.Timestamp(ASKED))] for s in (states, moved)]
        pd.testing.assert_frame_equal(*[s[["date", "regime", "forward_return", *vectors]] for s in searched])
    # while the train_end fit, which saw the moved sessions, embeds the day elsewhere
    assert moved_fits[-1].pipeline.clip != fits[-1].pipeline.clip
    newest = [s[(s["fit_end"] == fits[-1].end) & (s["date"] == pd.Timestamp(ASKED))][vectors].to_numpy()
              for s in (states, moved)]
    assert np.abs(newest[0] - newest[1]).max() > 1e-3


@dataclass
class _EveryRow(AnalogFolds):
    """A planted leak: the PCA fitted on every labelled row of the ticker, the test rows included."""

    def fit_predict(self, data, frame):
        names = tuple(f"f{i}" for i in range(data.x.shape[1]))
        params = StateEmbedding(names, self.dimensions).fit_rows(
            pd.DataFrame(data.x, columns=list(names)).assign(date=data.dates))
        return walkforward_analogs(embed(data.x, params), data.dates, frame["target_end"], data.y, data.fold.test,
                                   self.k), {}


def test_the_walkforward_analog_forecast_of_a_day_ignores_the_sessions_after_it(quick_pipeline):
    wf = walkforward_from_settings(QUICK)
    models = {"analog": AnalogFolds(8, 10), "leaky": _EveryRow(8, 10)}
    before = wf.run_models(quick_pipeline.inputs, "AAPL", models)
    day = before["analog"].predictions["date"].iloc[len(before["analog"].predictions) // 2]
    after = wf.run_models(_moved_after(quick_pipeline.inputs, day), "AAPL", models)
    p, q = before["analog"].predictions, after["analog"].predictions
    upto = (p["date"] <= day).to_numpy()
    np.testing.assert_array_equal(p.loc[upto, "prediction"], q.loc[upto, "prediction"])
    assert not np.allclose(p.loc[~upto, "prediction"], q.loc[~upto, "prediction"])  # the move reached later days
    # the same comparison catches a state map fitted on rows after the day
    leaky, moved_leaky = before["leaky"].predictions, after["leaky"].predictions
    assert not np.allclose(leaky.loc[upto, "prediction"], moved_leaky.loc[upto, "prediction"])


def test_a_fold_whose_training_rows_reach_its_test_rows_is_refused():
    rng = np.random.default_rng(0)
    dates = pd.bdate_range("2020-01-01", periods=100)
    fold = Fold(k=3, train=np.arange(0, 60), val=np.arange(60, 70), test=np.arange(55, 100))
    data = FoldData(fold, None, rng.standard_normal((100, 6)).astype(np.float32), rng.normal(0, 0.02, 100), dates)
    with pytest.raises(ValueError, match="fold 3: its training rows reach 2020-03-24, on or after its first test day "
                                         "2020-03-18"):
        AnalogFolds(3, 5).fit_predict(data, pd.DataFrame({"target_end": dates + pd.offsets.BDay(5)}))


# The quick market (data 2015-2021, train_end 2018-12-31) built once through the graph: its data
# layer and memory, asked as a user would.

@pytest.fixture(scope="module")
def built_memory(tmp_path_factory):
    """(settings, settings file) of a home holding the quick market's data layer and its memory."""
    home = tmp_path_factory.mktemp("memory_home")
    settings = quick_settings(home)
    with open_instance(settings) as instance:  # the instance the command line reads too
        assert run_graph(settings, instance=instance).success
        assert run_graph(settings, job="market_memory", instance=instance).success
    return settings, _settings_file(home)


def _settings_file(home: Path) -> Path:
    path = home / "odyssey.toml"
    path.write_text(f'extends = "{preset_path("quick")}"\n\n[paths]\nhome = "{home}"\n')
    return path


def _ask(capsys, settings_file: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = analogs_command(["--settings", str(settings_file), "--ticker", "QQQ", "--k", "10", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _fit_of(out: str) -> pd.Timestamp:
    import re

    found = re.search(r"fitted on sessions up to (\d{4}-\d{2}-\d{2})", out)
    assert found, f"the answer does not say which fit of the state map answered it:\n{out}"
    return pd.Timestamp(found.group(1))


@pytest.mark.slow
def test_a_question_is_answered_by_a_fit_that_ends_before_its_day_or_refused(built_memory, capsys):
    settings, settings_file = built_memory
    profile = settings.profile()
    # a day before the first fit ends: refused, saying which days can be asked and why
    code, out, err = _ask(capsys, settings_file, "--date", "2016-06-01")
    assert code == 2 and out == "", out
    assert "QQQ on 2016-06-01" in err and "fitted on sessions up to 2016-12-30" in err
    assert "ask about a session from 2017-01-03" in err
    # a day inside the training split: answered by a fit that ends before it, not the train_end fit
    code, out, err = _ask(capsys, settings_file, "--date", ASKED)
    assert code == 0, err
    assert _fit_of(out) < pd.Timestamp(ASKED)
    # the newest session: the train_end fit, the newest that ends before it
    code, out, err = _ask(capsys, settings_file)
    assert code == 0, err
    assert _fit_of(out) == pd.Timestamp(profile.train_end)
    # the launchpad's way refuses the same question with the same reason
    with open_instance(settings) as instance:
        refused = run_graph(settings, job="market_memory", selection=[dg.AssetKey("market_analogs")],
                            instance=instance,
                            run_config={"ops": {"market_analogs": {"config": {"date": "2016-06-01", "ticker": "QQQ"}}}})
        assert not refused.success
        assert any("ask about a session from 2017-01-03" in e for e in step_errors(refused))
        asked = run_graph(settings, job="market_memory", selection=[dg.AssetKey("market_analogs")],
                          instance=instance,
                          run_config={"ops": {"market_analogs": {"config": {"date": ASKED, "ticker": "QQQ"}}}})
    assert asked.success
    assert pd.Timestamp(_metadata(asked, "market_analogs")["fit_end"]) < pd.Timestamp(ASKED)


@pytest.mark.slow
def test_perturbing_the_sessions_after_a_day_leaves_the_answer_about_it_unchanged(built_memory, tmp_path, capsys):
    settings, settings_file = built_memory
    code, before, err = _ask(capsys, settings_file, "--date", ASKED)
    assert code == 0, err
    # the same market whose every ticker follows another path after the asked day (the synthetic
    # source's drift: triple volatility, higher beta, double volume), built through the graph
    from odyssey.calendar import next_sessions

    home = tmp_path / "home"
    after_asked = str(next_sessions(pd.Timestamp(ASKED), 1)[0].date())
    perturbed = quick_settings(home, source={"synthetic": {"drift_date": after_asked}})
    with open_instance(perturbed) as instance:
        assert run_graph(perturbed, instance=instance).success
        assert run_graph(perturbed, job="market_memory", instance=instance).success
    prices = {name: read_table(s, "clean_prices").set_index(["ticker", "date"])["close"]
              for name, s in (("original", settings), ("perturbed", perturbed))}
    upto = prices["original"].index.get_level_values("date") <= pd.Timestamp(ASKED)
    pd.testing.assert_series_equal(prices["original"][upto], prices["perturbed"][upto])
    assert not np.allclose(prices["original"][~upto], prices["perturbed"][~upto])
    (home / "odyssey.toml").write_text(f'extends = "{preset_path("quick")}"\n\n[paths]\nhome = "{home}"\n\n'
                                       f'[source.synthetic]\ndrift_date = "{after_asked}"\n')
    code, after, err = _ask(capsys, home / "odyssey.toml", "--date", ASKED)
    assert code == 0, err
    # the answer (the analogs, their similarity and outcomes, the forecast) is the same ...
    # (the first line names the index's folder, the last the plot's path)
    assert after.splitlines()[1:-1] == before.splitlines()[1:-1]
    # ... while the state of that day under the train_end fit, which saw the perturbed sessions, moved
    original, changed = read_table(settings, "market_states"), read_table(perturbed, "market_states")
    train_end = pd.Timestamp(settings.profile().train_end)

    def state(states):
        row = states[(states["ticker"] == "QQQ") & (states["date"] == pd.Timestamp(ASKED))
                     & (states["fit_end"] == train_end)]
        return row[[c for c in states.columns if c.startswith("v") and c[1:].isdigit()]].to_numpy()

    assert np.abs(state(original) - state(changed)).max() > 1e-3
