"""`ivr incident ...`, `ivr callbacks ...` and `ivr stats ...`: the admin side of the shared state.

Each command opens the same database the engines use (settings: state_dir or database_url), so an
incident added here reaches every engine's new calls within the incident cache's lifetime.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ivr.clock import SYSTEM_CLOCK
from ivr.config import ConfigError, Settings, load_settings
from ivr.journal.callbacks import STATES, Callback
from ivr.journal.db import StateError
from ivr.journal.incidents import Incident
from ivr.journal.state import State, open_state
from ivr.journal.stats import StatsQuery, render_text, report
from ivr.journal.timeutil import parse_day, parse_duration, parse_moment, zone


def register(subparsers: Any) -> None:
    incident = subparsers.add_parser("incident", help="announce outages to callers (add, list, end)")
    actions = incident.add_subparsers(dest="incident_action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="announce an incident to new calls")
    add.add_argument("--kk", required=True, metavar="TEXT", help="what Kazakh-speaking callers hear")
    add.add_argument("--ru", required=True, metavar="TEXT", help="what Russian-speaking callers hear")
    add.add_argument(
        "--topic", action="append", default=[], metavar="T", help="affected topic (repeat; none: every topic)"
    )
    add.add_argument(
        "--starts", metavar="ISO", help="start (default now); without an offset: centre's local time"
    )
    until = add.add_mutually_exclusive_group(required=True)
    until.add_argument("--expires", metavar="ISO", help="when it stops being announced")
    until.add_argument(
        "--for", dest="duration", metavar="DURATION", help="how long from the start: 90m, 2h, 1d"
    )
    add.set_defaults(func=_incident_add)
    listing = actions.add_parser("list", help="incidents being (or about to be) announced")
    listing.add_argument("--all", action="store_true", help="include ended and expired incidents")
    listing.set_defaults(func=_incident_list)
    end = actions.add_parser("end", help="stop announcing an incident now")
    end.add_argument("id", type=int)
    end.set_defaults(func=_incident_end)

    callbacks = subparsers.add_parser("callbacks", help="callback requests and their state")
    cb_actions = callbacks.add_subparsers(dest="callbacks_action", required=True, metavar="ACTION")
    cb_list = cb_actions.add_parser("list", help="list callback requests")
    cb_list.add_argument("--state", choices=STATES, help="only callbacks in this state")
    cb_list.set_defaults(func=_callbacks_list)

    stats = subparsers.add_parser(
        "stats", help="what the IVR did: calls, self-service, topics, languages, outages"
    )
    stats.add_argument(
        "--from", dest="start", metavar="DATE", help="first day (YYYY-MM-DD, local), inclusive"
    )
    stats.add_argument("--to", dest="end", metavar="DATE", help="last day (YYYY-MM-DD, local), inclusive")
    stats.add_argument("--lang", choices=("kk", "ru"), help="only calls in this language")
    stats.add_argument(
        "--topic", metavar="T", help="only calls on this topic ('(none)' for calls without one)"
    )
    stats.add_argument(
        "--top", type=int, default=10, metavar="N", help="how many topics to list (default 10)"
    )
    stats.add_argument(
        "--chart", metavar="FILE", help="also write the charts to FILE (.html: self-contained page with SVG)"
    )
    stats.set_defaults(func=_stats)


def _run(args: argparse.Namespace, work: Callable[[State, Settings], Awaitable[int]]) -> int:
    try:
        settings = load_settings(getattr(args, "config", None))
    except ConfigError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 2

    async def main() -> int:
        state = await open_state(settings)
        try:
            return await work(state, settings)
        finally:
            await state.close()

    try:
        return asyncio.run(main())
    except (StateError, ValueError, LookupError) as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 1


def _local(moment: datetime | None, settings: Settings) -> str:
    return "-" if moment is None else moment.astimezone(zone(settings.timezone)).strftime("%Y-%m-%d %H:%M")


def _incident_add(args: argparse.Namespace) -> int:
    async def work(state: State, settings: Settings) -> int:
        tz = zone(settings.timezone)
        starts = parse_moment(args.starts, tz) if args.starts else SYSTEM_CLOCK.now().astimezone(tz)
        expires = parse_moment(args.expires, tz) if args.expires else starts + parse_duration(args.duration)
        incident_id = await state.incidents.add(args.kk, args.ru, args.topic, starts, expires)
        print(
            f"incident {incident_id} announced {_local(starts, settings)} .. {_local(expires, settings)} "
            f"({settings.timezone}), topics: {', '.join(args.topic) or 'all'}"
        )
        return 0

    return _run(args, work)


def _incident_line(incident: Incident, settings: Settings, now: float) -> str:
    if incident.ended_at is not None:
        status = "ended"
    elif incident.expires_at.timestamp() <= now:
        status = "expired"
    elif incident.starts_at.timestamp() > now:
        status = "upcoming"
    else:
        status = "active"
    return (
        f"{incident.id:>5}  {status:<8}  {_local(incident.starts_at, settings)} .. {_local(incident.until, settings)}"
        f"  topics: {', '.join(incident.topics) or 'all'}\n       kk: {incident.text_kk}\n       ru: {incident.text_ru}"
    )


def _incident_list(args: argparse.Namespace) -> int:
    async def work(state: State, settings: Settings) -> int:
        incidents = await state.incidents.list(include_expired=args.all)
        if not incidents:
            print("no incidents" if args.all else "no active or upcoming incidents")
        now = SYSTEM_CLOCK.time()
        for incident in incidents:
            print(_incident_line(incident, settings, now))
        return 0

    return _run(args, work)


def _incident_end(args: argparse.Namespace) -> int:
    async def work(state: State, settings: Settings) -> int:
        if await state.incidents.end(args.id):
            print(f"incident {args.id} ended")
            return 0
        print(f"ivr: no incident {args.id} in progress (unknown id, or already ended)", file=sys.stderr)
        return 1

    return _run(args, work)


def _callback_line(callback: Callback, settings: Settings) -> str:
    owner = (
        f"  engine {callback.engine_id} until {_local(callback.lease_until, settings)}"
        if callback.lease_until
        else ""
    )
    error = f"  last error: {callback.last_error}" if callback.last_error else ""
    return (
        f"{callback.id:>6}  {callback.state:<8} {callback.number:<16} {callback.language}  {callback.queue:<16}"
        f" topic: {callback.topic or '-':<14} attempts: {callback.attempts}"
        f"  next: {_local(callback.next_attempt_at, settings)}{owner}{error}"
    )


def _callbacks_list(args: argparse.Namespace) -> int:
    async def work(state: State, settings: Settings) -> int:
        callbacks = await state.callbacks.list(args.state)
        if not callbacks:
            print("no callbacks" + (f" in state {args.state}" if args.state else ""))
        for callback in callbacks:
            print(_callback_line(callback, settings))
        return 0

    return _run(args, work)


def _stats(args: argparse.Namespace) -> int:
    if args.chart and Path(args.chart).suffix.lower() not in (".html", ".htm"):
        print(
            f"ivr: --chart {args.chart}: only .html is supported (a self-contained page with SVG charts; "
            "PNG would need a plotting library this package does not depend on)",
            file=sys.stderr,
        )
        return 2

    async def work(state: State, settings: Settings) -> int:
        query = StatsQuery(
            start=parse_day(args.start) if args.start else None,
            end=parse_day(args.end) if args.end else None,
            language=args.lang,
            topic=args.topic,
            top_topics=args.top,
        )
        figures = await report(state.db, query, settings.timezone)
        sys.stdout.write(render_text(figures))
        if args.chart:
            from ivr.journal.chart import render_html

            Path(args.chart).write_text(render_html(figures), encoding="utf-8")
            print(f"charts written to {args.chart}")
        return 0

    return _run(args, work)


def main(argv: list[str] | None = None) -> int:
    """Run these commands without the lead's main parser (used by tests and benchmarks)."""
    parser = argparse.ArgumentParser(prog="ivr")
    parser.add_argument("--config", "-c", default=None, help="settings file (default ./ivr.toml if present)")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
