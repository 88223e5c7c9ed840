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

import attrs

from ivr.clock import SYSTEM_CLOCK, TEST_CLOCK_FILE, Clock, shared_test_clock
from ivr.config import ConfigError, Settings, load_settings, override
from ivr.contact.hours import dialled_at
from ivr.journal.callbacks import STATES, Callback
from ivr.journal.db import StateError
from ivr.journal.incidents import Incident
from ivr.journal.state import State, open_state
from ivr.journal.stats import StatsQuery, render_text, report
from ivr.journal.timeutil import parse_day, parse_duration, parse_moment, zone
from ivr.menus.problems import did_you_mean


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
    _state_dir_option(add)
    add.set_defaults(func=_incident_add)
    listing = actions.add_parser("list", help="incidents being (or about to be) announced")
    listing.add_argument("--all", action="store_true", help="include ended and expired incidents")
    _state_dir_option(listing)
    listing.set_defaults(func=_incident_list)
    end = actions.add_parser("end", help="stop announcing an incident now")
    end.add_argument("id", type=int)
    _state_dir_option(end)
    end.set_defaults(func=_incident_end)

    callbacks = subparsers.add_parser("callbacks", help="callback requests and their state")
    cb_actions = callbacks.add_subparsers(dest="callbacks_action", required=True, metavar="ACTION")
    cb_list = cb_actions.add_parser("list", help="list callback requests")
    cb_list.add_argument("--state", choices=STATES, help="only callbacks in this state")
    _state_dir_option(cb_list)
    cb_list.set_defaults(func=_callbacks_list)

    stats = subparsers.add_parser(
        "stats", help="what the IVR did: calls, self-service, topics, languages, outages"
    )
    stats.add_argument(
        "--from", dest="start", metavar="DATE", help="first day (YYYY-MM-DD, local), inclusive"
    )
    stats.add_argument("--to", dest="end", metavar="DATE", help="last day (YYYY-MM-DD, local), inclusive")
    stats.add_argument(
        "--lang",
        choices=("kk", "ru", "none"),
        help="only calls in this language (none: hung up before choosing)",
    )
    stats.add_argument(
        "--topic", metavar="T", help="only calls on this topic ('(none)' for calls without one)"
    )
    stats.add_argument(
        "--top", type=int, default=10, metavar="N", help="how many topics to list (default 10)"
    )
    stats.add_argument(
        "--chart", metavar="FILE", help="also write the charts to FILE (.html: self-contained page with SVG)"
    )
    _state_dir_option(stats)
    stats.set_defaults(func=_stats)


def _state_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="the engines' state directory (default: state_dir of ivr.toml, var/)",
    )
    parser.add_argument(
        "--database-url", metavar="URL", help="the engines' shared PostgreSQL (database_url of ivr.toml)"
    )


def _run(args: argparse.Namespace, work: Callable[[State, Settings, Clock], Awaitable[int]]) -> int:
    try:
        settings = override(
            load_settings(getattr(args, "config", None)),
            state_dir=args.state_dir,
            database_url=args.database_url,
        )
    except ConfigError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 2
    journal = Path(settings.state_dir) / "ivr.db"
    if not settings.database_url and not journal.is_file():
        # Run from another directory, these commands would read (and start) a journal no engine uses.
        print(
            f"ivr: no journal at {journal} yet: a new, empty one is made there. If the engines keep theirs "
            "elsewhere, give --state-dir or --database-url (or run where their ivr.toml is)",
            file=sys.stderr,
        )
    clock: Clock = SYSTEM_CLOCK
    test_clock = shared_test_clock(settings.state_dir)
    if test_clock is not None:
        clock = test_clock
        print(
            f"ivr: on the test clock of `ivr serve --clock` ({settings.state_dir}/{TEST_CLOCK_FILE}): "
            f"now is {_local(clock.now(), settings)} ({settings.timezone})",
            file=sys.stderr,
        )

    async def main() -> int:
        state = await open_state(settings, clock=clock)
        try:
            return await work(state, settings, clock)
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
    async def work(state: State, settings: Settings, clock: Clock) -> int:
        tz = zone(settings.timezone)
        starts = parse_moment(args.starts, tz) if args.starts else clock.now().astimezone(tz)
        expires = parse_moment(args.expires, tz) if args.expires else starts + parse_duration(args.duration)
        if expires <= clock.now():
            print(
                f"ivr: the incident would be over already: it ends {_local(expires, settings)}, and it is "
                f"{_local(clock.now(), settings)} ({settings.timezone}); check --starts, --for or --expires",
                file=sys.stderr,
            )
            return 2
        known = await asyncio.to_thread(_menu_topics, settings)
        unknown = [t for t in args.topic if known is not None and t not in known]
        if unknown:
            hint = did_you_mean(unknown[0], known or ())
            print(
                f"ivr: --topic {unknown[0]}: no menu has that topic{hint}; the menus' topics: "
                f"{', '.join(sorted(known or ()))}",
                file=sys.stderr,
            )
            return 2
        incident_id = await state.incidents.add(args.kk, args.ru, args.topic, starts, expires)
        print(
            f"incident {incident_id} announced {_local(starts, settings)} .. {_local(expires, settings)} "
            f"({settings.timezone}), topics: {', '.join(args.topic) or 'all'}"
        )
        return 0

    return _run(args, work)


def _menu_topics(settings: Settings) -> set[str] | None:
    """Every topic of the menus in menus_dir (declared or on a node), or None when there are none to
    read here: an incident's topic must be one callers can reach, or only the first announcement,
    after the language choice, is ever heard."""
    from ivr.menus.loader import check_menu

    files = sorted(p for p in Path(settings.menus_dir).glob("*.yaml") if not p.name.startswith("_"))
    topics: set[str] = set()
    read = False
    for file in files:
        menu = check_menu(file).menu
        if menu is not None:
            read = True
            topics.update(menu.topics, (node.topic for node in menu.nodes.values() if node.topic))
    return topics if read else None


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
    async def work(state: State, settings: Settings, clock: Clock) -> int:
        incidents = await state.incidents.list(include_expired=args.all)
        if not incidents:
            print("no incidents" if args.all else "no active or upcoming incidents")
        now = clock.time()
        for incident in incidents:
            print(_incident_line(incident, settings, now))
        return 0

    return _run(args, work)


def _incident_end(args: argparse.Namespace) -> int:
    async def work(state: State, settings: Settings, clock: Clock) -> int:
        if await state.incidents.end(args.id):
            print(f"incident {args.id} ended")
            return 0
        print(f"ivr: no incident {args.id} in progress (unknown id, or already ended)", file=sys.stderr)
        return 1

    return _run(args, work)


def _centre_hours(settings: Settings) -> Any:
    """The opening hours the engines dial callbacks in: the default menu's (the 1414 default without)."""
    from ivr.engine.app import hours_for
    from ivr.menus.loader import check_menu

    path = Path(settings.menus_dir) / f"{settings.default_menu}.yaml"
    return hours_for(check_menu(path).menu if path.is_file() else None)


def _callback_line(callback: Callback, settings: Settings, dialled: datetime | None = None) -> str:
    owner = (
        f"  engine {callback.engine_id} until {_local(callback.lease_until, settings)}"
        if callback.lease_until
        else ""
    )
    error = f"  last error: {callback.last_error}" if callback.last_error else ""
    return (
        f"{callback.id:>6}  {callback.state:<8} {callback.number:<16} {callback.language}  {callback.queue:<16}"
        f" topic: {callback.topic or '-':<14} attempts: {callback.attempts}"
        f"  next: {_local(dialled or callback.next_attempt_at, settings)}{owner}{error}"
    )


def _callbacks_list(args: argparse.Namespace) -> int:
    async def work(state: State, settings: Settings, clock: Clock) -> int:
        callbacks = await state.callbacks.list(args.state)
        if not callbacks:
            print("no callbacks" + (f" in state {args.state}" if args.state else ""))
        if not settings.ami.enabled:
            print(
                "ivr: AMI is not configured here ([ami] host): engines with these settings store callbacks "
                "but do not dial them",
                file=sys.stderr,
            )
        hours = await asyncio.to_thread(_centre_hours, settings)
        now = clock.now()
        for callback in callbacks:
            # when it is dialled: once due, and only in opening hours (a night's request: the morning)
            waiting = callback.state in ("pending", "dialing")
            dialled = dialled_at(hours, callback.next_attempt_at, now) if waiting else None
            print(_callback_line(callback, settings, dialled))
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

    async def work(state: State, settings: Settings, clock: Clock) -> int:
        query = StatsQuery(
            start=parse_day(args.start) if args.start else None,
            end=parse_day(args.end) if args.end else None,
            language=args.lang,
            topic=args.topic,
            top_topics=args.top,
        )
        figures = await report(state.db, query, settings.timezone)
        sys.stdout.write(render_text(figures))
        if not figures.calls and args.topic:  # a typo, or a topic nobody has reached yet?
            everything = await report(state.db, attrs.evolve(query, topic=None), settings.timezone)
            known = [t.name for t in everything.topics]
            if known and args.topic not in known:
                hint = did_you_mean(args.topic, known)
                print(
                    f"ivr: no call has topic {args.topic}{hint}; the journal's topics: {', '.join(known)}",
                    file=sys.stderr,
                )
                return 1  # a typo, for a script: not an empty result
        if args.chart:
            from ivr.journal.chart import render_html

            try:
                Path(args.chart).write_text(render_html(figures), encoding="utf-8")
            except OSError as exc:
                print(f"ivr: --chart {args.chart}: {exc.strerror or exc}", file=sys.stderr)
                return 1
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
