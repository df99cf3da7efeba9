"""Market memory: each ticker's market state on each session, embedded by a state map fitted on
sessions before the days it answers for; the states whose forward return had been realised by a
day; and the analog forecast, a distance-weighted mean of what followed the k nearest of them.

Fits in time. The state map is the feature pipeline's fitted parts (return clip thresholds,
regime model, scaler) and the PCA on top of them; all four are fitted together, on an expanding
window of sessions from the start of the data. The first fit ends `memory.first_fit_months`
after the start, the next ones every `memory.refit_months` after it, and the last at the
training split's end (`dates.train_end`): like the data layer, the memory never fits on a
validation or test session. A question about day d is answered by the newest fit that ends
before d (`route`): its window holds no session on or after d, and neither do the states it
searches (realised on or before d) nor the day's own state (features from data up to d). A
question on or before the first fit's end is refused (`QuestionTooEarly`), with the days that
can be asked. Each fit embeds the sessions up to the next fit's end (the newest: every session),
so the states table holds one row per fit, ticker and session it answers for.

Why refits at a cadence rather than one fit refusing everything up to `train_end`: the training
years are most of the history, and a refit costs one feature-pipeline fit and one PCA. Why not a
fit per question: the states could not be prepared ahead of the questions. Only the newest fit,
which answers the newest session and every day after `train_end`, is kept in the persisted
index (`MarketIndex`, opened by `resources/memory.py`); Qdrant local mode commits each point
on its own, so persisting every fit would multiply the index's writes, while the older fits'
states never change (their sessions lie in the closed past). A question for an older fit is
answered by a private in-memory index of that fit's states of the ticker. Every collection
records the end of the fit it holds, and a search for a day on or before it is refused.

The walk-forward analog forecast (`AnalogFolds`) fits the whole state map on each fold's
training rows, which end before the fold's validation and test windows; it refuses a fold
whose training rows reach its test rows. `exact_neighbours` is the brute-force search the
walk-forward uses and the index is checked against.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from odyssey.calendar import in_window
from odyssey.fitting import FeaturePipeline, MarketInputs, PipelineParams, Scaler
from odyssey.hashing import sha256_bytes
from odyssey.splits import forward_returns, target_name

EPOCH = pd.Timestamp("1970-01-01")


def day_number(dates) -> np.ndarray:
    """Days since 1970-01-01: the integer a payload range filter compares."""
    return ((pd.DatetimeIndex(dates) - EPOCH) // pd.Timedelta(days=1)).to_numpy(dtype=np.int64)


def realised_days(realised) -> np.ndarray:
    """The day number each state's forward return is realised; never (int64 max) where it is
    not yet: the rule `realised_day <= query day` then never admits it."""
    realised = pd.DatetimeIndex(realised)
    return np.where(realised.isna(), np.iinfo(np.int64).max, day_number(realised.fillna(EPOCH)))


def point_id(ticker: str, date) -> int:
    """A stable unsigned 63-bit id for (ticker, session): the same state always upserts onto the
    same point."""
    key = f"{ticker}|{pd.Timestamp(date).date().isoformat()}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1


@dataclass(frozen=True)
class StateEmbedding:
    """scikit-learn's PCA of the scaled features on the window's rows (missing values at the
    training mean, 0), to `dimensions` components; the one fit/apply interface of `fitting`."""

    columns: tuple[str, ...]
    dimensions: int = 16
    name: str = "state_embedding"

    def fit(self, table: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp) -> dict:
        return self.fit_rows(table.loc[in_window(table["date"], start, end)])

    def fit_rows(self, rows: pd.DataFrame) -> dict:
        if len(rows) <= self.dimensions:
            raise ValueError(f"{len(rows)} training rows cannot fit a {self.dimensions}-dimensional embedding")
        x = np.nan_to_num(rows[list(self.columns)].to_numpy(dtype=float))
        from sklearn.decomposition import PCA  # imported when fitted: loading the code location skips it
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # the SVD's sums, like K-means', depend on the thread count
            pca = PCA(n_components=min(self.dimensions, x.shape[1]), svd_solver="full").fit(x)
        return {"kind": "pca", "rows": int(len(rows)), "train_start": str(rows["date"].min().date()),
                "train_end": str(rows["date"].max().date()), "columns": list(self.columns),
                "mean": pca.mean_.tolist(), "components": pca.components_.tolist(),
                "explained_variance_ratio": pca.explained_variance_ratio_.tolist()}

    def apply(self, table: pd.DataFrame, params: dict) -> np.ndarray:
        return embed(table[params["columns"]].to_numpy(dtype=float), params)


def embed(x: np.ndarray, params: dict) -> np.ndarray:
    """[rows, dimensions] float32 vectors of feature rows under fitted embedding params."""
    centred = np.nan_to_num(x) - np.asarray(params["mean"])
    return (centred @ np.asarray(params["components"]).T).astype(np.float32)


# -- fits in time -------------------------------------------------------------------------------

def fit_ends(sessions, train_end, first_fit_months: int, refit_months: int) -> tuple[pd.Timestamp, ...]:
    """The last session of each fit of the state map: the last session before `first_fit_months`
    after the first session, then before each further `refit_months`, while before `train_end`;
    and the last session on or before `train_end`, always the last fit. `refit_months` 0: that
    one fit only."""
    sessions = pd.DatetimeIndex(sorted(set(pd.DatetimeIndex(sessions))))
    train_end = pd.Timestamp(train_end)
    upto = sessions[sessions <= train_end]
    if upto.empty:
        raise ValueError(f"no session on or before train_end {train_end.date()} to fit the state map on")
    ends: list[pd.Timestamp] = []
    k = 0
    while refit_months > 0:
        anchor = sessions[0] + pd.DateOffset(months=first_fit_months + k * refit_months)
        before = sessions[sessions < anchor]
        if before[-1] >= upto[-1]:
            break
        ends.append(before[-1])
        k += 1
    return tuple(ends) + (upto[-1],)


@dataclass(frozen=True)
class StateFit:
    """One fit of the state map: the feature pipeline's fitted parts and the PCA, fitted on the
    sessions up to `end`. It embeds the states up to `until` (the next fit's end; None for the
    newest fit: every session) and answers the questions dated after `end` up to `until`."""

    end: pd.Timestamp
    until: pd.Timestamp | None
    pipeline: PipelineParams
    embedding: dict
    states: int

    @property
    def fingerprint(self) -> str:
        """A short hash of the fitted parameters: the index holding this fit's states knows it."""
        content = {"pipeline": dataclasses.asdict(self.pipeline), "embedding": self.embedding}
        return sha256_bytes(json.dumps(content, sort_keys=True, default=str).encode())[:16]

    def to_dict(self) -> dict:
        return {"end": str(self.end.date()), "until": str(self.until.date()) if self.until is not None else None,
                "states": self.states, "fingerprint": self.fingerprint,
                "pipeline": dataclasses.asdict(self.pipeline), "embedding": self.embedding}


def build_states(inputs: MarketInputs, pipeline: FeaturePipeline, horizon: int, dimensions: int,
                 ends: Sequence[pd.Timestamp]) -> tuple[pd.DataFrame, list[StateFit]]:
    """Every ticker's market state on every session, under each fit of the state map ending on
    `ends` (ascending): the feature pipeline (clip thresholds, regimes) and the scaler fitted on
    the sessions up to the fit's end, a PCA fitted on the same sessions (all tickers pooled); with
    the regime, the `horizon`-session forward log return and the session it is realised on
    (missing for the newest sessions). A fit's rows are the sessions up to the next fit's end (the
    newest fit: all). Returns (states with a `fit_end` column, the fits)."""
    ends = [pd.Timestamp(e) for e in ends]
    if not ends or any(a >= b for a, b in zip(ends, ends[1:])):
        raise ValueError(f"the fits' ends must be ascending and distinct, got {[str(e.date()) for e in ends]}")
    pipeline = dataclasses.replace(pipeline, scale=False)
    names = tuple(pipeline.names)
    unfitted = pipeline.unfitted(inputs)
    forward = forward_returns(inputs.clean, horizon).rename(columns={target_name(horizon): "forward_return",
                                                                     "target_end": "realised_date"})
    frames, fits = [], []
    for end, until in zip(ends, [*ends[1:], None]):
        params, features = pipeline.fit_transform(inputs, end=end, unfitted=unfitted)
        features = features.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
        scaler = Scaler(names)
        params.scaler = scaler.fit(features, None, end)
        scaled = scaler.apply(features, params.scaler)
        embedding = StateEmbedding(names, dimensions)
        pca = embedding.fit(scaled, None, end)
        keep = in_window(features["date"], None, until)
        frame = _states(features.loc[keep], embedding.apply(scaled.loc[keep], pca), forward)
        frames.append(frame.assign(fit_end=end))
        fits.append(StateFit(end, until, params, pca, int(len(frame))))
    states = pd.concat(frames, ignore_index=True)
    columns = ["fit_end", *[c for c in states.columns if c != "fit_end"]]
    return states[columns].sort_values(["fit_end", "ticker", "date"], kind="stable").reset_index(drop=True), fits


def _states(features: pd.DataFrame, vectors: np.ndarray, forward: pd.DataFrame) -> pd.DataFrame:
    features = features.reset_index(drop=True)
    keys = features[["date", "ticker"]]
    joined = keys.merge(forward, on=["date", "ticker"], how="left")
    regime = features["Regime"].to_numpy() if "Regime" in features else np.full(len(features), np.nan)
    states = pd.DataFrame({
        "id": [point_id(t, d) for t, d in zip(keys["ticker"], keys["date"])], "date": keys["date"],
        "ticker": keys["ticker"], "regime": regime, "forward_return": joined["forward_return"].to_numpy(),
        "realised_date": pd.DatetimeIndex(joined["realised_date"])})
    states = pd.concat([states, pd.DataFrame(vectors, columns=[f"v{i}" for i in range(vectors.shape[1])])], axis=1)
    states["hash"] = payload_hash(states)
    return states


def newest_fit(states: pd.DataFrame) -> pd.DataFrame:
    """The states of the newest fit: what the persisted index holds."""
    return states[states["fit_end"] == states["fit_end"].max()].reset_index(drop=True)


class QuestionTooEarly(ValueError):
    """A question about a day on or before the first fit of the state map ends."""


@dataclass(frozen=True)
class Question:
    """A question routed to the fit that answers it: the newest fit ending before its day."""

    ticker: str
    date: pd.Timestamp
    fit_end: pd.Timestamp
    newest_fit_end: pd.Timestamp
    vector: np.ndarray

    @property
    def newest(self) -> bool:
        return self.fit_end == self.newest_fit_end


def route(states: pd.DataFrame, ticker: str, date) -> Question:
    """The fit that answers `ticker` on `date` (a session in `states`), and that day's state under
    it. Refused, saying which days can be asked, when no fit ends before the day."""
    date = pd.Timestamp(date)
    mine = states[states["ticker"] == ticker]
    if mine.empty:
        raise ValueError(f"no market states for ticker {ticker!r}")
    ends = sorted(pd.DatetimeIndex(mine["fit_end"].unique()))
    before = [e for e in ends if e < date]
    if not before:
        later = mine.loc[(mine["fit_end"] == ends[0]) & (mine["date"] > ends[0]), "date"]
        first = later.min() if len(later) else None
        refits = f" (then refitted up to {', '.join(str(e.date()) for e in ends[1:])})" if len(ends) > 1 else ""
        raise QuestionTooEarly(
            f"{ticker} on {date.date()}: the market memory answers a question about a day only with a state map "
            f"(clip thresholds, regimes, scaler, PCA) fitted on sessions before that day, and its first fit was "
            f"fitted on sessions up to {ends[0].date()}{refits}; a fit that saw the day or later would answer "
            f"with the future. "
            + (f"ask about a session from {first.date()} to {mine['date'].max().date()}" if first is not None
               else f"no session of {ticker} comes after the first fit"))
    fit_end = before[-1]
    row = mine[(mine["fit_end"] == fit_end) & (mine["date"] == date)]
    if row.empty:
        known = mine["date"]
        raise ValueError(f"no market state for {ticker} on {date.date()}: the states of {ticker} "
                         f"run {known.min().date()} .. {known.max().date()} on trading sessions")
    vector = row[vector_columns(states)].to_numpy(dtype=np.float32)[0]
    return Question(ticker, date, fit_end, ends[-1], vector)


# -- the analog forecast ------------------------------------------------------------------------

def analog_forecast(distances: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
    """Distance-weighted mean of the neighbours' forward returns: weights 1 / distance (an exact
    match weighs as if 1e-6 away). `distances` and `outcomes` are [queries, k]; a query without
    neighbours (NaN distances) gets NaN."""
    weights = 1.0 / np.maximum(distances, 1e-6)
    weights = np.where(np.isfinite(distances), weights, 0.0)
    total = weights.sum(axis=1)
    mean = np.where(total > 0, (weights * np.nan_to_num(outcomes)).sum(axis=1) / np.where(total > 0, total, 1.0),
                    np.nan)
    return mean


def exact_neighbours(vectors: np.ndarray, realised_day: np.ndarray, queries: np.ndarray, query_day: np.ndarray,
                     k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest states (Euclidean) among those realised on or before each query's day, by
    brute force: (indices [queries, k], distances [queries, k]); a missing neighbour is index -1,
    distance NaN. Ties go to the lower index. This is the search the Qdrant index must equal."""
    vectors = np.asarray(vectors, dtype=np.float32)
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    squared = ((queries[:, None, :] - vectors[None, :, :]) ** 2).sum(axis=2, dtype=np.float32)
    allowed = np.asarray(realised_day)[None, :] <= np.asarray(query_day)[:, None]
    squared = np.where(allowed, squared, np.inf)
    order = np.argsort(squared, axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(squared, order, axis=1)
    found = np.isfinite(chosen)
    return np.where(found, order, -1), np.where(found, np.sqrt(chosen), np.nan)


@dataclass(frozen=True)
class AnalogResult:
    """One query's analogs: the neighbours' dates, distances, similarity and what followed."""

    ticker: str
    date: pd.Timestamp
    neighbours: pd.DataFrame  # date, distance, similarity, regime, forward_return
    horizon: int
    fit_end: pd.Timestamp  # the last session the state map that answered was fitted on

    @property
    def forecast(self) -> float:
        n = self.neighbours
        return float(analog_forecast(n["distance"].to_numpy()[None, :], n["forward_return"].to_numpy()[None, :])[0]) \
            if len(n) else float("nan")

    def summary(self) -> dict[str, float]:
        r = self.neighbours["forward_return"].to_numpy(dtype=float)
        return {"analogs": int(len(r)), "forecast": self.forecast,
                "mean": float(np.mean(r)) if len(r) else float("nan"),
                "spread": float(np.std(r, ddof=1)) if len(r) > 1 else float("nan"),
                "share_up": float(np.mean(r > 0)) if len(r) else float("nan")}


def analog_paths(returns: pd.DataFrame, ticker: str, dates, horizon: int) -> pd.DataFrame:
    """Cumulative log return of `ticker` over the `horizon` sessions after each of `dates`
    ([session 0..horizon] x one column per date); from the long returns table."""
    series = returns.loc[returns["ticker"] == ticker].set_index("date")["log_return"].sort_index()
    index = series.index
    paths = {}
    for date in pd.DatetimeIndex(dates):
        start = index.searchsorted(date, side="right")
        window = series.iloc[start:start + horizon]
        if len(window) == horizon:
            paths[str(date.date())] = np.r_[0.0, window.cumsum().to_numpy()]
    return pd.DataFrame(paths, index=pd.RangeIndex(horizon + 1, name="session"))


def similarity(distance: np.ndarray) -> np.ndarray:
    """A similarity in (0, 1] for display: 1 / (1 + distance)."""
    return 1.0 / (1.0 + np.asarray(distance, dtype=float))


def walkforward_analogs(vectors: np.ndarray, dates: pd.DatetimeIndex, realised: Sequence, outcomes: np.ndarray,
                        test_rows: np.ndarray, k: int) -> np.ndarray:
    """Analog forecasts for `test_rows` of one ticker: each from the k nearest states realised
    by that row's session (exact search, which the index agreement test proves equal to the
    Qdrant index's filtered search)."""
    realised_day = realised_days(realised)
    query_day = day_number(dates[test_rows])
    forecasts = np.empty(len(test_rows))
    for start in range(0, len(test_rows), 256):  # bounded memory: 256 queries at a time
        chunk = slice(start, start + 256)
        index, distance = exact_neighbours(vectors, realised_day, vectors[test_rows[chunk]], query_day[chunk], k)
        picked = np.where(index >= 0, outcomes[np.maximum(index, 0)], np.nan)
        forecasts[chunk] = analog_forecast(distance, picked)
    return forecasts


@dataclass
class AnalogFolds:
    """The analog forecast as a walk-forward model (`walkforward.FoldModel`): in each fold the
    state map (the fold's own feature pipeline, then the PCA) is fitted on the fold's training
    rows, which end before its test rows (a fold where they do not is refused), and each test
    day's forecast comes from the k nearest states realised by that day (the frame's
    `target_end`), among all the ticker's labelled sessions."""

    dimensions: int = 16
    k: int = 20

    def fit_predict(self, data, frame: pd.DataFrame) -> tuple[np.ndarray, dict]:
        train, test = data.fold.train, data.fold.test
        if len(test) and data.dates[train].max() >= data.dates[test].min():
            raise ValueError(f"fold {data.fold.k}: its training rows reach {data.dates[train].max().date()}, on or "
                             f"after its first test day {data.dates[test].min().date()}; the state map must be "
                             "fitted before the days it answers for")
        names = [f"f{i}" for i in range(data.x.shape[1])]
        rows = pd.DataFrame(data.x[train], columns=names).assign(date=data.dates[train])
        params = StateEmbedding(tuple(names), self.dimensions).fit_rows(rows)
        vectors = embed(data.x, params)
        p = walkforward_analogs(vectors, data.dates, frame["target_end"], data.y, data.fold.test, self.k)
        return p, {"explained_variance": float(np.sum(params["explained_variance_ratio"]))}


# -- the index ----------------------------------------------------------------------------------

STATE_COLUMNS = ("id", "date", "ticker", "regime", "forward_return", "realised_date", "hash")


def vector_columns(states: pd.DataFrame) -> list[str]:
    return [c for c in states.columns if c.startswith("v") and c[1:].isdigit()]


def payload_hash(states: pd.DataFrame) -> np.ndarray:
    """A short hash of each state's vector and payload: an upsert is needed only where it changed
    (a new session, or a forward return realised since the last write)."""
    parts = states[["date", "ticker", "regime", "forward_return", "realised_date", *vector_columns(states)]]
    return (pd.util.hash_pandas_object(parts, index=False).to_numpy(dtype=np.uint64) >> np.uint64(1)).astype(np.int64)


class IndexBusy(RuntimeError):
    """The local index folder is open in another process (Qdrant local mode allows one)."""


class MarketIndex:
    """The market's memory in Qdrant: the states of one fit of the state map, one collection per
    ticker (`<prefix>_<ticker>`, Euclidean distance), one point per session whose forward return
    has been realised, with payload ticker, date, day (days since 1970), regime, forward_return
    and realised_day. A session enters the memory on the day its forward return is realised; the
    collection's metadata keeps the fit's fingerprint, the last session it was fitted on
    (`fit_end_day`) and the newest realised_day it holds. A search for a day on or before the
    fit's end is refused.

    Per ticker, because every question the memory answers is about one ticker's own history, and
    a filtered search costs time in proportion to the points of the collection it runs on (in
    local mode the filter is evaluated point by point). `client` is any QdrantClient: local mode
    on a folder, in memory, or a server."""

    def __init__(self, client, prefix: str):
        self.client, self.prefix = client, prefix

    def collection(self, ticker: str) -> str:
        return f"{self.prefix}_{ticker}"

    def tickers(self) -> list[str]:
        head = f"{self.prefix}_"
        return sorted(c.name[len(head):] for c in self.client.get_collections().collections if c.name.startswith(head))

    # writing
    def ensure(self, ticker: str, dimensions: int, fingerprint: str, fit_end_day: int) -> bool:
        """Create the ticker's collection, or recreate it when the embedding changed (its
        fingerprint is the collection's metadata). True when it was (re)created empty."""
        from qdrant_client import models

        name = self.collection(ticker)
        if self.client.collection_exists(name):
            if (self.client.get_collection(name).config.metadata or {}).get("fingerprint") == fingerprint:
                return False
            self.client.delete_collection(name)
        self.client.create_collection(
            name, vectors_config=models.VectorParams(size=dimensions, distance=models.Distance.EUCLID),
            metadata={"fingerprint": fingerprint, "fit_end_day": fit_end_day})
        with warnings.catch_warnings():  # local mode ignores payload indexes (and says so); a server uses them
            warnings.filterwarnings("ignore", message="Payload indexes have no effect in the local Qdrant")
            self.client.create_payload_index(name, "realised_day", field_schema=models.PayloadSchemaType.INTEGER)
        return True

    def stored_hashes(self, ticker: str) -> dict[int, int]:
        """id -> state hash of every stored point of the ticker."""
        out, offset = {}, None
        while True:
            points, offset = self.client.scroll(self.collection(ticker), limit=10_000, offset=offset,
                                               with_payload=["hash"], with_vectors=False)
            out.update({int(p.id): int(p.payload["hash"]) for p in points})
            if offset is None:
                return out

    def upsert(self, ticker: str, states: pd.DataFrame, batch: int = 2048) -> None:
        from qdrant_client import models

        vectors = states[vector_columns(states)].to_numpy(dtype=np.float32)
        realised = pd.DatetimeIndex(states["realised_date"])
        days, realised_days = day_number(states["date"]), day_number(realised.fillna(EPOCH))
        ids, regimes = states["id"].to_numpy(), states["regime"].to_numpy(dtype=float)
        forward, hashes = states["forward_return"].to_numpy(dtype=float), states["hash"].to_numpy()
        dates = pd.DatetimeIndex(states["date"]).strftime("%Y-%m-%d")
        for start in range(0, len(states), batch):
            points = []
            for i in range(start, min(start + batch, len(states))):
                payload = {"ticker": ticker, "date": dates[i], "day": int(days[i]), "hash": int(hashes[i]),
                           "regime": None if np.isnan(regimes[i]) else int(regimes[i]),
                           "forward_return": float(forward[i]), "realised_day": int(realised_days[i])}
                points.append(models.PointStruct(id=int(ids[i]), vector=vectors[i].tolist(), payload=payload))
            self.client.upsert(self.collection(ticker), points=points, wait=True)

    def stored(self) -> pd.DataFrame:
        """(ticker, id, hash) of every stored point, read from the index (a scroll of everything)."""
        rows = [(t, i, h) for t in self.tickers() for i, h in self.stored_hashes(t).items()]
        return pd.DataFrame(rows, columns=["ticker", "id", "hash"]).astype({"id": np.int64, "hash": np.int64})

    def sync(self, states: pd.DataFrame, fingerprint: str,
             known: pd.DataFrame | None = None) -> tuple[dict[str, int], pd.DataFrame]:
        """Bring the index to `states` (one fit's: one `fit_end`): upsert new and changed points,
        delete vanished ones (a changed embedding rebuilds a ticker's collection), drop the
        collections of tickers no longer in `states`. `known`: the (ticker, id, hash) table the
        last sync returned, which spares reading every point back; None reads them from the
        index. Returns the counts and the table to pass next time."""
        from qdrant_client import models

        fits = pd.DatetimeIndex(states["fit_end"].unique())
        if len(fits) != 1:
            raise ValueError(f"the index holds the states of one fit of the state map, got {len(fits)} fits "
                             f"({', '.join(str(f.date()) for f in sorted(fits))}): pass `newest_fit(states)`")
        fit_end_day = int(day_number(fits)[0])
        realised = states["forward_return"].notna() & states["realised_date"].notna()
        awaiting, states = int((~realised).sum()), states[realised]
        counts = {"points": len(states), "awaiting_forward_return": awaiting, "upserted": 0, "deleted": 0,
                  "rebuilt": 0}
        dimensions = len(vector_columns(states))
        rebuilt = {t for t in sorted(states["ticker"].unique()) if self.ensure(t, dimensions, fingerprint, fit_end_day)}
        for ticker in set(self.tickers()) - set(states["ticker"]):
            counts["deleted"] += self.count(ticker)
            self.client.delete_collection(self.collection(ticker))
        kept = set(states["ticker"]) - rebuilt
        if known is not None:  # trust the ledger only while the index still holds what it says
            ledger = known["ticker"].value_counts()
            if any(int(ledger.get(t, 0)) != self.count(t) for t in kept):
                known = None
        stored = self.stored() if known is None else known
        stored = stored[stored["ticker"].isin(kept)]
        merged = states[["ticker", "id", "hash"]].merge(stored, on=["ticker", "id"], how="outer",
                                                        suffixes=("", "_stored"), indicator=True)
        changed = merged["_merge"].eq("left_only") | (merged["_merge"].eq("both")
                                                      & merged["hash"].ne(merged["hash_stored"]))
        vanished = merged[merged["_merge"].eq("right_only")]
        upsert = states[states["id"].isin(set(merged.loc[changed, "id"]))]
        for ticker, mine in upsert.groupby("ticker", sort=True):
            self.upsert(ticker, mine)
        for ticker, gone in vanished.groupby("ticker", sort=True):
            self.client.delete(self.collection(ticker),
                               points_selector=models.PointIdsList(points=gone["id"].astype(int).tolist()))
        newest = states.assign(realised_day=day_number(states["realised_date"])).groupby("ticker")["realised_day"].max()
        for ticker, day in newest.items():
            self.client.update_collection(self.collection(ticker), metadata={
                "fingerprint": fingerprint, "fit_end_day": fit_end_day, "newest_realised_day": int(day)})
        counts.update(upserted=len(upsert), deleted=counts["deleted"] + len(vanished), rebuilt=len(rebuilt))
        return counts, states[["ticker", "id", "hash"]].reset_index(drop=True)

    # reading
    def count(self, ticker: str | None = None) -> int:
        tickers = [ticker] if ticker else self.tickers()
        return sum(int(self.client.count(self.collection(t), exact=True).count) for t in tickers)

    def fit_end(self, ticker: str) -> pd.Timestamp | None:
        """The last session the state map of the ticker's collection was fitted on (None: not
        recorded, an index written before fits were)."""
        day = (self.client.get_collection(self.collection(ticker)).config.metadata or {}).get("fit_end_day")
        return None if day is None else EPOCH + pd.Timedelta(days=int(day))

    def analogs(self, ticker: str, date, vector: np.ndarray, k: int) -> pd.DataFrame:
        """The k states of `ticker` nearest to `vector` among those whose forward return was
        realised on or before `date` (a payload filter in the index), nearest first. Refused for
        a day on or before the end of the fit whose states the collection holds."""
        from qdrant_client import models

        name = self.collection(ticker)
        if not self.client.collection_exists(name):
            raise ValueError(f"the market-state index has no collection for ticker {ticker!r} "
                             f"(it holds {', '.join(self.tickers()) or 'none'})")
        metadata = self.client.get_collection(name).config.metadata or {}
        fit_end = self.fit_end(ticker)
        if fit_end is None or pd.Timestamp(date) <= fit_end:
            raise ValueError(f"the market-state index's {ticker} collection holds states embedded by a fit on "
                             + (f"sessions up to {fit_end.date()}: it cannot answer for {pd.Timestamp(date).date()}, "
                                "on or before that day" if fit_end is not None else
                                "sessions it does not record: materialize market_state_index to rebuild it"))
        day = int(day_number([date])[0])
        newest = metadata.get("newest_realised_day")
        # Every stored state was realised by its newest realised_day: a query on or after it (the
        # live question, about the newest session) would keep them all, so it needs no filter.
        flt = None if newest is not None and day >= newest else models.Filter(
            must=[models.FieldCondition(key="realised_day", range=models.Range(lte=day))])
        hits = self.client.query_points(name, query=np.asarray(vector, dtype=np.float32).tolist(),
                                        query_filter=flt, limit=k, with_payload=True).points
        rows = [{"id": int(h.id), "date": pd.Timestamp(h.payload["date"]), "distance": float(h.score),
                 "regime": h.payload.get("regime"), "forward_return": h.payload["forward_return"],
                 "realised_day": h.payload["realised_day"]} for h in hits]
        frame = pd.DataFrame(rows, columns=["id", "date", "distance", "regime", "forward_return", "realised_day"])
        return frame.assign(similarity=similarity(frame["distance"].to_numpy(dtype=float)))

    def ask(self, states: pd.DataFrame, ticker: str, date, k: int, horizon: int) -> AnalogResult:
        """What the memory says about `ticker` on `date` (a session in `states`): from the fit
        that answers the day (`route`), which must be the one this index holds."""
        question = route(states, ticker, date)
        held = self.fit_end(ticker) if self.client.collection_exists(self.collection(ticker)) else None
        if held is not None and held != question.fit_end:
            raise ValueError(f"{ticker} on {question.date.date()} is answered by the fit on sessions up to "
                             f"{question.fit_end.date()}, and this index holds the states of the fit up to "
                             f"{held.date()}: ask through resources.memory.ask, or materialize market_state_index")
        neighbours = self.analogs(ticker, question.date, question.vector, k)
        return AnalogResult(ticker, question.date, neighbours, horizon, question.fit_end)


def in_memory_index(states: pd.DataFrame, collection: str = "market_states") -> MarketIndex:
    """A private in-memory index of one fit's stored states: a reader that never touches (or
    waits for) the writer's folder, and the index of the fits the persisted one does not hold."""
    from qdrant_client import QdrantClient

    index = MarketIndex(QdrantClient(":memory:"), collection)
    index.sync(states, "in-memory", known=states.iloc[:0][["ticker", "id", "hash"]])
    return index


def compare_forecasts(analog: dict, xgboost: dict) -> pd.DataFrame:
    """Pooled out-of-sample metrics (`walkforward.summary_metrics`) of the analog forecast, XGBoost
    and the naive forecast (the sign of the training mean), with 90 % intervals where they exist."""
    rows = []
    for name, m in (("analog", analog), ("xgboost", xgboost)):
        for metric in ("ic", "direction_accuracy", "accuracy_edge", "sharpe"):
            rows.append({"model": name, "metric": metric, "value": m[f"oos_{metric}"],
                         "ci_low": m[f"oos_{metric}_ci_low"], "ci_high": m[f"oos_{metric}_ci_high"]})
    rows.append({"model": "naive", "metric": "direction_accuracy", "value": analog["oos_naive_direction_accuracy"],
                 "ci_low": np.nan, "ci_high": np.nan})
    return pd.DataFrame(rows)
