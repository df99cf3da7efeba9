"""Group `market`: raw bars and alternative data from the source, cleaned prices, returns."""

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from assets.metadata import describe_table, md_table
from odyssey.cleaning import clean_alt, clean_prices
from odyssey.landing import append_landed, landing_kind, read_landed
from odyssey.returns import clip_returns, fit_clip_thresholds, log_returns
from resources.market import MarketSource
from resources.storage import Storage

GROUP = "market"

# Daily data: stale after a day (warn) and three days (fail, a weekend fits in between).
DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=3), warn_window=timedelta(hours=26))


class LandingConfig(dg.Config):
    files: list[str] = []


class CleaningConfig(dg.Config):
    max_fill_days: int = 5
    outlier_sigma: float = 5.0

class ReturnsConfig(dg.Config):
    clip_sigma: float = 3.0

def last_landed_day(storage: Storage, market: MarketSource, kind: str) -> pd.Timestamp:
    """New `kind` ("bars" | "alt") files must start after this day: the later of the source
    history's end and the last landed day of that kind."""
    stored = _stored(storage, "landed_bars" if kind == "bars" else "landed_alt_data")
    end = pd.Timestamp(market.universe().end)
    return max(end, stored["date"].max()) if stored is not None and len(stored) else end


def _stored(storage: Storage, asset: str) -> pd.DataFrame | None:
    path = storage.path("tables", f"{asset}.parquet")
    if not path.exists():
        return None
    with path.open("rb") as handle:
        return pd.read_parquet(handle)


@dg.multi_asset(
    outs={
        "landed_bars": dg.AssetOut(description="Bars for new trading days ingested from the landing folder.",
                                   kinds={"pandas", "parquet"}),
        "landed_alt_data": dg.AssetOut(description="Alternative data for new days from the landing folder.",
                                       kinds={"pandas", "parquet"}),
    },
    group_name=GROUP,
)
def landed_market(context: dg.AssetExecutionContext, config: LandingConfig, market: MarketSource, storage: Storage):
    """Everything ingested from the landing folder so far, plus the files of this run (the
    landing sensor names them); files must carry days after those already stored."""
    profile = market.universe()
    stored = {k: _stored(storage, k) for k in ("landed_bars", "landed_alt_data")}
    files = [read_landed(Path(f), profile.tickers, last_landed_day(storage, market, landing_kind(Path(f)) or "bars"))
             for f in config.files]
    bars = append_landed(stored["landed_bars"], [f.frame for f in files if f.kind == "bars"] or
                         [pd.DataFrame(columns=["date", "ticker", "open", "high", "low", "close", "volume"])],
                         ["ticker", "date"])
    alt = append_landed(stored["landed_alt_data"], [f.frame for f in files if f.kind == "alt"] or
                        [pd.DataFrame(columns=["date", "VIX", "DXY", "Gold", "Yield_10Y"])], ["date"])
    names = ", ".join(Path(f).name for f in config.files) or "none"
    context.log.info(f"landed files this run: {names}")
    yield dg.Output(bars.astype({"date": "datetime64[ns]"}), "landed_bars",
                    metadata={**describe_table(bars), "files_this_run": names})
    yield dg.Output(alt.astype({"date": "datetime64[ns]"}), "landed_alt_data", metadata=describe_table(alt))


@dg.multi_asset(
    outs={
        "raw_prices": dg.AssetOut(description="Daily OHLCV bars as quoted (not split-adjusted), one row per ticker and day.",
                                  kinds={"pandas", "parquet"}, freshness_policy=DAILY_FRESHNESS),
        "raw_alt_data": dg.AssetOut(description="Alternative data per day: VIX, DXY, Gold, 10-year yield.",
                                    kinds={"pandas", "parquet"}),
        "corporate_actions": dg.AssetOut(description="Stock splits: date, ticker, ratio (new shares per old share).",
                                         kinds={"pandas", "parquet"}),
    },
    deps=["landed_bars", "landed_alt_data"],
    group_name=GROUP,
)
def raw_market(context: dg.AssetExecutionContext, market: MarketSource, storage: Storage):
    """Bars, alternative data and corporate actions from the configured source, followed by the
    days ingested from the landing folder (none until the landing sensor has ingested any)."""
    empty = pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]")})
    landed_bars = _stored(storage, "landed_bars")
    landed_bars = empty if landed_bars is None else landed_bars
    landed_alt_data = _stored(storage, "landed_alt_data")
    landed_alt_data = empty if landed_alt_data is None else landed_alt_data
    data = market.load()
    profile = market.universe()
    prices = data.prices
    if len(landed_bars):
        later = landed_bars[landed_bars["date"] > prices["date"].max()]
        prices = pd.concat([prices.astype({"volume": float}), later.astype({"volume": float})], ignore_index=True)
        prices = prices.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    alt = data.alt
    if len(landed_alt_data):
        alt = pd.concat([alt, landed_alt_data[landed_alt_data["date"] > alt["date"].max()]], ignore_index=True)
    context.log.info(f"source={market.source} profile={profile.name} rows={len(prices)}")
    yield dg.Output(prices, "raw_prices", metadata={**describe_table(prices), "source": market.source,
                                                    "profile": profile.name, "landed_rows": len(landed_bars)})
    yield dg.Output(alt, "raw_alt_data", metadata=describe_table(alt))
    yield dg.Output(data.actions, "corporate_actions",
                    metadata={"rows": len(data.actions), "actions": md_table(data.actions, rows=20)})


@dg.multi_asset(
    outs={
        "clean_prices": dg.AssetOut(
            description="Split-adjusted bars on the business-day calendar; gaps <= 5 days forward-filled, "
                        "longer gaps left empty and flagged; +-5 sigma moves flagged.",
            kinds={"pandas", "parquet"}),
        "clean_alt_data": dg.AssetOut(description="Alternative data on the price calendar.", kinds={"pandas", "parquet"}),
    },
    ins={"raw_prices": dg.AssetIn(), "raw_alt_data": dg.AssetIn(), "corporate_actions": dg.AssetIn()},
    group_name=GROUP,
)
def clean_market(market: MarketSource, config: CleaningConfig, raw_prices: pd.DataFrame, raw_alt_data: pd.DataFrame,
                 corporate_actions: pd.DataFrame):
    """Clean raw bars and put alternative data on the same calendar (see odyssey/cleaning.py)."""
    profile = market.universe()
    raw = raw_prices.drop(columns=[c for c in ("source_file", "source_row") if c in raw_prices.columns])
    result = clean_prices(raw, corporate_actions, list(profile.tickers), profile.start,
                          max_fill_days=config.max_fill_days, outlier_sigma=config.outlier_sigma)
    calendar = pd.DatetimeIndex(sorted(result.prices["date"].unique()), name="date")
    alt = clean_alt(raw_alt_data, calendar, config.max_fill_days)
    report = result.report
    splits = pd.DataFrame(report["splits"], columns=["ticker", "date", "ratio", "source"])
    yield dg.Output(result.prices, "clean_prices", metadata={
        **describe_table(result.prices),
        "filled_cells": report["filled_cells"], "gap_cells": report["gap_cells"],
        "outliers_flagged": report["outliers"], "off_calendar_rows_dropped": report["off_calendar_rows_dropped"],
        "splits_adjusted": md_table(splits, rows=30),
    })
    yield dg.Output(alt, "clean_alt_data", metadata=describe_table(alt))

@dg.multi_asset(
    outs={
        "returns": dg.AssetOut(description="Daily log returns and their clipped values (+-3 sigma, train thresholds).",
                               kinds={"pandas", "parquet"}),
        "return_clip_thresholds": dg.AssetOut(description="Per-ticker clip thresholds fit on the train period (JSON).",
                                              io_manager_key="json_io_manager", kinds={"json"}),
    },
    ins={"clean_prices": dg.AssetIn()},
    group_name=GROUP,
)
def returns(market: MarketSource, config: ReturnsConfig, clean_prices: pd.DataFrame):
    """Log returns per ticker, clipped with thresholds computed on the train period only."""
    profile = market.universe()
    raw = log_returns(clean_prices)
    thresholds = fit_clip_thresholds(raw, profile.train_end, config.clip_sigma)
    table = clip_returns(raw, thresholds)
    limits = pd.DataFrame([{"ticker": t, **v} for t, v in thresholds["tickers"].items()])
    yield dg.Output(table, "returns", metadata={**describe_table(table), "clipped": int(table["clipped"].sum()),
                                                "clipped_share": float(table["clipped"].mean())})
    yield dg.Output(thresholds, "return_clip_thresholds",
                    metadata={"train_end": thresholds["train_end"], "thresholds": md_table(limits, rows=30, digits=5)})
