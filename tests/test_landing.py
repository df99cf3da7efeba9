"""New days through the landing folder: judged, ingested once, archived; bad files quarantined
with a reason and nothing stored changed."""

import pandas as pd
import pytest
import dagster as dg

from odyssey.landing import move, read_landed, synthetic_days, write_landing
from odyssey.sources.csv_source import SourceError
from odyssey.sources.synthetic import SyntheticConfig, generate_market
from resources import Storage
from sensors.landing import landing_sensor
from tests.dagster_helpers import quick_source, read_table, run_graph


def test_synthetic_days_continue_the_same_market(quick_profile, tmp_path):
    after = pd.Timestamp(quick_profile.end)
    data = synthetic_days(quick_profile, SyntheticConfig(), after, 3)
    longer = generate_market(quick_profile.with_end(after + pd.offsets.BDay(3))).data.prices
    expected = longer[longer["date"] > after].reset_index(drop=True)
    pd.testing.assert_frame_equal(data.prices, expected)
    assert data.prices["date"].nunique() == 3
    bars, alt = write_landing(data, tmp_path)
    landed = read_landed(bars, quick_profile.tickers, after)
    assert landed.kind == "bars" and len(landed.frame) == len(expected)
    assert read_landed(alt, quick_profile.tickers, after).kind == "alt"


def test_bad_landing_files_are_named_precisely(quick_profile, tmp_path):
    after = pd.Timestamp(quick_profile.end)
    bars, _ = write_landing(synthetic_days(quick_profile, SyntheticConfig(), after, 2), tmp_path)
    with pytest.raises(SourceError, match="repeats days already stored"):
        read_landed(bars, quick_profile.tickers, after + pd.offsets.BDay(1))
    frame = pd.read_csv(bars)
    frame.loc[0, "ticker"] = "ZZZ"
    frame.to_csv(tmp_path / "bars_unknown.csv", index=False)
    with pytest.raises(SourceError, match=r"bars_unknown.csv: column 'ticker' has tickers outside the universe: \['ZZZ'\]"):
        read_landed(tmp_path / "bars_unknown.csv", quick_profile.tickers, after)
    (tmp_path / "prices.csv").write_text("x")
    with pytest.raises(SourceError, match="landing files are named"):
        read_landed(tmp_path / "prices.csv", quick_profile.tickers, after)
    target = move(tmp_path / "prices.csv", tmp_path / "q", "bad name")
    assert (tmp_path / "q" / "prices.csv.reason.txt").read_text() == "bad name\n" and target.exists()


@pytest.mark.slow
def test_landing_sensor_ingests_new_days_once_and_quarantines_bad_files(tmp_path, monkeypatch, quick_profile):
    landing = tmp_path / "landing"
    monkeypatch.setenv("ODYSSEY_LANDING", str(landing))
    storage = tmp_path / "storage"
    market = quick_source()
    with dg.instance_for_test() as instance:
        assert run_graph(storage, market, instance=instance).success
        before = read_table(storage, "features")
        data = synthetic_days(quick_profile, market.synthetic_config(), pd.Timestamp(quick_profile.end), 2)
        write_landing(data, landing)
        bad = data.prices.copy()
        bad["date"] = bad["date"].dt.strftime("%Y-%m-%d")
        bad.loc[0, "close"] = -1.0
        bad.to_csv(landing / "bars_bad.csv", index=False)

        resources = {"storage": Storage(base_path=str(storage)), "market": market}
        context = dg.build_sensor_context(instance=instance, resources=resources)
        requests = list(landing_sensor(context))
        assert len(requests) == 1
        request = requests[0]
        assert sorted(p.rsplit("/", 1)[-1] for p in request.run_config["ops"]["landed_market"]["config"]["files"]) == \
            sorted(p.name for p in landing.iterdir() if p.name != "bars_bad.csv")
        reason = (tmp_path / "landing_quarantine" / "bars_bad.csv.reason.txt").read_text()
        assert "bars_bad.csv" in reason and "close must be > 0" in reason

        result = run_graph(storage, market, job="ingest", instance=instance, run_config=request.run_config,
                           tags={"dagster/run_key": request.run_key})
        assert result.success
        after = read_table(storage, "features")
        assert after["date"].max() == data.prices["date"].max()
        assert len(after) == len(before) + len(data.prices)
        pd.testing.assert_frame_equal(after[after["date"] <= before["date"].max()].reset_index(drop=True),
                                      before.reset_index(drop=True))

        context = dg.build_sensor_context(instance=instance, resources=resources, cursor=context.cursor)
        assert list(landing_sensor(context)) == []
        assert sorted(p.name for p in (tmp_path / "landing_archive").iterdir()) == sorted(
            f"{k}_{data.prices['date'].min().date()}_{data.prices['date'].max().date()}.csv" for k in ("alt", "bars"))
        assert list(landing.iterdir()) == []
        context = dg.build_sensor_context(instance=instance, resources=resources, cursor=context.cursor)
        assert list(landing_sensor(context)) == []
