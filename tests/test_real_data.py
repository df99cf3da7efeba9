"""Real daily bars end to end, from a settings file the test writes: three real tickers from a CSV
folder, 2013-2019, no alternative data. The data layer (on the exchange's sessions, holidays
absent), one ticker's forecasting chain with its gates, and the portfolio all run, with no code
change."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from odyssey.calendar import sessions
from odyssey.features import feature_names
from odyssey.settings import load_settings, preset_path
from tests.dagster_helpers import check_results, fast_forecasting_config, materialized, read_table, run_graph

BARS = Path(__file__).parent / "data" / "real_bars"
TICKERS = ["AAPL", "GOOG", "NVDA"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real")
    path = folder / "odyssey.toml"
    path.write_text(f'''extends = "{preset_path("quick")}"
name = "real"

[universe]
tickers = {TICKERS}
benchmark = "AAPL"
alt_series = []

[dates]
start = "2013-01-02"
end = "2019-12-31"
train_end = 0.6
validation_end = 0.8

[source]
kind = "csv"
csv_path = "{BARS}"

[paths]
home = "home"
''')
    settings = load_settings(path, environ={})
    with dg.instance_for_test() as instance:
        data = run_graph(settings, instance=instance)
        yield settings, instance, data


@pytest.mark.slow
def test_the_data_layer_runs_on_real_bars_on_the_exchange_sessions(world):
    settings, _, data = world
    assert data.success and all(check_results(data).values())
    days = sessions("2013-01-02", "2019-12-31")
    assert len(days) == 1762 and settings.profile().train_end == str(days[round(0.6 * 1762) - 1].date())
    clean = read_table(settings, "clean_prices")
    for ticker, group in clean.groupby("ticker"):
        assert pd.DatetimeIndex(group["date"]).equals(days), ticker
    assert pd.Timestamp("2013-07-04") not in set(clean["date"]) and pd.Timestamp("2019-12-25") not in set(clean["date"])
    assert not clean[["filled", "gap", "repaired"]].any().any()
    # total returns: AAPL paid dividends, so its adjusted close moves apart from its close
    aapl = clean[clean["ticker"] == "AAPL"]
    assert (aapl["adj_close"] / aapl["close"]).nunique() > 10
    features = read_table(settings, "features")
    assert list(features.columns[2:]) == list(feature_names(()))
    assert len(feature_names(())) == 85 and "VIX_level" not in features.columns


@pytest.mark.slow
def test_one_tickers_forecasting_and_the_portfolio_run_on_real_bars(world):
    settings, instance, _ = world
    chain = run_graph(settings, job="forecasting", partition_key="AAPL", instance=instance,
                      run_config=fast_forecasting_config())
    assert {"walkforward_forecasts", "forecast_models"} <= materialized(chain)
    gates = check_results(chain)
    assert gates["leakage_canary"] and gates["plausible_accuracy"] and gates["signature_and_registry_version"]
    for ticker in ("GOOG", "NVDA"):
        assert run_graph(settings, job="forecasting", partition_key=ticker, instance=instance,
                         selection=[dg.AssetKey(k) for k in ("walkforward_forecasts", "walkforward_summary",
                                                             "analog_forecasts", "analog_summary")],
                         run_config=fast_forecasting_config()).success
    assert run_graph(settings, job="batch_forecasts", instance=instance).success
    forecasts = read_table(settings, "forecasts").set_index("ticker")
    assert forecasts.loc["AAPL", "status"] == ("champion" if gates["has_skill"] else "no model with skill")
    portfolio = run_graph(settings, job="portfolio", instance=instance)
    assert portfolio.success, [e.check_name for e in portfolio.get_asset_check_evaluations() if not e.passed]
    backtest = read_table(settings, "backtest")
    assert backtest["date"].min() > pd.Timestamp(settings.profile().validation_end)
    assert (Path(settings.paths.storage_url) / "reports" / "recommendations.json").exists()
