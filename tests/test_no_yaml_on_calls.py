"""The running engine never parses YAML on the event loop its calls run on: menus are read at start
and reloaded (SIGHUP, an edited file) in a worker thread, the speech rules are loaded at start.

Every way into PyYAML is wrapped so that a parse on a thread running an event loop is recorded (and
fails); parses elsewhere go ahead. Calls run through the fake Asterisk, with keys and with speech in
both languages (the matcher, Kazakh rules included, runs for real), while the menus reload.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

from ivr.clock import FixedClock
from ivr.config import Settings
from ivr.engine.app import Engine
from ivr.engine.services import EngineServices
from ivr.menus import yamlpos
from ivr.speech import matcher
from ivr.speech.normalize_kk import kk_rules, kk_stem, kk_stems
from ivr.speech.recognizer import Recognition, Word
from ivr.testing.engine_fixtures import REPO, project_settings
from ivr.testing.fake_caller import FakeCall, Press, Say, write_wav

YAML_FUNCTIONS = (
    "load",
    "safe_load",
    "full_load",
    "unsafe_load",
    "load_all",
    "safe_load_all",
    "compose",
    "parse",
)
YAML_LOADERS = ("Loader", "SafeLoader", "FullLoader", "BaseLoader", "UnsafeLoader", "CLoader", "CSafeLoader")
HEARD = {"kk": "маманға", "ru": "оператор"}  # a person asked for, in each language


@attrs.define
class YamlWatch:
    on_loop: list[str] = attrs.Factory(list)  # what parsed YAML on an event loop: must stay empty
    off_loop: list[str] = attrs.Factory(list)  # the threads that parsed it elsewhere


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def yaml_watch(monkeypatch: pytest.MonkeyPatch) -> YamlWatch:
    watch = YamlWatch()

    def guarded(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if _on_event_loop():
                watch.on_loop.append(name)
                raise AssertionError(f"YAML parsed on the event loop ({name})")
            watch.off_loop.append(threading.current_thread().name)
            return real(*args, **kwargs)

        return call

    for name in (*YAML_FUNCTIONS, *YAML_LOADERS):
        if hasattr(yaml, name):
            monkeypatch.setattr(yaml, name, guarded(f"yaml.{name}", getattr(yaml, name)))
    monkeypatch.setattr(yamlpos, "_Loader", guarded("the menu reader", yamlpos._Loader))
    # Forget what earlier tests of this process loaded: the engine must load it itself, off the loop.
    for cached in (kk_rules, kk_stem, kk_stems, matcher.word_form):
        cached.cache_clear()
    return watch


class FixedWords:
    """A recogniser stand-in that hears a person asked for, in the language it is asked to hear."""

    def available(self, language: str) -> bool:
        return True

    async def recognize(self, wav_path: str | Path, language: str, phrases: Any = None) -> Recognition:
        text = HEARD[language]
        return Recognition(text, (Word(text, 1.0, 0.0, 0.5),), 1.0, 0.0, phrases is not None, 0.5)


@pytest.fixture
def engine_settings(tmp_path: Path, project_prompts: Path) -> Settings:
    """The project's menus and queues copied, so that the test may edit the menu."""
    shutil.copytree(REPO / "menus", tmp_path / "menus")
    shutil.copytree(REPO / "asterisk-conf", tmp_path / "asterisk-conf")
    (tmp_path / "spool").mkdir()
    return project_settings(tmp_path, menus_dir=str(tmp_path / "menus"))


@pytest.fixture
def engine_services(engine_settings: Settings, clock: FixedClock, yaml_watch: YamlWatch) -> EngineServices:
    return EngineServices(settings=engine_settings, clock=clock, speech=FixedWords())


@pytest.fixture
def utterance(tmp_path: Path) -> Path:
    """Half a second of a line's hum: what the caller says is what FixedWords hears."""
    return write_wav(tmp_path / "said.wav", b"\x10\x00" * 4000)


async def test_calls_never_parse_yaml_on_the_event_loop_while_the_menus_reload(
    engine: Engine, place_call: Callable[..., Any], yaml_watch: YamlWatch, utterance: Path
) -> None:
    menu_file = Path(engine.settings.menus_dir) / "1414.yaml"
    started_with = engine.library.get("1414")
    assert started_with is not None and yaml_watch.off_loop  # read at start, in a worker thread

    async def calls() -> list[FakeCall]:
        return list(
            await asyncio.gather(
                place_call(Press("2"), Press("0")),  # Russian, keys
                place_call(Press("1"), Say(utterance)),  # Kazakh, speech
                place_call(Press("2"), Say(utterance)),  # Russian, speech
            )
        )

    engine._reload()  # what SIGHUP runs
    during_sighup = await calls()
    menu_file.write_text(menu_file.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    during_edit = await calls()
    for _ in range(50):  # the watcher polls every 0.5 s
        if engine.library.get("1414") is not started_with:
            break
        during_edit += await calls()
    else:
        raise AssertionError("the edited menu was never reloaded")

    assert yaml_watch.on_loop == []
    assert len(yaml_watch.off_loop) >= 3  # start, SIGHUP and the edit each read the menu, off the loop
    for call in during_sighup + during_edit:
        assert call.queue in ("kk-general", "ru-general"), call.summary()
    spoken = [call for call in during_sighup + during_edit if "RECORD FILE" in call.commands]
    assert {call.language for call in spoken} == {"kk", "ru"}, "the matcher ran in both languages"
