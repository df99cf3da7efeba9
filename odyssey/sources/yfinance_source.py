"""Daily bars, the alternative-data closes and stock splits from Yahoo Finance, via yfinance,
delivered in the column format of `columns.py`: prices as quoted on the day, plus `adj_close`
(Yahoo's close adjusted for splits and dividends) for total returns."""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import yfinance as yf
from yfinance.exceptions import YFTickerMissingError

from odyssey.sources.columns import (
    ACTION_COLUMNS,
    ADJ_CLOSE,
    ALT_COLUMNS,
    ISSUE_COLUMNS,
    PRICE_COLUMNS,
    MarketData,
    empty_actions,
)

ALT_SYMBOLS: dict[str, str] = {"VIX": "^VIX", "DXY": "DX-Y.NYB", "Gold": "GC=F", "Yield_10Y": "^TNX"}

TIMEOUT_SECONDS = 30.0
EXCHANGE_TZ = "America/New_York"


class YFinanceError(RuntimeError):
    """yfinance could not fetch a symbol: a network, HTTP or rate-limit failure."""


class NoDataError(ValueError):
    """yfinance returned no bars for one or more symbols; `symbols` lists them."""

    def __init__(self, message: str, symbols: Sequence[str]) -> None:
        super().__init__(message)
        self.symbols = list(symbols)


def fetch_yfinance(tickers: Sequence[str], start: str, end: str, *, alt_series: Sequence[str] = tuple(ALT_SYMBOLS),
                   session: Any = None) -> MarketData:
    """Fetch daily bars for `tickers`, the closes of the alternative series `alt_series` (any of
    `ALT_SYMBOLS`' names; the others are not requested) and the stock splits, `start` to `end`
    inclusive (``YYYY-MM-DD``; ``"today"``, in any case, is today's date in New York, so the
    latest available bar is included).

    Yahoo quotes every bar split-adjusted as of today (volume too), so each symbol is requested
    from `start` up to now and the adjustment is reversed with the split events in that span:
    a bar is multiplied by the product of the ratios of the splits after its date (volume
    divided by it). `adj_close` is Yahoo's adjusted close as served (splits and dividends, on
    today's share basis), so its returns are total returns. The result is then cut to
    [start, end]. `session` is handed to yfinance (a curl_cffi or requests Session); None lets
    yfinance create its own.

    yfinance turns a volume Yahoo leaves null into 0, so a ticker's bar with volume 0 has no
    volume: it is kept with volume NaN and listed in `issues` ("missing volume").

    Every symbol is requested even when one fails, and the error names each that failed with its
    reason: `YFinanceError` when any request failed (network, HTTP, rate limit), else
    `NoDataError` (a ValueError) when yfinance has no bars for some in the range.
    """
    start_day, end_day = _day(start), _day(end)
    if end_day < start_day:
        raise ValueError(f"end {end!r} is before start {start!r}")
    unknown = sorted(set(alt_series) - set(ALT_SYMBOLS))
    if unknown:
        raise ValueError(f"yfinance: no symbol for the alternative series {unknown}; known: {list(ALT_SYMBOLS)}")
    alt_symbols = {name: symbol for name, symbol in ALT_SYMBOLS.items() if name in alt_series}
    tickers = list(dict.fromkeys(str(t) for t in tickers))
    symbols = list(dict.fromkeys([*tickers, *alt_symbols.values()]))
    names = {v: f"{v} ({k})" for k, v in alt_symbols.items()}

    bars: dict[str, pd.DataFrame] = {}
    splits: dict[str, pd.DataFrame] = {}
    missing: dict[str, str] = {}
    failed: dict[str, Exception] = {}
    with _yfinance_raises_errors():
        for symbol in symbols:
            try:
                raw = yf.Ticker(symbol, session=session).history(
                    start=start_day.strftime("%Y-%m-%d"), interval="1d", auto_adjust=False,
                    back_adjust=False, actions=True, repair=False, keepna=False,
                    timeout=TIMEOUT_SECONDS,
                )
            except Exception as exc:
                reason = _no_data_reason(exc)
                if reason is None:
                    failed[symbol] = exc
                else:
                    missing[symbol] = reason
                continue
            quoted, symbol_splits = _as_quoted(raw)
            in_range = (quoted["date"] >= start_day) & (quoted["date"] <= end_day)
            quoted = quoted.loc[in_range].reset_index(drop=True)
            if quoted.empty:
                missing[symbol] = "no bars in the range"
                continue
            bars[symbol] = quoted
            splits[symbol] = symbol_splits.loc[
                (symbol_splits["date"] >= start_day) & (symbol_splits["date"] <= end_day)
            ]

    fetched = ", ".join(names.get(s, s) for s in bars) or "none"
    if failed:
        detail = "; ".join([f"{names.get(s, s)}: request failed ({type(e).__name__}: {e})" for s, e in failed.items()]
                           + [f"{names.get(s, s)}: {reason}" for s, reason in missing.items()])
        raise YFinanceError(
            f"yfinance could not fetch {', '.join(names.get(s, s) for s in [*failed, *missing])} from {start} to "
            f"{end} ({detail}); fetched: {fetched}"
        ) from next(iter(failed.values()))
    if missing:
        detail = "; ".join(f"{names.get(s, s)}: {reason}" for s, reason in missing.items())
        raise NoDataError(
            f"yfinance returned no data for {', '.join(names.get(s, s) for s in missing)} "
            f"between {start} and {end} ({detail})",
            list(missing),
        )

    prices = _prices(tickers, bars)
    return MarketData(
        prices=prices,
        alt=_alt(bars, alt_symbols),
        actions=_actions(tickers, splits),
        issues=_missing_volume(prices),
    )


def _today(now: pd.Timestamp | None = None) -> pd.Timestamp:
    """The date in New York, where US sessions are dated, at `now` (default: the clock)."""
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    return now.tz_convert(EXCHANGE_TZ).tz_localize(None).normalize()


def _day(value: str) -> pd.Timestamp:
    if str(value).strip().lower() == "today":
        return _today()
    day = pd.Timestamp(value)
    if day.tzinfo is not None:
        day = day.tz_localize(None)
    return day.normalize()


@contextlib.contextmanager
def _yfinance_raises_errors() -> Iterator[None]:
    """Let yfinance raise its errors instead of logging them and returning an empty frame, so
    a network failure is told apart from a symbol without data."""
    debug = yf.config.debug
    previous = debug.hide_exceptions
    debug.hide_exceptions = False
    try:
        yield
    finally:
        debug.hide_exceptions = previous


def _no_data_reason(exc: BaseException) -> str | None:
    """Why yfinance has no data for a symbol, or None when `exc` is a fetch failure."""
    if isinstance(exc, YFTickerMissingError):
        return str(exc).removeprefix(f"${exc.ticker}: ")
    response = getattr(exc, "response", None)
    if getattr(response, "status_code", None) == 404:
        try:
            body = response.json()
            descriptions = [part["error"]["description"] for part in body.values()
                            if isinstance(part, dict) and part.get("error")]
        except Exception:
            descriptions = []
        return f"HTTP 404, {descriptions[0]}" if descriptions else "HTTP 404"
    return None


def _as_quoted(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """yfinance's split-adjusted daily frame as bars quoted on the day, plus its splits."""
    index = pd.DatetimeIndex(raw.index)
    if index.tz is not None:
        index = index.tz_localize(None)
    dates = index.normalize().astype("datetime64[ns]")

    ratio = raw["Stock Splits"].to_numpy(dtype=float) if "Stock Splits" in raw else np.zeros(len(raw))
    has_split = np.isfinite(ratio) & (ratio > 0)
    split_table = pd.DataFrame({"date": dates[has_split], "ratio": ratio[has_split]})
    split_table = split_table.groupby("date", as_index=False)["ratio"].prod()

    # factor[i] = product of the ratios of the splits dated after bar i
    split_days = split_table["date"].to_numpy()
    after = np.concatenate([np.cumprod(split_table["ratio"].to_numpy()[::-1])[::-1], [1.0]])
    factor = after[np.searchsorted(split_days, dates.to_numpy(), side="right")]

    bars = pd.DataFrame({"date": dates})
    for column in ("Open", "High", "Low", "Close"):
        bars[column.lower()] = raw[column].to_numpy(dtype=float) * factor
    volume = raw["Volume"].to_numpy(dtype=float)
    bars["volume"] = np.rint(np.where(volume > 0, volume, np.nan) / factor)
    bars[ADJ_CLOSE] = raw["Adj Close"].to_numpy(dtype=float) if "Adj Close" in raw else np.nan
    bars = bars.loc[bars["close"].notna()]
    bars = bars.drop_duplicates("date", keep="first").sort_values("date")
    return bars.reset_index(drop=True), split_table


def _prices(tickers: list[str], bars: dict[str, pd.DataFrame]) -> pd.DataFrame:
    columns = [*PRICE_COLUMNS, ADJ_CLOSE]
    numeric = {c: float for c in columns[2:]}
    frames = [bars[t].assign(ticker=t) for t in tickers]
    if not frames:
        return pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]"), "ticker": pd.Series(dtype=object),
                             **{c: pd.Series(dtype=float) for c in numeric}})[columns]
    prices = pd.concat(frames, ignore_index=True)[columns].astype(numeric)
    prices["ticker"] = prices["ticker"].astype(object)
    return prices.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)


def _missing_volume(prices: pd.DataFrame) -> pd.DataFrame:
    """One issue per bar without a volume, named "yfinance:<ticker>" and dated YYYY-MM-DD."""
    missing = prices.loc[prices["volume"].isna()].reset_index(drop=True)
    issues = pd.DataFrame({
        "file": ("yfinance:" + missing["ticker"]).astype(object),
        "line": pd.Series(pd.NA, index=missing.index, dtype="Int64"),
        "column": "volume",
        "problem": "missing volume",
        "value": missing["date"].dt.strftime("%Y-%m-%d").astype(object),
    })
    return issues[list(ISSUE_COLUMNS)]


def _alt(bars: dict[str, pd.DataFrame], symbols: dict[str, str]) -> pd.DataFrame:
    """The closes of the alternative series `symbols` (name -> symbol), outer-joined on date."""
    closes = [bars[symbol][["date", "close"]].rename(columns={"close": name}) for name, symbol in symbols.items()]
    if not closes:
        return pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]")})
    alt = functools.reduce(lambda left, right: left.merge(right, on="date", how="outer"), closes)
    alt = alt.sort_values("date").reset_index(drop=True)[[c for c in ALT_COLUMNS if c in alt.columns]]
    return alt.astype({name: float for name in symbols})


def _actions(tickers: list[str], splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    frames = [splits[t].assign(ticker=t) for t in tickers if not splits[t].empty]
    if not frames:
        return empty_actions()
    actions = pd.concat(frames, ignore_index=True)[list(ACTION_COLUMNS)]
    actions["ticker"] = actions["ticker"].astype(object)
    actions["ratio"] = actions["ratio"].astype(float)
    return actions.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
