"""Announce and end outages from the board: the operation `ivr incident add/end` performs (the shared
IncidentStore), so the next caller on any engine hears it, this engine's within the same second.

"Now" is the engine's clock, as for every other time the engine reads. While the state database does not
answer, neither can be done: a 503 says so (code "database_away"), in one log line, and the board's form
says it in its own language.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ivr.http.auth import Access
from ivr.http.keys import ACCESS, FEED_REFRESH, SERVICES, TOPICS, WHO
from ivr.http.replies import json_response
from ivr.journal.outage import describe, unreachable
from ivr.journal.timeutil import parse_duration

log = logging.getLogger("ivr.http")

MAX_TEXT = 1000  # characters per language: an announcement, not an essay
MAX_DURATION_DAYS = 14


def _topics(form: Any) -> list[str]:
    topics: list[str] = []
    for value in form.getall("topics", []):
        topics += [t.strip() for t in str(value).split(",") if t.strip()]
    return topics


def _unknown_topics(unknown: list[str], known: list[Any]) -> str:
    """Why the topics are refused: which ids there are, and the id of one given by its name."""
    said = []
    for topic in unknown:
        named = [k.id for k in known if topic.casefold() in (k.kk.casefold(), k.ru.casefold())]
        said.append(f"{topic} (the name of topic {named[0]}: give its id)" if named else topic)
    return f"unknown topics: {', '.join(said)} (known: {', '.join(k.id for k in known)})"


def _database_away(request: web.Request, exc: BaseException, what: str, later: str) -> web.Response:
    """The database did not answer a change: a 503 the form can say in its language, one log line."""
    error = describe(exc)
    log.warning(
        "503 %s %s from %s: the state database does not answer (%s)",
        request.method,
        request.path,
        request.remote,
        error,
    )
    return json_response(
        {
            "error": f"the state database does not answer: {what}; do it again when the database is back, "
            f"or later with `{later}`",
            "code": "database_away",
            "detail": error,
        },
        status=503,
    )


async def _checked_form(request: web.Request) -> tuple[Any, web.Response | None]:
    """The posted form, or the refusal: a cross-site request (403), no journal to keep incidents (503)."""
    access: Access = request.app[ACCESS]
    form = await request.post()
    who = request[WHO]
    ok, why = access.csrf_ok(
        request, who, str(form.get("csrf", "") or request.headers.get("X-CSRF-Token", ""))
    )
    if not ok:
        log.warning("403 %s %s from %s: %s", request.method, request.path, request.remote, why)
        return form, json_response({"error": why}, status=403)
    if request.app[SERVICES].state is None:
        return form, json_response({"error": "this engine has no journal to keep incidents in"}, status=503)
    return form, None


async def add_incident(request: web.Request) -> web.Response:
    form, refused = await _checked_form(request)
    if refused is not None:
        return refused
    services = request.app[SERVICES]
    kk, ru = str(form.get("kk", "")).strip(), str(form.get("ru", "")).strip()
    topics = _topics(form)
    known = request.app[TOPICS]()
    try:
        if len(kk) > MAX_TEXT or len(ru) > MAX_TEXT:
            raise ValueError(f"an announcement is at most {MAX_TEXT} characters per language")
        unknown = sorted(set(topics) - {topic.id for topic in known})
        if unknown and known:  # menus without topics accept any, as `ivr incident add` does
            raise ValueError(_unknown_topics(unknown, known))
        duration = parse_duration(str(form.get("duration", "")))
        if duration.total_seconds() > MAX_DURATION_DAYS * 86400:
            raise ValueError(f"at most {MAX_DURATION_DAYS} days; extend it later if the outage lasts")
        starts = services.clock.now()
        incident_id = await services.state.incidents.add(kk, ru, topics, starts, starts + duration)
    except ValueError as exc:
        return json_response({"error": str(exc)}, status=400)
    except Exception as exc:
        if not unreachable(exc):
            raise
        return _database_away(request, exc, "the incident is not announced", "ivr incident add")
    log.info(
        "incident %d announced from the board (%s) for %s, topics: %s",
        incident_id,
        request.remote,
        form.get("duration"),
        ", ".join(topics) or "all",
    )
    if services.incident_audio is not None:
        services.incident_audio.wake()  # synthesised now, so the next caller hears it
    request.app[FEED_REFRESH]()
    return json_response({"id": incident_id}, status=201)


async def end_incident(request: web.Request) -> web.Response:
    _, refused = await _checked_form(request)
    if refused is not None:
        return refused
    services = request.app[SERVICES]
    try:
        incident_id = int(request.match_info["id"])
    except ValueError:
        return json_response({"error": "an incident id is a number"}, status=400)
    try:
        ended = await services.state.incidents.end(incident_id)
    except Exception as exc:
        if not unreachable(exc):
            raise
        return _database_away(
            request, exc, f"incident {incident_id} is not ended", f"ivr incident end {incident_id}"
        )
    if not ended:
        return json_response({"error": f"no incident {incident_id} in progress"}, status=404)
    log.info("incident %d ended from the board (%s)", incident_id, request.remote)
    request.app[FEED_REFRESH]()
    return json_response({"id": incident_id, "ended": True})
