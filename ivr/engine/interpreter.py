"""Runs one call through a menu tree with the channel API.

The rules that shape everything here:

* A caller is never left in silence or dropped because the engine failed. Every invalid answer and
  every silence is counted against the node's retries, and the node's `on_failure` (by default the
  operator) takes over; an unexpected error sends the caller to the operator queue of their language;
  if even that fails, closing the AGI connection hands the call back to the dialplan, whose next
  priority queues it (asterisk-conf/extensions.conf).
* Every call ends within a bound. The menu's `limits:` say how many menus in a row may end without a
  usable answer and how long a call may stay in the IVR; past either, the call is "leaving": it goes to
  the operator node (a queue: the caller is queued, or after hours hears the closed message and the
  callback offer) and never back into the menus; whatever cannot queue it ends with a goodbye.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from ivr.agi.channel import DIGITS, CallEnded, Channel
from ivr.engine import media
from ivr.engine.routing import ROUTED_VARIABLE, queue_call
from ivr.engine.services import EngineServices
from ivr.engine.system_texts import incident_sound
from ivr.journal.outage import describe
from ivr.menus.model import (
    BackNode,
    GotoNode,
    HangupNode,
    InfoNode,
    InputNode,
    LanguageNode,
    Menu,
    MenuNode,
    Node,
    Prompt,
    QuestionNode,
    QueueNode,
    RepeatNode,
    Target,
    TopNode,
    TransferNode,
)
from ivr.speech.matcher import Match, Matcher, is_operator_request
from ivr.speech.recognizer import Recognition
from ivr.texts import LANGUAGES

log = logging.getLogger("ivr.engine")

# Nodes visited in a row without the caller saying anything: more means a loop the validator missed.
MAX_STEPS_WITHOUT_INPUT = 64
GENERAL_TOPIC = "general"  # topic of the greeting and menus: hearing it is not self-service
NOT_STREAMED = object()  # _listen records the answer itself


def call_key(channel: Channel) -> str:
    """The journal's key for a call: Asterisk's uniqueid, qualified by the Asterisk server it came from,
    because two servers in front of one shared database can hand out the same uniqueid (set each one's
    `systemname` in asterisk.conf when several share one address: the uniqueid then starts with it)."""
    uniqueid = channel.env.uniqueid or f"ivr-{time.time_ns()}"
    asterisk = getattr(channel, "asterisk", "")
    return f"{uniqueid}@{asterisk}" if asterisk else uniqueid


class MenuRuntimeError(Exception):
    """The menu led somewhere it cannot go (a missing node, a loop): the caller goes to an operator."""


class _Choice:
    """What the caller chose at an input node."""

    __slots__ = ("action", "how", "value")

    def __init__(self, action: str, value: object = None, how: str = "") -> None:
        self.action = action  # "option" | "global" | "language"
        self.value = value
        self.how = how  # "dtmf" | "speech"


async def hand_back_unknown_menu(
    channel: Channel, menu: str, services: EngineServices, menus: list[str]
) -> None:
    """A call for a menu this engine does not have (a typo in the dialplan's AGI() line, a menu whose
    file was rejected at its first load). Hanging up would drop the caller; closing the session without
    a command hands the call back to the dialplan unrouted, and its fallback queues the caller. Journalled
    as handed back, so the board and `ivr stats` show it and not only the log."""
    call_id = call_key(channel)
    log.warning(
        "call %s asks for menu %r, which this engine does not have (its menus: %s): handed back to the "
        "dialplan, whose fallback queues the caller",
        call_id, menu, ", ".join(menus) or "none",
    )  # fmt: skip
    state = services.state
    if state is None:
        return
    try:
        state.journal.call_started(call_id, services.clock.time(), channel.env.callerid, None, menu)
        state.journal.event(call_id, "unknown_menu", "", {"menu": menu})
        state.journal.call_ended(call_id, "handed_back", None)
    except Exception as exc:  # the journal must never keep a caller from the fallback queue
        log.warning("journal: could not record the handed-back call %s: %s", call_id, exc)


class CallSession:
    def __init__(self, channel: Channel, menu: Menu, services: EngineServices) -> None:
        self.channel = channel
        self.menu = menu
        self.services = services
        self.call_id = call_key(channel)
        self.language = menu.default_language
        self.history: list[str] = []  # input nodes, for back / repeat
        self.topic: str | None = None
        self.outcome: str | None = None
        self.served = False  # heard at least one self-service answer
        self.announced: set[tuple[int, str | None]] = set()  # (incident, topic) already played
        # The bound on the call (menu limits): menus in a row without a usable answer, time in the IVR.
        self.unanswered = 0
        self.leaving: str | None = None  # why the call is on its way out (no return to the menus)
        self.entered = services.elapsed()
        self.queue_seconds = 0.0  # spent waiting inside Queue: not time in the IVR
        self.refused_queues: set[str] = set()  # queues that gave this caller back
        self.callback_ignored = False  # an offer let pass is not made again
        self._recordings = 0
        self._dtmf_only = False  # set when speech proved unusable in this call
        self._prompts_heard = False  # the prompts of the current question played to their end
        self._global_keys = "".join(g.key for g in menu.global_keys.values() if g.key)

    # --- the call ----------------------------------------------------------------------------
    async def run(self) -> None:
        self._journal_start()
        try:
            await self.channel.answer()
            await self.channel.set_language(self.language)
            await self._walk(self.menu.start)
        except CallEnded as exc:
            self.services.journal_event(self.call_id, "hangup", data={"detail": str(exc)})
            self._finish(self.outcome or ("self_served" if self.served else "abandoned"))
            raise
        except asyncio.CancelledError:
            # Engine shutdown: closing the connection hands the caller back to the dialplan's queue.
            self.services.journal_event(self.call_id, "handed_back")
            self._finish("handed_back")
            raise
        except Exception as exc:
            log.exception("call %s: engine error in menu %s", self.call_id, self.menu.name)
            self.services.journal_event(self.call_id, "error", data={"error": f"{type(exc).__name__}: {exc}"})
            self.outcome = "failed"
            self._finish("failed")
            await self._rescue()
            return
        self._finish(self.outcome or ("self_served" if self.served else "abandoned"))

    async def _walk(self, node_id: str | None) -> None:
        steps = 0
        while node_id is not None:
            steps += 1
            if steps > MAX_STEPS_WITHOUT_INPUT:
                raise MenuRuntimeError(f"{steps} nodes in a row without input, last {node_id!r}")
            if self.leaving is None:
                reason = self._limit_reached()
                if reason is not None:
                    node_id = self._leave(reason, node_id)
                    if node_id is None:
                        await self.goodbye("ivr/goodbye")
                        return
            node = self.menu.nodes.get(node_id)
            if node is None:
                raise MenuRuntimeError(f"node {node_id!r} does not exist")
            if self.leaving is not None and isinstance(node, InputNode | InfoNode):
                # On the way out the menus are not offered again.
                await self.goodbye("ivr/goodbye")
                return
            if isinstance(node, InputNode):
                steps = 0
            node_id = await self._visit(node)

    # --- the bound on a call -----------------------------------------------------------------
    def ivr_seconds(self) -> float:
        """Time in the IVR so far, the wait in operator queues not counted."""
        return self.services.elapsed() - self.entered - self.queue_seconds

    def _limit_reached(self) -> str | None:
        limits = self.menu.limits
        if self.unanswered >= limits.max_menus_without_answer:
            return f"{self.unanswered} menus in a row without an answer"
        if self.ivr_seconds() >= limits.max_seconds_in_ivr:
            return f"{limits.max_minutes_in_ivr:g} minutes in the IVR"
        return None

    def _out_of_time(self) -> bool:
        """The time bound, between two tries at one node: a node of many long tries must not hold a
        silent caller past it (the walk then sends the call on its way out)."""
        return self.ivr_seconds() >= self.menu.limits.max_seconds_in_ivr

    def _leave(self, reason: str, heading_to: str) -> str | None:
        """The call has reached a limit: to the operator node when it is a queue this caller can still
        join, else None (a goodbye)."""
        self.leaving = reason
        operator = self.menu.nodes.get(self.menu.operator or "")
        usable = (
            isinstance(operator, QueueNode) and operator.queue.get(self.language) not in self.refused_queues
        )
        target = operator.id if usable and operator is not None else None
        self.services.journal_event(
            self.call_id, "limit", heading_to, {"reason": reason, "to": target or "goodbye"}
        )
        return target

    async def goodbye(self, sound: str) -> None:
        """The call's last words, then hang up. A caller never just hears the line go dead."""
        self.outcome = self.outcome or ("self_served" if self.served else "no_operator")
        await self.channel.set_variable(ROUTED_VARIABLE, "1")
        await self._play_sound(sound, "")
        await self.channel.hangup()

    def _journal_start(self) -> None:
        state = self.services.state
        if state is None:
            return
        try:
            state.journal.call_started(
                self.call_id, self.services.clock.time(), self.channel.env.callerid, None, self.menu.name
            )
        except Exception as exc:
            log.warning("journal: could not record start of %s: %s", self.call_id, exc)

    def _finish(self, outcome: str) -> None:
        state = self.services.state
        if state is None:
            return
        try:
            state.journal.call_ended(self.call_id, outcome, self.topic)
        except Exception as exc:
            log.warning("journal: could not record end of %s: %s", self.call_id, exc)

    async def _rescue(self) -> None:
        """After an engine error: apologise and queue the caller with an operator of their language."""
        try:
            if self.channel.closed or self.channel.hung_up:
                return
            await self.channel.stream_file("ivr/technical-problem")
            queue = self._operator_queue()
            await self.channel.set_variable(ROUTED_VARIABLE, "1")
            if await self.channel.exec("Queue", [queue]) != -1:
                # Given back (routing.py says how Queue ends): say so rather than let the line go dead.
                await self.channel.stream_file("ivr/operators-busy")
            await self.channel.hangup()
        except CallEnded:
            return
        except Exception:
            # Closing the AGI connection now makes the dialplan's fallback queue take the caller.
            log.exception(
                "call %s: could not reach the operator queue; handing back to the dialplan", self.call_id
            )

    def _operator_queue(self) -> str:
        node = self.menu.nodes.get(self.menu.operator or "")
        if isinstance(node, QueueNode):
            return node.queue.get(self.language)
        return f"{self.language}-general"

    # --- nodes -------------------------------------------------------------------------------
    async def _visit(self, node: Node) -> str | None:
        self.services.journal_event(self.call_id, "node", node.id)
        if node.topic and node.topic != self.topic:
            # What the call was about, for statistics and callbacks: a general node after a subject
            # (the operator line a booking caller ends in) keeps the subject.
            if node.topic != GENERAL_TOPIC or self.topic in (None, GENERAL_TOPIC):
                self.topic = node.topic
            await self._announce_incidents(node.topic)
        if isinstance(node, LanguageNode):
            return await self._language(node)
        if isinstance(node, MenuNode):  # QuestionNode too
            return await self._menu(node)
        if isinstance(node, InfoNode):
            return await self._info(node)
        if isinstance(node, QueueNode):
            return await queue_call(self, node)
        if isinstance(node, TransferNode):
            return await self._transfer(node)
        if isinstance(node, HangupNode):
            await self._play(node.say, "")
            self.served = True
            self.outcome = self.outcome or "self_served"
            await self.channel.hangup()
            return None
        if isinstance(node, GotoNode):
            return self.resolve(node.target)
        if isinstance(node, BackNode):
            return self.resolve(Target("back"))
        if isinstance(node, TopNode):
            return self.resolve(Target("top"))
        if isinstance(node, RepeatNode):
            return self.resolve(Target("repeat"))
        raise MenuRuntimeError(f"node {node.id!r} of unknown kind {node.kind!r}")

    def resolve(self, target: Target | None) -> str | None:
        if target is None:
            return None
        if target.action == "node":
            return target.node
        if target.action == "top":
            return self.menu.top
        if target.action == "repeat":
            return self.history[-1] if self.history else self.menu.top
        if target.action == "back":
            if len(self.history) >= 2:
                self.history.pop()  # the node we are leaving
                return self.history.pop()  # re-entering pushes it again
            return self.menu.top
        raise MenuRuntimeError(f"unknown target {target}")

    def _enter_input(self, node: InputNode) -> None:
        if not self.history or self.history[-1] != node.id:
            self.history.append(node.id)

    async def _language(self, node: LanguageNode) -> str | None:
        self._enter_input(node)
        keys = {c.key: c.language for c in node.choices if c.key}
        for attempt in range(node.input.retries):
            if attempt and self._out_of_time():
                break
            digit = None
            # The greeting is played in every language, Kazakh first, each by its own voice.
            for language in LANGUAGES:
                if self.channel.language != language:
                    await self.channel.set_language(language)
                # Any key stops the greeting: a wrong one is an invalid answer, never silence.
                digit = await self._play(node.short if attempt and node.short else node.say, DIGITS)
                if digit:
                    break
            if digit is None and self._speech_ready(node):
                chosen = await self._language_by_speech(node, "".join(keys))
                if chosen in keys.values():
                    self.unanswered = 0
                    await self._set_language(chosen, "speech")
                    return self.resolve(node.next)
                digit = chosen  # a key pressed while recording, or None
            elif digit is None:
                digit = await self.channel.wait_for_digit(int(node.input.timeout * 1000))
            if digit in keys:
                self.unanswered = 0
                await self._set_language(keys[digit], "dtmf")
                return self.resolve(node.next)
            self.services.journal_event(
                self.call_id, "invalid" if digit else "silence", node.id, {"dtmf": digit}
            )
            await self.channel.set_language(self.language)
            await self._play(node.invalid if digit else node.silence, "")
        # Nobody chose: continue in the default language rather than give up on the caller.
        self.unanswered += 1
        await self._set_language(self.menu.default_language, "default")
        return self.resolve(node.next)

    async def _language_by_speech(self, node: LanguageNode, escape: str) -> str | None:
        """Either language's name said in either language ("русский", "қазақша"), decoded with the
        current (default) language's model: a language code, a key pressed meanwhile, or None."""
        matcher = self.services.language_matcher(self.menu, node, self.language)
        heard = await self._record(node, escape, matcher.phrases(self.language))
        if heard is None or isinstance(heard, str):
            return heard
        match = matcher.match(heard, self.language)
        return match.target if self._trusted(match, heard) else None

    async def _set_language(self, language: str, how: str) -> None:
        self.language = language
        await self.channel.set_language(language)
        self.services.journal_event(self.call_id, "language", data={"language": language, "how": how})
        await self._announce_incidents(None)

    def _heard_answer(self, node: Node) -> None:
        """A caller who heard a topic's node to its end has been served by the IVR (for statistics)."""
        if node.topic not in (None, GENERAL_TOPIC):
            self.served = True

    async def _menu(self, node: MenuNode) -> str | None:
        self._enter_input(node)
        for attempt in range(node.input.retries):
            if attempt and self._out_of_time():
                break
            prompts = node.short if attempt and node.short else node.say
            try:
                choice = await self._ask(node, prompts)
            except CallEnded:
                # Hanging up while the engine waits for a key after the answer played to its end is how
                # most callers who got their answer leave: they heard it (self-service), not abandoned.
                if attempt == 0 and self._prompts_heard:
                    self._heard_answer(node)
                raise
            if attempt == 0 and (choice is None or choice.how != "dtmf-barge-in"):
                self._heard_answer(node)
            if choice is None:
                self.services.journal_event(self.call_id, "silence", node.id)
                pressed = await self._play(node.silence, self._global_digits(node))
            elif choice.action == "invalid":
                self.services.journal_event(self.call_id, "invalid", node.id, {"input": choice.value})
                pressed = await self._play(node.invalid, self._global_digits(node))
            else:
                self.unanswered = 0
                return await self._take(node, choice)
            if pressed is not None:  # a menu-wide key over the apology ("0": the operator) is taken
                choice = await self._key_choice(node, pressed)
                if choice.action != "invalid":
                    choice.how = "dtmf-barge-in"
                    self.unanswered = 0
                    return await self._take(node, choice)
        self.unanswered += 1
        self.services.journal_event(self.call_id, "failure", node.id)
        return self.resolve(node.on_failure) or self.menu.operator

    async def _take(self, node: InputNode, choice: _Choice) -> str | None:
        if choice.action == "option":
            option = choice.value
            self.services.journal_event(
                self.call_id, "choice", node.id, {"how": choice.how, "target": str(option.target)}
            )
            return self.resolve(option.target)
        return await self._global(node, choice.value, choice.how)

    async def _global(self, node: Node, action: str, how: str) -> str | None:
        """A menu-wide key or phrase: operator, switch language, repeat, back, top."""
        self.services.journal_event(self.call_id, "global", node.id, {"action": action, "how": how})
        if action == "operator":
            return self.menu.operator
        if action == "language":
            others = [lang for lang in LANGUAGES if lang != self.language]
            await self._set_language(others[0], how)
            return node.id
        return self.resolve(Target(action))

    def _global_digits(self, node: InputNode) -> str:
        return self._global_keys if node.global_keys else ""

    async def _ask(self, node: MenuNode, prompts: Sequence[Prompt]) -> _Choice | None:
        """Play the node's prompts and take one answer: a key, a phrase, nothing (None) or 'invalid'."""
        dtmf = node.input.dtmf
        self._prompts_heard = False  # set once the prompts have played to their end, unbroken
        # Every key stops the prompt and the recording: a wrong key is an invalid answer, not silence.
        escape = DIGITS if dtmf else self._global_digits(node)
        if self._speech_ready(node):  # prompt and listening at once over AudioSocket, when it can
            heard = await media.ask(self, node, prompts, escape)
            if heard is not None:
                choice = await self._listen(node, escape, heard.answer)
                if choice is not None and heard.interrupted and choice.how == "dtmf":
                    choice.how = "dtmf-barge-in"
                return choice
        digit = await self._play(prompts, escape)
        if digit is not None:
            choice = await self._key_choice(node, digit)
            choice.how = "dtmf-barge-in"  # pressed before the prompt ended
            return choice
        self._prompts_heard = True
        if self._speech_ready(node):
            return await self._listen(node, escape)
        if dtmf:
            digit = await self.channel.wait_for_digit(int(node.input.timeout * 1000))
        if digit is None:
            return None
        return await self._key_choice(node, digit)

    async def _key_choice(self, node: MenuNode, first: str) -> _Choice:
        keys = [o.key for o in node.options if o.key]
        typed = first
        while (
            len(typed) < node.input.max_digits
            and typed not in keys
            and any(k.startswith(typed) for k in keys)
        ):
            more = await self.channel.wait_for_digit(int(node.input.inter_digit_timeout * 1000))
            if more is None:
                break
            typed += more
        option = node.option_for_key(typed)
        if option is not None:
            return _Choice("option", option, "dtmf")
        glob = self.menu.global_key_for(typed) if node.global_keys else None
        if glob is not None:
            return _Choice("global", glob.action, "dtmf")
        return _Choice("invalid", typed, "dtmf")

    def _speech_ready(self, node: InputNode) -> bool:
        speech = self.services.speech
        return (
            node.input.speech
            and not self._dtmf_only
            and speech is not None
            and speech.available(self.language)
            and bool(self.services.settings.speech.spool)
        )

    async def _record(
        self, node: InputNode, escape: str, phrases: list[str] | None
    ) -> str | Recognition | None:
        """Record the caller's answer and decode it: a digit pressed meanwhile (str), what was heard
        (Recognition), or None when recognition is unavailable (no model, pool full, bad audio)."""
        settings = self.services.settings.speech
        self._recordings += 1
        base = os.path.join(settings.spool, f"{self.call_id}-{self._recordings}")
        result = await self.channel.record_file(
            base,
            "wav",
            escape_digits=escape,
            timeout_ms=int(settings.max_record_seconds * 1000),
            silence_seconds=settings.silence_seconds,
        )
        wav = Path(base + ".wav")
        if result.ended_by == "dtmf" and result.digit:
            wav.unlink(missing_ok=True)
            return result.digit
        try:
            recognition = await self.services.speech.recognize(wav, self.language, phrases)
        finally:
            wav.unlink(missing_ok=True)
        if recognition is None:
            self._dtmf_only = True  # this call continues on keys
            return None
        self.services.journal_event(
            self.call_id,
            "speech",
            node.id,
            {
                "text": recognition.text,
                "confidence": round(recognition.confidence, 3),
                "decode_s": round(recognition.decode_seconds, 3),
            },
        )
        return recognition

    def _trusted(self, match: Match[str] | None, recognition: Recognition) -> bool:
        """Below the configured confidence the recogniser may have forced unknown speech into the
        node's words (a model without [unk] does); the same word heard several times in one short
        answer is the other signature of that."""
        if match is None or match.needs_confirmation:
            return False
        words = [w.word for w in recognition.words if w.word != "[unk]"]
        return recognition.confidence >= self.services.settings.speech.confidence and len(words) == len(
            set(words)
        )

    async def _listen(self, node: MenuNode, escape: str, streamed: object = NOT_STREAMED) -> _Choice | None:
        """Record the answer (digits still win), unless it was `streamed`, and decide what was said."""
        question = isinstance(node, QuestionNode)
        matcher = self.services.matcher(self.menu, node)
        grammar = None if question else self.services.grammar(self.menu, node, self.language)
        heard = await self._record(node, escape, grammar) if streamed is NOT_STREAMED else streamed
        if isinstance(heard, str):
            return await self._key_choice(node, heard)
        if heard is None:
            await self._play_sound("ivr/press-a-key", "")
            digit = await self.channel.wait_for_digit(int(node.input.timeout * 1000))
            return await self._key_choice(node, digit) if digit else None
        choice = await self._decide(node, heard, matcher, question)
        if log.isEnabledFor(logging.DEBUG):  # what was heard and made of it (the journal keeps it too)
            said = f"{choice.action} {choice.value}" if choice is not None else "nothing"
            log.debug(
                "call %s at %s (%s) heard %r (confidence %.2f): %s",
                self.call_id, node.id, self.language, heard.confident_text(0.0), heard.confidence, said,
            )  # fmt: skip
        return choice

    async def _decide(
        self, node: MenuNode, heard: Recognition, matcher: Matcher[str], question: bool
    ) -> _Choice | None:
        text = heard.confident_text(0.0)
        if not text.strip():
            return None
        if question:
            match = self.services.classifier(self.menu, node).classify(heard, self.language)
        else:
            match = matcher.match(heard, self.language)
        # The node's own phrases first: "поговорить со специалистом по записи" names an option even
        # though it holds a word for a person.
        if self._trusted(match, heard) or (question and match is not None):
            return _Choice("option", node.options[int(match.target)], "speech")
        if is_operator_request(heard, self.language):
            return _Choice("global", "operator", "speech")
        if node.global_keys:
            wanted = self.services.global_classifier(self.menu).classify(heard, self.language)
            if self._trusted(wanted, heard):
                return _Choice("global", wanted.target, "speech")
        if match is not None:
            # Unsure: do not guess with a caller's time; ask for the key on the next try instead.
            self._dtmf_only = True
            await self._play_sound("ivr/not-understood", "")
            await self._play_sound("ivr/press-a-key", "")
        return _Choice("invalid", text, "speech")

    async def _info(self, node: InfoNode) -> str | None:
        digit = await self._play(node.say, self._global_keys)
        glob = self.menu.global_key_for(digit) if digit is not None else None
        if glob is not None and glob.action == "repeat":
            return node.id  # say this information again
        if glob is not None:
            return await self._global(node, glob.action, "dtmf")
        self._heard_answer(node)
        return self.resolve(node.next)

    async def _transfer(self, node: TransferNode) -> str | None:
        await self._play(node.say, "")
        self.outcome = "transferred"
        await self.channel.set_variable(ROUTED_VARIABLE, "1")
        # Leaving the AGI at a new dialplan place is how a FastAGI script transfers a call.
        await self.channel.command("SET CONTEXT", node.context or "ivr-transfer")
        await self.channel.command("SET EXTENSION", node.to)
        await self.channel.command("SET PRIORITY", "1")
        return None

    # --- sound ------------------------------------------------------------------------------
    async def _play(self, prompts: Sequence[Prompt], escape: str) -> str | None:
        for prompt in prompts:
            digit = await self._play_sound(prompt.sound, escape)
            if digit is not None:
                return digit
        return None

    async def _play_sound(self, sound: str, escape: str) -> str | None:
        result = await self.channel.stream_file(sound, escape)
        if result.failed:
            log.warning("call %s: sound %s/%s missing or unplayable", self.call_id, self.language, sound)
            self.services.journal_event(
                self.call_id, "missing_sound", data={"sound": sound, "lang": self.language}
            )
            return None
        return result.digit

    async def _announce_incidents(self, topic: str | None) -> None:
        """Outages first: right after the language choice (all), again on entering an affected topic."""
        state = self.services.state
        if state is None:
            return
        try:
            # While the database does not answer, the list read last (the store logs that once).
            incidents = await state.incidents.active(topic=topic)
        except Exception as exc:
            log.warning("call %s: incidents unavailable: %s", self.call_id, describe(exc))
            return
        ready = getattr(self.services, "incident_audio", None)
        for incident in incidents:
            key = (incident.id, topic)
            if key in self.announced or (topic is not None and not incident.topics):
                continue  # an all-topics incident is said once, after the language choice
            if ready is not None and not ready.is_ready(incident.id):
                continue
            self.announced.add(key)
            self.services.journal_event(self.call_id, "incident", data={"id": incident.id})
            await self._play_sound("ivr/incident-intro", "")
            await self._play_sound(incident_sound(incident.id), "")
