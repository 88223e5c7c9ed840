"""What the IVR did for the centre, from the hourly rollup the journal keeps at call end.

Every figure is a GROUP BY over `call_rollup` (at most one row per local hour x language x topic x
outcome), filtered on its primary-key columns, so a year of a busy centre (~2.2 million calls) is a
few hundred thousand rows to add up. Calls without an outcome (in progress, or cut off by a crash)
are counted apart from the `calls` table through a partial index.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

import attrs

from ivr.journal.db import Database, Tx
from ivr.journal.incidents import Incident, incident_from_row
from ivr.journal.journal import OUTCOMES
from ivr.journal.timeutil import zone

NO_TOPIC = "(none)"
NO_LANGUAGE = "none"  # calls that ended before a language was chosen (as /metrics labels them)


@attrs.frozen
class StatsQuery:
    start: date | None = None  # first local day, inclusive
    end: date | None = None  # last local day, inclusive
    language: str | None = None
    topic: str | None = None
    top_topics: int = 10

    def __attrs_post_init__(self) -> None:
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"--from {self.start} is after --to {self.end}")


@attrs.frozen
class DayFigures:
    day: str
    calls: int
    self_served: int
    abandoned: int
    outage_ids: tuple[int, ...] = ()


@attrs.frozen
class HourFigures:
    hour: int
    calls: int
    self_served: int
    abandoned: int


@attrs.frozen
class Share:
    name: str
    calls: int
    self_served: int = 0


@attrs.frozen
class Report:
    query: StatsQuery
    timezone: str
    first_day: str | None
    last_day: str | None
    calls: int
    self_served: int
    abandoned: int
    unfinished: int  # started, no outcome recorded (in progress, or the engine stopped mid-call)
    days: tuple[DayFigures, ...]
    hours: tuple[HourFigures, ...]  # all 24 hours of the day
    topics: tuple[Share, ...]  # most calls first, at most query.top_topics
    languages: tuple[Share, ...]
    outcomes: tuple[Share, ...]  # every outcome, in OUTCOMES order
    outages: tuple[Incident, ...]

    @property
    def self_service_share(self) -> float:
        return self.self_served / self.calls if self.calls else 0.0


def _conditions(query: StatsQuery, *, topic: bool = True) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.start:
        clauses.append("day >= ?")
        params.append(query.start.isoformat())
    if query.end:
        clauses.append("day <= ?")
        params.append(query.end.isoformat())
    if query.language:
        clauses.append("language = ?")
        params.append("" if query.language == NO_LANGUAGE else query.language)
    if topic and query.topic:
        clauses.append("topic = ?")
        params.append("" if query.topic == NO_TOPIC else query.topic)
    return clauses, params


def _filters(query: StatsQuery) -> tuple[str, list[Any]]:
    clauses, params = _conditions(query)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


_SUMS = (
    "SUM(calls), SUM(CASE WHEN outcome = 'self_served' THEN calls ELSE 0 END), "
    "SUM(CASE WHEN outcome = 'abandoned' THEN calls ELSE 0 END)"
)


def compute(tx: Tx, query: StatsQuery, timezone: str) -> Report:
    """Every figure of the report, read in one go (runs on the reader thread or in a script)."""
    tz = zone(timezone)
    where, params = _filters(query)
    days = [
        (str(d), int(c), int(s), int(a))
        for d, c, s, a in tx.all(
            f"SELECT day, {_SUMS} FROM call_rollup{where} GROUP BY day ORDER BY day", params
        )
    ]
    by_hour = {
        int(h): (int(c), int(s), int(a))
        for h, c, s, a in tx.all(f"SELECT hour, {_SUMS} FROM call_rollup{where} GROUP BY hour", params)
    }
    topics = sorted(
        (
            Share(str(t) or NO_TOPIC, int(c), int(s))
            for t, c, s, _ in tx.all(f"SELECT topic, {_SUMS} FROM call_rollup{where} GROUP BY topic", params)
        ),
        key=lambda share: (-share.calls, share.name),
    )
    languages = sorted(
        (
            Share(str(lang) or NO_LANGUAGE, int(c), int(s))
            for lang, c, s, _ in tx.all(
                f"SELECT language, {_SUMS} FROM call_rollup{where} GROUP BY language", params
            )
        ),
        key=lambda share: (-share.calls, share.name),
    )
    by_outcome = {
        str(o): int(c)
        for o, c in tx.all(f"SELECT outcome, SUM(calls) FROM call_rollup{where} GROUP BY outcome", params)
    }
    unfinished = 0 if query.topic else _count_unfinished(tx, query)

    first = query.start.isoformat() if query.start else (days[0][0] if days else None)
    last = query.end.isoformat() if query.end else (days[-1][0] if days else None)
    outages: list[Incident] = []
    if first and last:
        window_start = datetime.combine(date.fromisoformat(first), time(), tz).timestamp()
        window_end = datetime.combine(date.fromisoformat(last) + timedelta(days=1), time(), tz).timestamp()
        outages = [
            incident
            for incident in _incidents_between(tx, window_start, window_end)
            if not query.topic or incident.affects(query.topic)
        ]
    marks = _outage_days(outages, tz)
    return Report(
        query=query,
        timezone=timezone,
        first_day=first,
        last_day=last,
        calls=sum(d[1] for d in days),
        self_served=sum(d[2] for d in days),
        abandoned=sum(d[3] for d in days),
        unfinished=unfinished,
        days=tuple(DayFigures(d, c, s, a, tuple(marks.get(d, ()))) for d, c, s, a in days),
        hours=tuple(HourFigures(h, *by_hour.get(h, (0, 0, 0))) for h in range(24)),
        topics=tuple(topics[: query.top_topics]),
        languages=tuple(languages),
        outcomes=tuple(Share(o, by_outcome.get(o, 0)) for o in OUTCOMES),
        outages=tuple(outages),
    )


def _count_unfinished(tx: Tx, query: StatsQuery) -> int:
    # An unfinished call has no topic yet: only the date and language filters apply.
    clauses, params = _conditions(query, topic=False)
    clauses.insert(0, "outcome IS NULL")
    row = tx.one("SELECT COUNT(*) FROM calls WHERE " + " AND ".join(clauses), params)
    return int(row[0]) if row else 0


def _incidents_between(tx: Tx, start: float, end: float) -> list[Incident]:
    rows = tx.all(
        "SELECT id, text_kk, text_ru, topics, starts_at, expires_at, ended_at, created_at FROM incidents "
        "WHERE starts_at < ? AND expires_at > ? AND (ended_at IS NULL OR ended_at > ?) ORDER BY starts_at, id",
        (end, start, start),
    )
    # An incident ended before it started was never announced.
    return [incident_from_row(r) for r in rows if r[6] is None or r[6] > r[4]]


def _outage_days(outages: Sequence[Incident], tz: Any) -> dict[str, list[int]]:
    marks: dict[str, list[int]] = {}
    for incident in outages:
        day = incident.starts_at.astimezone(tz).date()
        last = (incident.until - timedelta(microseconds=1)).astimezone(tz).date()
        while day <= last:
            marks.setdefault(day.isoformat(), []).append(incident.id)
            day += timedelta(days=1)
    return marks


async def report(db: Database, query: StatsQuery, timezone: str) -> Report:
    return await db.read(lambda tx: compute(tx, query, timezone))


def rebuild_rollup(tx: Tx) -> int:
    """Recount the hourly rollup from `calls` (after a bulk load, or to repair); returns its rows."""
    tx.execute("DELETE FROM call_rollup")
    tx.execute(
        "INSERT INTO call_rollup (day, hour, language, topic, outcome, calls) "
        "SELECT day, hour, language, COALESCE(topic, ''), outcome, COUNT(*) FROM calls "
        "WHERE outcome IS NOT NULL GROUP BY day, hour, language, COALESCE(topic, ''), outcome"
    )
    row = tx.one("SELECT COUNT(*) FROM call_rollup")
    return int(row[0]) if row else 0


# -- terminal ------------------------------------------------------------------------------


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f}%" if whole else "    -"


def render_text(report: Report) -> str:
    q = report.query
    if not report.calls:
        wanted = [f"from {q.start}" if q.start else "", f"to {q.end}" if q.end else ""]
        wanted += [
            f"in language {q.language}" if q.language else "",
            f"on topic {q.topic}" if q.topic else "",
        ]
        return f"No calls in the journal{''.join(' ' + w for w in wanted if w)}.\n"
    lines = [
        f"Calls {report.first_day or '-'} .. {report.last_day or '-'} ({report.timezone}); "
        f"language: {q.language or 'all'}; topic: {q.topic or 'all'}",
        f"  calls {report.calls:,}   self-served {report.self_served:,} ({_pct(report.self_served, report.calls).strip()})"
        f"   abandoned {report.abandoned:,} ({_pct(report.abandoned, report.calls).strip()})"
        + (f"   no outcome recorded {report.unfinished:,}" if report.unfinished else ""),
        "",
        "Outcomes",
    ]
    lines += [f"  {s.name:<12} {s.calls:>10,}  {_pct(s.calls, report.calls)}" for s in report.outcomes]
    lines += ["", "Languages"]
    lines += [
        f"  {s.name:<12} {s.calls:>10,}  {_pct(s.calls, report.calls)}  self-served {_pct(s.self_served, s.calls)}"
        for s in report.languages
    ]
    lines += ["", f"Top topics (of {report.calls:,} call{'' if report.calls == 1 else 's'})"]
    lines += [
        f"  {s.name:<24} {s.calls:>10,}  {_pct(s.calls, report.calls)}  self-served {_pct(s.self_served, s.calls)}"
        for s in report.topics
    ]
    lines += ["", "Per hour of day   calls   self-served  abandoned"]
    lines += [
        f"  {h.hour:02d}:00 {h.calls:>14,}   {_pct(h.self_served, h.calls)}      {h.abandoned:>8,}"
        for h in report.hours
    ]
    lines += ["", "Per day           calls   self-served  abandoned  outage"]
    lines += [
        f"  {d.day} {d.calls:>11,}   {_pct(d.self_served, d.calls)}      {d.abandoned:>8,}  "
        + " ".join(f"#{i}" for i in d.outage_ids)
        for d in report.days
    ]
    lines += ["", "Outages (incidents announced)"]
    if not report.outages:
        lines.append("  none")
    for incident in report.outages:
        lines.append(
            f"  #{incident.id} {local_time(incident.starts_at, report.timezone)} .. {local_time(incident.until, report.timezone)}"
            f"  topics: {', '.join(incident.topics) or 'all'}  {incident.text_ru}"
        )
    return "\n".join(line.rstrip() for line in lines) + "\n"


def local_time(moment: datetime, timezone: str) -> str:
    return moment.astimezone(zone(timezone)).strftime("%Y-%m-%d %H:%M")
