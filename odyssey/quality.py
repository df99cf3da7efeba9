"""Data-quality rules beyond the schemas, and the five-dimension quality score (seed 004)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from odyssey.calendar import DEFAULT_EXCHANGE, sessions
from odyssey.cleaning import runs
from odyssey.features import BY_NAME
from odyssey.schemas import _ohlc_consistent
from odyssey.sources.columns import ADJ_CLOSE


def missing_tickers(frame: pd.DataFrame, tickers: Sequence[str]) -> list[str]:
    present = set(frame["ticker"].unique())
    return [t for t in tickers if t not in present]


def absent_bar_fields(raw: pd.DataFrame, bar_fields: Sequence[str], share: float = 0.5) -> pd.DataFrame:
    """Per ticker, the bar fields the settings list that the data do not carry: volume blank in at
    least `share` of its bars, or the day's range absent (open = high = low = close) in at least
    `share` of them. Columns: ticker, field ("volume" | "range"), share, file."""
    rows = []
    for ticker, group in raw.groupby("ticker", sort=True):
        file = ", ".join(sorted(set(group["source_file"].astype(str)))) if "source_file" in group else ""
        if "volume" in bar_fields:
            blank = float(group["volume"].isna().mean())
            if blank >= share:
                rows.append({"ticker": ticker, "field": "volume", "share": blank, "file": file})
        if "high" in bar_fields:
            flat = float(((group["open"] == group["close"]) & (group["high"] == group["close"])
                          & (group["low"] == group["close"])).mean())
            if flat >= share:
                rows.append({"ticker": ticker, "field": "range", "share": flat, "file": file})
    return pd.DataFrame(rows, columns=["ticker", "field", "share", "file"])


def absent_bar_fields_reason(absent: pd.DataFrame, bar_fields: Sequence[str]) -> str:
    """Which tickers lack which fields, and the settings line that leaves their features out."""
    if absent.empty:
        return f"every ticker carries the bar fields the settings list ({', '.join(bar_fields)})"
    parts = [f"{r.ticker}{f' ({r.file})' if r.file else ''}: "
             + ("volume blank" if r.field == "volume" else "open = high = low = close") + f" in {r.share:.0%} of bars"
             for r in absent.itertuples()]
    keep = [f for f in bar_fields if not (f == "volume" and "volume" in set(absent["field"]))
            and not (f in ("open", "high", "low") and "range" in set(absent["field"]))]
    return ("the market lacks bar fields the settings list: " + "; ".join(parts)
            + f". Set [universe] bar_fields = {keep} to leave out the features that need them (see the "
              "feature_registry asset), or provide the fields.").replace("'", '"')


def long_gaps(clean: pd.DataFrame) -> pd.DataFrame:
    """Runs of sessions left empty after cleaning (longer than the fill limit)."""
    rows = []
    for ticker, group in clean.sort_values(["ticker", "date"]).groupby("ticker", sort=True):
        dates = group["date"].to_numpy()
        for i, j in runs(group["gap"].to_numpy()):
            rows.append({"ticker": ticker, "start": pd.Timestamp(dates[i]).date(),
                         "end": pd.Timestamp(dates[j - 1]).date(), "sessions": j - i})
    return pd.DataFrame(rows, columns=["ticker", "start", "end", "sessions"])


def stale_volume(raw: pd.DataFrame, min_sessions: int = 10) -> pd.DataFrame:
    """Runs of at least `min_sessions` bars in a row with zero volume, per ticker (a feed that
    stopped reporting volume, or a halted line): ticker, start, end, sessions."""
    rows = []
    for ticker, group in raw.sort_values(["ticker", "date"]).groupby("ticker", sort=True):
        dates = group["date"].to_numpy()
        for i, j in runs((group["volume"].astype(float) == 0).to_numpy()):
            if j - i >= min_sessions:
                rows.append({"ticker": ticker, "start": pd.Timestamp(dates[i]).date(),
                             "end": pd.Timestamp(dates[j - 1]).date(), "sessions": int(j - i)})
    return pd.DataFrame(rows, columns=["ticker", "start", "end", "sessions"])


SPLIT_RATIOS = (2.0, 3.0, 4.0, 5.0, 7.0, 8.0, 10.0, 15.0, 20.0)
# the fractional ratios (3:2, 5:4, 4:3, 5:2): named only where the source's adjusted close shows
# them (a -20 % day alone is as likely a crash as a 5:4 split)
FRACTIONAL_RATIOS = (1.25, 4.0 / 3.0, 1.5, 2.5)
# how far the close may move apart from the adjusted close in one session without a split: a
# distribution is a few per cent of the price
ADJUSTED_GAP = float(np.log(1.15))
SUSPECT_COLUMNS = ["ticker", "date", "price_ratio", "suggested_ratio", "sigmas", "volume_ratio", "kind"]


def _nearest_split(price_ratio: float, tolerance: float, ratios: tuple[float, ...] = SPLIT_RATIOS) -> float:
    """The split ratio (new shares per old share) a price ratio is within `tolerance` of, or NaN:
    a price halving suggests 2, a price x10 (a reverse split) suggests 0.1."""
    for k in ratios:
        for ratio, price in ((k, 1.0 / k), (1.0 / k, k)):
            if abs(price_ratio / price - 1.0) < tolerance:
                return ratio
    return float("nan")


def suspected_splits(clean: pd.DataFrame, sigma: float = 15.0, tolerance: float = 0.03, min_move: float = 0.4,
                     persist: int = 5, confirmed: set[tuple[str, pd.Timestamp]] | frozenset = frozenset()
                     ) -> pd.DataFrame:
    """Persistent one-session level changes that no listed split explains, in the cleaned prices
    (listed splits adjusted, bad prints repaired): a close-to-close move still at least half there
    `persist` sessions later (or at the newest close, for the newest sessions) that lies within
    `tolerance` of a split ratio, whatever its size in sigmas and whatever the volume
    ("split-like"), or goes beyond `sigma` trailing standard deviations and `min_move` in log size
    ("level shift": a split of an unusual ratio, a change of price unit), or moved the close more
    than ADJUSTED_GAP apart from the source's adjusted close (a split the source adjusted for,
    fractional ratios included). Moves in `confirmed` ((ticker, date) the user confirmed as real) are
    left out. Columns: ticker, date, price_ratio, suggested_ratio (the split ratio to list, NaN
    when none fits), sigmas, volume_ratio (volume against its 20-session median before), kind."""
    rows = []
    for ticker, group in clean.sort_values(["ticker", "date"]).groupby("ticker", sort=True):
        log_close = np.log(group["close"].astype(float).ffill()).to_numpy()
        move = np.r_[np.nan, np.diff(log_close)]
        trailing = pd.Series(move).rolling(60, min_periods=20).std().shift(1).to_numpy()
        # `persist` sessions later, or the newest close when the move is newer than that (a split
        # first appears on a new session: it is named then, not once it has persisted)
        later = log_close[np.minimum(np.arange(len(log_close)) + persist, len(log_close) - 1)] \
            - np.r_[np.nan, log_close[:-1]]
        volume = group["volume"].astype(float).to_numpy()
        median = pd.Series(volume).rolling(20, min_periods=5).median().shift(1).to_numpy()
        stays = (np.sign(later) == np.sign(move)) & (np.abs(later) >= 0.5 * np.abs(move))
        # the close moved and the source's adjusted close did not: a split the source adjusted for
        gap = np.zeros(len(move))
        if ADJ_CLOSE in group and group[ADJ_CLOSE].notna().all():
            gap = move - np.r_[np.nan, np.diff(np.log(group[ADJ_CLOSE].astype(float).ffill().to_numpy()))]
        with np.errstate(invalid="ignore"):
            big = (np.abs(move) > sigma * trailing) & (np.abs(move) > min_move)
            split_like = np.abs(move) > np.log(1.5)
            unadjusted = np.abs(gap) > ADJUSTED_GAP
        for i in np.flatnonzero(stays & (big | split_like | unadjusted)):
            day = pd.Timestamp(group["date"].iloc[i])
            suggested = _nearest_split(float(np.exp(move[i])), tolerance)
            if unadjusted[i] and np.isnan(suggested):
                suggested = _nearest_split(float(np.exp(gap[i])), tolerance, SPLIT_RATIOS + FRACTIONAL_RATIOS)
            if (ticker, day) in confirmed or (np.isnan(suggested) and not big[i] and not unadjusted[i]):
                continue
            rows.append({"ticker": ticker, "date": day.date(), "price_ratio": float(np.exp(move[i])),
                         "suggested_ratio": suggested,
                         "sigmas": float(abs(move[i]) / trailing[i]) if np.isfinite(trailing[i]) else float("nan"),
                         "volume_ratio": float(volume[i] / median[i]) if median[i] > 0 else float("nan"),
                         "kind": _kind(bool(np.isfinite(suggested)), bool(unadjusted[i]))})
    return pd.DataFrame(rows, columns=SUSPECT_COLUMNS)


def _kind(suggested: bool, unadjusted: bool) -> str:
    if unadjusted:
        return "close moved, adjusted close did not"
    return "split-like" if suggested else "level shift"


def _ratio_text(ratio: float) -> str:
    return f"{ratio:.10g}"


def locate_suspects(suspects: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """The suspects with the file and line of their raw bar (`source_file`, `source_row` of the
    CSV source; empty for other sources)."""
    out = suspects.copy()
    out["file"], out["line"] = "", pd.array([pd.NA] * len(out), dtype="Int64")
    if len(out) and {"source_file", "source_row"} <= set(raw.columns):
        where = raw.assign(day=raw["date"].dt.date).set_index(["ticker", "day"])[["source_file", "source_row"]]
        keys = pd.MultiIndex.from_arrays([out["ticker"], out["date"]])
        found = where.reindex(keys)
        out["file"] = found["source_file"].fillna("").to_numpy()
        out["line"] = pd.array(found["source_row"].to_numpy(), dtype="Int64")
    return out


def suspects_reason(located: pd.DataFrame, source_kind: str, csv_path: str | None, limit: int = 5) -> str:
    """What a person reads: every suspect (up to `limit`) with its ticker, date, price ratio, the
    split ratio it suggests, file and line, and how to list the split or confirm the move."""
    if located.empty:
        return "no unlisted split or level shift"
    if source_kind == "csv":
        where = f"{csv_path}/corporate_actions.csv (date,ticker,ratio)"
    else:
        where = f"a landing file actions_<name>.csv (date,ticker,ratio; the {source_kind} source lists none then)"
    parts = []
    for r in located.head(limit).itertuples():
        at = f" ({r.file} line {r.line})" if r.file else ""
        sigmas = f", {r.sigmas:.0f} sigma" if np.isfinite(r.sigmas) else ""
        volume = f", volume x{r.volume_ratio:.1f}" if np.isfinite(r.volume_ratio) else ""
        hint = (f": if it is a {_ratio_text(r.suggested_ratio)}-for-1 split, list `{r.date},{r.ticker},"
                f"{_ratio_text(r.suggested_ratio)}` in {where}" if np.isfinite(r.suggested_ratio)
                else ": if it is a split or a change of price unit, list it in " + where)
        parts.append(f"{r.ticker} {r.date}{at}: close x{r.price_ratio:.4f}{sigmas}{volume} ({r.kind}){hint}")
    more = f"; and {len(located) - limit} more" if len(located) > limit else ""
    return (f"{len(located)} unlisted split(s) or level shift(s), none applied: " + "; ".join(parts) + more
            + ". If a move is real, add \"TICKER YYYY-MM-DD\" to [cleaning] confirmed_moves.")


def nan_outside_warmup(features: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """(feature, ticker, count, first date) for NaNs after each feature's warm-up window."""
    position = features.groupby("ticker", sort=False).cumcount().to_numpy()
    rows = []
    for feature in (BY_NAME[n] for n in names):
        bad = features[feature.name].isna().to_numpy() & (position >= feature.lookback)
        if bad.any():
            hit = features.loc[bad, ["ticker", "date"]]
            for ticker, group in hit.groupby("ticker", sort=True):
                rows.append({"feature": feature.name, "ticker": ticker, "rows": len(group),
                             "first_date": group["date"].min().date(), "lookback": feature.lookback})
    return pd.DataFrame(rows, columns=["feature", "ticker", "rows", "first_date", "lookback"])


def scaled_train_moments(scaled: pd.DataFrame, columns: Sequence[str], mean_tol: float = 1e-6,
                         std_tol: float = 1e-6) -> pd.DataFrame:
    """Features whose train-row mean is not ~0 or whose std (ddof=0) is not ~1 (constant features
    must be exactly 0)."""
    train = scaled.loc[scaled["split"] == "train", list(columns)]
    mean = train.mean()
    std = train.std(ddof=0)
    ok = (mean.abs() <= mean_tol) & (((std - 1.0).abs() <= std_tol) | (std <= std_tol))
    out = pd.DataFrame({"feature": mean.index, "train_mean": mean.to_numpy(), "train_std": std.to_numpy()})
    return out[~ok.to_numpy()].reset_index(drop=True)


def quality_scores(raw: pd.DataFrame, clean: pd.DataFrame, tickers: Sequence[str], start: str,
                   freshness_days: int = 5, exchange: str = DEFAULT_EXCHANGE) -> pd.DataFrame:
    """Completeness, accuracy, consistency, timeliness and uniqueness, each in [0, 1].

    completeness: share of the exchange's sessions, from each ticker's first bar on, that have a
        close in the raw data;
    accuracy: share of raw rows with positive finite prices, non-negative volume, a date not in
        the future and no +-5 sigma outlier flag;
    consistency: share of raw rows with low <= open, close <= high;
    timeliness: share of tickers whose last bar is within `freshness_days` sessions of the
        newest bar in the data;
    uniqueness: share of raw rows that are not duplicates of an earlier (ticker, date).
    """
    end = raw["date"].max()
    calendar = sessions(start, end, exchange)
    first = raw.groupby("ticker")["date"].min().reindex(list(tickers))
    expected = int(sum(len(calendar) - calendar.searchsorted(d) for d in first.dropna()))
    expected += int(first.isna().sum()) * len(calendar)  # a ticker with no bar at all misses every session
    have = raw[raw["ticker"].isin(tickers) & raw["date"].isin(calendar) & raw["close"].notna()]
    completeness = have.drop_duplicates(["ticker", "date"]).shape[0] / expected if expected else 0.0

    prices = raw[["open", "high", "low", "close"]].astype(float)
    valid = (prices > 0).all(axis=1) & np.isfinite(prices).all(axis=1)
    valid &= raw["volume"].astype(float).fillna(0) >= 0
    valid &= raw["date"] <= pd.Timestamp.now().normalize()
    flagged = clean.loc[clean["outlier"], ["ticker", "date"]]
    is_outlier = pd.MultiIndex.from_frame(raw[["ticker", "date"]]).isin(pd.MultiIndex.from_frame(flagged))
    accuracy = float((valid & ~is_outlier).mean()) if len(raw) else 0.0

    consistency = float(_ohlc_consistent(raw).mean()) if len(raw) else 0.0

    last = raw.groupby("ticker")["date"].max().reindex(list(tickers))
    lag = last.apply(lambda d: len(calendar) - 1 - calendar.searchsorted(d) if pd.notna(d) else np.inf)
    timeliness = float((lag <= freshness_days).mean()) if len(tickers) else 0.0

    uniqueness = float(1.0 - raw.duplicated(["ticker", "date"]).mean()) if len(raw) else 0.0
    scores = {"completeness": completeness, "accuracy": accuracy, "consistency": consistency,
              "timeliness": timeliness, "uniqueness": uniqueness}
    frame = pd.DataFrame({"dimension": list(scores), "score": [float(v) for v in scores.values()]})
    overall = pd.DataFrame({"dimension": ["overall"], "score": [float(np.mean(list(scores.values())))]})
    return pd.concat([frame, overall], ignore_index=True)
