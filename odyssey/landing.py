"""New trading days arrive as files in a landing folder; this module reads and judges them,
moves them to the archive or to quarantine, and makes synthetic ones for demos.

A landing file is ``bars_<anything>.csv|parquet`` (``date,ticker,open,high,low,close,volume``),
``alt_<anything>.csv|parquet`` (``date`` and any of VIX, DXY, Gold, Yield_10Y) or
``actions_<anything>.csv|parquet`` (``date,ticker,ratio``: splits in or before the landed days).

Only regular files are read. An entry named like a landing file that is a symbolic link (even to
a valid file), a directory, a named pipe, a socket or a device is refused unopened (lstat, never
following the link): the sensors move it to quarantine as it is, with the reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Sequence

import pandas as pd

from odyssey import schemas
from odyssey.hashing import sha256_bytes
from odyssey.sources.columns import ACTION_COLUMNS, ALT_COLUMNS, MarketData
from odyssey.sources.csv_source import (SourceError, _lines, _price_frame, _read_table, _require, _to_dates,
                                        _to_numbers)
from odyssey.sources.synthetic import generate_market
from odyssey.calendar import is_session, next_sessions
from odyssey.settings import Profile, SyntheticSettings

SUFFIXES = (".csv", ".parquet")


@dataclass
class LandedFile:
    path: Path
    kind: str  # "bars" | "alt" | "actions"
    sha256: str
    frame: pd.DataFrame


_NOT_REGULAR = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe"),
                (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def landing_entries(folder: Path, suffixes: Sequence[str] = SUFFIXES) -> list[Path]:
    """Every entry of `folder` named like a landing file (one of `suffixes`, not hidden), whatever
    it is (links and special files included, none followed or opened), in name order."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in suffixes and not p.name.startswith("."))


def refusal(path: Path) -> str | None:
    """Why `path` is not read as a landing file (a link, a directory, a pipe, a socket, a device),
    judged on the entry itself (lstat, no link followed); None for a regular file."""
    mode = path.lstat().st_mode
    if stat.S_ISREG(mode):
        return None
    what = next((name for test, name in _NOT_REGULAR if test(mode)), "not a regular file")
    return (f"{path.name}: {what}, not a regular file; landing files are read only when they are regular files "
            f"themselves" + (" (the link was not followed; it is kept as it is)" if stat.S_ISLNK(mode) else ""))


def landing_files(folder: Path, suffixes: Sequence[str] = SUFFIXES) -> list[Path]:
    """The regular landing files of `folder` (links and special files left out, see `refusal`)."""
    return [p for p in landing_entries(folder, suffixes) if refusal(p) is None]


def open_regular(path: Path) -> BinaryIO:
    """Open a landing file for reading only if the entry itself is a regular file: a link is not
    followed (O_NOFOLLOW) and a pipe or device is not waited on (O_NONBLOCK), so an entry swapped
    after it was judged is refused too. SourceError names the file and what it is."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as error:  # ELOOP: the entry is a link
        raise SourceError(refusal(path) or f"{path.name}: cannot be opened ({error.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SourceError(refusal(path) or f"{path.name}: not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path) -> bytes:
    """The bytes of a regular landing file (`open_regular`)."""
    with open_regular(path) as handle:
        return handle.read()


def sha256_regular(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a regular landing file (`open_regular`), read in chunks."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


KINDS = ("bars", "alt", "actions")


def landing_kind(path: Path) -> str | None:
    """"bars", "alt", "actions", or None for a file that is none of them."""
    return next((k for k in KINDS if path.name.startswith(k)), None)


def read_landed(path: Path, tickers: Sequence[str], after: pd.Timestamp | None,
                exchange: str | None = None, volume: bool = True) -> LandedFile:
    """Parse and judge one landing file; raise SourceError naming what is wrong (with the file's
    own line numbers). With `exchange`, a day that is not one of its sessions is wrong too; with
    `volume` (the settings' bar fields list it), a blank volume is too. Only a regular file is
    read (`open_regular`); its SHA-256 is of the bytes parsed."""
    kind = landing_kind(path)
    if kind is None:
        raise SourceError(f"{path.name}: landing files are named bars_*, alt_* or actions_* (.csv or .parquet)")
    data = read_regular(path)
    digest = sha256_bytes(data)
    table = _read_table(path, data)
    if kind == "bars":
        frame = _price_frame(table, path, ticker=None)  # with source_file and source_row (its line)
        if volume and frame["volume"].isna().any():
            raise SourceError(f"{path.name}: column 'volume' is empty in {_lines(frame.index[frame['volume'].isna()])}")
        unknown = sorted(set(frame["ticker"]) - set(tickers))
        if unknown:
            raise SourceError(f"{path.name}: column 'ticker' has tickers outside the universe: {unknown}")
        outcome = schemas.validate(schemas.RAW_PRICES, frame.drop(columns=["source_file", "source_row"])
                                   .reset_index(drop=True))
        if not outcome.passed:
            problems = []
            lines = frame.index.to_numpy()
            for (column, check), cases in outcome.failure_cases.groupby(["column", "check"], sort=False):
                shown = _lines([int(lines[int(r)]) for r in cases["row"] if str(r).isdigit()], limit=5)
                problems.append(f"column {column!r}: {check} ({len(cases)} failing, {shown})")
            raise SourceError(f"{path.name}: " + "; ".join(problems))
    elif kind == "actions":
        _require(table, path, list(ACTION_COLUMNS))
        frame = pd.DataFrame({"date": _to_dates(table, path), "ticker": table["ticker"].astype(str).str.strip(),
                              "ratio": _to_numbers(table, path, "ratio")})
        bad = ~(frame["ratio"] > 0) | ~frame["ticker"].isin(list(tickers))
        if bad.any():
            raise SourceError(f"{path.name}: a split needs a universe ticker and a ratio > 0, not so in "
                              f"{_lines(frame.index[bad])}")
        frame["source_file"] = path.name
        return LandedFile(path, kind, digest, frame.reset_index(drop=True))  # may name earlier days
    else:
        _require(table, path, ["date"])
        frame = pd.DataFrame({"date": _to_dates(table, path)})
        for column in [c for c in ALT_COLUMNS[1:] if c in table.columns]:
            frame[column] = _to_numbers(table, path, column)
    if exchange is not None:
        off = ~is_session(frame["date"], exchange).to_numpy()
        if off.any():
            raise SourceError(f"{path.name}: column 'date' has days that are not {exchange} sessions in "
                              f"{_lines(frame.index[off])} (e.g. {frame.loc[frame.index[off][0], 'date'].date()})")
    if after is not None and (frame["date"] <= after).any():
        raise SourceError(f"{path.name}: column 'date' repeats days already stored (on or before {after.date()}) "
                          f"in {_lines(frame.index[frame['date'] <= after])}")
    frame["source_file"] = path.name  # every landed row records its file (a failed ingest takes them out)
    return LandedFile(path, kind, digest, frame.reset_index(drop=True))


def move(path: Path, folder: Path, reason: str | None = None) -> Path:
    """Move an entry into `folder` as it is (a link stays a link, its target untouched), with a
    reason file beside it for quarantine; never overwrite, never write through a link."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    n = 1
    while os.path.lexists(target) or os.path.lexists(_reason_file(target)):
        target = folder / f"{path.stem}.{n}{path.suffix}"
        n += 1
    shutil.move(str(path), target)
    if reason is not None:
        fd = os.open(_reason_file(target), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as handle:
            handle.write(reason + "\n")
    return target


def _reason_file(target: Path) -> Path:
    return target.with_name(target.name + ".reason.txt")


def synthetic_days(profile: Profile, config: SyntheticSettings, after: pd.Timestamp, days: int) -> MarketData:
    """The synthetic market's next `days` sessions after `after` (the same market continued),
    with the splits that fall in them."""
    end = next_sessions(after, days, profile.exchange)[-1]
    market = generate_market(profile.with_end(end), config).data
    prices = market.prices[market.prices["date"] > after].reset_index(drop=True)
    alt = market.alt[market.alt["date"] > after].reset_index(drop=True)
    actions = market.actions[market.actions["date"] > after].reset_index(drop=True)
    return MarketData(prices=prices, alt=alt, actions=actions)


def write_landing(data: MarketData, folder: Path) -> list[Path]:
    """Landing files for the bars, the alternative data and (when there are any) the splits."""
    folder.mkdir(parents=True, exist_ok=True)
    first, last = data.prices["date"].min().date(), data.prices["date"].max().date()
    files = [(data.prices, folder / f"bars_{first}_{last}.csv"), (data.alt, folder / f"alt_{first}_{last}.csv")]
    if len(data.actions):
        files.append((data.actions, folder / f"actions_{first}_{last}.csv"))
    for frame, path in files:
        out = frame.copy()
        out["date"] = pd.to_datetime(out["date"]).dt.strftime("%Y-%m-%d")
        out.to_csv(path.with_suffix(".tmp"), index=False)
        path.with_suffix(".tmp").rename(path)  # appear whole
    return [path for _, path in files]


def append_landed(stored: pd.DataFrame | None, new: Sequence[pd.DataFrame], keys: Sequence[str]) -> pd.DataFrame:
    """Stored landed rows plus new ones; a key already stored is an error (files carry new days)."""
    frames = ([stored] if stored is not None and len(stored) else []) + [f for f in new if len(f)]
    if not frames:
        return new[0].iloc[0:0] if new else pd.DataFrame()
    combined = pd.concat(frames, ignore_index=True)
    duplicated = combined.duplicated(list(keys), keep=False)
    if duplicated.any():
        raise ValueError(f"landed rows repeat {list(keys)}: {combined.loc[duplicated, list(keys)].head(5).to_dict('records')}")
    return combined.sort_values(list(keys)).reset_index(drop=True)
