"""pytest fixtures that start a real engine on an ephemeral port and place fake Asterisk calls into it.

pytest_plugins = ["ivr.testing.engine_fixtures"]

async def test_russian_caller_reaches_operator(engine, place_call):
    call = await place_call(Press("2"), Press("0"))
    assert call.queue == "ru-general"

The engine's clock is pinned (`clock` fixture): a Wednesday at 10:00 in Almaty, when the centre is
open, whatever the machine's clock, day or time zone says. A test that needs another moment moves it:
`clock.set(NIGHT)`; the moments below cover the usual cases.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from ivr.clock import FixedClock
from ivr.config import AgiSettings, PromptSettings, Settings, SpeechSettings
from ivr.engine.app import Engine, engine_prompt_texts
from ivr.engine.services import EngineServices
from ivr.menus.library import MenuLibrary
from ivr.menus.validator import ValidatorOptions
from ivr.testing.fake_caller import Action, FakeCall
from ivr.testing.spoken import SpokenWords, models_from_environment

REPO = Path(__file__).resolve().parents[2]

ALMATY = dt.timezone(dt.timedelta(hours=5), "Asia/Almaty")
OPEN_HOURS = dt.datetime(2026, 11, 25, 10, 0, tzinfo=ALMATY)  # Wednesday, 10:00: operators at work
LAST_MINUTE = dt.datetime(2026, 11, 25, 17, 59, tzinfo=ALMATY)  # Wednesday, a minute before closing
EVENING = dt.datetime(2026, 11, 25, 19, 30, tzinfo=ALMATY)  # Wednesday after closing
NIGHT = dt.datetime(2026, 11, 29, 3, 0, tzinfo=ALMATY)  # Sunday, 03:00
HOLIDAY = dt.datetime(2026, 12, 16, 10, 0, tzinfo=ALMATY)  # Independence Day, a Wednesday, 10:00


def private_prompts(tmp_path: Path) -> Path:
    """The repository's prompt directories, linked, beside this test's own incidents/ directories: the
    engine writes each incident's audio there, and incident ids restart at 1 in every test's database,
    so a test must not overwrite the audio of an `ivr serve` running from the same checkout.
    The links point into the repository: delete nothing through them."""
    root = tmp_path / "prompts"
    if root.is_dir():
        return root
    for language_dir in sorted(p for p in (REPO / "prompts").iterdir() if p.is_dir()):
        own = root / language_dir.name
        own.mkdir(parents=True)
        for entry in language_dir.iterdir():
            if entry.name == "incidents":
                continue
            if entry.is_dir():  # a folder of its own, its files linked: a sound a test makes stays here
                (own / entry.name).mkdir()
                for sound in entry.iterdir():
                    (own / entry.name / sound.name).symlink_to(sound)
            else:
                (own / entry.name).symlink_to(entry)
        (own / "incidents").mkdir()
    return root


def project_settings(tmp_path: Path, **changes: Any) -> Settings:
    """The repository's menus and prompts (incident audio of its own), state and spool in tmp_path,
    FastAGI on a free port."""
    settings = Settings(
        menus_dir=str(REPO / "menus"),
        state_dir=str(tmp_path / "state"),
        agi=AgiSettings(bind="127.0.0.1:0", shutdown_grace=2.0),
        prompts=PromptSettings(dir=str(private_prompts(tmp_path))),
        speech=SpeechSettings(spool=str(tmp_path / "spool")),
    )
    return attrs.evolve(settings, **changes)


def build_project_prompts() -> None:
    """`ivr prompts build` for the repository's menus: real espeak-ng audio, incremental."""
    from ivr.prompts.build import build_prompts

    library = MenuLibrary(REPO / "menus", ValidatorOptions.beside(REPO / "menus"))
    library.reload()
    report = build_prompts(engine_prompt_texts(library.menus().values()), REPO / "prompts", Settings())
    if not report.ok:
        raise RuntimeError(f"prompts could not be built for the tests:\n{report.summary()}")


@pytest.fixture(scope="session")
def project_prompts() -> Path:
    build_project_prompts()
    return REPO / "prompts"


@pytest.fixture
def engine_settings(tmp_path: Path, project_prompts: Path) -> Settings:
    (tmp_path / "spool").mkdir()
    return project_settings(tmp_path)


@pytest.fixture
def clock() -> FixedClock:
    """The engine's clock, pinned at OPEN_HOURS; `clock.set(NIGHT)` or `clock.advance(60)` to move it."""
    return FixedClock(OPEN_HOURS)


@pytest.fixture
def engine_services(engine_settings: Settings, clock: FixedClock) -> EngineServices:
    """Override in a test module to add speech or AMI; keep `clock=clock` so the hour stays pinned."""
    return EngineServices(settings=engine_settings, clock=clock)


@pytest.fixture
def ami_engine_services(engine_settings: Settings, clock: FixedClock, ami_settings: Any) -> EngineServices:
    """Services of an engine watching the fake AMI (`fake_ami`). To run a module's engine with AMI:

        @pytest.fixture
        def engine_services(ami_engine_services):
            return ami_engine_services

    then `await engine.services.ami.wait_connected(5)` before a call that needs queue figures."""
    settings = attrs.evolve(engine_settings, ami=ami_settings)
    return EngineServices(settings=settings, clock=clock)


@pytest.fixture(scope="session")
def spoken_words(tmp_path_factory: pytest.TempPathFactory) -> SpokenWords:
    """The utterances of a test session and the recogniser that knows them (ivr.testing.spoken)."""
    return SpokenWords(tmp_path_factory.mktemp("spoken"))


@pytest.fixture
def spoken(spoken_words: SpokenWords) -> Callable[[str, str], Path]:
    """`spoken("оператор", "ru")`: the words as a caller says them (espeak-ng, 8 kHz), for `Say(...)`."""
    return spoken_words.say


@pytest.fixture
def speech_engine_services(
    engine_settings: Settings, clock: FixedClock, spoken_words: SpokenWords
) -> EngineServices:
    """Services of an engine that takes spoken answers in Kazakh and Russian. To run a module's engine
    with speech:

        @pytest.fixture
        def engine_services(speech_engine_services):
            return speech_engine_services

    It hears `spoken(...)` utterances through ivr.testing.spoken.SpokenWords, or through Vosk with the
    models named in IVR_TEST_SPEECH_MODELS (`ru=/path,kk=/path`)."""
    models = models_from_environment()
    if not models:
        return EngineServices(settings=engine_settings, clock=clock, speech=spoken_words)
    speech = attrs.evolve(engine_settings.speech, models=models)
    return EngineServices(settings=attrs.evolve(engine_settings, speech=speech), clock=clock)


@pytest.fixture
async def engine(engine_settings: Settings, engine_services: EngineServices) -> AsyncIterator[Engine]:
    eng = Engine(engine_services.settings, engine_services)
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop(2.0)


@pytest.fixture
def place_call(engine: Engine) -> Callable[..., Awaitable[FakeCall]]:
    """`await place_call(Press("2"), Say(...), Silence(), HangUp(), timeout=60, **options)`: one call from
    the fake Asterisk into `engine`, returned once it has ended and the journal has it. `options` are
    FakeCall's: `queue_outcome=`, `callerid=`, `calleridname=`, `hangup_at=`, `reply_delay=`,
    `agi_script=` (the menu asked for). A call the engine keeps past `timeout` fails the test with
    its transcript."""

    async def place(*script: Action, timeout: float = 60.0, **options: Any) -> FakeCall:
        assert engine.server is not None
        call = FakeCall(script, **options)
        try:
            await call.run("127.0.0.1", engine.server.port, timeout=timeout)
        except TimeoutError:
            raise AssertionError(
                f"the engine kept the call past {timeout:g} s ({len(call.exchanges)} commands):\n"
                f"{call.summary()}\n{call.ending()}"
            ) from None
        # the journal batches writes; let them land before a test reads it
        if engine.services.state is not None:
            await engine.services.state.journal.flush()
        return call

    return place


@pytest.fixture
def announce_incident(engine: Engine) -> Callable[..., Awaitable[int]]:
    """`await announce_incident(kk, ru, topics=("booking",), hours=2)`: an outage announced as
    `ivr incident add` does, from the engine's clock, its audio made; returns its id. Every caller
    hears it right after the language choice, and a caller on an affected topic again on entering it."""

    async def announce(kk: str, ru: str, *, topics: Sequence[str] = (), hours: float = 2.0) -> int:
        services = engine.services
        assert services.state is not None and services.incident_audio is not None
        now = services.clock.now()
        expires = now + dt.timedelta(hours=hours)
        incident = await services.state.incidents.add(kk, ru, topics, starts_at=now, expires_at=expires)
        await services.incident_audio.refresh()
        if not services.incident_audio.is_ready(incident):
            raise AssertionError(f"incident {incident}: its audio could not be made (see the log)")
        return incident

    return announce
