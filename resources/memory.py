"""The market-state index as a resource, and asking it (shared by `market_analogs` and
`jobs.analogs`): Qdrant local mode in a folder by default, a Qdrant
server when the settings name one (QDRANT_URL), with its API key from the environment variable
the settings name (QDRANT_API_KEY), shown in the UI by name only."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import dagster as dg
import pandas as pd
from pydantic import Field

from odyssey.memory import AnalogResult, IndexBusy, MarketIndex, in_memory_index, route

# The pool of the asset that writes the index: the instance allows one step of it at a time
# (Qdrant local mode holds an exclusive lock on its folder).
WRITER_POOL = "qdrant_index"


class QdrantIndex(dg.ConfigurableResource):
    path: str = Field(description="local-mode folder (used when no url is given)")
    url: Optional[str] = Field(default=None, description="a Qdrant server, e.g. http://localhost:6333")
    api_key: Optional[str] = Field(default=None, description="the server's API key (from an environment variable)")
    collection: str = "market_states"

    def where(self) -> str:
        """Where the index lives, for metadata and logs (never the key)."""
        return self.url or self.path

    def _client(self):
        from qdrant_client import QdrantClient

        if self.url:
            return QdrantClient(url=self.url, api_key=self.api_key)
        Path(self.path).mkdir(parents=True, exist_ok=True)
        try:
            return QdrantClient(path=self.path)
        except RuntimeError as error:
            if "already accessed" not in str(error):
                raise
            raise IndexBusy(f"the market-state index at {self.path} is open in another process (Qdrant local mode "
                            "allows one at a time, e.g. market_state_index writing it): try again when that "
                            "finishes, or ask a copy built in memory from the stored states") from None

    @contextmanager
    def open(self) -> Iterator[MarketIndex]:
        """The index, closed (and its folder's lock released) on the way out, whatever happens."""
        client = self._client()
        try:
            yield MarketIndex(client, self.collection)
        finally:
            client.close()


def ask(memory: QdrantIndex, states: pd.DataFrame, ticker: str, date: str | pd.Timestamp | None, k: int,
        horizon: int) -> tuple[AnalogResult, str]:
    """What the memory says about `ticker` on `date` (empty: its newest session), from the fit of
    the state map that ends before the day (`route`; refused with the days that can be asked
    when none does). The newest fit's answer comes from the persisted index, or, if another
    process holds it, from a copy built in memory from the stored states (the same vectors, so
    the same answer); an older fit's from an in-memory index of its states of the ticker."""
    if not date:
        mine = states.loc[states["ticker"] == ticker, "date"]
        date = mine.max() if len(mine) else pd.NaT
    question = route(states, ticker, date)
    mine = states[(states["fit_end"] == question.fit_end) & (states["ticker"] == ticker)]
    if not question.newest:
        return in_memory_index(mine, memory.collection).ask(mine, ticker, date, k, horizon), \
            f"an in-memory index of the fit up to {question.fit_end.date()} (the persisted index holds the newest fit)"
    try:
        with memory.open() as index:
            return index.ask(states, ticker, date, k, horizon), f"the index at {memory.where()}"
    except IndexBusy:
        return in_memory_index(mine, memory.collection).ask(mine, ticker, date, k, horizon), \
            "an in-memory copy (the index was busy)"


def answer_json(answer: AnalogResult, source: str) -> dict:
    table = answer.neighbours.assign(date=answer.neighbours["date"].dt.date.astype(str))
    return {"ticker": answer.ticker, "date": str(answer.date.date()), "fit_end": str(answer.fit_end.date()),
            "horizon": answer.horizon, "source": source,
            **answer.summary(), "analogs": table[["date", "similarity", "distance", "regime",
                                                   "forward_return"]].to_dict("records")}
