"""The shipped stand-in for the Kazakh and Russian Vosk models (ivr.testing.spoken): it hears real
espeak-ng utterances as a grammar-restricted recogniser would, and nothing else; with models named in
IVR_TEST_SPEECH_MODELS the same fixtures run the engine on Vosk."""

from __future__ import annotations

import wave

import attrs
import pytest

from ivr.config import AudioSocketSettings
from ivr.speech.recognizer import SpeechService
from ivr.testing.fake_caller import Press, Say, write_wav
from ivr.testing.spoken import MODELS_VARIABLE, SpokenWords, models_from_environment
from tests.speech_support import KOREAN_MODEL, sox_noise

MAIN_MENU_RU = ["запись", "очередь", "оператор", "назад"]


async def test_words_the_node_listens_for_are_heard_and_the_rest_are_unknown(spoken_words, spoken):
    heard = await spoken_words.recognize(spoken("оператор пожалуйста", "ru"), "ru", MAIN_MENU_RU)
    assert heard.text == "оператор [unk]"
    assert [w.word for w in heard.words] == ["оператор", "[unk]"] and heard.restricted


async def test_without_a_grammar_every_word_is_heard(spoken_words, spoken):
    heard = await spoken_words.recognize(spoken("маманға қосыңыз", "kk"), "kk")
    assert heard.text == "маманға қосыңыз" and not heard.restricted


async def test_a_recording_with_the_utterance_then_silence_is_heard(spoken_words, spoken, tmp_path):
    with wave.open(str(spoken("назад", "ru")), "rb") as audio:
        frames = audio.readframes(audio.getnframes())
    recording = write_wav(tmp_path / "recorded.wav", frames + b"\0\0" * 16000)  # 2 s of silence after
    assert (await spoken_words.recognize(recording, "ru", MAIN_MENU_RU)).text == "назад"
    cut = write_wav(tmp_path / "cut.wav", frames[: len(frames) // 2])  # hung up mid-word
    assert (await spoken_words.recognize(cut, "ru", MAIN_MENU_RU)).text == ""


async def test_silence_noise_and_audio_it_did_not_make_are_nothing_heard(spoken_words, tmp_path):
    silence = write_wav(tmp_path / "silence.wav", b"\0\0" * 16000)
    hiss = sox_noise(tmp_path, "white", "0.05")
    for recording in (silence, hiss):
        heard = await spoken_words.recognize(recording, "ru", MAIN_MENU_RU)
        assert heard.text == "" and heard.words == () and heard.confidence == 0.0


async def test_it_stands_in_for_kazakh_and_russian_only(spoken_words, tmp_path):
    assert spoken_words.available("kk") and spoken_words.available("ru")
    assert not spoken_words.available("en")
    assert await spoken_words.recognize(write_wav(tmp_path / "a.wav", b"\0\0" * 800), "en") is None
    with pytest.raises(ValueError, match="no voice for 'en'"):
        spoken_words.say("hello", "en")
    with pytest.raises(ValueError, match="use Silence"):
        spoken_words.say(" ... ", "ru")


def test_the_same_words_are_synthesised_once(tmp_path):
    words = SpokenWords(tmp_path)
    assert words.say("назад", "ru") == words.say("назад", "ru") != words.say("назад", "kk")


def test_real_models_are_named_language_by_language():
    assert models_from_environment({}) == {}
    assert models_from_environment({MODELS_VARIABLE: "ru=/opt/ru, kk=/opt/kk"}) == {
        "ru": "/opt/ru",
        "kk": "/opt/kk",
    }
    with pytest.raises(ValueError, match="'/opt/ru' is not lang=path"):
        models_from_environment({MODELS_VARIABLE: "/opt/ru"})


@pytest.fixture
def engine_services(request, monkeypatch):
    if getattr(request, "param", None) == "korean-as-ru":
        monkeypatch.setenv(MODELS_VARIABLE, f"ru={KOREAN_MODEL}")
    services = request.getfixturevalue("speech_engine_services")
    if getattr(request, "param", None) == "media-path-on":
        media = AudioSocketSettings(enabled=True, bind="127.0.0.1:0")
        services.settings = attrs.evolve(services.settings, audiosocket=media)
    return services


@pytest.mark.parametrize("engine_services", ["media-path-on"], indirect=True)
async def test_with_the_media_path_on_the_answer_is_recorded_and_still_heard(engine, place_call, spoken):
    call = await place_call(Press("2"), Say(spoken("оператор", "ru")))
    assert "RECORD FILE" in call.commands and call.queue == "ru-general"


@pytest.mark.parametrize("engine_services", ["korean-as-ru"], indirect=True)
async def test_with_models_named_the_engine_decodes_with_vosk(engine, place_call, spoken):
    speech = engine.services.speech
    assert isinstance(speech, SpeechService)
    assert speech.available("ru") and not speech.available("kk")
    await place_call(Press("2"), Say(spoken("оператор", "ru")))
    assert speech.stats.decoded >= 1  # the recording went to Kaldi (which knows no Russian word)
