"""Which operator queue a caller goes to, how long they would wait there, and when to offer a callback.

Queue names follow asterisk-conf/queues.conf: <language>-<topic> (kk-general, ru-egov, ...).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from ivr.texts import LANGUAGES

GENERAL_TOPIC = "general"

# "[kk-general](queue-1414)" -> name "kk-general", templates "queue-1414"; "[queue-1414](!)" is a template.
_SECTION = re.compile(r"^\[(?P<name>[^\]]+)\](?:\((?P<options>[^)]*)\))?\s*(?:;.*)?$")


class QueueSummaryLike(Protocol):
    """What the AMI QueueSummary action reports for one queue (any object with these attributes).

    available: members logged in, not paused and not on a call; logged_in: members logged in;
    callers: callers waiting now; hold_time: Asterisk's average wait of recently answered callers,
    seconds. QueueSummary also reports TalkTime; an object with a `talk_time` attribute (seconds)
    gets the better estimate in estimated_wait().
    """

    available: int
    logged_in: int
    callers: int
    hold_time: float


def general_queue(language: str) -> str:
    return f"{language}-{GENERAL_TOPIC}"


def choose_queue(queues: Mapping[str, str], language: str) -> str:
    """The queue for a caller speaking `language`, given a node's {language: queue} mapping.

    A node without a queue for this language falls back to the other language's queue (a
    bilingual desk still answers), and a node without any to the general queue of the language.
    """
    if language not in LANGUAGES:
        raise ValueError(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
    if queues.get(language):
        return queues[language]
    for other in LANGUAGES:
        if other != language and queues.get(other):
            return queues[other]
    return general_queue(language)


def estimated_wait(summary: QueueSummaryLike) -> float:
    """Seconds a caller joining now can expect to wait; math.inf when nobody is logged in.

    - Nobody logged in: nobody will answer (inf).
    - Fewer callers waiting than free operators: answered at once (0; ringing time aside).
    - With the average talk time known: the caller is `callers - available + 1` in line for an
      operator to free up, and the `logged_in` operators free up one each `talk_time` seconds on
      average, so the wait is that position x talk_time / logged_in.
    - Otherwise Asterisk's own figure, the average hold time of recently answered callers (what
      app_queue itself announces as the estimated hold time).
    Asterisk's hold time lags a flood: when the booking service fails and hundreds call at once, it
    still says what the calm hour before looked like. The talk-time estimate follows the queue
    length at once, so it is preferred whenever Asterisk reports a talk time.
    """
    if summary.logged_in <= 0:
        return math.inf
    if summary.callers < summary.available:
        return 0.0
    hold_time = max(float(summary.hold_time), 0.0)
    talk_time = float(getattr(summary, "talk_time", 0) or 0)
    if talk_time <= 0:
        return hold_time
    position = summary.callers - summary.available + 1
    return position * talk_time / summary.logged_in


def should_offer_callback(summary: QueueSummaryLike, threshold_seconds: float) -> bool:
    """Offer a callback instead of queueing: nobody logged in, or the expected wait is too long."""
    if summary.logged_in <= 0:
        return True
    return estimated_wait(summary) > threshold_seconds


def queue_names(conf_path: str | os.PathLike[str]) -> set[str]:
    """The queue names queues.conf defines: its sections, minus [general] and templates ((!))."""
    path = Path(conf_path)
    names: set[str] = set()
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line.startswith("["):
            continue
        match = _SECTION.match(line)
        if match is None:
            raise ValueError(f"{path}:{number}: malformed section header {raw!r}")
        name = match["name"].strip()
        options = [option.strip() for option in (match["options"] or "").split(",") if option.strip()]
        if name == "general" or "!" in options:
            continue
        names.add(name)
    return names
