"""The engine's own background work: outage announcements made audible, callbacks dialled.

Both loops survive any error of their own (a log line, then the next round): a database or AMI hiccup
must never stop the engine from answering calls. A failure that lasts is logged once when it begins and
once when it ends, not once a round.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ivr.config import Settings
from ivr.engine.system_texts import incident_sound
from ivr.http.privacy import mask_number
from ivr.journal.outage import Unanswered, describe, unreachable
from ivr.journal.timeutil import zone
from ivr.prompts.render import RenderJob, render
from ivr.prompts.synth import voice_for
from ivr.texts import LANGUAGES

log = logging.getLogger("ivr.engine")


class IncidentAudio:
    """Synthesises each active incident's text (kk and ru) into prompts/<lang>/incidents/ as soon as it
    is seen, so an `ivr incident add` reaches new calls within seconds, with no restart."""

    def __init__(self, state: Any, settings: Settings, interval: float = 1.0) -> None:
        self.state = state
        self.settings = settings
        self.interval = interval
        self._ready: set[int] = set()
        self._failed: set[int] = set()
        self._upcoming: set[int] = set()  # logged as not started yet
        self._wake = asyncio.Event()
        self._failing = Unanswered()  # a failure of the round itself, logged when it begins and ends

    def wake(self) -> None:
        """Look for new incidents now, not at the next tick: one was just added in this engine."""
        self._wake.set()

    def is_ready(self, incident_id: int) -> bool:
        return incident_id in self._ready

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Not the database being away (the incidents' cache serves its last list then): an
                # error of another kind, logged again only when it changes.
                error = self._failing.error
                if self._failing.failed(exc, time.monotonic()) or self._failing.error != error:
                    log.warning("incident audio: %s", self._failing.error)
            else:
                if self._failing.answered(time.monotonic()) is not None:
                    log.info("incident audio: works again")
            # asyncio.wait, not wait_for: on Python 3.11 wait_for can swallow the engine's cancellation
            # when the wake comes at that moment, and the engine's stop would wait for this loop for ever.
            waking = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({waking}, timeout=self.interval)
            finally:
                waking.cancel()
            self._wake.clear()

    async def refresh(self) -> None:
        # Upcoming incidents too: their audio is ready when they start, and an admin whose incident
        # is not heard learns why from the log (a start in the future, or an engine whose clock was
        # pinned with --clock while `ivr incident add` read the machine's).
        now = self.state.incidents.now()
        for incident in await self.state.incidents.current():
            if incident.starts_at.timestamp() > now and incident.id not in self._upcoming:
                self._upcoming.add(incident.id)
                log.info(
                    "incident %d is announced from %s; this engine's clock says %s",
                    incident.id, self._local(incident.starts_at.timestamp()), self._local(now),
                )  # fmt: skip
            if incident.id in self._ready or incident.id in self._failed:
                continue
            results = await asyncio.to_thread(self._render, incident)
            errors = [r.error for r in results if r.error]
            if errors:
                self._failed.add(incident.id)
                log.error("incident %d cannot be announced: %s", incident.id, "; ".join(errors))
            else:
                self._ready.add(incident.id)
                log.info("incident %d: announcement ready in %s", incident.id, ", ".join(LANGUAGES))

    def _local(self, epoch: float) -> str:
        return datetime.fromtimestamp(epoch, zone(self.settings.timezone)).strftime("%Y-%m-%d %H:%M")

    def _render(self, incident: Any) -> list[Any]:
        root = Path(self.settings.prompts.dir)
        results = []
        for language in LANGUAGES:
            wav = root / language / f"{incident_sound(incident.id)}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            voice = voice_for(self.settings.prompts, language)
            results.append(
                render(
                    RenderJob(f"{language}/incident-{incident.id}", wav, None, incident.text(language), voice)
                )
            )
        return results


class CallbackDialer:
    """Claims due callbacks one at a time and originates them over AMI when an operator of the right
    queue is free and the centre is open. A claim is a lease: if this engine dies mid-callback, the
    lease runs out and another engine takes it; the request is never lost nor dialled twice."""

    CHANNEL = "Local/{number}@ivr-callback-out"  # asterisk-conf/extensions.conf
    CONTEXT = "ivr-callback"
    MAX_ATTEMPTS = 12  # calls placed (a claim put back because no operator was free is not one)
    RETRY_DELAY = 300.0  # after an unanswered or failed call
    BUSY_DELAY = 30.0  # after finding no free operator
    RING_MS = 45_000

    def __init__(self, services: Any, interval: float = 2.0) -> None:
        self.services = services
        self.interval = interval
        self._outage = Unanswered()

    async def run(self) -> None:
        while True:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not unreachable(exc):
                    log.warning("callback dialer: %s", describe(exc))
                elif self._outage.failed(exc, time.monotonic()):
                    log.warning(
                        "callback dialer: the state database does not answer (%s): no callback is "
                        "dialled until it answers",
                        self._outage.error,
                    )
            await asyncio.sleep(self.interval)

    def _answered(self) -> None:
        lasted = self._outage.answered(time.monotonic())
        if lasted is not None:
            log.warning(
                "callback dialer: the state database answers again after %.1f s: callbacks are dialled again",
                lasted,
            )

    async def round(self) -> bool:
        """One claim and dial; True when a callback was handled."""
        services = self.services
        if services.hours is not None and not services.hours.is_open(services.clock.now()):
            return False
        ami = services.ami
        if ami is None or not getattr(ami, "connected", False):
            return False
        state = services.state
        callback = await state.callbacks.claim(state.engine_id, lease_seconds=self.RING_MS / 1000 + 60)
        self._answered()
        if callback is None:
            return False
        summary = await ami.queue_summary(callback.queue)
        if summary is None or summary.available < 1:
            # Nobody dialled: not an attempt. The caller was offered the callback because nobody was
            # free (or the wait was long), and told an operator would call: the request waits for one
            # (counting these claims gave it up after 12 x 30 s, before anyone was free).
            await state.callbacks.retry_later(
                callback.id, state.engine_id, "no free operator", self.BUSY_DELAY, attempted=False
            )
            return True
        result = await ami.originate(
            self.CHANNEL.format(number=callback.number),
            self.CONTEXT,
            callback.queue,
            caller_id="1414",
            variables={"IVR_CALLBACK_ID": str(callback.id), "IVR_LANG": callback.language},
            timeout_ms=self.RING_MS,
        )
        if result is not None and getattr(result, "success", False):
            await state.callbacks.finish(callback.id, state.engine_id, "done")
            # Numbers masked in the log as on the board (`ivr callbacks list` has them whole, by id).
            log.info(
                "callback %d: %s answered, queued in %s",
                callback.id,
                mask_number(callback.number),
                callback.queue,
            )
        elif callback.attempts >= self.MAX_ATTEMPTS:
            await state.callbacks.finish(callback.id, state.engine_id, "failed")
            log.warning(
                "callback %d to %s failed after %d attempts",
                callback.id,
                mask_number(callback.number),
                callback.attempts,
            )
        else:
            reason = getattr(result, "reason", "AMI unavailable") if result is not None else "AMI unavailable"
            await state.callbacks.retry_later(
                callback.id, state.engine_id, f"not answered ({reason})", self.RETRY_DELAY
            )
        return True


class CallbackGivenBack:
    """Hears the callback dialplan's `UserEvent: IVRCallback` (asterisk-conf [ivr-callback-queue]),
    sent when the queue gives back a citizen who answered a callback: nobody took them (TIMEOUT,
    JOINEMPTY...). The dialer had recorded the callback done when the citizen answered; it is not, so
    it is due again later, or failed once the dialer's attempts are spent. Every engine on the AMI hears
    the event; the first to reopen the callback logs it."""

    EVENT = "IVRCallback"
    GIVEN_BACK = frozenset({"TIMEOUT", "FULL", "JOINEMPTY", "LEAVEEMPTY", "JOINUNAVAIL", "LEAVEUNAVAIL"})

    def __init__(self, services: Any) -> None:
        self.services = services

    def start(self) -> None:
        self.services.ami.subscribe(self.on_event, ["UserEvent"])

    async def on_event(self, message: Any) -> None:
        if message.get("UserEvent") != self.EVENT:
            return
        status = (message.get("status") or "").strip().upper()
        if status not in self.GIVEN_BACK:
            return
        queue = message.get("queue") or "?"
        try:
            callback_id = int(message.get("id") or "")
        except ValueError:
            log.warning("UserEvent IVRCallback without a callback id (%r): not matched", message.get("id"))
            return
        now = await self.services.state.callbacks.reopen(
            callback_id,
            f"answered, but queue {queue} gave the citizen back ({status})",
            CallbackDialer.RETRY_DELAY,
            CallbackDialer.MAX_ATTEMPTS,
        )
        if now == "pending":
            log.warning(
                "callback %d: the citizen answered, but queue %s gave them back (%s): due again in %g min",
                callback_id, queue, status, CallbackDialer.RETRY_DELAY / 60,
            )  # fmt: skip
        elif now == "failed":
            log.warning(
                "callback %d given up: the citizen answered, but queue %s gave them back (%s), attempts spent",
                callback_id, queue, status,
            )  # fmt: skip
