"""Trading sessions of an exchange (exchange_calendars): the only calendar Odyssey uses.

Holidays are not rows: every daily table holds one row per session, gaps are counted in
sessions, and the synthetic market trades on the same sessions as the real one.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

DEFAULT_EXCHANGE = "XNYS"


def in_window(dates, start: str | pd.Timestamp | None = None,
              end: str | pd.Timestamp | None = None) -> np.ndarray:
    """Boolean mask of `dates` within [start, end], either bound optional."""
    dates = pd.DatetimeIndex(dates)
    keep = np.ones(len(dates), dtype=bool)
    if start is not None:
        keep &= dates >= pd.Timestamp(start)
    if end is not None:
        keep &= dates <= pd.Timestamp(end)
    return keep


@functools.lru_cache(maxsize=8)
def _calendar(exchange: str, since: pd.Timestamp | None = None):
    """The exchange's calendar; by default it covers the last 20 years (exchange_calendars'
    default), with `since` it starts there (or at the earliest session the calendar knows)."""
    import exchange_calendars as xcals

    try:
        if since is None:
            return xcals.get_calendar(exchange)
        bound = xcals.get_calendar(exchange).bound_min()
        return xcals.get_calendar(exchange, start=max(since, pd.Timestamp(bound)) if bound is not None else since)
    except xcals.errors.InvalidCalendarName:
        raise ValueError(f"unknown exchange {exchange!r}: use an exchange_calendars code such as XNYS, XLON, "
                         "XTKS or 24/7 for markets that never close") from None


def _calendar_from(exchange: str, start: pd.Timestamp):
    """A calendar that covers `start`: the default one when it does, else one built from the start
    of `start`'s decade (cached), so a history before the default 20 years is never cut."""
    cal = _calendar(exchange)
    if start >= cal.first_session:
        return cal
    return _calendar(exchange, pd.Timestamp(year=start.year // 10 * 10, month=1, day=1))


def sessions(start: str | pd.Timestamp, end: str | pd.Timestamp, exchange: str = DEFAULT_EXCHANGE) -> pd.DatetimeIndex:
    """Sessions of `exchange` from `start` to `end` inclusive, as a naive daily DatetimeIndex named date."""
    start = pd.Timestamp(start).normalize()
    cal = _calendar_from(exchange, start)
    lo = max(start, cal.first_session)
    hi = min(pd.Timestamp(end).normalize(), cal.last_session)
    if hi < lo:
        return pd.DatetimeIndex([], name="date", dtype="datetime64[ns]")
    days = cal.sessions_in_range(lo, hi)
    return pd.DatetimeIndex(days.tz_localize(None) if days.tz is not None else days, name="date").astype("datetime64[ns]")


def today(exchange: str = DEFAULT_EXCHANGE) -> pd.Timestamp:
    """Today's date where the exchange trades (its own time zone), as a naive timestamp."""
    return pd.Timestamp.now(tz=str(_calendar(exchange).tz)).tz_localize(None).normalize()


def next_sessions(after: str | pd.Timestamp, count: int, exchange: str = DEFAULT_EXCHANGE) -> pd.DatetimeIndex:
    """The `count` sessions strictly after `after`."""
    after = pd.Timestamp(after).normalize()
    days = sessions(after + pd.Timedelta(days=1), after + pd.Timedelta(days=7 * count // 5 + 14), exchange)
    return days[:count]


def is_session(dates: pd.Series | pd.DatetimeIndex, exchange: str = DEFAULT_EXCHANGE) -> pd.Series:
    """True where a date is a session of `exchange` (NaT is not)."""
    values = pd.to_datetime(pd.Series(dates)).dt.normalize()
    known = values.dropna()
    if known.empty:
        return pd.Series(False, index=values.index)
    valid = sessions(known.min(), known.max(), exchange)
    return values.isin(valid)
