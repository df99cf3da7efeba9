"""The replay: its judging of expectations and its paper book on records whose answers are known,
the synthetic market's scenario knobs, and a small replay (3 tickers, 30 sessions, a planted
regime change) walked forward through the loop's own sensors and jobs."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from odyssey.portfolio import drift_holdings, read_holdings, write_holdings
from odyssey.replay import (DEMOTION, DRIFTED, INGEST_FAILED, LIVE_ALARM, RETRAIN, Advice, Event, ReplayRecord, SessionRecord,
                            book_summary, judge, live_ic, paper_book)
from odyssey.settings import Expectation, load_settings, preset_path
from odyssey.sources.synthetic import generate_market

TICKERS = ("AAA", "BBB", "CCC")


def sessions(n: int, start: str = "2022-01-03", ingest: str = "SUCCESS", quarantined_from: int | None = None,
             advice=None) -> list[SessionRecord]:
    days = pd.bdate_range(start, periods=n)
    return [SessionRecord(index=i + 1, day=str(d.date()), ingest=ingest if quarantined_from is None or i + 1 <
                          quarantined_from else "FAILURE", quarantined=quarantined_from is not None and i + 1 >=
                          quarantined_from, seconds=1.0, runs=3, advice=advice(i) if advice else None)
            for i, d in enumerate(days)]


EVERY_TICKER_JUDGED = {"drift": {t: 5 for t in TICKERS}, "live skill": {t: 5 for t in TICKERS}}


def record(events=(), n: int = 40, event_session: int | None = 20, **kw) -> ReplayRecord:
    s = kw.pop("sessions", None) or sessions(n)
    kw.setdefault("judged", EVERY_TICKER_JUDGED)
    return ReplayRecord(scenario="t", tickers=TICKERS, sessions=s, events=list(events),
                        event_day=s[event_session - 1].day if event_session else None, **kw)


def at(rec_sessions, index: int, kind: str, ticker: str | None) -> Event:
    return Event(index, rec_sessions[index - 1].day, kind, ticker, "planted")


def test_detection_expectations_measure_the_delay_from_the_event_and_fail_late_early_or_missing():
    s = sessions(40)
    found = record([at(s, 25, LIVE_ALARM, "AAA"), at(s, 31, LIVE_ALARM, "BBB")], sessions=s)
    verdict = judge(Expectation(kind="live_skill_alarm", tickers=("AAA", "BBB"), within=15), found)
    assert verdict.passed and verdict.delays == {"AAA": 5, "BBB": 11}
    too_late = judge(Expectation(kind="live_skill_alarm", tickers=("AAA", "BBB"), within=10), found)
    assert not too_late.passed and "BBB +11" in too_late.detail
    missing = judge(Expectation(kind="live_skill_alarm", tickers=("AAA", "CCC"), within=15), found)
    assert not missing.passed and missing.delays["CCC"] is None and "CCC never" in missing.detail
    early = record([at(s, 3, DRIFTED, "AAA"), at(s, 22, DRIFTED, "AAA")], sessions=s)
    assert not judge(Expectation(kind="drift", tickers=("AAA",), within=15), early).passed
    # the alarm of another kind does not count
    assert not judge(Expectation(kind="demoted", tickers=("AAA",), within=15), found).passed
    no_event = record([at(s, 25, RETRAIN, "AAA")], sessions=s, event_session=None)
    assert not judge(Expectation(kind="retrained", tickers=("AAA",), within=15), no_event).passed


def test_absence_expectations_count_every_event_or_only_those_before_the_event():
    s = sessions(40)
    rec = record([at(s, 25, DRIFTED, "AAA"), at(s, 26, RETRAIN, "AAA")], sessions=s)
    assert not judge(Expectation(kind="no_drift"), rec).passed
    assert judge(Expectation(kind="no_drift", before_event=True), rec).passed
    assert judge(Expectation(kind="no_drift", tickers=("BBB", "CCC")), rec).passed
    assert judge(Expectation(kind="only_retrained", tickers=("AAA",)), rec).passed
    verdict = judge(Expectation(kind="only_retrained", tickers=("BBB",)), rec)
    assert not verdict.passed and "AAA session 26" in verdict.detail
    assert judge(Expectation(kind="no_live_skill_alarm"), rec).passed
    assert not judge(Expectation(kind="no_live_skill_alarm"), record([at(s, 2, LIVE_ALARM, "CCC")], sessions=s)).passed
    # a monitor that never judged a ticker found nothing: not yet evaluable, not a pass
    unjudged = record(sessions=s, judged={"drift": {"AAA": 3}, "live skill": {}})
    verdict = judge(Expectation(kind="no_live_skill_alarm"), unjudged)
    assert not verdict.passed and "not yet evaluable" in verdict.detail
    assert not judge(Expectation(kind="no_drift"), unjudged).passed
    assert judge(Expectation(kind="no_drift", tickers=("AAA",)), unjudged).passed


def test_churn_is_bounded_by_a_count_of_retrains_per_ticker():
    s = sessions(40)
    churn = record([at(s, i, RETRAIN, "AAA") for i in (22, 31, 38)] + [at(s, 25, RETRAIN, "BBB")], sessions=s)
    verdict = judge(Expectation(kind="retrained_at_most", tickers=("AAA", "BBB"), count=2), churn)
    assert not verdict.passed and verdict.detail == "retrains per ticker: AAA 3, BBB 1 (at most 2 each)"
    assert judge(Expectation(kind="retrained_at_most", tickers=("AAA", "BBB"), count=3), churn).passed
    assert judge(Expectation(kind="retrained_at_most", tickers=("CCC",), count=0), churn).passed
    with pytest.raises(ValueError, match="count"):
        Expectation(kind="retrained_at_most", tickers=("AAA",))
    with pytest.raises(ValueError, match="count"):
        Expectation(kind="drift", tickers=("AAA",), count=1)


def test_an_expectation_refuses_a_bound_its_kind_does_not_read():
    # a bound the verdict would ignore is refused, not silently dropped
    for kind in ("retrained_at_most", "no_drift", "all_ingested", "only_retrained"):
        extra = {"count": 2} if kind == "retrained_at_most" else {}
        with pytest.raises(ValueError, match="`within` goes with"):
            Expectation(kind=kind, within=30, **extra)
    for kind in ("retrained_at_most", "drift", "none_deployed"):
        extra = {"count": 2} if kind == "retrained_at_most" else {}
        with pytest.raises(ValueError, match="`before_event` goes with"):
            Expectation(kind=kind, before_event=True, **extra)
    assert Expectation(kind="drift", within=30).within == 30
    assert Expectation(kind="only_retrained", tickers=(), before_event=True).before_event
    # the kinds the settings allow each bound on are the kinds the verdicts read it on
    from odyssey.replay import ABSENT, DETECTED
    from odyssey.settings import BEFORE_EVENT_KINDS, WITHIN_KINDS
    assert set(DETECTED) == set(WITHIN_KINDS) and {*ABSENT, "only_retrained"} == set(BEFORE_EVENT_KINDS)


def test_an_event_outside_the_replayed_sessions_is_not_placed_on_one():
    s = sessions(30)
    early = ReplayRecord("t", TICKERS, s, [at(s, 3, LIVE_ALARM, "AAA")], event_day="2021-12-01",
                         judged=EVERY_TICKER_JUDGED)
    assert early.event_session is None
    assert not judge(Expectation(kind="live_skill_alarm", tickers=("AAA",), within=5), early).passed
    late = ReplayRecord("t", TICKERS, s, [], event_day="2023-01-02", judged=EVERY_TICKER_JUDGED)
    assert late.event_session is None


def test_data_layer_expectations():
    healthy = record(n=30, event_session=10)
    assert judge(Expectation(kind="all_ingested"), healthy).passed
    stopped = sessions(30, quarantined_from=10)
    at_data_layer = [Event(r.index, r.day, INGEST_FAILED, None, "clean_prices:clean_prices_no_unlisted_split: BBB")
                     for r in stopped[9:]]
    rejected = record(at_data_layer, sessions=stopped, event_session=10, forecast_log_last="2022-01-13")
    assert not judge(Expectation(kind="all_ingested"), rejected).passed
    assert judge(Expectation(kind="rejected_from_event"), rejected).passed
    # a landing that failed further down (the forecasts, say) was not stopped at the data layer
    downstream = [Event(e.session, e.day, INGEST_FAILED, None, "forecast_models:has_skill: ...") for e in at_data_layer]
    assert not judge(Expectation(kind="rejected_from_event"),
                     record(downstream, sessions=stopped, event_session=10, forecast_log_last="2022-01-13")).passed
    # a session after the event let in, or a forecast made on the event's day, fails it
    leaked = record(at_data_layer, sessions=sessions(30, quarantined_from=10), event_session=10,
                    forecast_log_last=sessions(30)[9].day)
    assert not judge(Expectation(kind="rejected_from_event"), leaked).passed
    let_in = sessions(30, quarantined_from=10)
    let_in[15] = SessionRecord(16, let_in[15].day, "SUCCESS", False, 1.0, 3, None)
    assert not judge(Expectation(kind="rejected_from_event"),
                     record(at_data_layer, sessions=let_in, event_session=10, forecast_log_last="2022-01-13")).passed
    too_early = record(sessions=sessions(30, quarantined_from=8), event_session=10, forecast_log_last="2022-01-11")
    assert not judge(Expectation(kind="rejected_from_event"), too_early).passed
    repaired = record(sessions=sessions(30, quarantined_from=20), event_session=10, repairs={"AAA 2022-01-14": True})
    assert judge(Expectation(kind="bad_print_repaired"), repaired).passed
    assert not judge(Expectation(kind="bad_print_repaired"),
                     record(n=30, event_session=10, repairs={"AAA 2022-01-14": False})).passed
    assert not judge(Expectation(kind="bad_print_repaired"), record(n=30, event_session=10)).passed
    assert judge(Expectation(kind="none_deployed"), record(n=5, event_session=None, served={"AAA": 0})).passed
    assert not judge(Expectation(kind="none_deployed"), record(n=5, event_session=None, served={"AAA": 0, "BBB": 2})).passed


def _walkforward_and_prices(skill: float, n: int = 900, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A champion's walk-forward forecasts and its ticker's prices where the next session's return
    is `skill` times the standardised forecast plus noise (1 % daily volatility)."""
    from odyssey.live_skill import simulated_forecasts

    prediction, scaled = simulated_forecasts(n + 100, skill, np.random.default_rng(seed))
    days = pd.bdate_range("2015-01-02", periods=n + 101)
    close = 100 * np.cumprod(np.r_[1.0, 1.0 + 0.01 * scaled])
    prices = pd.DataFrame({"date": days, "ticker": "AAA", "close": close})
    walkforward = pd.DataFrame({"date": days[100:-1], "ticker": "AAA", "prediction": prediction[100:]})
    return walkforward, prices


def test_the_report_states_the_odds_a_champion_s_monitor_gave_for_finding_a_dead_signal():
    from odyssey.replay import detection_odds, render_markdown
    from odyssey.settings import GateSettings

    strong = detection_odds("AAA", *_walkforward_and_prices(0.8), within=60, gates=GateSettings(), windows=40)
    weak = detection_odds("AAA", *_walkforward_and_prices(0.2), within=60, gates=GateSettings(), windows=40)
    assert 0.7 < strong.skill < 0.9 and 0.1 < weak.skill < 0.3 and strong.reference_days == weak.reference_days
    assert strong.detection_rate >= 0.8 > 0.3 >= weak.detection_rate
    assert strong.reversal_rate == 1.0 and weak.reversal_rate > weak.detection_rate  # a reversal is found sooner
    assert strong.false_alarm_rate <= 0.1 and weak.false_alarm_rate <= 0.1
    text = render_markdown(record(), [], [], pd.DataFrame(columns=["date", "ticker", "live_ic", "n"]), {}, "", [],
                           [strong])
    assert f"| AAA | {strong.skill:+.3f} ({strong.reference_days} days) | 60 sessions | " \
           f"{strong.detection_rate:.0%} of 40 | 100% |" in text


def test_a_build_that_stored_no_forecasts_promises_nothing(tmp_path):
    """A build stopped by a blocking check before `forecasts` (exit 2 is accepted) leaves no
    champion whose odds could be stated: the replay goes on without them."""
    from jobs.replay import SCENARIOS, detection_odds

    settings = load_settings(SCENARIOS / "signal_death.toml", overrides={"paths": {"home": str(tmp_path)}})
    assert detection_odds(settings) == []


def test_the_paper_book_trades_each_advice_at_its_close_and_earns_the_next_sessions_return():
    s = sessions(4, advice=lambda i: Advice(as_of="", advisor="ppo", target={"AAA": 0.5, "BBB": 0.0},
                                             baseline={"AAA": 0.25, "BBB": 0.25}))
    s[2] = SessionRecord(3, s[2].day, "SUCCESS", False, 1.0, 3, None)  # no advice: hold what drifted
    days = pd.to_datetime([r.day for r in s])
    returns = pd.DataFrame({"AAA": [0.0, 0.10, -0.05, 0.02], "BBB": [0.0, 0.0, 0.04, -0.01]}, index=days)
    book = paper_book(s, returns, 0.001, ["AAA", "BBB"])
    assert [d.day for d in book] == [r.day for r in s[:3]]  # the last session's return is not realised yet
    first = book[0]
    assert first.book_traded == pytest.approx(0.5) and first.book_cost == pytest.approx(0.0005)
    assert first.book_return == pytest.approx(0.5 * 0.10 - 0.0005)
    assert first.baseline_return == pytest.approx(0.25 * 0.10 - 0.0005)
    held = 0.5 * 1.10 / (1 + first.book_return)
    assert book[1].book_traded == pytest.approx(abs(0.5 - held))  # back to the target
    assert book[2].advisor == "none (held)" and book[2].book_traded == 0.0
    # a session whose close never came (a rejected landing) ends the book there
    gap = paper_book(s, returns.drop(index=days[2]), 0.001, ["AAA", "BBB"])
    assert [d.day for d in gap] == [s[0].day]
    summary = book_summary(book)
    assert summary["book_return"] == pytest.approx(np.prod([1 + d.book_return for d in book]) - 1)
    assert summary["days_advised_by"] == {"none (held)": 1, "ppo": 2}


def test_the_session_journal_gives_back_every_record_its_landing_time_and_a_stopped_sessions_files():
    from odyssey.replay import PENDING, read_journal, session_line

    s = sessions(3, advice=lambda i: Advice(as_of="", advisor="ppo", target={"AAA": 0.5}, baseline={"AAA": 0.25}))
    s[1] = SessionRecord(2, s[1].day, "FAILURE", True, 4.5, 2, None)
    text = "".join(session_line(r, 1000.0 + r.index) + "\n" for r in s) + "\n"
    assert read_journal(text) == (s, [1001.0, 1002.0, 1003.0], [])
    # a session journaled when it landed and again when it ended counts once, as it ended; one
    # that never ended comes back pending, with the files it landed
    pending = [SessionRecord(r.index, r.day, PENDING, False, 0.0, 0, None) for r in s]
    lines = [session_line(pending[0], 1001.0, ["/l/a1.csv"]), session_line(s[0], 1001.0, ["/l/a1.csv"]),
             session_line(pending[1], 1002.0, ["/l/a2.csv"]), session_line(s[1], 1002.0, ["/l/a2.csv"]),
             session_line(pending[2], 1003.0, ["/l/a3.csv", "/l/b3.csv"])]
    assert read_journal("\n".join(lines)) == ([s[0], s[1], pending[2]], [1001.0, 1002.0, 1003.0],
                                               ["/l/a3.csv", "/l/b3.csv"])
    assert read_journal("\n".join([*lines, session_line(s[2], 1003.0, ["/l/a3.csv"])]))[0] == s


def test_holdings_files_round_trip_and_carry_to_the_newest_close(tmp_path):
    path = tmp_path / "holdings.json"
    write_holdings(path, {"AAA": 0.4, "BBB": 0.2}, "2022-01-03")
    assert read_holdings(path) == ({"AAA": 0.4, "BBB": 0.2}, "2022-01-03")
    daily = pd.DataFrame({"AAA": [0.5, 0.10], "BBB": [0.5, 0.0]}, index=pd.to_datetime(["2022-01-03", "2022-01-04"]))
    carried = drift_holdings(np.array([0.4, 0.2]), daily, "2022-01-03")  # the 3rd's move is already in them
    growth = 1 + 0.4 * 0.10
    assert carried == pytest.approx([0.4 * 1.10 / growth, 0.2 / growth])
    (tmp_path / "bad.json").write_text('{"as_of": "2022-01-03", "weights": [1, 2]}')
    with pytest.raises(ValueError, match="bad.json: not a holdings file"):
        read_holdings(tmp_path / "bad.json")
    (tmp_path / "undated.json").write_text('{"weights": {"AAA": 0.5}}')
    with pytest.raises(ValueError, match="undated.json: not a holdings file.*KeyError"):
        read_holdings(tmp_path / "undated.json")


def test_live_ic_is_the_expanding_rank_correlation_with_the_realised_forward_return():
    days = pd.bdate_range("2022-01-03", periods=40)
    rng = np.random.default_rng(0)
    r = rng.normal(0, 0.01, 40)
    returns = pd.DataFrame({"date": days, "ticker": "AAA", "log_return": r})
    forward = pd.Series(r[::-1]).rolling(2).sum()[::-1].shift(-1).to_numpy()  # the next 2 sessions
    log = pd.DataFrame({"date": days[:30], "ticker": "AAA", "prediction": forward[:30]})
    live = live_ic(log, returns, horizon=2, after="2021-12-31", min_days=10)
    assert live["live_ic"].to_numpy() == pytest.approx(1.0)  # a perfect forecast
    assert live["n"].iloc[0] == 10 and live["n"].iloc[-1] == 30
    log["prediction"] = -log["prediction"]
    assert live_ic(log, returns, 2, "2021-12-31")["live_ic"].to_numpy() == pytest.approx(-1.0)


def test_scenario_knobs_plant_a_bad_print_and_an_unlisted_split_and_change_nothing_else(quick_profile):
    base = load_settings(preset_path("quick")).source.synthetic
    plain = generate_market(quick_profile, base)
    day = "2021-06-15"
    knobs = base.model_copy(update={"bad_prints": ("AAPL " + day,), "unlisted_splits": ("NVDA 2021-09-01 4",)})
    planted = generate_market(quick_profile, knobs)
    p, q = (m.data.prices.set_index(["date", "ticker"])["close"] for m in (plain, planted))
    changed = (p / q - 1).abs() > 1e-12
    aapl = changed.xs("AAPL", level="ticker")
    # AAPL: the bad print's day (25 % off) and its neighbour (the true closes become their midpoint)
    assert set(aapl[aapl].index.strftime("%Y-%m-%d")) <= {day, "2021-06-16"} and aapl.loc[day]
    assert q.loc[(pd.Timestamp(day), "AAPL")] / p.loc[(pd.Timestamp(day), "AAPL")] == pytest.approx(1.25, rel=0.02)
    nvda = (q / p).xs("NVDA", level="ticker")
    assert nvda[nvda.index < "2021-09-01"].to_numpy() == pytest.approx(4.0)
    assert nvda[nvda.index >= "2021-09-01"].to_numpy() == pytest.approx(1.0)
    assert not changed.drop(["AAPL", "NVDA"], level="ticker").any()
    assert planted.data.actions.equals(plain.data.actions)  # the split is never listed
    with pytest.raises(ValueError, match="unlisted_splits: 'NVDA 2021-09-01' is not"):
        base.model_validate({**base.model_dump(), "unlisted_splits": ("NVDA 2021-09-01",)})
    # a knob naming a ticker outside the universe would plant nothing: refused, naming it
    with pytest.raises(ValueError, match=r"drift_tickers \['XYZ'\]; bad_prints \['TSLA'\]"):
        load_settings(preset_path("quick"), overrides={"source": {"synthetic": {
            "bad_prints": ["TSLA 2022-01-31"], "drift_tickers": ["XYZ"]}}})


def test_every_scenario_loads_and_states_what_it_expects():
    from jobs.replay import SCENARIOS, scenario_names

    assert set(scenario_names()) == {"healthy", "signal_death", "signal_flip", "vol_regime", "bad_print",
                                     "unlisted_split", "null"}
    for name in scenario_names():
        settings = load_settings(SCENARIOS / f"{name}.toml")
        assert settings.replay.expect and settings.replay.description, name
        assert settings.replay.sessions == 100 and tuple(settings.universe.tickers) == (
            "AAPL", "NVDA", "SPY", "QQQ", "IEF"), name
        if settings.replay.event:  # the event is the 20th session after the build
            from odyssey.calendar import next_sessions

            assert str(next_sessions(pd.Timestamp(settings.dates.end), 20, "XNYS")[-1].date()) == \
                settings.replay.event, name


def _runaway_tickers(settings) -> dict[str, float]:
    """The tickers the scenario's expectations name whose 5-day returns over the build's sessions
    go one way so often (more than 75 % up or down) that the naive forecast is nearly always right:
    no model can show skill there, and no champion can lose it."""
    named = {t for e in settings.replay.expect for t in (e.tickers or ())}
    closes = generate_market(settings.profile(), settings.source.synthetic).adjusted_close
    up = (np.log(closes).diff(5).dropna() > 0).mean()
    return {t: round(float(share), 3) for t, share in up.items() if t in named and not 0.25 <= share <= 0.75}


def test_every_scenario_plants_its_event_on_a_market_a_model_can_deploy_on():
    """The default planted signal is momentum fed back into the returns: too strong, and prices
    trend one way for years (a scenario at strength 2.0 left one ticker of five with a champion)."""
    from jobs.replay import SCENARIOS, scenario_names

    for name in scenario_names():
        assert _runaway_tickers(load_settings(SCENARIOS / f"{name}.toml")) == {}, name
    runaway = load_settings(SCENARIOS / "signal_death.toml", overrides={
        "source": {"synthetic": {"signal_strength": 2.0, "signal_source": "momentum"}}})
    assert set(_runaway_tickers(runaway)) == {"IEF", "SPY", "QQQ"}


def test_a_replay_never_empties_a_folder_it_did_not_make_nor_writes_into_another_store(tmp_path):
    from jobs.replay import main

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(SystemExit, match="not a replay's home"):
        main(["--scenario", "healthy", "--home", str(tmp_path / "mine")])
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    elsewhere = tmp_path / "elsewhere.toml"
    # a store beside the home whose name only starts like it is outside it too
    elsewhere.write_text(f'extends = "{preset_path("quick")}"\n[paths]\nstorage_url = "{tmp_path / "replay2"}"\n')
    with pytest.raises(SystemExit, match="paths.storage_url outside paths.home"):
        main(["--settings", str(elsewhere), "--home", str(tmp_path / "replay")])
    server = tmp_path / "server.toml"
    server.write_text(f'extends = "{preset_path("quick")}"\n[memory]\nqdrant_url = "http://localhost:6333"\n')
    with pytest.raises(SystemExit, match="memory.qdrant_url outside"):
        main(["--settings", str(server), "--home", str(tmp_path / "replay")])
    assert not (tmp_path / "replay").exists()  # refused before anything was written


SMALL = """extends = "{quick}"
name = "small_replay"

[universe]
tickers = ["AAPL", "NVDA", "SPY"]
benchmark = "SPY"

[dates]
start = "2015-01-02"
end = "2019-12-31"
train_end = 0.6
validation_end = 0.8

# a bad print in AAPL on session 2, and from session 5 on NVDA's quotes split 2-for-1 unlisted
[source.synthetic]
bad_prints = ["AAPL 2020-01-03"]
unlisted_splits = ["NVDA 2020-01-08 2"]

# a short history: hold out less, so the first of the policy's three folds has an episode to train on
[portfolio]
validation_fraction = 0.3

[portfolio.ppo]
total_timesteps = 4096
checkpoint_every = 2048

[ticks]
bootstrap_reps = 50

[ticks.source]
days = 1
ticks_per_day = 5000

[replay]
sessions = 30
event = "2020-01-08"
expect = [
  {{ kind = "bad_print_repaired", tickers = ["AAPL"] }},
  {{ kind = "rejected_from_event" }},
]
"""


@pytest.mark.slow
def test_a_small_replay_repairs_a_bad_print_and_stops_an_unlisted_split_at_the_data_layer(tmp_path, capsys,
                                                                                          monkeypatch):
    from dagster import DagsterInstance

    from jobs.replay import InProcessLoop, main

    path = tmp_path / "small.toml"
    path.write_text(SMALL.format(quick=preset_path("quick")))
    home = tmp_path / "replay"
    args = ["--settings", str(path), "--home", str(home), "--driver", "inprocess"]
    # stopped after 28 sessions, then resumed: the report covers all 30, numbered from the first
    assert main([*args, "--sessions", "28"]) == 0
    with DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        built = len(instance.get_runs())
    # resumed with nothing to go: the sensors go on from their cursors, so nothing runs again
    assert main([*args, "--sessions", "28", "--resume"]) == 0
    with DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        assert len(instance.get_runs()) == built
    # stopped inside session 29 (its files landed, the loop not yet quiet), then resumed
    settle, calls = InProcessLoop.settle, []

    def stopped(loop, timeout):
        calls.append(timeout)
        if len(calls) == 2:  # the first settles the store as the replay found it; the second is session 29's
            raise KeyboardInterrupt
        settle(loop, timeout)

    monkeypatch.setattr(InProcessLoop, "settle", stopped)
    with pytest.raises(KeyboardInterrupt):
        main([*args, "--resume"])
    monkeypatch.setattr(InProcessLoop, "settle", settle)
    code = main([*args, "--resume"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "28 sessions already replayed here, to 2020-02-11; 2 to go" in out
    assert "session  29/30 2020-02-12 (landed before the stop): ingest failure" in out
    assert "29 sessions already replayed here, to 2020-02-12; 1 to go" in out
    report = json.loads((home / "report" / "replay.json").read_text())
    assert [s["index"] for s in report["sessions"]] == list(range(1, 31))
    assert report["passed"] and len(report["sessions"]) == 30 and report["event_session"] == 5
    assert all(v["passed"] for v in report["verdicts"]), report["verdicts"]
    assert report["repairs"] == {"AAPL 2020-01-03": True} and report["forecast_log_last"] == "2020-01-07"
    before, after = report["sessions"][:4], report["sessions"][4:]
    assert all(s["ingest"] == "SUCCESS" and s["advice"] is not None for s in before)
    assert all(s["ingest"] == "FAILURE" and s["quarantined"] and s["advice"] is None for s in after)
    rejected = [e for e in report["events"] if e["kind"] == "ingest failed"]
    assert len(rejected) == 26 and "NVDA 2020-01-08" in rejected[0]["detail"]
    # the book traded every advised session whose next close is known, beside the baseline
    assert report["book"]["days"] == 3 and report["book"]["baseline_turnover"] > 0
    markdown = (home / "report" / "replay.md").read_text()
    assert "| PASS | rejected_from_event |" in markdown and (home / "report" / "paper_book.png").exists()
    # the recommendations started from the book's holdings, carried to their session
    assert json.loads((home / "holdings.json").read_text())["as_of"] == before[-1]["day"]
    recommendations = pd.read_parquet(home / "storage" / "tables" / "recommendations.parquet")
    assert recommendations["current_weights_from"].str.startswith(f"holdings file {home / 'holdings.json'}").all()


def test_recommendations_start_from_the_holdings_file_carried_to_the_newest_close(tmp_path):
    from assets.portfolio import RecommendationConfig, _current_weights

    tickers = ["AAA", "BBB"]
    daily = pd.DataFrame({"AAA": [0.0, 0.10], "BBB": [0.0, -0.10]}, index=pd.to_datetime(["2022-01-03", "2022-01-04"]))
    backtest = {"final_weights": {"ppo": {"AAA": 0.1, "BBB": 0.1}}, "final_date": "2021-12-31"}
    path = tmp_path / "holdings.json"
    held, source = _current_weights(RecommendationConfig(), tickers, backtest, "ppo", str(path), daily)
    assert held.tolist() == [0.1, 0.1] and source.startswith("ppo paper portfolio")  # no file yet
    write_holdings(path, {"AAA": 0.5, "BBB": 0.5}, "2022-01-03")
    held, source = _current_weights(RecommendationConfig(), tickers, backtest, "ppo", str(path), daily)
    assert held == pytest.approx([0.55 / 1.0, 0.45 / 1.0]) and "carried to 2022-01-04" in source
    held, source = _current_weights(RecommendationConfig(current_weights={"AAA": 0.2}), tickers, backtest, "ppo",
                                    str(path), daily)
    assert held.tolist() == [0.2, 0.0] and source == "config"  # the run's own weights come first
    write_holdings(path, {"AAA": 0.9, "ZZZ": 0.5}, "2022-01-04")
    with pytest.raises(ValueError, match="holdings.json must name universe tickers"):
        _current_weights(RecommendationConfig(), tickers, backtest, "ppo", str(path), daily)


def test_the_advice_sensor_asks_once_per_new_forecasts():
    import dagster as dg

    from sensors.advice import advise_after_forecasts

    with dg.instance_for_test() as instance:
        assert isinstance(advise_after_forecasts(dg.build_sensor_context(instance=instance)), dg.SkipReason)
        instance.report_runless_asset_event(dg.AssetMaterialization("forecasts"))
        context = dg.build_sensor_context(instance=instance)
        request = advise_after_forecasts(context)
        assert isinstance(request, dg.RunRequest) and request.tags["odyssey/trigger"] == "new forecasts"
        assert isinstance(advise_after_forecasts(dg.build_sensor_context(instance=instance, cursor=context.cursor)),
                          dg.SkipReason)


def test_the_timeline_folds_an_event_repeated_session_after_session_into_one_row():
    from odyssey.replay import runs_of_events

    s = sessions(12)
    events = [*(at(s, i, INGEST_FAILED, None) for i in (3, 4, 5, 9)), at(s, 4, RETRAIN, "AAA"), at(s, 5, RETRAIN, "BBB"),
              *(Event(i, s[i - 1].day, DRIFTED, "CCC", f"{i}% of features drifted") for i in (6, 7, 8))]
    rows = [(a.session, b.session, a.kind, a.ticker) for a, b in runs_of_events(events)]
    assert rows == [(3, 5, INGEST_FAILED, None), (4, 4, RETRAIN, "AAA"), (5, 5, RETRAIN, "BBB"), (6, 8, DRIFTED, "CCC"),
                    (9, 9, INGEST_FAILED, None)]
    failed = [Event(1, s[0].day, INGEST_FAILED, None, "clean_prices:a: x"), Event(2, s[1].day, INGEST_FAILED, None,
                                                                                "raw_prices:b: y")]
    assert len(runs_of_events(failed)) == 2  # a different check is a different row
