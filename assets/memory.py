"""Market memory: the market states (group `features`), their Qdrant index and what the memory says
about a day (`market_analogs`, the launchpad's way to ask; group `memory`). The analog forecast is
evaluated with XGBoost's walk-forward, on the same folds (assets/forecasting.py)."""

import json
import time
from typing import Optional

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from odyssey.hashing import sha256_bytes
from odyssey.memory import analog_paths, build_states
from odyssey.report import analog_paths_chart
from resources.metadata import md_table, png_bytes_markdown
from resources.memory import WRITER_POOL, QdrantIndex, answer_json, ask
from resources.settings import SettingsResource
from resources.storage import Storage

FEATURES, MEMORY = "features", "memory"


@dg.multi_asset(
    outs={
        "market_states": dg.AssetOut(
            description="One vector per ticker and session: the train-scaled features embedded by a PCA fitted on "
                        "training sessions, with the regime, the forward return and the session it is realised on.",
            kinds={"pandas", "parquet"}, group_name=FEATURES),
        "state_embedding": dg.AssetOut(description="The PCA of the market states, fitted on training sessions (JSON).",
                                       io_manager_key="json_io_manager", kinds={"json"}, group_name=FEATURES),
    },
    ins={"features": dg.AssetIn(), "scaler_params": dg.AssetIn(), "clean_prices": dg.AssetIn()},
)
def market_states(settings: SettingsResource, features: pd.DataFrame, scaler_params: dict,
                  clean_prices: pd.DataFrame):
    """Every ticker's state on every session, the newest included (their forward returns arrive
    as they are realised)."""
    s = settings.value
    profile = settings.profile()
    states, params = build_states(features, scaler_params, clean_prices, s.forecast.horizon, s.memory.dimensions,
                                  profile.train_end)
    realised = states["forward_return"].notna()
    yield dg.Output(states, "market_states", metadata={
        "rows": len(states), "tickers": int(states["ticker"].nunique()), "dimensions": len(params["components"]),
        "realised": int(realised.sum()), "awaiting_forward_return": int((~realised).sum()),
        "newest_session": str(states["date"].max().date())})
    explained = pd.DataFrame({"component": range(len(params["components"])),
                              "explained_variance_ratio": params["explained_variance_ratio"]})
    yield dg.Output({**params, "fingerprint": _fingerprint(params)}, "state_embedding", metadata={
        "train_end": params["train_end"], "rows": params["rows"],
        "explained_variance": round(float(np.sum(params["explained_variance_ratio"])), 4),
        "components": md_table(explained, rows=64, digits=4)})


def _fingerprint(params: dict) -> str:
    return sha256_bytes(json.dumps(params, sort_keys=True).encode())[:16]


@dg.asset(group_name=MEMORY, kinds={"qdrant"}, io_manager_key="json_io_manager", pool=WRITER_POOL,
          ins={"market_states": dg.AssetIn(), "state_embedding": dg.AssetIn()})
def market_state_index(memory: QdrantIndex, storage: Storage, market_states: pd.DataFrame,
                       state_embedding: dict) -> dg.MaterializeResult:
    """The market states in Qdrant. Incremental: only new sessions and newly realised forward
    returns are upserted; a new embedding rebuilds. One writer at a time (pool qdrant_index)."""
    started = time.perf_counter()
    # what the last write left in this index (where): spares reading every point back
    ledger = storage.path("memory", f"{_ledger_name(memory)}.parquet")
    known = pd.read_parquet(ledger) if ledger.exists() else None
    with memory.open() as index:
        counts, written = index.sync(market_states, state_embedding["fingerprint"], known)
        stored = index.count()
    ledger.parent.mkdir(parents=True, exist_ok=True)
    written.to_parquet(ledger)
    seconds = time.perf_counter() - started
    value = {**counts, "stored": stored, "collection": memory.collection, "where": memory.where(),
             "fingerprint": state_embedding["fingerprint"], "newest_session": str(market_states["date"].max().date())}
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
    and their subsequent paths. Config: date (empty: the newest session), ticker (empty: the
    benchmark), k."""
    s = settings.value
    ticker = config.ticker or s.universe.benchmark
    answer, source = ask(memory, market_states, ticker, config.date, config.k or s.memory.k, s.forecast.horizon)
    context.log.info(f"{ticker} on {answer.date.date()}: analogs from {source}")
    return dg.MaterializeResult(value=answer_json(answer, source), metadata=answer_metadata(answer, returns, source))


def answer_metadata(answer, returns: pd.DataFrame, source: str) -> dict:
    n = answer.neighbours
    table = n.assign(date=n["date"].dt.date.astype(str))[["date", "similarity", "regime", "forward_return"]]
    paths = analog_paths(returns, answer.ticker, n["date"], answer.horizon)
    meta = {"ticker": answer.ticker, "date": str(answer.date.date()), "source": source,
            **{k: (round(v, 5) if isinstance(v, float) else v) for k, v in answer.summary().items()},
            "analog_days": md_table(table, rows=len(table), digits=4)}
    if not paths.empty:
        meta["paths"] = png_bytes_markdown(analog_paths_chart(
            paths, f"{answer.ticker}: what followed the analogs of {answer.date.date()}"), "analog paths")
    return meta
