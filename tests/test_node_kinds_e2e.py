"""Each node kind, and the retries and timeouts of input nodes, through the fake Asterisk into a real
engine running small purpose-built menus (tests/engine_menus/kinds/), with real espeak-ng prompts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ivr.clock import FixedClock
from ivr.config import AgiSettings, PromptSettings, Settings, SpeechSettings
from ivr.contact.hours import resolve_timezone
from ivr.engine.services import EngineServices
from ivr.journal.journal import OUTCOMES, CallRecord
from ivr.testing.fake_caller import DEFAULT_PROMPT_SAMPLES, FakeCall, HangUp, Press, Silence
from tests.speech_support import build_menu_prompts

MENUS = Path(__file__).parent / "engine_menus" / "kinds"
TUESDAY_MORNING = dt.datetime(2026, 3, 3, 10, 0, tzinfo=resolve_timezone("Asia/Almaty"))
RUSSIAN = Press("2")  # the welcome's key for Russian


# --- the engine under test ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def prompts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_menu_prompts(MENUS, tmp_path_factory.mktemp("prompts"))


@pytest.fixture
def engine_settings(tmp_path: Path, prompts_dir: Path) -> Settings:
    (tmp_path / "spool").mkdir()
    return Settings(
        menus_dir=str(MENUS),
        default_menu="kinds",
        state_dir=str(tmp_path / "state"),
        agi=AgiSettings(bind="127.0.0.1:0", shutdown_grace=2.0),
        prompts=PromptSettings(dir=str(prompts_dir)),
        speech=SpeechSettings(spool=str(tmp_path / "spool")),
    )


@pytest.fixture
def clock():
    """Operators at work; a test parametrises this to break the engine's clock."""
    return FixedClock(TUESDAY_MORNING)


@pytest.fixture
def engine_services(engine_settings: Settings, clock) -> EngineServices:
    return EngineServices(settings=engine_settings, clock=clock)


@pytest.fixture
def dial(engine, place_call):
    """Call a menu of tests/engine_menus/kinds/ and return (call, journal record)."""

    async def run(*script, menu: str = "kinds", **options) -> tuple[FakeCall, CallRecord]:
        call = await place_call(*script, agi_script=menu, **options)
        record = await engine.services.state.journal.call(call.uniqueid)
        assert record is not None
        return call, record

    return run


def visited(record: CallRecord) -> list[str]:
    return [e.node for e in record.events if e.kind == "node"]


def events(record: CallRecord, *kinds: str) -> list[tuple[str, str]]:
    return [(e.kind, e.node) for e in record.events if e.kind in kinds]


def variable_sets(call: FakeCall) -> list[tuple[str, ...]]:
    return [e.args for e in call.exchanges if e.command == "SET VARIABLE"]


def after(sequence: list[str], first: str) -> list[str]:
    return sequence[sequence.index(first) + 1 :]


def waits(call: FakeCall) -> list[str]:
    """The timeouts (ms) of every WAIT FOR DIGIT, in order."""
    return [e.args[0] for e in call.exchanges if e.command == "WAIT FOR DIGIT"]


# --- language -------------------------------------------------------------------------------------
async def test_language_node_sets_the_channel_language_for_the_rest_of_the_call(dial) -> None:
    call, record = await dial(RUSSIAN, Press("7"))
    languages = [args[1] for args in variable_sets(call) if args[0] == "CHANNEL(language)"]
    # the default language, which is also the greeting's first voice (where 2 was pressed), then the choice
    assert languages == ["kk", "ru"]
    assert [e.data for e in record.events if e.kind == "language"] == [{"language": "ru", "how": "dtmf"}]
    assert call.language == "ru" and call.queue == "ru-egov"
    assert record.language == "ru"


async def test_language_greeting_is_played_in_kazakh_then_russian_before_waiting(dial) -> None:
    call, record = await dial(Silence(), Press("1"), Press("7"))
    assert call.prompts[:3] == ["kinds/welcome", "kinds/welcome", "kinds/welcome"]
    languages = [args[1] for args in variable_sets(call) if args[0] == "CHANNEL(language)"]
    # both voices, back to the call's language for "we did not hear you", then 1 chose Kazakh
    assert languages[:4] == ["kk", "ru", "kk", "kk"]
    assert events(record, "silence") == [("silence", "welcome")]
    assert call.queue == "kk-egov"


async def test_a_caller_who_never_chooses_continues_in_the_default_language(dial) -> None:
    call, record = await dial(Silence(), Silence(), Press("7"))
    assert events(record, "silence") == [("silence", "welcome"), ("silence", "welcome")]
    assert [e.data for e in record.events if e.kind == "language"] == [{"language": "kk", "how": "default"}]
    assert visited(record)[:3] == ["welcome", "intro", "main"]
    assert call.queue == "kk-egov"


async def test_the_language_key_switches_language_and_replays_the_node(dial) -> None:
    call, record = await dial(RUSSIAN, Press("9"), Press("7"))
    # 9 during the info node: it is said again, in Kazakh
    assert visited(record) == ["welcome", "intro", "intro", "main", "quick_queue"]
    assert call.prompts[1:3] == ["kinds/intro", "kinds/intro"]
    assert call.language == "kk" and call.queue == "kk-egov"
    call, record = await dial(RUSSIAN, Press("5"), Press("9"), Press("1"), Press("7"))
    assert after(visited(record), "intro") == ["main", "section", "section", "up", "main", "quick_queue"]
    assert [e.data["language"] for e in record.events if e.kind == "language"] == ["ru", "kk"]
    assert call.language == "kk" and call.queue == "kk-egov"


# --- menu, info, question -----------------------------------------------------------------------
async def test_menu_option_key_leads_to_its_target(dial) -> None:
    call, record = await dial(RUSSIAN, Press("7"))
    assert visited(record) == ["welcome", "intro", "main", "quick_queue"]
    assert [e.data["target"] for e in record.events if e.kind == "choice"] == ["quick_queue"]
    assert call.queue == "ru-egov"


async def test_info_node_plays_and_continues_and_menu_wide_keys_work_while_it_plays(dial) -> None:
    call, record = await dial(RUSSIAN, Press("7"))  # 7 is no menu-wide key: the info plays to its end
    assert call.prompts[1:3] == ["kinds/intro", "kinds/main"]
    assert next(e.reply for e in call.exchanges if e.args[:1] == ("kinds/intro",)).startswith("200 result=0 ")
    call, record = await dial(RUSSIAN, Press("0"))
    assert visited(record) == ["welcome", "intro", "operator"]
    assert call.prompts[-2:] == ["kinds/intro", "kinds/text-connecting"]
    assert call.queue == "ru-general"


async def test_the_repeat_key_during_an_info_node_says_it_again(dial) -> None:
    call, record = await dial(RUSSIAN, Press("*"), Press("7"))
    assert visited(record) == ["welcome", "intro", "intro", "main", "quick_queue"]
    assert call.queue == "ru-egov"


async def test_question_node_takes_a_key_when_speech_is_unavailable(dial) -> None:
    call, record = await dial(RUSSIAN, Press("6"), Press("1"), HangUp())
    assert after(visited(record), "main") == ["topic_question", "section"]
    assert "RECORD FILE" not in call.commands  # no speech model: DTMF only


async def test_question_node_with_nothing_said_ends_with_the_operator(dial) -> None:
    call, record = await dial(RUSSIAN, Press("6"), Silence(), Silence())
    assert events(record, "silence", "failure") == [
        ("silence", "topic_question"),
        ("silence", "topic_question"),
        ("failure", "topic_question"),
    ]
    assert visited(record)[-1] == "operator" and call.queue == "ru-general"


# --- queue ----------------------------------------------------------------------------------------
async def test_queue_node_sets_priority_and_timeout_and_queues_in_the_callers_language(dial) -> None:
    call, record = await dial(RUSSIAN, Press("1"))
    assert call.prompts[-1] == "kinds/text-connecting"
    assert ("Queue", ["ru-booking", "t", "", "", "30"]) in call.applications
    sets = variable_sets(call)
    assert sets.index(("IVR_ROUTED", "1")) < sets.index(("QUEUE_PRIO", "2"))
    assert [e.data for e in record.events if e.kind == "queue_result"] == [{"status": "ANSWERED"}]
    assert record.outcome == "queued"


async def test_queue_without_priority_or_timeout_uses_the_engine_default(dial) -> None:
    call, _ = await dial(RUSSIAN, Press("7"))
    assert call.applications[-1] == ("Queue", ["ru-egov", "t", "", "", "900"])
    assert "QUEUE_PRIO" not in call.variables


async def test_queue_timeout_goes_to_the_nodes_next(dial) -> None:
    call, record = await dial(RUSSIAN, Press("1"), queue_outcome="timeout")
    assert after(visited(record), "main") == ["priority_queue", "sorry"]
    assert [e.data for e in record.events if e.kind == "queue_result"] == [{"status": "TIMEOUT"}]
    assert call.prompts[-1] == "kinds/sorry" and call.commands[-1] == "HANGUP"


async def test_a_caller_the_queue_gave_back_is_not_counted_as_self_served(dial) -> None:
    _, record = await dial(RUSSIAN, Press("1"), queue_outcome="timeout")
    assert record.outcome == "no_operator"


async def test_queue_timeout_without_next_apologises_hangs_up_and_is_journalled_no_operator(dial) -> None:
    call, record = await dial(RUSSIAN, Press("7"), queue_outcome="timeout")
    assert call.prompts[-1] == "ivr/operators-busy" and call.hangup_by == "engine"
    assert record.outcome == "no_operator"


async def test_caller_hanging_up_in_the_queue_ends_the_call_cleanly(dial, engine) -> None:
    call, record = await dial(RUSSIAN, Press("1"), queue_outcome="hangup")
    assert call.dead and call.queue == "ru-booking"
    assert engine.server.stats.handler_errors == 0
    assert record.outcome in OUTCOMES


# --- transfer, hang-up ----------------------------------------------------------------------------
async def test_transfer_node_leaves_the_agi_at_the_new_dialplan_place(dial) -> None:
    call, record = await dial(RUSSIAN, Press("2"))
    assert call.prompts[-1] == "kinds/office"
    assert [(e.command, e.args) for e in call.exchanges[-3:]] == [
        ("SET CONTEXT", ("from-ivr",)),
        ("SET EXTENSION", ("+77172000000",)),
        ("SET PRIORITY", ("1",)),
    ]
    assert call.variables["IVR_ROUTED"] == "1"
    assert call.queue is None
    assert record.outcome == "transferred"


async def test_hangup_node_says_goodbye_and_hangs_up(dial) -> None:
    call, record = await dial(RUSSIAN, Press("3"))
    assert call.prompts[-1] == "kinds/goodbye"
    assert call.commands[-1] == "HANGUP" and call.dead
    assert call.queue is None
    assert record.outcome == "self_served"


# --- goto, back, top, repeat ----------------------------------------------------------------------
async def test_goto_node_jumps_to_its_target(dial) -> None:
    call, record = await dial(RUSSIAN, Press("4"), HangUp())
    assert after(visited(record), "main") == ["shortcut", "section"]
    assert call.prompts[-1] == "kinds/section"  # a jump says nothing itself


async def test_back_node_returns_to_the_previous_menu(dial) -> None:
    call, record = await dial(RUSSIAN, Press("5"), Press("1"), Press("7"))
    assert after(visited(record), "main") == ["section", "up", "main", "quick_queue"]
    assert after(call.prompts, "kinds/section")[0] == "kinds/main"  # a back node says nothing itself


async def test_top_node_returns_to_the_node_after_the_language_choice(dial) -> None:
    call, record = await dial(RUSSIAN, Press("5"), Press("2"), Press("7"))
    assert after(visited(record), "main") == ["section", "home", "intro", "main", "quick_queue"]
    assert after(call.prompts, "kinds/section")[:2] == ["kinds/intro", "kinds/main"]


async def test_repeat_node_plays_the_menu_again_from_its_long_prompt(dial) -> None:
    call, record = await dial(RUSSIAN, Press("5"), Press("3"), Press("1"), Press("7"))
    assert after(visited(record), "main") == ["section", "again", "section", "up", "main", "quick_queue"]
    assert call.prompts.count("kinds/section") == 2


async def test_menu_wide_repeat_and_back_keys(dial) -> None:
    call, record = await dial(RUSSIAN, Press("5"), Press("*"), Press("#"), Press("7"))
    assert after(visited(record), "main") == ["section", "section", "main", "quick_queue"]
    assert call.prompts.count("kinds/section") == 2 and call.queue == "ru-egov"
    assert [e.data["action"] for e in record.events if e.kind == "global"] == ["repeat", "back"]


# --- retries and timeouts -------------------------------------------------------------------------
async def test_invalid_key_then_silence_exhausts_retries_and_takes_on_failure(dial) -> None:
    call, record = await dial(Press("5"), Silence(), menu="retries")
    assert call.prompts == [
        "retries/ask",
        "retries/ask-invalid",
        "retries/ask-short",  # greet-short on the second try
        "retries/ask-silence",
        "retries/fallback",
    ]
    assert events(record, "invalid", "silence", "failure") == [
        ("invalid", "ask"),
        ("silence", "ask"),
        ("failure", "ask"),
    ]
    assert call.queue == "ru-egov"  # on_failure: fallback, not the operator


async def test_digit_timeout_comes_from_the_node(dial) -> None:
    call, _ = await dial(Silence(), Silence(), menu="retries")
    assert waits(call) == ["4000", "4000"]
    assert call.queue == "ru-egov"


async def test_a_two_digit_key_waits_the_inter_digit_timeout_for_the_second_digit(dial) -> None:
    call, record = await dial(Press("13"), menu="retries")
    assert waits(call) == ["1500"]  # the first digit interrupted the prompt
    assert call.queue == "ru-general"
    assert [e.data["target"] for e in record.events if e.kind == "choice"] == ["documents"]


async def test_a_caller_who_stops_after_one_digit_of_two_is_told_it_is_invalid(dial) -> None:
    call, record = await dial(Press("1"), Silence(), Press("12"), menu="retries")
    # 1 interrupts the prompt; the second digit never comes, and later 1 and 2 are pressed together
    assert waits(call) == ["1500", "1500"]
    assert [e.data for e in record.events if e.kind == "invalid"] == [{"input": "1"}]
    assert call.prompts[:3] == ["retries/ask", "retries/ask-invalid", "retries/ask-short"]
    assert call.queue == "ru-booking"


async def test_default_failure_target_is_the_operator(dial) -> None:
    call, record = await dial(RUSSIAN, Silence(), Silence(), Silence())
    assert after(visited(record), "intro") == ["main", "operator"]
    assert events(record, "silence", "failure") == [
        ("silence", "main"),
        ("silence", "main"),
        ("failure", "main"),
    ]
    assert call.queue == "ru-general"


# --- failures -------------------------------------------------------------------------------------
def missing(*names: str):
    return lambda name: None if name in names else DEFAULT_PROMPT_SAMPLES


async def test_a_missing_prompt_file_is_journalled_and_the_call_goes_on(dial, engine) -> None:
    call, record = await dial(RUSSIAN, Press("7"), prompt_samples=missing("kinds/main", "kinds/intro"))
    assert call.queue == "ru-egov"
    assert [e.data for e in record.events if e.kind == "missing_sound"] == [
        {"sound": "kinds/intro", "lang": "ru"},
        {"sound": "kinds/main", "lang": "ru"},
    ]
    assert not events(record, "error")
    assert record.outcome == "queued"
    assert engine.server.stats.handler_errors == 0


class BrokenClock(FixedClock):
    """The journal's timestamps still work; the moment opening hours ask for does not."""

    def now(self) -> dt.datetime:
        raise OSError("clock source unavailable")


@pytest.mark.parametrize("clock", [BrokenClock(TUESDAY_MORNING)])
async def test_an_engine_error_mid_call_apologises_and_queues_the_caller_with_an_operator(
    dial, engine
) -> None:
    call, record = await dial(RUSSIAN, Press("1"))  # the queue node asks the clock for opening hours
    assert call.prompts[-1] == "ivr/technical-problem"
    assert call.queue == "ru-general"  # the operator queue of the caller's language
    assert call.variables["IVR_ROUTED"] == "1"
    assert [e.data["error"] for e in record.events if e.kind == "error"] == [
        "OSError: clock source unavailable"
    ]
    assert record.outcome == "failed"
    assert engine.server.stats.handler_errors == 0


@pytest.mark.parametrize("clock", [BrokenClock(TUESDAY_MORNING)])
async def test_after_an_engine_error_a_refused_operator_queue_is_said_not_left_silent(dial) -> None:
    call, _ = await dial(RUSSIAN, Press("1"), queue_outcome="joinempty")
    assert call.queue == "ru-general"
    assert call.prompts[-2:] == ["ivr/technical-problem", "ivr/operators-busy"]
    assert call.hangup_by == "engine"


async def test_a_caller_hanging_up_at_any_step_is_journalled_and_costs_no_handler_error(dial, engine) -> None:
    # Language, info, menu, goto, repeat, back, queue given back by timeout, hang-up node.
    script = (RUSSIAN, Press("4"), Press("3"), Press("1"), Press("1"))
    full, record = await dial(*script, queue_outcome="timeout")
    assert after(visited(record), "main") == [
        "shortcut", "section", "again", "section", "up", "main", "priority_queue", "sorry",
    ]  # fmt: skip
    outcomes = {}
    for step in range(1, len(full.exchanges) + 1):
        call, record = await dial(*script, queue_outcome="timeout", hangup_at=step)
        assert call.dead, step
        assert record.ended_at is not None and record.outcome in OUTCOMES, (step, full.exchanges[step - 1])
        outcomes[step] = record.outcome
    assert engine.server.stats.handler_errors == 0
    # Gone before the Queue application ran, or while waiting in it: abandoned.
    queue_step = 1 + next(i for i, e in enumerate(full.exchanges) if e.args[:1] == ("Queue",))
    assert {outcomes[step] for step in range(1, queue_step + 1)} == {"abandoned"}, outcomes
    assert engine.server.stats.calls_finished == len(full.exchanges) + 1
