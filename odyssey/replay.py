"""A replay's record and what it is judged by: the sessions walked forward, the timeline of what
the loop did (read from the instance by jobs/replay.py), the paper book that trades the
recommendations beside the baseline, live skill against the walk-forward, and a scenario's
expectations (settings `replay.expect`) judged pass or fail.

Sessions are numbered from 1 (the first session after the build); 0 is the build itself. A
scenario's event is the first session on or after `replay.event`; a delay is counted in sessions
from it (0: caught on the event's own session).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from odyssey.portfolio import rebalance
from odyssey.settings import Expectation, GateSettings

# timeline kinds
INGEST_FAILED, QUARANTINED = "ingest failed", "quarantined"
CHECK_FAILED, DRIFTED, LIVE_ALARM = "check failed", "drifted", "live skill lost"
RUN_FAILED = "run failed"
# the data layer: a landing it rejects stops there (what an unlisted split must do)
DATA_LAYER = ("landed_", "raw_", "clean_")
RETRAIN, PROMOTION, DEMOTION = "retrain", "promotion", "demotion"


@dataclass(frozen=True)
class Advice:
    """One session's recommendations, as the book trades them."""

    as_of: str
    advisor: str
    target: dict[str, float]
    baseline: dict[str, float]


@dataclass(frozen=True)
class SessionRecord:
    index: int
    day: str
    ingest: str             # the ingest run's end (SUCCESS, FAILURE, ...), "none" when no run came
    quarantined: bool       # the session's files went to quarantine
    seconds: float          # from landing until the instance was quiet again
    runs: int               # runs created for this session
    advice: Advice | None   # the recommendations made for this session (None: none were)


PENDING = "pending"  # a journaled session whose files landed and whose end is not yet known


def session_line(record: SessionRecord, landed_at: float, files: list = ()) -> str:
    """One line of a replay's session journal (JSON): the record, when its files landed and which."""
    return json.dumps({**asdict(record), "landed_at": landed_at, "files": [str(f) for f in files]})


def read_journal(text: str) -> tuple[list[SessionRecord], list[float], list[str]]:
    """The sessions a journal holds, in order, with their landing times (a replay resumed in the
    same home reports them with its own). A session is journaled when it lands (ingest
    `PENDING`) and again when it ends; the last line of each counts. The files the last session
    landed come third, for a replay that stopped before it ended."""
    sessions: dict[int, tuple[SessionRecord, float, list[str]]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        data = json.loads(line)
        landed, files = float(data.pop("landed_at")), list(data.pop("files", []))
        advice = data.pop("advice")
        record = SessionRecord(**data, advice=Advice(**advice) if advice else None)
        sessions[record.index] = (record, landed, files)
    ordered = [sessions[i] for i in sorted(sessions)]
    return [r for r, _, _ in ordered], [t for _, t, _ in ordered], (ordered[-1][2] if ordered else [])


@dataclass(frozen=True)
class Event:
    """One entry of the timeline: what the loop did, in which session, about which ticker."""

    session: int
    day: str
    kind: str
    ticker: str | None
    detail: str


@dataclass(frozen=True)
class Verdict:
    kind: str
    tickers: tuple[str, ...]
    passed: bool
    detail: str
    delays: dict[str, int | None] = field(default_factory=dict)


@dataclass
class ReplayRecord:
    """Everything a replay saw: its sessions, the timeline, and the stored facts the expectations
    need (the newest session in the forecast log; each planted bad print's repair)."""

    scenario: str
    tickers: tuple[str, ...]
    sessions: list[SessionRecord]
    events: list[Event]
    event_day: str | None = None
    forecast_log_last: str | None = None
    repairs: dict[str, bool] = field(default_factory=dict)   # "TICKER DAY" -> repaired exactly
    served: dict[str, int] = field(default_factory=dict)  # ticker -> sessions a champion forecast it
    # "drift" / "live skill": ticker -> evaluations that judged it (not "not yet evaluable")
    judged: dict[str, dict[str, int]] = field(default_factory=dict)
    driver: str = "daemon"

    @property
    def event_session(self) -> int | None:
        """The first replayed session on or after the event; None when the event is not among
        the replayed sessions (before the first, or after the last)."""
        if self.event_day is None or not self.sessions or self.event_day < self.sessions[0].day:
            return None
        later = [s.index for s in self.sessions if s.day >= self.event_day]
        return later[0] if later else None

    def session_of(self, day: str) -> int | None:
        return next((s.index for s in self.sessions if s.day == day), None)

    def first(self, kind: str, ticker: str, after: int = 0) -> int | None:
        """The first session at or after `after` with an event of `kind` about `ticker`."""
        hits = [e.session for e in self.events if e.kind == kind and e.ticker == ticker and e.session >= after]
        return min(hits) if hits else None


def _tickers(expectation: Expectation, record: ReplayRecord) -> tuple[str, ...]:
    return tuple(expectation.tickers) if expectation.tickers is not None else record.tickers


def _detected(record: ReplayRecord, expectation: Expectation, kind: str, what: str) -> Verdict:
    """Each ticker has an event of `kind` within `within` sessions of the event (none before it)."""
    tickers, start = _tickers(expectation, record), record.event_session
    if start is None:
        return Verdict(expectation.kind, tickers, False, f"the event ({record.event_day}) is not among the replayed "
                       "sessions: nothing to judge")
    delays: dict[str, int | None] = {}
    for ticker in tickers:
        hit = record.first(kind, ticker, after=start)
        delays[ticker] = None if hit is None else hit - start
    early = sorted({e.ticker for e in record.events if e.kind == kind and e.ticker in tickers and e.session < start})
    within = expectation.within if expectation.within is not None else len(record.sessions)
    late = [t for t, d in delays.items() if d is None or d > within]
    shown = ", ".join(f"{t} {'never' if d is None else f'+{d}'}" for t, d in delays.items())
    ok = not late and not early
    detail = f"{what} within {within} sessions of session {start} ({record.event_day}): {shown}"
    if early:
        detail += f"; before the event already for {early}"
    return Verdict(expectation.kind, tickers, ok, detail, delays)


def _absent(record: ReplayRecord, expectation: Expectation, kind: str, what: str, judged_by: str | None) -> Verdict:
    """No event of `kind` about the tickers (before the event, with before_event); and each of
    them was judged at least once (`judged_by`): a monitor that never ran found nothing, and
    that is not a pass."""
    tickers = _tickers(expectation, record)
    end = record.event_session if expectation.before_event and record.event_session else None
    hits = [e for e in record.events if e.kind == kind and e.ticker in tickers and (end is None or e.session < end)]
    span = f"before session {end}" if end else f"in {len(record.sessions)} sessions"
    unjudged = [t for t in tickers if judged_by and not record.judged.get(judged_by, {}).get(t)]
    if not hits and unjudged:
        return Verdict(expectation.kind, tickers, False, f"no {what} {span}, but not yet evaluable: no evaluation "
                       f"of {judged_by} judged {', '.join(unjudged)}")
    if not hits:
        counts = ", ".join(f"{t} {record.judged.get(judged_by, {}).get(t, 0)}" for t in tickers) if judged_by else ""
        return Verdict(expectation.kind, tickers, True, f"no {what} {span}"
                       + (f" (evaluations that judged each: {counts})" if counts else ""))
    shown = "; ".join(f"{e.ticker} session {e.session} ({e.day})" for e in hits[:6])
    return Verdict(expectation.kind, tickers, False, f"{len(hits)} {what} {span}: {shown}")


# expectation kind -> (timeline kind, how the report says it)
DETECTED = {"live_skill_alarm": (LIVE_ALARM, "live skill lost"), "demoted": (DEMOTION, "demoted (no model with skill)"),
            "drift": (DRIFTED, "drift found"), "retrained": (RETRAIN, "retrained")}
ABSENT = {"no_live_skill_alarm": (LIVE_ALARM, "live-skill alarms", "live skill"),
          "no_drift": (DRIFTED, "drift findings", "drift")}


def judge(expectation: Expectation, record: ReplayRecord) -> Verdict:
    """One expectation against what the replay saw."""
    kind, start = expectation.kind, record.event_session
    if kind == "all_ingested":
        bad = [s for s in record.sessions if s.ingest != "SUCCESS" or s.quarantined]
        return Verdict(kind, record.tickers, not bad and bool(record.sessions),
                       f"{len(record.sessions) - len(bad)} of {len(record.sessions)} sessions ingested"
                       + (f"; not: {', '.join(f'{s.day} ({s.ingest})' for s in bad[:6])}" if bad else ""))
    if kind == "rejected_from_event":
        if start is None:
            return Verdict(kind, record.tickers, False, f"the event ({record.event_day}) was not replayed")
        before = [s for s in record.sessions if s.index < start and (s.ingest != "SUCCESS" or s.quarantined)]
        after = [s for s in record.sessions if s.index >= start]
        stopped = {e.session for e in record.events if e.kind == INGEST_FAILED and e.detail.startswith(DATA_LAYER)}
        # rejected at the data layer: the sensor quarantined the files unread by a run, or the
        # run failed on a data-layer check
        let_in = [s for s in after if not s.quarantined or (s.ingest != "none" and s.index not in stopped)]
        leaked = record.forecast_log_last is not None and record.forecast_log_last >= record.event_day
        ok = not before and not let_in and not leaked and bool(after)
        return Verdict(kind, record.tickers, ok,
                       f"{len(after) - len(let_in)} of {len(after)} sessions from {record.event_day} on rejected and "
                       f"quarantined; {len(before)} earlier ones not ingested; the forecast log ends "
                       f"{record.forecast_log_last} ({'after' if leaked else 'before'} the event)")
    if kind == "bad_print_repaired":
        wanted = {k: v for k, v in record.repairs.items()
                  if expectation.tickers is None or k.split()[0] in expectation.tickers}
        shown = ", ".join(f"{k}: {'repaired' if v else 'NOT repaired'}" for k, v in wanted.items()) or "no bad print"
        return Verdict(kind, tuple(k.split()[0] for k in wanted), bool(wanted) and all(wanted.values()), shown)
    if kind in DETECTED:
        return _detected(record, expectation, *DETECTED[kind])
    if kind in ABSENT:
        return _absent(record, expectation, *ABSENT[kind])
    if kind == "only_retrained":
        others = Expectation(kind=kind, tickers=tuple(t for t in record.tickers if t not in _tickers(expectation, record)),
                             before_event=expectation.before_event)
        verdict = _absent(record, others, RETRAIN, "retrains of other tickers", None)
        return Verdict(kind, _tickers(expectation, record), verdict.passed, verdict.detail)
    if kind == "retrained_at_most":
        tickers = _tickers(expectation, record)
        counts = {t: sum(e.kind == RETRAIN and e.ticker == t for e in record.events) for t in tickers}
        shown = ", ".join(f"{t} {n}" for t, n in counts.items())
        return Verdict(kind, tickers, all(n <= expectation.count for n in counts.values()),
                       f"retrains per ticker: {shown} (at most {expectation.count} each)")
    if kind == "none_deployed":
        if not any(s.ingest == "SUCCESS" for s in record.sessions):
            return Verdict(kind, _tickers(expectation, record), False, "not yet evaluable: no session was ingested, "
                           "so no forecasts were made")
        deployed = {t: n for t, n in record.served.items() if n and t in _tickers(expectation, record)}
        shown = ", ".join(f"{t} in {n} sessions" for t, n in deployed.items())
        return Verdict(kind, _tickers(expectation, record), not deployed,
                       "no ticker had a champion in any session" if not deployed else f"champions served: {shown}")
    raise ValueError(f"unknown expectation kind {kind!r}")


# --- the paper book -------------------------------------------------------------------------
@dataclass(frozen=True)
class BookDay:
    day: str            # the session whose close the book traded at
    advisor: str
    book_return: float  # net, from this close to the next
    baseline_return: float
    book_traded: float
    baseline_traded: float
    book_cost: float
    baseline_cost: float


def paper_book(sessions: Sequence[SessionRecord], simple_returns: pd.DataFrame, cost_rate: float,
               tickers: Sequence[str]) -> list[BookDay]:
    """Trade each session's recommended targets (and, beside them, the baseline's) at its close
    with `cost_rate` on the traded value, and earn the next session's simple returns
    (`simple_returns`: date x ticker). A session without advice keeps what is held (it drifts).
    Both books start in cash at the first advised session, and are marked up to the first
    session whose close is not in the returns (a rejected landing)."""
    tickers = list(tickers)
    frame = simple_returns.reindex(columns=tickers)
    frame.index = pd.DatetimeIndex(frame.index)
    out: list[BookDay] = []
    book = base = None
    for record, following in zip(sessions, sessions[1:]):
        if record.advice is None and book is None:
            continue
        if pd.Timestamp(following.day) not in frame.index:
            break  # the next session's close is not known (not ingested): the book is marked no further
        nxt = np.nan_to_num(frame.loc[pd.Timestamp(following.day)].to_numpy(float))
        if book is None:
            book, base = np.zeros(len(tickers)), np.zeros(len(tickers))
        if record.advice is not None:
            target = np.array([record.advice.target.get(t, 0.0) for t in tickers])
            baseline = np.array([record.advice.baseline.get(t, 0.0) for t in tickers])
            advisor = record.advice.advisor
        else:
            target, baseline, advisor = book.copy(), base.copy(), "none (held)"
        r, cost, traded, book = rebalance(book, target, nxt, cost_rate)
        rb, cost_b, traded_b, base = rebalance(base, baseline, nxt, cost_rate)
        out.append(BookDay(record.day, advisor, r, rb, traded, traded_b, cost, cost_b))
    return out


def book_summary(days: Sequence[BookDay]) -> dict[str, float]:
    """Totals over the replay: compounded returns, turnover (traded value per day, summed) and
    costs of the book and of the baseline, and the book's excess."""
    if not days:
        return {"days": 0}
    book = np.array([d.book_return for d in days])
    base = np.array([d.baseline_return for d in days])
    return {"days": len(days),
            "book_return": float(np.prod(1 + book) - 1), "baseline_return": float(np.prod(1 + base) - 1),
            "excess_return": float(np.prod(1 + book) - np.prod(1 + base)),
            "book_turnover": float(sum(d.book_traded for d in days)),
            "baseline_turnover": float(sum(d.baseline_traded for d in days)),
            "book_costs": float(sum(d.book_cost for d in days)),
            "baseline_costs": float(sum(d.baseline_cost for d in days)),
            "days_advised_by": {a: sum(d.advisor == a for d in days) for a in sorted({d.advisor for d in days})}}


# --- live skill against the walk-forward ----------------------------------------------------------
def live_ic(log: pd.DataFrame, log_returns: pd.DataFrame, horizon: int, after: str,
            min_days: int = 10) -> pd.DataFrame:
    """date, ticker, live_ic, n: per ticker, the rank correlation of the forecasts logged after
    `after` with the realised `horizon`-session forward log return, over every such forecast
    realised by that date (expanding), from `min_days` pairs on."""
    ret = log_returns.pivot_table(index="date", columns="ticker", values="log_return").sort_index()
    forward = ret[::-1].rolling(horizon, min_periods=horizon).sum()[::-1].shift(-1)
    rows = []
    for ticker, group in log[log["date"] > pd.Timestamp(after)].groupby("ticker"):
        if ticker not in forward:
            continue
        pairs = group.drop_duplicates("date", keep="last").set_index("date")["prediction"].to_frame()
        pairs["realised"] = forward[ticker].reindex(pairs.index)
        pairs = pairs.dropna().sort_index()
        for n in range(min_days, len(pairs) + 1):
            window = pairs.iloc[:n]
            ic = window["prediction"].rank().corr(window["realised"].rank())
            rows.append({"date": window.index[-1], "ticker": ticker, "live_ic": ic, "n": n})
    return pd.DataFrame(rows, columns=["date", "ticker", "live_ic", "n"])


def as_dict(record: ReplayRecord, verdicts: Sequence[Verdict], book: Sequence[BookDay]) -> dict:
    return {"scenario": record.scenario, "tickers": list(record.tickers), "event_day": record.event_day,
            "event_session": record.event_session, "passed": all(v.passed for v in verdicts),
            "verdicts": [asdict(v) for v in verdicts], "book": book_summary(book),
            "sessions": [asdict(s) for s in record.sessions], "events": [asdict(e) for e in record.events],
            "forecast_log_last": record.forecast_log_last, "repairs": record.repairs, "served": record.served}


# --- the report -----------------------------------------------------------------------------------
def live_skill_chart(live: pd.DataFrame, walkforward_ic: dict[str, float], events: Sequence[Event],
                     sessions: Sequence[SessionRecord]) -> bytes:
    """Per ticker, the live IC (expanding) against its walk-forward IC, with the sessions where
    live skill was lost, drift was found or the ticker was retrained marked."""
    from odyssey.report import _figure, _png

    fig, ax = _figure(3.6)
    colours = {}
    for ticker, group in live.groupby("ticker"):
        line, = ax.plot(pd.to_datetime(group["date"]), group["live_ic"], linewidth=1.3, label=f"{ticker} live")
        colours[ticker] = line.get_color()
        if ticker in walkforward_ic:
            ax.axhline(walkforward_ic[ticker], color=line.get_color(), linestyle="--", linewidth=0.8)
    marks = {LIVE_ALARM: "v", DRIFTED: "s", RETRAIN: "o", DEMOTION: "x"}
    for event in events:
        if event.kind in marks and event.ticker in colours:
            ax.scatter([pd.Timestamp(event.day)], [0.0], marker=marks[event.kind], color=colours[event.ticker],
                       s=36, zorder=3)
    ax.axhline(0.0, color="grey", linewidth=0.6)
    ax.set_title("Live IC (expanding, solid) against the walk-forward IC (dashed); on the zero line: "
                 "v live skill lost, s drift, o retrain, x demoted", fontsize=8)
    ax.legend(fontsize=7, ncol=3)
    fig.autofmt_xdate()
    return _png(fig)


def book_chart(days: Sequence[BookDay]) -> bytes:
    from odyssey.report import _figure, _png

    fig, ax = _figure(3.0)
    dates = pd.to_datetime([d.day for d in days])
    ax.plot(dates, np.cumprod([1 + d.book_return for d in days]), label="paper book (the recommendations)",
            linewidth=1.6)
    ax.plot(dates, np.cumprod([1 + d.baseline_return for d in days]), label="baseline", linewidth=1.0)
    ax.set_title("Paper book against the baseline, after costs", fontsize=9)
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    return _png(fig)


def runs_of_events(events: Sequence[Event]) -> list[tuple[Event, Event]]:
    """The timeline folded for reading: an event of one kind about one ticker repeated session
    after session (a rejected landing, a failing check) is one row, first and last."""
    by_key: dict[tuple, list[Event]] = {}
    for event in events:
        # a failure is about its check (the detail's first part); a drift or an alarm, whatever its figures
        which = event.detail.split(":")[0] if event.kind in (CHECK_FAILED, INGEST_FAILED, RUN_FAILED) else ""
        by_key.setdefault((event.kind, event.ticker, which), []).append(event)
    rows = []
    for group in by_key.values():
        start = previous = group[0]
        for event in group[1:]:
            if event.session != previous.session + 1:
                rows.append((start, previous))
                start = event
            previous = event
        rows.append((start, previous))
    return sorted(rows, key=lambda r: (r[0].session, r[0].kind, r[0].ticker or ""))


@dataclass(frozen=True)
class DetectionOdds:
    """What the live-skill monitor of a ticker's champion at the event promises: its walk-forward
    next-session skill and, in the simulation of the test alone at that skill, the share of dead
    signals and of reversed ones it finds within `within` sessions (and healthy champions it
    alarms on per window)."""

    ticker: str
    skill: float
    reference_days: int
    within: int
    detection_rate: float  # a dead signal
    false_alarm_rate: float
    windows: int
    reversal_rate: float = float("nan")  # a reversed signal (not in reports written before it was measured)


def detection_odds(ticker: str, walkforward: pd.DataFrame, clean: pd.DataFrame, within: int, gates: GateSettings,
                   windows: int = 200) -> DetectionOdds:
    """The odds of a ticker's champion fitted on these walk-forward forecasts (date, ticker,
    prediction), measured as bench/replay.py does (`simulate_power`) at its own skill and length."""
    from odyssey.live_skill import fit_on_walkforward, simulate_power

    monitor = fit_on_walkforward(walkforward, clean, false_alarm=gates.live_false_alarm, window=gates.live_window,
                                 vol_window=gates.live_vol_window)
    power = simulate_power(monitor.mean, windows, reference_days=monitor.reference_days, window=gates.live_window,
                           within=within, false_alarm=gates.live_false_alarm)
    return DetectionOdds(ticker, monitor.mean, monitor.reference_days, within, power.detection_rate,
                         max(power.false_alarm_rate, power.later_false_alarm_rate), windows,
                         power.reversal_detection_rate)


def render_markdown(record: ReplayRecord, verdicts: Sequence[Verdict], book: Sequence[BookDay],
                    live: pd.DataFrame, walkforward_ic: dict[str, float], description: str,
                    charts: Sequence[str], odds: Sequence[DetectionOdds] = ()) -> str:
    summary = book_summary(book)
    seconds = [s.seconds for s in record.sessions]
    lines = [f"# Replay: {record.scenario}", ""]
    if description:
        lines += [description.strip(), ""]
    first, last = (record.sessions[0].day, record.sessions[-1].day) if record.sessions else ("-", "-")
    how = "through dagster-daemon" if record.driver == "daemon" else "the loop's sensors ticked in process"
    lines += [f"{len(record.sessions)} sessions, {first} .. {last}, {how}; "
              f"{sum(s.runs for s in record.sessions)} runs; "
              f"{np.median(seconds) if seconds else 0:.1f} s per session (median), {sum(seconds):.0f} s in all.", ""]
    if record.event_day:
        lines += [f"Event: {record.event_day} (session {record.event_session})", ""]
    if verdicts:
        lines += ["## Expectations", "", "| | expectation | tickers | what happened |", "|---|---|---|---|"]
        lines += [f"| {'PASS' if v.passed else 'FAIL'} | {v.kind} | {', '.join(v.tickers)} | {v.detail} |"
                  for v in verdicts]
        lines += ["", f"**{'All expectations passed.' if all(v.passed for v in verdicts) else 'An expectation FAILED.'}**",
                  ""]
    if odds:
        lines += ["What the live-skill monitors promised (a simulation of the test alone at each champion's own "
                  "skill; a detection is a draw, not a certainty):", "",
                  "| ticker | walk-forward next-session skill | found within | a dead signal | a reversed one | "
                  "healthy champions alarmed per window |", "|---|---|---|---|---|---|"]
        lines += [f"| {o.ticker} | {o.skill:+.3f} ({o.reference_days} days) | {o.within} sessions | "
                  f"{o.detection_rate:.0%} of {o.windows} | "
                  f"{'not measured' if np.isnan(o.reversal_rate) else f'{o.reversal_rate:.0%}'} | "
                  f"{o.false_alarm_rate:.1%} |" for o in odds]
        lines.append("")
    lines += ["## Live skill against the walk-forward", "", "| ticker | walk-forward IC | live IC (last) | live days |"
              " sessions served by a champion |", "|---|---|---|---|---|"]
    for ticker in record.tickers:
        rows = live[live["ticker"] == ticker]
        last_ic = f"{rows['live_ic'].iloc[-1]:+.3f}" if len(rows) else "not yet evaluable"
        n = int(rows["n"].iloc[-1]) if len(rows) else 0
        wf = f"{walkforward_ic[ticker]:+.3f}" if ticker in walkforward_ic else "-"
        lines.append(f"| {ticker} | {wf} | {last_ic} | {n} | {record.served.get(ticker, 0)} |")
    lines += ["", "## Timeline", ""]
    if record.events:
        lines += ["| sessions | days | what | ticker | detail (of the first) |", "|---|---|---|---|---|"]
        for first, last in runs_of_events(record.events):
            sessions_, days = (f"{first.session}", first.day) if first is last else \
                (f"{first.session}–{last.session}", f"{first.day} .. {last.day}")
            lines.append(f"| {sessions_} | {days} | {first.kind} | {first.ticker or ''} | {first.detail[:300]} |")
    else:
        lines.append("Nothing failed, drifted, retrained, was promoted or demoted.")
    lines += ["", "## Paper book", ""]
    if summary.get("days"):
        lines += ["| | return | turnover (sum of daily traded value) | costs |", "|---|---|---|---|",
                  f"| paper book | {summary['book_return']:+.2%} | {summary['book_turnover']:.2f} | "
                  f"{summary['book_costs']:.4%} |",
                  f"| baseline | {summary['baseline_return']:+.2%} | {summary['baseline_turnover']:.2f} | "
                  f"{summary['baseline_costs']:.4%} |", "",
                  f"Excess over the baseline: {summary['excess_return']:+.2%} over {summary['days']} sessions. "
                  f"Advised by: {', '.join(f'{a} ({n})' for a, n in summary['days_advised_by'].items())}.", ""]
    else:
        lines += ["No session was advised and realised: nothing was traded.", ""]
    lines += [f"![{name}]({name})" for name in charts]
    return "\n".join(lines) + "\n"
