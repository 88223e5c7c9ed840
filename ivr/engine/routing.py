"""Handing a caller to the operators: opening hours, queue figures from AMI, callback offers, Queue.

Every way through a queue node ends the call or moves it on, never back into a loop:

* closed (after hours, a holiday): the closed message and a callback offer. A callback taken ends
  the call; "2" (back to the menu) returns to self-service, unless the call is already on its way
  out; anything else (silence, another key) is a goodbye.
* open: "connecting", the caller's place in line and the expected wait (when AMI answers within
  `ami.wait_on_call` seconds), a callback offer when nobody is logged in or the wait is long, then
  EXEC Queue. Answered: the call ends with the operator. Given back (timeout, join refused: FULL,
  JOINEMPTY, JOINUNAVAIL, LEAVEEMPTY, LEAVEUNAVAIL): a callback offer, then the node's `next:` if it
  has one, else an apology and a hang-up. A queue that gave the caller back is not tried again in
  the same call, and a call on its way out (menu limits) is not led back into the menus.

A callback offer the caller let pass is not repeated in the same call; one declined with "2" (stay
on the line) may be offered again when the queue later gives the caller back.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

from ivr.agi.channel import CallEnded, CallHangup
from ivr.contact.queue_choice import estimated_wait, should_offer_callback
from ivr.menus.model import QueueNode, Target
from ivr.prompts.numbers import minutes_phrase, say_number_prompts

if TYPE_CHECKING:
    from ivr.engine.interpreter import CallSession

log = logging.getLogger("ivr.engine")

CALLBACK_WAIT_THRESHOLD = 300.0  # seconds of expected wait beyond which a callback is offered
QUEUE_TIMEOUT_DEFAULT = 900  # seconds a caller may wait when the node sets no timeout
ROUTED_VARIABLE = "IVR_ROUTED"  # tells the dialplan the engine placed the call (no fallback queue)
CALLBACK_KEYS = "12"
OFFER_WAIT_MS = 6000

# What an offer came to.
TAKEN, DECLINED, IGNORED = "taken", "declined", "ignored"


async def queue_call(session: CallSession, node: QueueNode) -> str | None:
    services = session.services
    queue = node.queue.get(session.language)
    if queue in session.refused_queues:
        # This queue gave the caller back earlier in the call: it will not take them now either.
        return await _given_back(session, node, queue, offer=False)
    hours = services.hours
    if hours is not None and not hours.is_open(services.clock.now()):
        return await _closed(session, node, queue)
    await session._play(node.say, "")
    summary = await _summary(session, queue)
    if summary is not None:
        await _announce_wait(session, summary)
        if should_offer_callback(summary, CALLBACK_WAIT_THRESHOLD):
            offer = await _offer_if_allowed(session, node, queue, closed=False)
            if offer == TAKEN:
                return None
    return await _queue(session, node, queue)


async def _closed(session: CallSession, node: QueueNode, queue: str) -> str | None:
    """After hours: say so, offer a callback once; back to the menu only when the caller asks."""
    own = session.menu.hours.closed_message if session.menu.hours is not None else ()
    if own:  # the menu's own words for its hours (hours: closed_message:)
        await session._play(own, "")
    else:
        await session._play_sound("ivr/closed", "")
    session.services.journal_event(session.call_id, "closed", node.id, {"queue": queue})
    offer = await _offer_if_allowed(session, node, queue, closed=True)
    if offer == TAKEN:
        return None
    if offer == DECLINED and not session.leaving:
        return session.resolve(Target("top"))  # "2": self-service stays open around the clock
    session.outcome = "after_hours"
    await session.goodbye("ivr/goodbye")
    return None


async def _queue(session: CallSession, node: QueueNode, queue: str) -> str | None:
    channel = session.channel
    session.outcome = "queued"
    session.services.journal_event(session.call_id, "queue", node.id, {"queue": queue})
    await channel.set_variable(ROUTED_VARIABLE, "1")
    if node.priority:
        await channel.set_variable("QUEUE_PRIO", str(node.priority))
    timeout = node.timeout or QUEUE_TIMEOUT_DEFAULT
    entered = session.services.elapsed()
    # Queue(name,options,URL,announceoverride,timeout): 't' lets the operator transfer the caller on.
    result = await channel.exec("Queue", [queue, "t", "", "", timeout], timeout=timeout + 120)
    session.queue_seconds += session.services.elapsed() - entered
    status = await channel.get_variable("QUEUESTATUS")
    # How Queue ends, as a real Asterisk 22.10.1 showed (tests/test_fake_caller_fidelity.py):
    #   answered, then either side hangs up: result -1, QUEUESTATUS unset, ABANDONED unset;
    #   the caller gave up waiting: result -1, ABANDONED=TRUE, the channel dead;
    #   given back (timeout, join refused, everyone left, no such queue): result 0 and a QUEUESTATUS
    #   (ABANDONED is TRUE after a timeout too, with the caller still on the line).
    abandoned = result == -1 and await channel.get_variable("ABANDONED") == "TRUE"
    if result != -1:
        status = status or "UNKNOWN"
        session.services.journal_event(session.call_id, "queue_result", node.id, {"status": status})
        session.refused_queues.add(queue)
        return await _given_back(session, node, queue, offer=True)
    session.services.journal_event(
        session.call_id, "queue_result", node.id, {"status": "ABANDONED" if abandoned else "ANSWERED"}
    )
    if abandoned:
        session.outcome = "abandoned"
        raise CallHangup("the caller hung up while waiting in the queue")
    session.outcome = "queued"
    await channel.hangup()  # the operator hung up (or the caller: then Asterisk says the channel is dead)
    return None


async def _given_back(session: CallSession, node: QueueNode, queue: str, *, offer: bool) -> str | None:
    """The queue did not answer: a callback, another queue, or an apology and a hang-up."""
    session.outcome = "no_operator"
    if offer and await _offer_if_allowed(session, node, queue, closed=False, given_back=True) == TAKEN:
        return None
    if node.next is not None:
        return session.resolve(node.next)  # the admin's way on: another queue, a message, a menu
    await session.goodbye("ivr/operators-busy")
    return None


async def _summary(session: CallSession, queue: str) -> object | None:
    """Queue figures from AMI, or None when AMI is off, down or slower than `ami.wait_on_call`:
    a caller is never kept in silence waiting for them."""
    ami = session.services.ami
    if ami is None:
        return None
    wait = session.services.settings.ami.wait_on_call
    try:
        return await asyncio.wait_for(ami.queue_summary(queue), wait)
    except TimeoutError:
        log.warning("call %s: AMI gave no queue figures for %s within %g s", session.call_id, queue, wait)
        return None
    except Exception as exc:  # AMI trouble never reaches the caller
        log.warning("call %s: queue figures for %s unavailable: %s", session.call_id, queue, exc)
        return None


def place_in_line(summary: object) -> int | None:
    """The caller's place among those waiting for an operator, or None when one is free now."""
    callers = int(getattr(summary, "callers", 0))
    available = int(getattr(summary, "available", 0))
    if callers < available:
        return None
    return callers - available + 1


async def _announce_wait(session: CallSession, summary: object) -> None:
    """'Your number in the queue: N. Expected wait: M minutes', agreeing in Kazakh and Russian;
    nothing when an operator is free or nobody is logged in."""
    position = place_in_line(summary)
    wait = estimated_wait(summary)  # type: ignore[arg-type]
    if position is None or math.isinf(wait):
        return
    minutes = max(1, math.ceil(wait / 60))
    sounds = ["ivr/queue-position", *say_number_prompts(position, session.language)]
    sounds += ["ivr/queue-wait", *minutes_phrase(minutes, session.language)]
    await session.channel.exec("Playback", ["&".join(sounds)])


async def _offer_if_allowed(
    session: CallSession, node: QueueNode, queue: str, *, closed: bool, given_back: bool = False
) -> str:
    if not node.callback_offer or session.services.state is None or session.callback_ignored:
        return IGNORED
    answer = await offer_callback(session, queue, closed=closed, given_back=given_back)
    if answer == IGNORED:
        session.callback_ignored = True
    return answer


async def offer_callback(session: CallSession, queue: str, *, closed: bool, given_back: bool = False) -> str:
    """Offer to be called back; on yes, confirm the number and store the request durably.
    Returns TAKEN, DECLINED ("2") or IGNORED (silence, another key, no usable number).
    The words fit the moment: closed (1: call me back, 2: the menu), before a long wait (1: call me
    back, 2: stay on the line) or after the queue gave the caller back (1: call me back; staying on
    the line is no longer a choice)."""
    channel = session.channel
    if closed:
        offer = "ivr/callback-offer-closed"
    else:
        offer = "ivr/callback-offer-busy" if given_back else "ivr/callback-offer"
    session.services.journal_event(session.call_id, "callback_offer", data={"queue": queue})
    digit = await session._play_sound(offer, CALLBACK_KEYS)
    if digit is None:
        digit = await channel.wait_for_digit(OFFER_WAIT_MS)
    if digit == "2":
        return DECLINED
    if digit != "1":
        return IGNORED
    number = await _confirm_number(session)
    if not number:
        return IGNORED
    try:
        request_id = await session.services.state.callbacks.request(
            number, session.language, queue, session.topic, session.call_id
        )
    except CallEnded:
        raise
    except Exception as exc:
        log.warning("call %s: callback request not stored: %s", session.call_id, exc)
        # Said, not passed over: the caller just confirmed a number. The call then goes on as if the
        # offer had been let pass (the queue, or the goodbye after hours).
        session.services.journal_event(session.call_id, "callback_failed", data={"queue": queue})
        await session._play_sound("ivr/callback-failed", "")
        return IGNORED
    session.outcome = "callback"
    session.services.journal_event(session.call_id, "callback", data={"id": request_id, "queue": queue})
    await session._play_sound("ivr/callback-accepted", "")
    await channel.set_variable(ROUTED_VARIABLE, "1")
    await channel.hangup()
    return TAKEN


async def _confirm_number(session: CallSession) -> str | None:
    channel = session.channel
    number = normalise_number(channel.env.callerid)
    for _ in range(3):
        if number:
            digits = "&".join(f"digits/{d}" for d in number)
            await channel.exec("Playback", [f"ivr/callback-number-is&{digits}"])
            answer = await session._play_sound("ivr/callback-number-confirm", CALLBACK_KEYS)
            if answer is None:
                answer = await channel.wait_for_digit(OFFER_WAIT_MS)
            if answer == "1":
                return number
            if answer is None:
                return None  # silence: do not keep a silent caller in the number dialogue
        typed = await channel.get_data("ivr/callback-enter-number", 10000, 15)
        number = normalise_number(typed.digits)
        if not typed.digits:
            return None
    return None


def normalise_number(text: str) -> str:
    """A Kazakhstan number as the callback dialplan takes it: 11 digits starting 77 (+7 7xx xxx xx xx), or ''."""
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) == 11 and digits[0] == "8":
        digits = "7" + digits[1:]
    if len(digits) == 10 and digits[0] == "7":
        digits = "7" + digits
    return digits if len(digits) == 11 and digits.startswith("77") else ""
