"""New sessions through the landing folder: judged, ingested once, archived; bad files quarantined
with a reason (naming the file's own lines) and nothing stored changed."""

import pandas as pd
import pytest
import dagster as dg

from odyssey.calendar import next_sessions
from odyssey.landing import move, read_landed, synthetic_days, write_landing
from odyssey.sources.csv_source import SourceError
from odyssey.sources.synthetic import generate_market
from resources import SettingsResource, Storage
from sensors.landing import landing_sensor
from tests.dagster_helpers import quick_settings, read_table, run_graph


def test_synthetic_days_continue_the_same_market_on_sessions(quick_profile, quick_settings, tmp_path):
    after = pd.Timestamp(quick_profile.end)            # 2021-12-31
    config = quick_settings.source.synthetic
    data = synthetic_days(quick_profile, config, after, 11)
    days = next_sessions(after, 11)
    longer = generate_market(quick_profile.with_end(days[-1]), config).data.prices
    expected = longer[longer["date"] > after].reset_index(drop=True)
    pd.testing.assert_frame_equal(data.prices, expected)
    assert sorted(data.prices["date"].unique()) == list(days)
    assert days[-1] == pd.Timestamp("2022-01-18")       # the 11th session: Martin Luther King Jr. Day skipped
    assert pd.Timestamp("2022-01-17") not in set(data.prices["date"]) | set(data.alt["date"])
    bars, alt = write_landing(data, tmp_path)
    landed = read_landed(bars, quick_profile.tickers, after, quick_profile.exchange)
    assert landed.kind == "bars" and len(landed.frame) == len(expected)
    assert read_landed(alt, quick_profile.tickers, after, quick_profile.exchange).kind == "alt"


def test_bad_landing_files_are_named_precisely(quick_profile, quick_settings, tmp_path):
    after = pd.Timestamp(quick_profile.end)
    data = synthetic_days(quick_profile, quick_settings.source.synthetic, after, 2)
    bars, _ = write_landing(data, tmp_path)
    # rows are ticker by ticker: the first session's bars are on lines 2, 4, 6, 8, 10
    with pytest.raises(SourceError, match=r"repeats days already stored \(on or before 2022-01-03\) "
                                          r"in lines 2, 4, 6, 8, 10$"):
        read_landed(bars, quick_profile.tickers, next_sessions(after, 1)[0])
    frame = pd.read_csv(bars)
    frame.loc[0, "ticker"] = "ZZZ"
    frame.to_csv(tmp_path / "bars_unknown.csv", index=False)
    with pytest.raises(SourceError, match=r"bars_unknown.csv: column 'ticker' has tickers outside the universe: \['ZZZ'\]"):
        read_landed(tmp_path / "bars_unknown.csv", quick_profile.tickers, after)
    frame = pd.read_csv(bars)
    frame.loc[3, "close"] = -1.0
    frame.to_csv(tmp_path / "bars_negative.csv", index=False)
    with pytest.raises(SourceError, match=r"bars_negative.csv: .*column 'close': close must be > 0 \(1 failing, line 5\)$"):
        read_landed(tmp_path / "bars_negative.csv", quick_profile.tickers, after)
    frame = pd.read_csv(bars)
    frame["volume"] = frame["volume"].astype(float)
    frame.loc[[2, 6], "volume"] = float("nan")
    frame.to_csv(tmp_path / "bars_no_volume.csv", index=False)
    with pytest.raises(SourceError, match=r"bars_no_volume.csv: column 'volume' is empty in lines 4, 8$"):
        read_landed(tmp_path / "bars_no_volume.csv", quick_profile.tickers, after)
    frame = pd.read_csv(bars)
    frame.loc[1, "date"] = "2022-01-17"                 # a holiday of the exchange
    frame.to_csv(tmp_path / "bars_holiday.csv", index=False)
    with pytest.raises(SourceError, match=r"bars_holiday.csv: column 'date' has days that are not XNYS sessions "
                                          r"in line 3 \(e\.g\. 2022-01-17\)"):
        read_landed(tmp_path / "bars_holiday.csv", quick_profile.tickers, after, "XNYS")
    assert read_landed(tmp_path / "bars_holiday.csv", quick_profile.tickers, after).kind == "bars"
    (tmp_path / "prices.csv").write_text("x")
    with pytest.raises(SourceError, match="landing files are named"):
        read_landed(tmp_path / "prices.csv", quick_profile.tickers, after)
    target = move(tmp_path / "prices.csv", tmp_path / "q", "bad name")
    assert (tmp_path / "q" / "prices.csv.reason.txt").read_text() == "bad name\n" and target.exists()


@pytest.mark.slow
def test_landing_sensor_ingests_new_days_once_and_quarantines_bad_files(tmp_path, quick_profile):
    settings = quick_settings(tmp_path)
    landing, archive, quarantine = settings.paths.landing_dirs
    assert (landing, archive, quarantine) == (tmp_path / "landing", tmp_path / "landing_archive",
                                              tmp_path / "landing_quarantine")
    with dg.instance_for_test() as instance:
        assert run_graph(settings, instance=instance).success
        before = read_table(settings, "features")
        data = synthetic_days(quick_profile, settings.source.synthetic, pd.Timestamp(quick_profile.end), 2)
        write_landing(data, landing)
        bad = data.prices.copy()
        bad["date"] = bad["date"].dt.strftime("%Y-%m-%d")
        bad.loc[0, "close"] = -1.0
        bad.to_csv(landing / "bars_bad.csv", index=False)

        resources = {"storage": Storage(base_path=settings.paths.storage_url),
                     "settings": SettingsResource.of(settings)}
        context = dg.build_sensor_context(instance=instance, resources=resources)
        requests = list(landing_sensor(context))
        assert len(requests) == 1
        request = requests[0]
        assert sorted(p.rsplit("/", 1)[-1] for p in request.run_config["ops"]["landed_market"]["config"]["files"]) == \
            sorted(p.name for p in landing.iterdir() if p.name != "bars_bad.csv")
        reason = (quarantine / "bars_bad.csv.reason.txt").read_text()
        assert "bars_bad.csv" in reason and "close must be > 0" in reason and "line 2)" in reason

        result = run_graph(settings, job="ingest", instance=instance, run_config=request.run_config,
                           tags={"dagster/run_key": request.run_key})
        assert result.success
        after = read_table(settings, "features")
        assert after["date"].max() == data.prices["date"].max()
        assert len(after) == len(before) + len(data.prices)
        pd.testing.assert_frame_equal(after[after["date"] <= before["date"].max()].reset_index(drop=True),
                                      before.reset_index(drop=True))

        context = dg.build_sensor_context(instance=instance, resources=resources, cursor=context.cursor)
        assert list(landing_sensor(context)) == []
        assert sorted(p.name for p in archive.iterdir()) == sorted(
            f"{k}_{data.prices['date'].min().date()}_{data.prices['date'].max().date()}.csv" for k in ("alt", "bars"))
        assert list(landing.iterdir()) == []
        context = dg.build_sensor_context(instance=instance, resources=resources, cursor=context.cursor)
        assert list(landing_sensor(context)) == []


def test_splits_land_with_their_sessions_and_reach_the_corporate_actions(tmp_path):
    """NVDA split 4:1 on 2021-07-20: landed with the sessions around it, the split is applied and
    the clean series has no level change there (without it the level-shift check would stop it)."""
    settings = quick_settings(tmp_path, dates={"end": "2021-06-30"})
    profile = settings.profile()
    data = synthetic_days(profile, settings.source.synthetic, pd.Timestamp(profile.end), 30)
    assert data.actions[["ticker", "ratio"]].values.tolist() == [["NVDA", 4.0]]
    files = write_landing(data, tmp_path / "landing")
    assert sorted(f.name.split("_")[0] for f in files) == ["actions", "alt", "bars"]
    with dg.instance_for_test() as instance:
        assert run_graph(settings, instance=instance).success
        result = run_graph(settings, job="ingest", instance=instance,
                           run_config={"ops": {"landed_market": {"config": {"files": [str(f) for f in files]}}}})
        assert result.success
    actions = read_table(settings, "corporate_actions")
    assert ((actions["ticker"] == "NVDA") & (actions["date"] == pd.Timestamp("2021-07-20"))).sum() == 1
    nvda = read_table(settings, "clean_prices").query("ticker == 'NVDA'").set_index("date")["close"]
    move = nvda.loc["2021-07-20"] / nvda.loc["2021-07-19"]
    assert 0.8 < move < 1.25
