"""Market memory: the market states (group `features`), their Qdrant index and what the memory says
about a day (`market_analogs`, the launchpad's way to ask; group `memory`). The state map is fitted
on an expanding window at the settings' cadence, and a day is answered by the newest fit that ends
before it (odyssey/memory.py). The analog forecast is evaluated with XGBoost's walk-forward, on the
same folds (assets/forecasting.py)."""

import time
from typing import Optional

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from odyssey.fitting import feature_pipeline, market_inputs
from odyssey.hashing import sha256_bytes
from odyssey.memory import analog_paths, build_states, fit_ends, newest_fit
from odyssey.report import analog_paths_chart
from resources.metadata import md_table, png_bytes_markdown
from resources.memory import WRITER_POOL, QdrantIndex, answer_json, ask
from resources.settings import SettingsResource
from resources.storage import Storage

FEATURES, MEMORY = "features", "memory"


@dg.multi_asset(
    outs={
        "market_states": dg.AssetOut(
            description="One vector per fit of the state map, ticker and session: the features embedded by a state "
                        "map (clip thresholds, regimes, scaler, PCA) fitted on the sessions up to the fit's end "
                        "(fit_end), for the sessions up to the next fit's end; with the regime, the forward return "
                        "and the session it is realised on.",
            kinds={"pandas", "parquet"}, group_name=FEATURES),
        "state_embedding": dg.AssetOut(description="Each fit of the state map: its end, the sessions it answers for, "
                                                   "its fitted pipeline and PCA, and its fingerprint (JSON).",
                                       io_manager_key="json_io_manager", kinds={"json"}, group_name=FEATURES),
    },
    ins={"clean_prices": dg.AssetIn(), "returns": dg.AssetIn(), "clean_alt_data": dg.AssetIn()},
)
def market_states(settings: SettingsResource, clean_prices: pd.DataFrame, returns: pd.DataFrame,
                  clean_alt_data: pd.DataFrame):
    """Every ticker's state on every session, the newest included (their forward returns arrive
    as they are realised), under each fit of the state map: the first `memory.first_fit_months`
    after the start, then every `memory.refit_months`, the last at train_end."""
    s = settings.value
    profile = settings.profile()
    inputs = market_inputs(clean_prices, returns, clean_alt_data)
    ends = fit_ends(inputs.dates, profile.train_end, s.memory.first_fit_months, s.memory.refit_months)
    states, fits = build_states(inputs, feature_pipeline(s, scale=False), s.forecast.horizon, s.memory.dimensions,
                                ends)
    newest = newest_fit(states)
    realised = newest["forward_return"].notna()
    table = pd.DataFrame([{
        "fit_end": str(f.end.date()), "answers": _answers(f), "states": f.states, "fitted_rows": f.embedding["rows"],
        "explained_variance": round(float(np.sum(f.embedding["explained_variance_ratio"])), 4),
        "fingerprint": f.fingerprint} for f in fits])
    yield dg.Output(states, "market_states", metadata={
        "rows": len(states), "fits": len(fits), "tickers": int(states["ticker"].nunique()),
        "dimensions": len(fits[-1].embedding["components"]), "newest_fit_end": str(fits[-1].end.date()),
        "realised": int(realised.sum()), "awaiting_forward_return": int((~realised).sum()),
        "newest_session": str(states["date"].max().date()), "fits_table": md_table(table, rows=64)})
    yield dg.Output({"first_fit_months": s.memory.first_fit_months, "refit_months": s.memory.refit_months,
                     "fit_end": str(fits[-1].end.date()), "fingerprint": fits[-1].fingerprint,
                     "fits": [f.to_dict() for f in fits]}, "state_embedding", metadata={
        "fits": md_table(table, rows=64), "newest_fit_end": str(fits[-1].end.date()),
        "fingerprint": fits[-1].fingerprint})


def _answers(fit) -> str:
    """The days a fit answers for, for the UI."""
    return f"after {fit.end.date()}" + (f" to {fit.until.date()}" if fit.until is not None else "")


@dg.asset(group_name=MEMORY, kinds={"qdrant"}, io_manager_key="json_io_manager", pool=WRITER_POOL,
          ins={"market_states": dg.AssetIn(), "state_embedding": dg.AssetIn()})
def market_state_index(memory: QdrantIndex, storage: Storage, market_states: pd.DataFrame,
                       state_embedding: dict) -> dg.MaterializeResult:
    """The market states of the newest fit of the state map in Qdrant (the older fits' states are
    indexed in memory when asked). Incremental: only new sessions and newly realised forward
    returns are upserted; a new embedding rebuilds. One writer at a time (pool qdrant_index)."""
    started = time.perf_counter()
    # what the last write left in this index (where): spares reading every point back
    ledger = storage.path("memory", f"{_ledger_name(memory)}.parquet")
    known = pd.read_parquet(ledger) if ledger.exists() else None
    with memory.open() as index:
        counts, written = index.sync(newest_fit(market_states), state_embedding["fingerprint"], known)
        stored = index.count()
    ledger.parent.mkdir(parents=True, exist_ok=True)
    written.to_parquet(ledger)
    seconds = time.perf_counter() - started
    value = {**counts, "stored": stored, "collection": memory.collection, "where": memory.where(),
             "fingerprint": state_embedding["fingerprint"], "fit_end": state_embedding["fit_end"],
             "newest_session": str(market_states["date"].max().date())}
    return dg.MaterializeResult(value=value, metadata={**value, "seconds": round(seconds, 2)})


def _ledger_name(memory: QdrantIndex) -> str:
    """One ledger per index location and collection prefix."""
    return sha256_bytes(f"{memory.where()}|{memory.collection}".encode())[:12]


class AnalogQuery(dg.Config):
    """Ask the memory: which past sessions of `ticker` looked most like `date`, and what followed."""

    date: str = Field(default="", description="a session, YYYY-MM-DD (empty: the newest)")
    ticker: str = Field(default="", description="a universe ticker (empty: the benchmark)")
    k: Optional[int] = Field(default=None, description="how many analogs (empty: the settings' memory.k)")


@dg.asset(group_name=MEMORY, kinds={"qdrant"}, io_manager_key="json_io_manager",
          ins={"market_states": dg.AssetIn(), "returns": dg.AssetIn(), "market_state_index": dg.AssetIn()})
def market_analogs(context: dg.AssetExecutionContext, config: AnalogQuery, settings: SettingsResource,
                   memory: QdrantIndex, market_states: pd.DataFrame, returns: pd.DataFrame,
                   market_state_index: dict) -> dg.MaterializeResult:
    """What the memory says about a day: the k most similar past sessions of a ticker whose forward
    return had been realised by then, their similarity, what followed (mean, spread, share up)
    and their subsequent paths, under the newest fit of the state map that ends before the day (a
    day on or before the first fit's end is refused). Config: date (empty: the newest session),
    ticker (empty: the benchmark), k."""
    s = settings.value
    ticker = config.ticker or s.universe.benchmark
    answer, source = ask(memory, market_states, ticker, config.date, config.k or s.memory.k, s.forecast.horizon)
    context.log.info(f"{ticker} on {answer.date.date()}: analogs from {source}, states embedded by the fit on "
                     f"sessions up to {answer.fit_end.date()}")
    return dg.MaterializeResult(value=answer_json(answer, source), metadata=answer_metadata(answer, returns, source))


def answer_metadata(answer, returns: pd.DataFrame, source: str) -> dict:
    n = answer.neighbours
    table = n.assign(date=n["date"].dt.date.astype(str))[["date", "similarity", "regime", "forward_return"]]
    paths = analog_paths(returns, answer.ticker, n["date"], answer.horizon)
    meta = {"ticker": answer.ticker, "date": str(answer.date.date()), "fit_end": str(answer.fit_end.date()),
            "source": source,
            **{k: (round(v, 5) if isinstance(v, float) else v) for k, v in answer.summary().items()},
            "analog_days": md_table(table, rows=len(table), digits=4)}
    if not paths.empty:
        meta["paths"] = png_bytes_markdown(analog_paths_chart(
            paths, f"{answer.ticker}: what followed the analogs of {answer.date.date()}"), "analog paths")
    return meta
