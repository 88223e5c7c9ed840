"""Statistics on a journal whose figures are known by hand."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import attrs
import pytest

from ivr.config import Settings
from ivr.journal import open_state
from ivr.journal.chart import render_html
from ivr.journal.cli import main as cli
from ivr.journal.stats import StatsQuery, compute, rebuild_rollup, render_text, report
from tests.pg import backend_fixture  # noqa: F401  (the `backend` fixture: SQLite and PostgreSQL)

ALMATY = timezone(timedelta(hours=5))  # Asia/Almaty has been UTC+5 all year since 2024-03-01

# (call id, local start, language, topic, outcome); outcome None: the call never ended.
CALLS = [
    ("a1", datetime(2025, 3, 3, 9, 10, tzinfo=ALMATY), "kk", "booking", "self_served"),
    ("a2", datetime(2025, 3, 3, 9, 40, tzinfo=ALMATY), "kk", "booking", "queued"),
    ("a3", datetime(2025, 3, 3, 9, 50, tzinfo=ALMATY), "ru", "egov", "self_served"),
    ("a4", datetime(2025, 3, 3, 14, 5, tzinfo=ALMATY), "ru", None, "abandoned"),
    ("b1", datetime(2025, 3, 4, 10, 0, tzinfo=ALMATY), "kk", "egov", "self_served"),
    ("b2", datetime(2025, 3, 4, 10, 30, tzinfo=ALMATY), "ru", "booking", "abandoned"),
    ("b3", datetime(2025, 3, 4, 23, 30, tzinfo=ALMATY), "ru", "booking", "callback"),
    ("b4", datetime(2025, 3, 4, 11, 0, tzinfo=ALMATY), "kk", None, None),
    ("c1", datetime(2025, 3, 5, 0, 10, tzinfo=ALMATY), "kk", "egov", "transferred"),
]


@pytest.fixture
async def known_state(backend):
    state = await open_state(Settings(**backend, timezone="Asia/Almaty"))
    for call_id, start, language, topic, outcome in CALLS:
        state.journal.call_started(call_id, start, "+77010000000", None, "1414")
        state.journal.event(call_id, "language", "welcome", {"language": language}, at=start)
        if outcome:
            state.journal.call_ended(call_id, outcome, topic, at=start + timedelta(minutes=3))
    outage = await state.incidents.add(
        "Жазылу істемейді", "Запись не работает", ["booking"],
        datetime(2025, 3, 4, 9, 0, tzinfo=ALMATY), datetime(2025, 3, 4, 12, 0, tzinfo=ALMATY),
    )  # fmt: skip
    await state.journal.flush()
    yield state, outage
    await state.close()


async def test_full_report_gives_the_known_figures(known_state):
    state, outage = known_state
    figures = await report(state.db, StatsQuery(), "Asia/Almaty")
    assert (figures.calls, figures.self_served, figures.abandoned, figures.unfinished) == (8, 3, 2, 1)
    assert figures.self_service_share == 3 / 8
    assert (figures.first_day, figures.last_day) == ("2025-03-03", "2025-03-05")
    assert [(d.day, d.calls, d.self_served, d.abandoned, d.outage_ids) for d in figures.days] == [
        ("2025-03-03", 4, 2, 1, ()),
        ("2025-03-04", 3, 1, 1, (outage,)),
        ("2025-03-05", 1, 0, 0, ()),
    ]
    busy_hours = {h.hour: (h.calls, h.self_served, h.abandoned) for h in figures.hours if h.calls}
    assert busy_hours == {0: (1, 0, 0), 9: (3, 2, 0), 10: (2, 1, 1), 14: (1, 0, 1), 23: (1, 0, 0)}
    assert len(figures.hours) == 24
    assert [(t.name, t.calls, t.self_served) for t in figures.topics] == [
        ("booking", 4, 1),
        ("egov", 3, 2),
        ("(none)", 1, 0),
    ]
    assert [(s.name, s.calls, s.self_served) for s in figures.languages] == [("kk", 4, 2), ("ru", 4, 1)]
    assert {s.name: s.calls for s in figures.outcomes} == {
        "self_served": 3, "queued": 1, "abandoned": 2, "callback": 1, "failed": 0, "transferred": 1,
        "no_operator": 0, "after_hours": 0, "handed_back": 0,
    }  # fmt: skip
    assert [i.id for i in figures.outages] == [outage]


async def test_filters_by_language_topic_and_dates(known_state):
    state, outage = known_state
    russian = await report(state.db, StatsQuery(language="ru"), "Asia/Almaty")
    assert (russian.calls, russian.self_served, russian.abandoned, russian.unfinished) == (4, 1, 2, 0)
    booking = await report(state.db, StatsQuery(topic="booking"), "Asia/Almaty")
    assert (booking.calls, booking.self_served, booking.abandoned) == (4, 1, 1)
    assert [i.id for i in booking.outages] == [outage]
    egov = await report(state.db, StatsQuery(topic="egov"), "Asia/Almaty")
    assert (egov.calls, egov.outages) == (3, ())
    no_topic = await report(state.db, StatsQuery(topic="(none)"), "Asia/Almaty")
    assert no_topic.calls == 1
    one_day = await report(state.db, StatsQuery(start=date(2025, 3, 4), end=date(2025, 3, 4)), "Asia/Almaty")
    assert (one_day.calls, one_day.unfinished, [d.day for d in one_day.days]) == (3, 1, ["2025-03-04"])
    first_day = await report(state.db, StatsQuery(end=date(2025, 3, 3)), "Asia/Almaty")
    assert (first_day.calls, first_day.outages) == (4, ())
    with pytest.raises(ValueError, match="is after"):
        StatsQuery(start=date(2025, 3, 5), end=date(2025, 3, 4))


async def test_rebuilt_rollup_gives_the_same_report(known_state):
    state, _ = known_state
    before = await report(state.db, StatsQuery(), "Asia/Almaty")
    rows = await state.db.write(rebuild_rollup)
    after = await state.db.read(lambda tx: compute(tx, StatsQuery(), "Asia/Almaty"))
    assert rows == 8  # every ended call here has its own hour x language x topic x outcome
    assert attrs.asdict(after) == attrs.asdict(before)


async def test_text_and_chart_show_the_figures(known_state):
    state, outage = known_state
    figures = await report(state.db, StatsQuery(), "Asia/Almaty")
    text = render_text(figures)
    assert "calls 8   self-served 3 (37.5%)   abandoned 2 (25.0%)   no outcome recorded 1" in text
    assert f"  2025-03-04           3    33.3%             1  #{outage}" in text
    assert "  09:00              3    66.7%             0" in text
    assert f"  #{outage} 2025-03-04 09:00 .. 2025-03-04 12:00  topics: booking  Запись не работает" in text
    page = render_html(figures)
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 6
    assert "<script" not in page and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert f"outage #{outage}: Запись не работает" in page
    assert "2025-03-04: 3 calls, self-served 33.3%" in page


def test_stats_command_prints_and_draws(known_state, backend, tmp_path, capsys):
    config = tmp_path / "ivr.toml"
    config.write_text(f'state_dir = "{backend["state_dir"]}"\ndatabase_url = "{backend["database_url"]}"\n')
    chart = tmp_path / "stats.html"
    code = cli(["-c", str(config), "stats", "--from", "2025-03-03", "--to", "2025-03-04", "--lang", "kk",
                "--chart", str(chart)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "Calls 2025-03-03 .. 2025-03-04 (Asia/Almaty); language: kk; topic: all" in out
    assert "calls 3   self-served 2 (66.7%)" in out
    assert chart.read_text(encoding="utf-8").count("<svg") == 6
    assert cli(["-c", str(config), "stats", "--chart", str(tmp_path / "x.png")]) == 2
    assert "only .html" in capsys.readouterr().err
    assert cli(["-c", str(config), "stats", "--from", "March"]) == 1
    assert "is not a date" in capsys.readouterr().err
