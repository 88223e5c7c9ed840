"""The real 1414 menu walked through the fake Asterisk, in Kazakh and in Russian, until every node has
been reached: each scenario is a caller doing one recognisable thing, and the last test checks that the
scenarios together visit every node of menus/1414.yaml in each language (from the call journal)."""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Iterable
from pathlib import Path

import pytest

from ivr.clock import FixedClock
from ivr.contact.hours import resolve_timezone
from ivr.engine.services import EngineServices
from ivr.journal.journal import CallEvent, CallRecord
from ivr.menus.library import MenuLibrary
from ivr.menus.model import Menu
from ivr.testing.fake_caller import FakeCall, HangUp, Press, Say, Silence

REPO = Path(__file__).resolve().parents[1]
ALMATY = resolve_timezone("Asia/Almaty")
TUESDAY_MORNING = dt.datetime(2026, 3, 3, 10, 0, tzinfo=ALMATY)  # operators at work
SATURDAY_NOON = dt.datetime(2026, 3, 7, 12, 0, tzinfo=ALMATY)  # the desk is closed
LANGUAGE_KEY = {"kk": "1", "ru": "2"}  # what the welcome asks callers to press
OTHER = {"kk": "ru", "ru": "kk"}
THANKS = {"kk": "рахмет", "ru": "спасибо"}  # the open question's phrases for goodbye
both_languages = pytest.mark.parametrize("lang", ["kk", "ru"])


# --- the engine under test ------------------------------------------------------------------------
@pytest.fixture
def now() -> dt.datetime:
    """The engine's clock; a test parametrises it to be outside opening hours."""
    return TUESDAY_MORNING


@pytest.fixture
def speech(request: pytest.FixtureRequest) -> object | None:
    """No speech model by default: the engine is DTMF-only, as it is without kk/ru Vosk models.
    A test parametrised with "spoken-words" hears `spoken(...)` utterances (ivr.testing.spoken)."""
    if getattr(request, "param", None) == "spoken-words":
        return request.getfixturevalue("spoken_words")
    return None


@pytest.fixture
def engine_services(engine_settings, now: dt.datetime, speech: object | None) -> EngineServices:
    return EngineServices(settings=engine_settings, clock=FixedClock(now), speech=speech)


@pytest.fixture(scope="module")
def menu() -> Menu:
    library = MenuLibrary(REPO / "menus")
    library.reload()
    loaded = library.get("1414")
    assert loaded is not None, library.problems
    return loaded


# --- which nodes the scenarios reached, by the caller's language -----------------------------------
class Reached:
    """Nodes visited over all scenarios of the module, per language of the call at the visit."""

    def __init__(self) -> None:
        self.nodes: dict[str, set[str]] = {"kk": set(), "ru": set()}
        self.scenarios: set[tuple[str, str]] = set()  # (test name, caller's language)

    def add(self, scenario: tuple[str, str], record: CallRecord) -> None:
        self.scenarios.add(scenario)
        for language, nodes in nodes_by_language(record.events).items():
            self.nodes[language] |= nodes


def nodes_by_language(events: Iterable[CallEvent]) -> dict[str, set[str]]:
    """Node visits attributed to the call's language then; nodes before the language choice (the
    welcome, played in both) count for the language the caller chose there."""
    events = list(events)
    current = next((e.data["language"] for e in events if e.kind == "language"), "kk")
    reached: dict[str, set[str]] = {}
    for event in events:
        if event.kind == "language":
            current = event.data["language"]
        elif event.kind == "node":
            reached.setdefault(current, set()).add(event.node)
    return reached


REACHED = Reached()


@pytest.fixture
def walk(engine, place_call, request: pytest.FixtureRequest):
    """Place one call and return (call, journal record); remembers the nodes it reached."""

    async def run(*script, **options) -> tuple[FakeCall, CallRecord]:
        call = await place_call(*script, **options)
        record = await engine.services.state.journal.call(call.uniqueid)
        assert record is not None
        REACHED.add((request.node.originalname, request.node.callspec.params["lang"]), record)
        assert engine.server.stats.handler_errors == 0
        return call, record

    return run


def visited(record: CallRecord) -> list[str]:
    return [e.node for e in record.events if e.kind == "node"]


def after(sequence: list[str], first: str) -> list[str]:
    return sequence[sequence.index(first) + 1 :]


# --- self-service answers and the topic queues ----------------------------------------------------
@both_languages
async def test_a_caller_asks_about_the_egov_app_and_then_wants_a_specialist(walk, lang: str) -> None:
    call, record = await walk(Press(LANGUAGE_KEY[lang]), Press("1"), Press("2"), Press("2"))
    assert call.language == lang
    assert visited(record) == ["welcome", "greeting", "main", "egov", "egov_app", "queue_egov"]
    # the caller pressed 2 during the answer: the rest of it is not played
    assert call.prompts[-2:] == ["1414/egov_app", "1414/text-connecting"]
    assert call.queue == f"{lang}-egov"
    assert call.variables["IVR_ROUTED"] == "1"
    assert record.outcome == "queued" and record.topic == "egov"


@both_languages
async def test_a_caller_reads_about_the_portal_goes_to_the_main_menu_and_presses_0_during_it(
    walk, lang: str
) -> None:
    call, record = await walk(Press(LANGUAGE_KEY[lang]), Press("1"), Press("1"), Press("1"), Press("0"))
    # "main menu" leads to the top: the main menu itself, not the greeting again
    assert after(visited(record), "egov_portal") == ["main", "operator"]
    assert after(call.prompts, "1414/egov_portal") == ["1414/main", "1414/text-connecting"]
    assert call.queue == f"{lang}-general"
    assert record.outcome == "queued"


@both_languages
async def test_a_caller_hears_about_the_telegram_bot_goes_back_twice_and_books_a_slot(
    walk, lang: str
) -> None:
    call, record = await walk(
        Press(LANGUAGE_KEY[lang]), Press("1"), Press("3"), Press("#"), Press("#"), Press("2"), Press("2")
    )
    assert after(visited(record), "egov_telegram") == ["egov", "main", "booking", "queue_booking"]
    assert [(e.node, e.data["action"]) for e in record.events if e.kind == "global"] == [
        ("egov_telegram", "back"),
        ("egov", "back"),
    ]
    assert call.queue == f"{lang}-booking"
    assert record.topic == "booking"


@both_languages
async def test_a_caller_presses_3_for_a_home_visit_and_queues_with_priority(walk, lang: str) -> None:
    call, record = await walk(Press(LANGUAGE_KEY[lang]), Press("3"), Press("2"))
    assert visited(record)[-2:] == ["home_visit", "queue_home_visit"]
    assert call.queue == f"{lang}-general"  # the general line, but ahead of the others
    assert call.variables["QUEUE_PRIO"] == "1"
    said = [(e.command, *e.args[:1]) for e in call.exchanges]
    assert said.index(("SET VARIABLE", "QUEUE_PRIO")) < said.index(("EXEC", "Queue"))
    assert record.outcome == "queued" and record.topic == "home_visit"


@both_languages
async def test_a_driver_reads_about_registration_goes_back_and_asks_about_licences(walk, lang: str) -> None:
    call, record = await walk(
        Press(LANGUAGE_KEY[lang]), Press("4"), Press("1"), Press("#"), Press("2"), Press("2")
    )
    assert after(visited(record), "main") == [
        "vehicles",
        "vehicle_registration",
        "vehicles",
        "driving_licence",
        "queue_vehicles",
    ]
    assert call.queue == f"{lang}-vehicles"


@both_languages
async def test_a_caller_asks_whether_documents_are_ready_has_it_repeated_then_queues(walk, lang: str) -> None:
    call, record = await walk(Press(LANGUAGE_KEY[lang]), Press("5"), Press("*"), Press("2"))
    assert after(visited(record), "main") == ["documents", "documents", "queue_documents"]
    # * during the answer replays it from its start, not the short re-prompt (after_answer)
    assert after(call.prompts, "1414/main")[:2] == ["1414/documents", "1414/documents"]
    assert call.queue == f"{lang}-general"
    assert record.topic == "documents"


@both_languages
async def test_a_caller_asks_about_credits_and_state_programmes_and_is_told_where_to_turn(
    walk, lang: str
) -> None:
    # After the answer about state programmes the caller stays silent for a moment and hangs up.
    call, record = await walk(
        Press(LANGUAGE_KEY[lang]),
        Press("6"),
        Press("1"),
        Press("1"),
        Press("6"),
        Press("2"),
        Silence(),
        HangUp(),
    )
    assert after(visited(record), "main") == [
        "other",
        "credits",
        "main",
        "other",
        "state_programmes",
    ]
    assert call.queue is None and call.dead
    assert record.outcome == "self_served"  # heard an answer, needed nobody


@both_languages
async def test_a_caller_who_hears_an_answer_to_its_end_and_hangs_up_during_the_wait_was_self_served(
    walk, lang: str
) -> None:
    # The usual end of a self-service call on a real Asterisk: the answer and "press * to hear it
    # again..." play to their end, and the caller hangs up while the engine waits for a key
    # (WAIT FOR DIGIT -> 200 result=-1, then HANGUP; the lab's Asterisk 22.10.1, 2026-11-29).
    call, record = await walk(Press(LANGUAGE_KEY[lang]), Press("6"), Press("1"), hangup_at=10)
    assert [e.command for e in call.exchanges[-3:]] == ["STREAM FILE", "STREAM FILE", "WAIT FOR DIGIT"]
    assert after(call.prompts, "1414/other") == ["1414/credits", "1414/text-after_answer"]
    assert call.dead and call.hangup_by == "caller"
    assert record.outcome == "self_served" and record.topic == "credits"


@both_languages
async def test_a_caller_who_hangs_up_during_an_answer_abandoned_it(walk, lang: str) -> None:
    call, record = await walk(Press(LANGUAGE_KEY[lang]), Press("6"), Press("1"), HangUp())
    assert call.exchanges[-1].command == "CHANNEL STATUS"  # the probe after STREAM FILE's -1
    assert after(call.prompts, "1414/other") == ["1414/credits"]
    assert record.outcome == "abandoned"


@both_languages
async def test_a_caller_asks_about_the_health_passport_and_ashyq_then_the_operator(walk, lang: str) -> None:
    call, record = await walk(
        Press(LANGUAGE_KEY[lang]), Press("6"), Press("3"), Press("#"), Press("4"), Press("1"), Press("0")
    )
    assert after(visited(record), "main") == [
        "other",
        "health_passport",
        "other",
        "ashyq",
        "main",
        "operator",
    ]
    assert call.queue == f"{lang}-general"


# --- language switch, open question, goodbye, closed hours --------------------------------------
@both_languages
async def test_a_caller_switches_language_while_reading_about_booking(walk, lang: str) -> None:
    call, record = await walk(Press(LANGUAGE_KEY[lang]), Press("2"), Press("9"), Press("2"))
    other = OTHER[lang]
    assert after(visited(record), "main") == ["booking", "booking", "queue_booking"]
    languages = [e.data["language"] for e in record.events if e.kind == "language"]
    assert languages == [lang, other]
    set_language = [
        e.args[1] for e in call.exchanges if e.command == "SET VARIABLE" and e.args[0] == "CHANNEL(language)"
    ]
    assert set_language[-1] == other
    assert call.language == other and call.queue == f"{other}-booking"
    assert record.language == other


@both_languages
async def test_a_caller_who_cannot_find_a_topic_reaches_the_open_question_and_then_an_operator(
    walk, lang: str
) -> None:
    # Two wrong keys and a silence exhaust the main menu. Without a speech model the open question
    # listens for keys only and has none of its own: two silences exhaust it too, and the default
    # failure target, the operator, takes the caller.
    call, record = await walk(
        Press(LANGUAGE_KEY[lang]), Press("7"), Press("8"), Silence(), Silence(), Silence()
    )
    assert after(visited(record), "greeting") == ["main", "ask_topic", "operator"]
    kinds = [(e.kind, e.node) for e in record.events if e.kind in ("invalid", "silence", "failure")]
    assert kinds == [
        ("invalid", "main"),
        ("invalid", "main"),
        ("silence", "main"),
        ("failure", "main"),
        ("silence", "ask_topic"),
        ("silence", "ask_topic"),
        ("failure", "ask_topic"),
    ]
    assert after(call.prompts, "1414/ask_topic")[:2] == ["1414/text-silence", "1414/ask_topic-short"]
    assert call.queue == f"{lang}-general"
    assert call.queue_result == "answered" and call.hangup_by == "engine"  # handed to an operator


@both_languages
@pytest.mark.parametrize("speech", ["spoken-words"], indirect=True)
async def test_a_caller_says_thank_you_at_the_open_question_and_hears_goodbye(
    walk, lang: str, spoken
) -> None:
    call, record = await walk(
        Press(LANGUAGE_KEY[lang]), Silence(), Silence(), Silence(), Say(spoken(THANKS[lang], lang))
    )
    assert "RECORD FILE" in call.commands
    assert after(visited(record), "greeting") == ["main", "ask_topic", "goodbye"]
    heard = [e.data["text"] for e in record.events if e.kind == "speech"]
    assert heard == ["", "", "", THANKS[lang]]
    assert call.prompts[-1] == "1414/goodbye"
    assert call.commands[-1] == "HANGUP" and call.queue is None
    assert record.outcome == "self_served"


@both_languages
@pytest.mark.parametrize("now", [SATURDAY_NOON])
async def test_a_caller_asks_for_the_operator_when_closed_and_is_led_back_to_the_menu(
    walk, lang: str
) -> None:
    # The caller presses 2 at the callback offer (back to the menu), listens to the answer about
    # documents and hangs up.
    call, record = await walk(
        Press(LANGUAGE_KEY[lang]), Press("0"), Press("2"), Press("5"), Silence(), HangUp()
    )
    assert "1414/text-connecting" not in call.prompts  # nobody to connect to: not promised
    assert after(call.prompts, "1414/greeting")[:2] == ["ivr/closed", "ivr/callback-offer-closed"]
    assert after(visited(record), "operator") == ["main", "documents"]
    assert call.queue is None and "IVR_ROUTED" not in call.variables
    assert any(e.kind == "closed" and e.data == {"queue": f"{lang}-general"} for e in record.events)
    assert record.outcome == "self_served"


@both_languages
@pytest.mark.parametrize("now", [SATURDAY_NOON])
async def test_a_silent_caller_when_closed_hears_the_offer_once_then_goodbye(walk, lang: str) -> None:
    call, record = await walk(Press(LANGUAGE_KEY[lang]))
    assert call.prompts.count("ivr/closed") == 1 and call.prompts.count("ivr/callback-offer-closed") == 1
    assert call.prompts[-1] == "ivr/goodbye" and call.commands[-1] == "HANGUP"
    assert after(visited(record), "greeting") == ["main", "ask_topic", "operator"]
    assert record.outcome == "after_hours"


# --- together -------------------------------------------------------------------------------------
def test_every_node_of_the_menu_is_reached_in_both_languages(menu: Menu) -> None:
    scenarios = {
        (name, lang)
        for name, test in globals().items()
        if name.startswith("test_") and "walk" in inspect.signature(test).parameters
        for lang in ("kk", "ru")
    }
    not_run = scenarios - REACHED.scenarios
    if not_run:
        pytest.skip(f"run the whole module: {len(not_run)} scenarios (test, language) did not run")
    for lang in ("kk", "ru"):
        assert REACHED.nodes[lang] == set(menu.nodes), (
            f"{lang}: never reached {sorted(set(menu.nodes) - REACHED.nodes[lang])}"
        )
