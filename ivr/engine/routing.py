"""Handing a caller to the operators: opening hours, queue figures from AMI, callback offers, Queue.

Order for a queue node: outside opening hours the caller hears so and is offered a callback (and
otherwise keeps self-service); inside, their position and expected wait are said (when AMI answers);
if nobody is logged in or the wait is too long a callback is offered; then EXEC Queue.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from ivr.agi.channel import CallEnded
from ivr.contact.queue_choice import estimated_wait, should_offer_callback
from ivr.menus.model import QueueNode, Target
from ivr.prompts.numbers import minutes_phrase, say_number_prompts

if TYPE_CHECKING:
    from ivr.engine.interpreter import CallSession

log = logging.getLogger("ivr.engine")

CALLBACK_WAIT_THRESHOLD = 300.0  # seconds of expected wait beyond which a callback is offered
QUEUE_TIMEOUT_DEFAULT = 900  # seconds a caller may wait when the node sets no timeout
UNANSWERED = {"TIMEOUT", "FULL", "JOINEMPTY", "LEAVEEMPTY", "JOINUNAVAIL", "LEAVEUNAVAIL"}
ROUTED_VARIABLE = "IVR_ROUTED"  # tells the dialplan the engine placed the call (no fallback queue)


async def queue_call(session: CallSession, node: QueueNode) -> str | None:
    channel = session.channel
    services = session.services
    queue = node.queue.get(session.language)
    await session._play(node.say, "")
    hours = services.hours
    if hours is not None and not hours.is_open(services.clock()):
        await session._play_sound("ivr/closed", "")
        session.services.journal_event(session.call_id, "closed", node.id, {"queue": queue})
        if (
            node.callback_offer
            and services.state is not None
            and await offer_callback(session, queue, closed=True)
        ):
            return None
        return session.resolve(Target("top"))  # self-service stays open around the clock
    summary = await _summary(session, queue)
    if summary is not None:
        await _announce_wait(session, summary)
        if (
            node.callback_offer
            and services.state is not None
            and should_offer_callback(summary, CALLBACK_WAIT_THRESHOLD)
            and await offer_callback(session, queue, closed=False)
        ):
            return None
    session.outcome = "queued"
    session.services.journal_event(session.call_id, "queue", node.id, {"queue": queue})
    await channel.set_variable(ROUTED_VARIABLE, "1")
    if node.priority:
        await channel.set_variable("QUEUE_PRIO", str(node.priority))
    timeout = node.timeout or QUEUE_TIMEOUT_DEFAULT
    # Queue(name,options,URL,announceoverride,timeout): 't' lets the operator transfer the caller on.
    await channel.exec("Queue", [queue, "t", "", "", timeout], timeout=timeout + 120)
    status = await channel.get_variable("QUEUESTATUS")
    session.services.journal_event(session.call_id, "queue_result", node.id, {"status": status or "ANSWERED"})
    if status in UNANSWERED:
        # Given back by the queue: a later queue or transfer node replaces this outcome.
        session.outcome = "abandoned" if status == "TIMEOUT" else "failed"
        if (
            node.callback_offer
            and services.state is not None
            and await offer_callback(session, queue, closed=False)
        ):
            return None
        if node.next is not None:
            return session.resolve(node.next)
        await session._play_sound("ivr/goodbye", "")
    return None


async def _summary(session: CallSession, queue: str) -> object | None:
    ami = session.services.ami
    if ami is None:
        return None
    try:
        return await ami.queue_summary(queue)
    except Exception as exc:  # AMI trouble never reaches the caller
        log.warning("call %s: queue figures for %s unavailable: %s", session.call_id, queue, exc)
        return None


async def _announce_wait(session: CallSession, summary: object) -> None:
    """'Your number in the queue: N. Expected wait: M minutes', agreeing in Kazakh and Russian."""
    position = int(getattr(summary, "callers", 0)) + 1
    wait = estimated_wait(summary)  # type: ignore[arg-type]
    if math.isinf(wait):
        return
    minutes = max(1, math.ceil(wait / 60))
    sounds = ["ivr/queue-position", *say_number_prompts(position, session.language)]
    sounds += ["ivr/queue-wait", *minutes_phrase(minutes, session.language)]
    await session.channel.exec("Playback", ["&".join(sounds)])


async def offer_callback(session: CallSession, queue: str, *, closed: bool) -> bool:
    """Offer to be called back; on yes, confirm the number and store the request durably."""
    channel = session.channel
    offer = "ivr/callback-offer-closed" if closed else "ivr/callback-offer"
    digit = await session._play_sound(offer, "12")
    if digit is None:
        digit = await channel.wait_for_digit(6000)
    if digit != "1":
        return False
    number = await _confirm_number(session)
    if not number:
        return False
    try:
        request_id = await session.services.state.callbacks.request(
            number, session.language, queue, session.topic, session.call_id
        )
    except CallEnded:
        raise
    except Exception as exc:
        log.warning("call %s: callback request not stored: %s", session.call_id, exc)
        return False
    session.outcome = "callback"
    session.services.journal_event(session.call_id, "callback", data={"id": request_id, "queue": queue})
    await session._play_sound("ivr/callback-accepted", "")
    await channel.set_variable(ROUTED_VARIABLE, "1")
    await channel.hangup()
    return True


async def _confirm_number(session: CallSession) -> str | None:
    channel = session.channel
    number = normalise_number(channel.env.callerid)
    for _ in range(3):
        if number:
            digits = "&".join(f"digits/{d}" for d in number)
            await channel.exec("Playback", [f"ivr/callback-number-is&{digits}"])
            answer = await session._play_sound("ivr/callback-number-confirm", "12")
            if answer is None:
                answer = await channel.wait_for_digit(6000)
            if answer == "1":
                return number
        typed = await channel.get_data("ivr/callback-enter-number", 10000, 15)
        number = normalise_number(typed.digits)
    return None


def normalise_number(text: str) -> str:
    """A Kazakhstan number as the callback dialplan takes it: 11 digits starting 77 (+7 7xx xxx xx xx), or ''."""
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) == 11 and digits[0] == "8":
        digits = "7" + digits[1:]
    if len(digits) == 10 and digits[0] == "7":
        digits = "7" + digits
    return digits if len(digits) == 11 and digits.startswith("77") else ""
