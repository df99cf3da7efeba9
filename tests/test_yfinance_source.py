"""The yfinance source, tested on recorded Yahoo responses, never the network.

The recording (``tests/data/yfinance/cassette.json`` and the response bodies next to it) is
replayed by a requests transport adapter mounted on the `requests.Session` handed to
yfinance through its ``session=`` argument. Below that adapter there is only the socket, so
yfinance's own cookie and crumb handshake, its request building, its retry on a 4xx and its
chart parsing all run on the recorded bytes. A request the cassette does not hold raises
`UnrecordedRequest`, and socket connects and curl transfers are refused for the whole module.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd
import pytest
import requests
import urllib3
import yfinance as yf
from curl_cffi.curl import Curl
from requests.adapters import HTTPAdapter
from yfinance.data import YfData

from odyssey.sources import yfinance_source
from odyssey.sources.columns import ACTION_COLUMNS, ADJ_CLOSE, ALT_COLUMNS, ISSUE_COLUMNS, PRICE_COLUMNS
from odyssey.sources.yfinance_source import (
    ALT_SYMBOLS,
    NoDataError,
    YFinanceError,
    fetch_yfinance,
)

DATA = Path(__file__).parent / "data" / "yfinance"
START, END = "2020-08-17", "2020-09-30"
LAST_RECORDED = pd.Timestamp("2020-10-02")
SPY_EX_DIVIDEND, SPY_DIVIDEND = pd.Timestamp("2020-09-18"), 1.339
SPY_NO_VOLUME = pd.Timestamp("2020-09-24")


class UnrecordedRequest(AssertionError):
    """The code under test made a request the cassette does not hold."""


class _RecordedOrigin:
    """Stands in for the http.client response urllib3 wraps: requests reads cookies from `msg`."""

    def __init__(self, headers: dict[str, str]) -> None:
        raw = "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        self.msg = http.client.parse_headers(io.BytesIO(raw.encode("latin-1")))

    def isclosed(self) -> bool:
        return True

    def close(self) -> None:
        pass


class ReplayAdapter(HTTPAdapter):
    """Serve recorded responses; raise on any request the cassette does not hold.

    A request matches an interaction when method, URL without query and every query parameter
    are equal, except ``period2`` (the end of a chart request, "now" for an open-ended one):
    a replay made after the recording asks for a later end and gets what was recorded.
    """

    def __init__(self, cassette: Path) -> None:
        super().__init__()
        self.folder = cassette.parent
        self.interactions = json.loads(cassette.read_text())["interactions"]
        self.served: list[str] = []
        self.unrecorded: list[str] = []

    @staticmethod
    def _matches(recorded: dict, method: str, url: str, query: dict[str, str]) -> bool:
        if recorded["method"] != method or recorded["url"] != url:
            return False
        wanted = recorded["query"]
        if set(wanted) != set(query):
            return False
        for key, value in wanted.items():
            if key == "period2":
                if int(query[key]) < int(value):
                    return False
            elif query[key] != value:
                return False
        return True

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        parts = urlsplit(request.url)
        url = f"{parts.scheme}://{parts.netloc}{parts.path}"
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        for interaction in self.interactions:
            if self._matches(interaction["request"], request.method, url, query):
                break
        else:
            self.unrecorded.append(f"{request.method} {request.url}")
            raise UnrecordedRequest(f"no recorded response for {request.method} {request.url}")
        self.served.append(f"{request.method} {request.url}")
        recorded = interaction["response"]
        body = (self.folder / recorded["body_file"]).read_bytes()
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(body),
            headers=recorded["headers"],
            status=recorded["status"],
            reason=recorded["reason"],
            preload_content=False,
            decode_content=False,
            original_response=_RecordedOrigin(recorded["headers"]),
            request_url=request.url,
        )
        return self.build_response(request, raw)


class OfflineAdapter(HTTPAdapter):
    """Every request fails the way it does when the network is down."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts: list[str] = []

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        self.attempts.append(request.url)
        raise requests.exceptions.ConnectionError(f"Failed to resolve '{urlsplit(request.url).netloc}'")


def _session(adapter: HTTPAdapter) -> requests.Session:
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


@pytest.fixture(scope="module")
def network_attempts(tmp_path_factory):
    """Refuse (and count) any socket connect or curl transfer while this module runs; give
    yfinance fresh timezone and cookie caches so no earlier state changes what it requests."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args))
        raise UnrecordedRequest("network access attempted")

    yf.set_tz_cache_location(str(tmp_path_factory.mktemp("yfinance-cache")))
    YfData.cache_get.cache_clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", refuse)
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        patch.setattr(Curl, "perform", refuse)
        yield attempts
    YfData.cache_get.cache_clear()


@pytest.fixture(scope="module")
def replay(network_attempts) -> ReplayAdapter:
    return ReplayAdapter(DATA / "cassette.json")


@pytest.fixture(scope="module")
def market(replay):
    return fetch_yfinance(["SPY", "AAPL"], START, END, session=_session(replay))


def _payload(symbol: str) -> dict:
    name = symbol.replace("^", "").replace("=", "_")
    return json.loads((DATA / "chart" / f"{name}.json").read_text())["chart"]["result"][0]


def _recorded(symbol: str) -> pd.DataFrame:
    """A symbol's recorded bars as Yahoo served them, indexed by exchange-local date."""
    result = _payload(symbol)
    tz = result["meta"]["exchangeTimezoneName"]
    dates = pd.to_datetime(result["timestamp"], unit="s", utc=True).tz_convert(tz).tz_localize(None).normalize()
    quote = result["indicators"]["quote"][0]
    table = pd.DataFrame({k: quote[k] for k in ("open", "high", "low", "close", "volume")}, index=dates)
    table["adjclose"] = result["indicators"]["adjclose"][0]["adjclose"]
    return table


def _row(prices: pd.DataFrame, ticker: str, day: str) -> pd.Series:
    rows = prices[(prices["ticker"] == ticker) & (prices["date"] == pd.Timestamp(day))]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_columns_and_dtypes(market):
    prices, alt, actions = market.prices, market.alt, market.actions
    assert tuple(prices.columns) == (*PRICE_COLUMNS, ADJ_CLOSE)
    assert prices["date"].dtype == np.dtype("datetime64[ns]")
    assert (prices["date"] == prices["date"].dt.normalize()).all()
    assert prices["ticker"].dtype == object
    assert all(isinstance(t, str) for t in prices["ticker"])
    for column in ("open", "high", "low", "close", "volume", ADJ_CLOSE):
        assert prices[column].dtype == np.float64
    assert (prices["volume"].dropna() == prices["volume"].dropna().round()).all()
    ordered = prices.sort_values(["ticker", "date"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(prices, ordered)
    assert prices["date"].min() == pd.Timestamp(START) and prices["date"].max() == pd.Timestamp(END)

    assert tuple(alt.columns) == ALT_COLUMNS
    assert alt["date"].dtype == np.dtype("datetime64[ns]")
    assert alt["date"].is_monotonic_increasing and alt["date"].is_unique
    for column in ALT_COLUMNS[1:]:
        assert alt[column].dtype == np.float64

    assert tuple(actions.columns) == ACTION_COLUMNS
    assert actions["date"].dtype == np.dtype("datetime64[ns]")
    assert actions["ratio"].dtype == np.float64

    assert tuple(market.issues.columns) == ISSUE_COLUMNS
    assert market.issues["line"].dtype == pd.Int64Dtype()


def test_one_row_per_recorded_bar_from_start_to_end(market):
    for ticker in ("AAPL", "SPY"):
        recorded = _recorded(ticker)
        # the recording runs past END (it reaches 2020-10-02); those bars are cut
        assert recorded.index.max() > pd.Timestamp(END)
        expected = recorded.index[(recorded.index >= pd.Timestamp(START)) & (recorded.index <= pd.Timestamp(END))]
        got = market.prices.loc[market.prices["ticker"] == ticker, "date"]
        assert list(got) == list(expected)
    assert len(market.prices) == 2 * 32  # 33 business days, Labor Day (2020-09-07) closed


def test_close_after_split_equals_recorded_value(market):
    recorded = _recorded("AAPL").loc[pd.Timestamp("2020-09-30")]
    row = _row(market.prices, "AAPL", "2020-09-30")
    assert row["close"] == recorded["close"]
    assert row["close"] == pytest.approx(115.81, abs=1e-4)
    assert (row["open"], row["high"], row["low"]) == (recorded["open"], recorded["high"], recorded["low"])
    assert row["volume"] == recorded["volume"]


def test_bars_before_split_are_as_quoted_not_split_adjusted(market):
    # Yahoo serves the 2020-08-28 bar divided by 4 (its close 124.8075); that day AAPL closed at
    # 499.23 and 4x the shares' worth of volume is reported for it.
    recorded = _recorded("AAPL").loc[pd.Timestamp("2020-08-28")]
    assert recorded["close"] == pytest.approx(124.8075, abs=1e-4)
    row = _row(market.prices, "AAPL", "2020-08-28")
    assert row["close"] == recorded["close"] * 4.0
    assert row["close"] == pytest.approx(499.23, abs=1e-3)
    assert row["open"] == recorded["open"] * 4.0
    assert row["volume"] * 4 == recorded["volume"]
    after = _row(market.prices, "AAPL", "2020-08-31")
    assert row["close"] / after["close"] == pytest.approx(499.23 / 129.04, rel=1e-6)


def test_split_appears_in_actions(market):
    expected = pd.DataFrame({"date": [pd.Timestamp("2020-08-31")], "ticker": ["AAPL"], "ratio": [4.0]})
    pd.testing.assert_frame_equal(market.actions, expected)


def test_close_is_not_dividend_adjusted(market):
    # SPY went ex-dividend on 2020-09-18; the day before, Close and Adj Close differ
    recorded = _recorded("SPY").loc[pd.Timestamp("2020-09-17")]
    assert recorded["adjclose"] < recorded["close"]
    row = _row(market.prices, "SPY", "2020-09-17")
    assert row["close"] == recorded["close"]
    assert row["close"] == pytest.approx(335.84, abs=1e-4)


def test_adj_close_is_yahoos_adjusted_close(market):
    for ticker in ("AAPL", "SPY"):
        recorded = _recorded(ticker)["adjclose"]
        recorded = recorded[(recorded.index >= pd.Timestamp(START)) & (recorded.index <= pd.Timestamp(END))]
        got = market.prices.loc[market.prices["ticker"] == ticker].set_index("date")[ADJ_CLOSE]
        pd.testing.assert_series_equal(got, recorded, check_names=False, check_freq=False)


def test_recorded_spy_dividend_is_in_adjclose_the_way_yahoo_applies_it():
    # every adjclose before the ex-date is the close times (1 - dividend / close the day before)
    payload = _payload("SPY")
    (event,) = payload["events"]["dividends"].values()
    assert event["amount"] == SPY_DIVIDEND
    assert pd.Timestamp(event["date"], unit="s", tz="UTC").tz_convert("America/New_York").normalize().tz_localize(None) == SPY_EX_DIVIDEND
    recorded = _recorded("SPY")
    before, after = recorded[recorded.index < SPY_EX_DIVIDEND], recorded[recorded.index >= SPY_EX_DIVIDEND]
    factor = 1.0 - SPY_DIVIDEND / before["close"].iloc[-1]
    np.testing.assert_allclose(before["adjclose"], before["close"] * factor, rtol=1e-6)
    np.testing.assert_array_equal(after["adjclose"], after["close"])


def test_adj_close_return_includes_the_dividend(market):
    spy = market.prices.loc[market.prices["ticker"] == "SPY"].set_index("date")
    total = np.log(spy[ADJ_CLOSE]).diff()
    price = np.log(spy["close"]).diff()
    close_before = spy["close"].shift(1).loc[SPY_EX_DIVIDEND]
    assert close_before == pytest.approx(335.84, abs=1e-4)
    # the close drops by the dividend on the ex-date; the total return does not
    assert price.loc[SPY_EX_DIVIDEND] - total.loc[SPY_EX_DIVIDEND] == pytest.approx(
        np.log(1.0 - SPY_DIVIDEND / close_before), abs=1e-6)
    assert total.loc[SPY_EX_DIVIDEND] > price.loc[SPY_EX_DIVIDEND]
    others = total.index[1:].drop(SPY_EX_DIVIDEND)
    np.testing.assert_allclose(total.loc[others], price.loc[others], atol=1e-6)


def test_adj_close_is_on_one_share_basis_across_the_split(market):
    aapl = market.prices.loc[market.prices["ticker"] == "AAPL"].set_index("date")
    before, after = aapl.loc[pd.Timestamp("2020-08-28")], aapl.loc[pd.Timestamp("2020-08-31")]
    # quoted closes jump by the split; the adjusted close moves by the day's return only
    assert after["close"] / before["close"] == pytest.approx(129.04 / 499.23, rel=1e-6)
    assert after[ADJ_CLOSE] / before[ADJ_CLOSE] == pytest.approx(129.04 / (499.23 / 4), rel=1e-6)
    np.testing.assert_allclose(aapl[ADJ_CLOSE].loc[:"2020-08-28"], aapl["close"].loc[:"2020-08-28"] / 4, rtol=1e-12)


def test_missing_volume_is_nan_kept_and_listed_in_issues(market):
    # the recorded SPY body has a null volume on 2020-09-24 (see tests/data/yfinance/README.md)
    recorded = _recorded("SPY").loc[SPY_NO_VOLUME]
    assert recorded.isna()["volume"] and not recorded.drop("volume").isna().any()
    row = _row(market.prices, "SPY", "2020-09-24")
    assert np.isnan(row["volume"])
    assert (row["open"], row["high"], row["low"], row["close"]) == tuple(recorded[["open", "high", "low", "close"]])
    assert market.prices["volume"].isna().sum() == 1
    assert (market.prices["volume"] > 0).sum() == len(market.prices) - 1
    expected = pd.DataFrame({"file": ["yfinance:SPY"], "line": pd.array([pd.NA], dtype="Int64"),
                             "column": ["volume"], "problem": ["missing volume"], "value": ["2020-09-24"]})
    pd.testing.assert_frame_equal(market.issues, expected)


def test_no_missing_volume_gives_empty_issues(replay):
    data = fetch_yfinance(["AAPL"], START, END, session=_session(replay))
    assert data.issues.empty and tuple(data.issues.columns) == ISSUE_COLUMNS
    assert data.prices["volume"].notna().all()


def test_end_today_fetches_through_the_last_recorded_bar(replay):
    for end in ("today", "Today", " TODAY "):
        data = fetch_yfinance(["SPY", "AAPL"], START, end, session=_session(replay))
        for ticker in ("AAPL", "SPY"):
            dates = data.prices.loc[data.prices["ticker"] == ticker, "date"]
            assert list(dates) == list(_recorded(ticker).index)
            assert dates.max() == LAST_RECORDED
        assert data.alt["date"].max() == LAST_RECORDED
        assert len(data.prices) == 2 * 34


def test_end_today_cuts_at_the_new_york_date(replay, monkeypatch):
    # 02:00 UTC on 2020-09-26 is still the evening of 2020-09-25 in New York
    moment = pd.Timestamp("2020-09-26 02:00", tz="UTC")
    assert yfinance_source._today(moment) == pd.Timestamp("2020-09-25")
    monkeypatch.setattr(yfinance_source, "_today", lambda: pd.Timestamp("2020-09-25"))
    data = fetch_yfinance(["SPY"], START, "TODAY", session=_session(replay))
    assert data.prices["date"].max() == pd.Timestamp("2020-09-25")
    assert data.alt["date"].max() == pd.Timestamp("2020-09-25")


def test_alt_frame_holds_recorded_closes_outer_joined(market):
    alt = market.alt.set_index("date")
    window = pd.date_range(START, END)
    for name, symbol in ALT_SYMBOLS.items():
        recorded = _recorded(symbol)["close"]
        recorded = recorded[(recorded.index >= window[0]) & (recorded.index <= window[-1])]
        pd.testing.assert_series_equal(alt[name].dropna(), recorded, check_names=False, check_freq=False)
    row = alt.loc[pd.Timestamp("2020-09-03")]
    assert row["VIX"] == pytest.approx(33.60, abs=1e-4)
    assert row["DXY"] == pytest.approx(92.78, abs=1e-4)
    assert row["Gold"] == pytest.approx(1930.6, abs=1e-3)
    assert row["Yield_10Y"] == pytest.approx(0.630, abs=1e-6)
    # ICE quoted the dollar index on Labor Day, the others did not: an outer join keeps the day
    labor_day = alt.loc[pd.Timestamp("2020-09-07")]
    assert labor_day["DXY"] == pytest.approx(92.99, abs=1e-4)
    assert labor_day[["VIX", "Gold", "Yield_10Y"]].isna().all()
    assert len(alt) == 33


def test_split_after_end_is_still_reversed_and_not_listed(replay):
    data = fetch_yfinance(["AAPL"], START, "2020-08-28", session=_session(replay))
    assert data.prices["date"].max() == pd.Timestamp("2020-08-28")
    assert _row(data.prices, "AAPL", "2020-08-28")["close"] == pytest.approx(499.23, abs=1e-3)
    assert data.actions.empty and tuple(data.actions.columns) == ACTION_COLUMNS
    assert data.alt["date"].max() == pd.Timestamp("2020-08-28")


def test_unknown_ticker_raises_value_error_naming_it(replay):
    with pytest.raises(ValueError, match="NOSUCH") as caught:
        fetch_yfinance(["AAPL", "NOSUCH"], START, END, session=_session(replay))
    assert isinstance(caught.value, NoDataError)
    assert caught.value.symbols == ["NOSUCH"]
    assert "AAPL" not in str(caught.value)
    assert any("/chart/NOSUCH" in url for url in replay.served)


def test_network_failure_names_yfinance_and_the_ticker(network_attempts):
    offline = OfflineAdapter()
    with pytest.raises(YFinanceError) as caught:
        fetch_yfinance(["AAPL"], START, END, session=_session(offline))
    message = str(caught.value)
    assert "yfinance" in message and "AAPL" in message
    assert isinstance(caught.value.__cause__, requests.exceptions.ConnectionError)
    assert offline.attempts


def test_an_unrecorded_request_fails_loudly(network_attempts):
    adapter = ReplayAdapter(DATA / "cassette.json")
    with pytest.raises(UnrecordedRequest):
        _session(adapter).get("https://query2.finance.yahoo.com/v8/finance/chart/MSFT")
    with pytest.raises(YFinanceError, match="MSFT") as caught:
        fetch_yfinance(["MSFT"], START, END, session=_session(adapter))
    assert isinstance(caught.value.__cause__, UnrecordedRequest)
    assert any("/chart/MSFT" in url for url in adapter.unrecorded)


def test_everything_came_from_the_recording(market, replay, network_attempts):
    assert network_attempts == []
    assert replay.unrecorded == []
    served = " ".join(replay.served)
    for symbol in ["AAPL", "SPY", *ALT_SYMBOLS.values()]:
        assert f"/v8/finance/chart/{symbol}?" in served.replace("%5E", "^").replace("%3D", "=")


def test_only_the_alternative_series_the_settings_ask_for_are_requested(network_attempts):
    adapter = ReplayAdapter(DATA / "cassette.json")
    data = fetch_yfinance(["AAPL"], START, END, alt_series=("VIX",), session=_session(adapter))
    assert list(data.alt.columns) == ["date", "VIX"] and data.alt["VIX"].notna().any()
    served = " ".join(adapter.served).replace("%5E", "^").replace("%3D", "=")
    assert "/chart/^VIX?" in served
    for symbol in ("DX-Y.NYB", "GC=F", "^TNX"):
        assert f"/chart/{symbol}?" not in served, symbol
    none = fetch_yfinance(["AAPL"], START, END, alt_series=(), session=_session(ReplayAdapter(DATA / "cassette.json")))
    assert list(none.alt.columns) == ["date"] and none.alt.empty


def test_every_failing_symbol_is_named_and_the_others_are_still_fetched(network_attempts):
    """MSFT's request fails (not recorded), NOSUCH has no data, AAPL is fine: one error names both
    failures with their reasons and says what was fetched."""
    adapter = ReplayAdapter(DATA / "cassette.json")
    with pytest.raises(YFinanceError) as caught:
        fetch_yfinance(["MSFT", "AAPL", "NOSUCH"], START, END, alt_series=(), session=_session(adapter))
    message = str(caught.value)
    assert "MSFT: request failed" in message and "NOSUCH" in message and "fetched: AAPL" in message
    assert any("/chart/AAPL" in url for url in adapter.served)
