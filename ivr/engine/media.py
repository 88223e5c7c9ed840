"""The streaming media path: play a node's prompt and listen at the same time, over AudioSocket.

For a node that takes speech the interpreter calls `ask()` first. It asks Asterisk, from the call's
AGI session, to connect the call's audio to the engine (`EXEC AudioSocket <uuid>,<host:port>`; the
AGI session then waits silently until the engine ends the AudioSocket session). The engine paces the
prompt itself, one 20 ms frame per tick (Asterisk neither paces nor buffers), runs the voice-activity
detector on what the caller sends, stops the prompt when they talk over it, decodes their answer
while they speak, and ends the session (00 00 00) as soon as it knows the answer; EXEC then returns
`200 result=0` and the call goes on over AGI as before.

`ask()` returns None whenever this path cannot serve the answer, and the interpreter records it with
RECORD FILE as before: the media path is off, the prompt has no audio file the engine can read, the
speech pool has no stream free, Asterisk has no AudioSocket application (EXEC returns -2), or no
connection arrives (`connect_timeout`). The last two turn the path off for `RETRY_AFTER` seconds,
logged once each way, so a misconfigured Asterisk costs one caller one delay, not every caller.

At start the engine checks its own advertised address (`MediaPath.self_test`): it connects there as
Asterisk would and sends a probe UUID, which must arrive at its own listener. Something else listening
there (a wrong `[audiosocket] advertise`, a load balancer, another engine) would accept Asterisk's
connection and leave every caller in a silent `EXEC AudioSocket` for ~13 s; then the path stays off
(RECORD FILE) until the engine is restarted, with one error in the log saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from ivr.agi.channel import CallHangup
from ivr.audiosocket.protocol import split_frames, uuid_message
from ivr.audiosocket.server import AudioSocketConnection, AudioSocketServer
from ivr.audiosocket.turn import Turn, TurnResult, TurnSettings
from ivr.audiosocket.vad import FRAME_MS, VadSettings, VoiceActivityDetector, frame_features
from ivr.config import Settings, parse_hostport
from ivr.menus.model import MenuNode, Prompt, QuestionNode
from ivr.speech.audio import AudioError, read_wav, resample
from ivr.speech.recognizer import Recognition

if TYPE_CHECKING:
    from ivr.engine.interpreter import CallSession
    from ivr.speech.streaming import SpeechStream

log = logging.getLogger("ivr.media")

RATE = 8000
RETRY_AFTER = 300.0  # seconds the path stays off after Asterisk could not connect
PROMPT_CACHE = 256  # prompts kept in memory as frames (a 30 s prompt is ~480 KB)


@attrs.frozen
class Heard:
    """What the caller answered over AudioSocket: a digit, what was heard (an empty text for silence),
    or None when the recogniser failed; `interrupted`: the caller cut the prompt short."""

    answer: str | Recognition | None
    interrupted: bool
    result: TurnResult


@attrs.frozen
class PromptFrames:
    frames: tuple[bytes, ...]
    levels: tuple[float, ...]


class PromptAudio:
    """Prompt files as 20 ms slin frames with their levels, read once and kept (by path and mtime)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._cache: OrderedDict[tuple[str, int], PromptFrames] = OrderedDict()

    def frames(self, language: str, sounds: Sequence[str]) -> PromptFrames | None:
        """All `sounds` one after the other; None when one has no readable .wav under prompts/<lang>/."""
        frames: list[bytes] = []
        levels: list[float] = []
        for sound in sounds:
            one = self._one(self.root / language / f"{sound}.wav")
            if one is None:
                return None
            frames.extend(one.frames)
            levels.extend(one.levels)
        return PromptFrames(tuple(frames), tuple(levels))

    def _one(self, path: Path) -> PromptFrames | None:
        try:
            key = (str(path), path.stat().st_mtime_ns)
        except OSError:
            return None
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        try:
            pcm = read_wav(path)
        except (OSError, AudioError) as exc:
            log.warning("prompt %s cannot be streamed: %s", path, exc)
            return None
        if pcm.rate != RATE:
            pcm = resample(pcm, RATE)
        frames = tuple(split_frames(pcm.samples, RATE, FRAME_MS))
        loaded = PromptFrames(frames, tuple(frame_features(f)[0] for f in frames))
        self._cache[key] = loaded
        if len(self._cache) > PROMPT_CACHE:
            self._cache.popitem(last=False)
        return loaded


class MediaPath:
    """Engine-wide state of the media path: the AudioSocket listener, prompt frames, on/off."""

    def __init__(self, settings: Settings, server: AudioSocketServer) -> None:
        self.settings = settings
        self.server = server
        self.prompts = PromptAudio(settings.prompts.dir)
        advertise = settings.audiosocket.advertise
        if not advertise:
            host, _ = parse_hostport(settings.audiosocket.bind, 9093)
            advertise = f"{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{server.port}"
        self.advertise = advertise
        self._off_until = 0.0
        self._announced: str | None = None
        a = settings.audiosocket
        self.vad = VadSettings(
            onset_frames=max(1, a.onset_ms // FRAME_MS),
            hangover_frames=max(1, a.end_silence_ms // FRAME_MS),
            echo_loss_db=a.echo_loss_db,
            min_level_dbfs=a.min_level_dbfs,
        )
        self.turns = 0
        self.fallbacks = 0

    @property
    def enabled(self) -> bool:
        if self._off_until and self.server.loop.time() < self._off_until:
            return False
        if self._off_until:
            self._off_until = 0.0
            self._announce("on", "trying AudioSocket again")
        return True

    def turn_off(self, reason: str, seconds: float = RETRY_AFTER) -> None:
        self._off_until = self.server.loop.time() + seconds
        self._announce("off", f"{reason}; answers are recorded with RECORD FILE for {seconds:g} s")

    def started(self) -> None:
        self._announce("on", f"Asterisk is asked to connect to {self.advertise}")

    async def self_test(self) -> bool:
        """Connect to the advertised address as Asterisk does and check that the probe's UUID reaches
        this engine's listener; if not, log why and keep the media path off. True: it arrived."""
        timeout = self.settings.audiosocket.connect_timeout
        probe = uuid.uuid4()
        arrived = self.server.expect(probe)
        writer: asyncio.StreamWriter | None = None
        try:
            host, port = parse_hostport(self.advertise, 9093)
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            except (OSError, TimeoutError) as exc:
                return self._failed(f"cannot connect to it ({exc or 'timed out'})")
            writer.write(uuid_message(probe))
            # Another AudioSocket server hangs up on a UUID it does not know: that answer is enough.
            answered = asyncio.ensure_future(reader.read(1))
            done, _ = await asyncio.wait(
                {arrived, answered}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            answered.cancel()
            if arrived in done and not arrived.cancelled():
                arrived.result().finish()
                return True
            if answered in done:
                return self._failed(
                    "whatever listens there answered the probe itself, so it is not this engine"
                )
            return self._failed(
                f"a connection there was accepted, but the probe did not reach this engine in {timeout:g} s"
            )
        finally:
            self.server.forget(probe)
            if writer is not None:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    def _failed(self, why: str) -> bool:
        self._off_until = math.inf
        self._announced = "off"
        bind = self.settings.audiosocket.bind
        log.error(
            "media path off: Asterisk would be told to connect to %s ([audiosocket] advertise), but %s "
            "(this engine listens on %s); answers are recorded with RECORD FILE until the address is "
            "fixed and the engine restarted",
            self.advertise,
            why,
            bind,
        )
        return False

    def _announce(self, state: str, detail: str) -> None:
        if self._announced != state:
            self._announced = state
            (log.info if state == "on" else log.warning)("media path %s: %s", state, detail)


async def ask(session: CallSession, node: MenuNode, prompts: Sequence[Prompt], escape: str) -> Heard | None:
    """Play `prompts` and take the answer over AudioSocket; None: record it the usual way instead."""
    media: MediaPath | None = getattr(session.services, "media", None)
    speech = session.services.speech
    if media is None or speech is None or not media.enabled:
        return None
    audio = media.prompts.frames(session.language, [p.sound for p in prompts])
    if audio is None:
        return None
    question = isinstance(node, QuestionNode)
    phrases = None if question else session.services.grammar(session.menu, node, session.language)
    stream = speech.open_stream(session.language, phrases, RATE)
    if stream is None:
        return None
    try:
        return await _converse(session, media, node, audio, escape, stream)
    finally:
        stream.close()


async def _converse(
    session: CallSession,
    media: MediaPath,
    node: MenuNode,
    audio: PromptFrames,
    escape: str,
    stream: SpeechStream,
) -> Heard | None:
    channel = session.channel
    server = media.server
    call_uuid = uuid.uuid4()
    waiter = server.expect(call_uuid)
    # The AGI session is silent until the AudioSocket session ends; this reply says how it ended.
    execution = asyncio.ensure_future(channel.exec("AudioSocket", [str(call_uuid), media.advertise]))
    done, _ = await asyncio.wait(
        {waiter, execution},
        timeout=media.settings.audiosocket.connect_timeout,
        return_when=asyncio.FIRST_COMPLETED,
    )
    if waiter not in done or waiter.cancelled():
        server.forget(call_uuid)
        await _no_connection(session, media, execution)
        return None
    connection = waiter.result()
    media.turns += 1
    settings = TurnSettings(
        no_input_ticks=int(node.input.timeout * 1000) // FRAME_MS,
        max_speech_frames=session.services.settings.speech.max_record_seconds * 1000 // FRAME_MS,
        barge_in=media.settings.audiosocket.barge_in,
    )
    turn = Turn(audio.frames, escape, settings, VoiceActivityDetector(media.vad), audio.levels)
    driver = _Driver(connection, turn, stream)
    clock_key = server.clock.add(driver.tick)
    connection.attach(driver)
    try:
        result = await driver.done
    finally:
        server.clock.remove(clock_key)
    if result.kind == "hangup":
        stream.close()
        session.channel.hung_up = True
        await _settle(execution)
        raise CallHangup("caller hung up during AudioSocket")
    answer: str | Recognition | None
    if result.kind == "digit":
        answer = result.digit
    elif result.kind == "speech":
        answer = await _decode(session, node, stream, result)
    else:
        answer = Recognition("", (), 0.0, 0.0, phrases_restricted(stream), 0.0)
    connection.finish()  # the decision is made: Asterisk returns from AudioSocket() at once
    code = await execution
    if code == -1 or channel.hung_up:
        channel.hung_up = True
        raise CallHangup("caller hung up as AudioSocket ended")
    return Heard(answer, result.interrupted, result)


def phrases_restricted(stream: SpeechStream) -> bool:
    return stream.phrases is not None


async def _settle(execution: asyncio.Future[int]) -> None:
    """Wait for EXEC's reply after the caller hung up (result=-1, then HANGUP), ignoring how it ends."""
    try:
        await execution
    except (Exception, asyncio.CancelledError):
        return


async def _decode(
    session: CallSession, node: MenuNode, stream: SpeechStream, result: TurnResult
) -> Recognition | None:
    try:
        recognition = await stream.finish()
    except Exception as exc:
        log.warning("call %s: streaming decode failed: %s", session.call_id, exc)
        session._dtmf_only = True  # as after a failed recording: this call continues on keys
        return None
    session.services.journal_event(
        session.call_id,
        "speech",
        node.id,
        {
            "text": recognition.text,
            "confidence": round(recognition.confidence, 3),
            "decode_s": round(recognition.decode_seconds, 3),
            "media": "audiosocket",
            "barge_in": result.interrupted,
        },
    )
    return recognition


async def _no_connection(session: CallSession, media: MediaPath, execution: asyncio.Future[int]) -> None:
    """Asterisk did not connect: find out why from EXEC's reply, and fall back to recording."""
    media.fallbacks += 1
    code = await execution  # Asterisk gives up connecting after 2 s; CallEnded propagates
    if code == -2:
        media.turn_off("Asterisk has no AudioSocket application (load res_audiosocket and app_audiosocket)")
        return
    if code == -1:
        await session.channel.channel_status()  # a dead channel answers 511 -> CallHangup
        media.turn_off(f"Asterisk could not connect to {media.advertise}")
        return
    media.turn_off(f"no AudioSocket connection within {media.settings.audiosocket.connect_timeout:g} s")


class _Driver:
    """Joins one Turn to its connection and its decoder; `done` resolves with the turn's result."""

    def __init__(self, connection: AudioSocketConnection, turn: Turn, stream: SpeechStream) -> None:
        self.connection = connection
        self.turn = turn
        self.stream = stream
        self.done: asyncio.Future[TurnResult] = asyncio.get_running_loop().create_future()
        self.other_rates = 0

    def tick(self) -> None:
        frame = self.turn.tick()
        if frame is not None:
            self.connection.send_audio(frame)
        self._check()

    def on_audio(self, payload: bytes, rate: int) -> None:
        if rate != RATE:
            # Only the channel-driver form (Dial(AudioSocket/...c(slin16))) sends other rates; EXEC
            # AudioSocket, which the engine asks for, always sends 8 kHz. Say so once per session
            # rather than let the turn time out as if the caller had been silent.
            if not self.other_rates:
                log.warning(
                    "AudioSocket %s sends %d Hz audio: the engine takes 8 kHz slin, as EXEC AudioSocket "
                    "sends it; this answer is not heard (is a Dial(AudioSocket/...) channel pointed at "
                    "the engine?)",
                    self.connection.uuid,
                    rate,
                )
            self.other_rates += 1
            return
        for frame in self.turn.audio(payload):
            self.stream.feed(frame)
        self._check()

    def on_dtmf(self, digit: str) -> None:
        self.turn.dtmf(digit)
        self._check()

    def on_closed(self) -> None:
        self.turn.hangup()
        self._check()

    def _check(self) -> None:
        result = self.turn.result
        if result is not None and not self.done.done():
            self.done.set_result(result)
