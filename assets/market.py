"""Group `market`: raw bars and alternative data from the source and the landing folder, cleaned
prices on the exchange's sessions (bad prints repaired), and daily total returns."""

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from odyssey.fitting import clean_market_data, log_returns
from odyssey.landing import append_landed, landing_kind, read_landed
from odyssey.sources.columns import ALT_COLUMNS, PRICE_COLUMNS, MarketData, empty_actions
from resources.market import MarketSource
from resources.metadata import describe_table, md_table
from resources.settings import SettingsResource
from resources.storage import LANDED_POOL, LANDED_TABLES, Storage, last_landed_day

GROUP = "market"

# Daily data: stale after a day (warn) and three days (fail, a weekend fits in between).
DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=3), warn_window=timedelta(hours=26))


class LandingConfig(dg.Config):
    files: list[str] = []


@dg.multi_asset(
    outs={
        "landed_bars": dg.AssetOut(description="Bars for new trading sessions ingested from the landing folder.",
                                   kinds={"pandas", "parquet"}),
        "landed_alt_data": dg.AssetOut(description="Alternative data for new sessions from the landing folder.",
                                       kinds={"pandas", "parquet"}),
        "landed_actions": dg.AssetOut(description="Splits delivered with landed sessions (date, ticker, ratio).",
                                      kinds={"pandas", "parquet"}),
    },
    group_name=GROUP,
    pool=LANDED_POOL,
)
def landed_market(context: dg.AssetExecutionContext, config: LandingConfig, settings: SettingsResource,
                  storage: Storage):
    """Everything ingested from the landing folder so far, plus the files of this run (the
    landing sensor names them); files must carry sessions after those already stored. One
    landing at a time (pool landed_tables, and a lock held from reading the stored tables until
    all three are written back), so two ingests never both extend the same days and lose one's."""
    profile = settings.profile()
    with storage.exclusive(LANDED_POOL):
        # read, extend and write back under the lock: the IO manager stores each output before
        # this generator resumes, so the lock is released only after the last table is written
        stored = {kind: storage.stored_table(table) for kind, table in LANDED_TABLES.items()}

        def after(path: Path):
            kind = landing_kind(path) or "bars"
            return last_landed_day(storage, profile.end, kind, stored[kind])

        files = [read_landed(Path(f), profile.tickers, after(Path(f)), profile.exchange,
                         "volume" in profile.bar_fields) for f in config.files]
        bars = append_landed(stored["bars"], [f.frame for f in files if f.kind == "bars"] or
                             [pd.DataFrame(columns=list(PRICE_COLUMNS))], ["ticker", "date"])
        alt = append_landed(stored["alt"], [f.frame for f in files if f.kind == "alt"] or
                            [pd.DataFrame(columns=["date", *profile.alt_series])], ["date"])
        actions = append_landed(stored["actions"], [f.frame for f in files if f.kind == "actions"] or
                                [empty_actions()], ["ticker", "date"])
        names = ", ".join(Path(f).name for f in config.files) or "none"
        context.log.info(f"landed files this run: {names}")
        yield dg.Output(bars.astype({"date": "datetime64[ns]"}), "landed_bars",
                        metadata={**describe_table(bars), "files_this_run": names})
        yield dg.Output(alt.astype({"date": "datetime64[ns]"}), "landed_alt_data", metadata=describe_table(alt))
        yield dg.Output(actions.astype({"date": "datetime64[ns]", "ratio": float}), "landed_actions",
                        metadata={"rows": len(actions), "splits": md_table(actions, rows=20)})


@dg.multi_asset(
    outs={
        "raw_prices": dg.AssetOut(description="Daily OHLCV bars as quoted (not split-adjusted), one row per ticker and "
                                              "session; adj_close where the source has distribution-adjusted closes.",
                                  kinds={"pandas", "parquet"}, freshness_policy=DAILY_FRESHNESS),
        "raw_alt_data": dg.AssetOut(description="Alternative data per day: the series of the universe's settings "
                                                "(any of VIX, DXY, Gold, the 10-year yield).",
                                    kinds={"pandas", "parquet"}),
        "corporate_actions": dg.AssetOut(description="Stock splits: date, ticker, ratio (new shares per old share).",
                                         kinds={"pandas", "parquet"}),
    },
    deps=["landed_bars", "landed_alt_data", "landed_actions"],
    group_name=GROUP,
)
def raw_market(context: dg.AssetExecutionContext, settings: SettingsResource, market: MarketSource, storage: Storage):
    """Bars, alternative data and corporate actions from the configured source, followed by the
    sessions ingested from the landing folder (none until the landing sensor has ingested any).
    Rows the source kept out (unknown tickers, non-sessions, missing volumes) are listed in the
    metadata with their file and line."""
    profile = settings.profile()
    data = market.load(profile)
    prices = data.prices
    landed_bars = storage.stored_table("landed_bars")
    if landed_bars is not None and len(landed_bars):
        later = landed_bars[landed_bars["date"] > prices["date"].max()]
        prices = pd.concat([prices.astype({"volume": float}), later.astype({"volume": float})], ignore_index=True)
        prices = prices.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
        if "source_row" in prices:  # landed rows name their landing file and line
            prices["source_row"] = prices["source_row"].astype("Int64")
    wanted = ["date", *[c for c in ALT_COLUMNS[1:] if c in profile.alt_series]]
    alt = data.alt[[c for c in wanted if c in data.alt.columns]]
    landed_alt = storage.stored_table("landed_alt_data")
    if landed_alt is not None and len(landed_alt):
        new = landed_alt[landed_alt["date"] > alt["date"].max()] if len(alt) else landed_alt
        alt = pd.concat([alt, new[[c for c in alt.columns if c in new.columns]]], ignore_index=True)
    missing_alt = [c for c in profile.alt_series if c not in alt.columns]
    if missing_alt:
        raise ValueError(f"raw_market: the settings' universe.alt_series lists {missing_alt}, which the "
                         f"{market.kind} source does not have; remove them from alt_series or provide them")
    context.log.info(f"source={market.kind} settings={profile.name} rows={len(prices)}")
    issues = data.issues
    yield dg.Output(prices, "raw_prices", metadata={
        **describe_table(prices), "source": market.kind, "settings": profile.name,
        "landed_rows": 0 if landed_bars is None else len(landed_bars),
        "source_issues": len(issues), "source_issue_rows": md_table(issues, rows=30)})
    yield dg.Output(alt, "raw_alt_data", metadata=describe_table(alt))
    actions = data.actions
    landed_actions = storage.stored_table("landed_actions")
    if landed_actions is not None and len(landed_actions):
        landed_actions = landed_actions.drop(columns=["source_file"], errors="ignore")
        actions = (pd.concat([actions, landed_actions], ignore_index=True).drop_duplicates(["ticker", "date"])
                   .sort_values(["date", "ticker"]).reset_index(drop=True))
    yield dg.Output(actions, "corporate_actions", metadata={"rows": len(actions), "actions": md_table(actions, rows=20)})


@dg.multi_asset(
    outs={
        "clean_prices": dg.AssetOut(
            description="Split-adjusted bars on the exchange's sessions: gaps up to the fill limit forward-filled, "
                        "longer gaps left empty, reverting bad prints repaired (original kept), other extreme moves "
                        "flagged; adj_close carries distributions.",
            kinds={"pandas", "parquet"}),
        "clean_alt_data": dg.AssetOut(description="Alternative data on the price sessions.", kinds={"pandas", "parquet"}),
    },
    ins={"raw_prices": dg.AssetIn(), "raw_alt_data": dg.AssetIn(), "corporate_actions": dg.AssetIn()},
    group_name=GROUP,
)
def clean_market(settings: SettingsResource, raw_prices: pd.DataFrame, raw_alt_data: pd.DataFrame,
                 corporate_actions: pd.DataFrame):
    """Clean raw bars and put alternative data on the same sessions (see odyssey/cleaning.py)."""
    cleaned = clean_market_data(MarketData(raw_prices, raw_alt_data, corporate_actions), settings.profile(),
                                settings.value.cleaning)
    prices, alt, report = cleaned.inputs.clean, cleaned.inputs.alt, cleaned.report
    splits = pd.DataFrame(report["splits"], columns=["ticker", "date", "ratio", "source"])
    yield dg.Output(prices, "clean_prices", metadata={
        **describe_table(prices),
        "filled_cells": report["filled_cells"], "gap_cells": report["gap_cells"],
        "outliers_flagged": report["outliers"], "bad_prints_repaired": len(report["repaired"]),
        "repaired": md_table(report["repaired"], rows=30, digits=4),
        "off_calendar_rows": len(report["off_calendar"]), "off_calendar": md_table(report["off_calendar"], rows=20),
        "splits_adjusted": md_table(splits, rows=30),
    })
    yield dg.Output(alt, "clean_alt_data", metadata=describe_table(alt))


@dg.asset(group_name=GROUP, kinds={"pandas", "parquet"})
def returns(clean_prices: pd.DataFrame) -> dg.MaterializeResult:
    """Daily total log returns per ticker (from the distribution-adjusted close). Clipping is a
    fitted transform of the feature pipeline, fitted on each training window."""
    table = log_returns(clean_prices)
    return dg.MaterializeResult(value=table, metadata=describe_table(table))
