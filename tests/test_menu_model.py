"""The menu model as the engine sees it: node kinds, sound names, queues and phrases."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import attrs
import pytest

from ivr.menus import ValidatorOptions, check_menu, load_menu
from ivr.menus import model as m
from ivr.texts import LANGUAGES

HERE = Path(__file__).parent
FIXTURES = HERE / "menus"
REAL_MENU = HERE.parent / "menus" / "1414.yaml"
REAL_QUEUES = HERE.parent / "asterisk-conf" / "queues.conf"
OPTIONS = ValidatorOptions(queues_conf=FIXTURES / "queues.conf")


@pytest.fixture(scope="module")
def menu() -> m.Menu:
    return load_menu(FIXTURES / "all_kinds.yaml", OPTIONS)


def test_every_node_kind_parses_into_its_class(menu: m.Menu) -> None:
    kinds = {node.id: node.kind for node in menu.nodes.values()}
    assert kinds == {
        "hello": "language",
        "intro": "info",
        "main": "menu",
        "ask": "question",
        "book": "queue",
        "transfer_office": "transfer",
        "bye": "hangup",
        "alias": "goto",
        "jump_back": "back",
        "to_top": "top",
        "again": "repeat",
        "operator": "queue",  # from the included fragment _shared.yaml
    }
    assert set(kinds.values()) == set(m.NODE_KINDS)


def test_language_node_has_choices_and_next(menu: m.Menu) -> None:
    hello = menu.nodes["hello"]
    assert isinstance(hello, m.LanguageNode)
    assert [(c.key, c.language) for c in hello.choices] == [("1", "kk"), ("2", "ru")]
    assert hello.choices[0].phrases.kk == ("қазақша",)
    assert hello.next == m.Target("node", "intro")
    assert menu.top == "intro"  # the node after the language choice, when top: is not given


def test_menu_node_carries_resolved_input_settings_and_prompts(menu: m.Menu) -> None:
    main = menu.nodes["main"]
    assert isinstance(main, m.MenuNode)
    assert main.input == m.InputSettings(
        modes=frozenset({"dtmf"}), timeout=7.5, inter_digit_timeout=1.5, retries=4, max_digits=2
    )
    assert [prompt.sound for prompt in main.say] == ["all_kinds/main"]
    assert [prompt.sound for prompt in main.short] == ["all_kinds/main-short"]
    assert [prompt.sound for prompt in main.invalid] == ["all_kinds/main-invalid"]
    # silence comes from defaults:, as an inline text of the menu
    assert [prompt.sound for prompt in main.silence] == ["all_kinds/default-silence"]
    assert main.on_failure == m.Target("node", "ask")
    assert [(o.key, str(o.target)) for o in main.options] == [
        ("1", "book"),
        ("2", "ask"),
        ("31", "transfer_office"),
        ("0", "operator"),
        ("8", "repeat"),
    ]
    assert main.option_for_key("31").target.node == "transfer_office"
    assert main.sound_names() == (
        "all_kinds/main",
        "all_kinds/main-short",
        "all_kinds/main-invalid",
        "all_kinds/default-silence",
    )


def test_defaults_apply_where_a_node_says_nothing(menu: m.Menu) -> None:
    ask = menu.nodes["ask"]
    assert isinstance(ask, m.QuestionNode)
    assert ask.input.modes == frozenset({"speech"})
    assert ask.input.timeout == 4.0 and ask.input.retries == 2  # from defaults:
    assert ask.invalid[0].shared_id == "sorry" and ask.invalid[0].sound == "all_kinds/text-sorry"
    assert ask.on_failure == m.Target("node", "operator")  # keys.operator is the default failure target
    assert all(option.key is None for option in ask.options)


def test_say_may_chain_inline_and_shared_texts(menu: m.Menu) -> None:
    intro = menu.nodes["intro"]
    assert isinstance(intro, m.InfoNode)
    assert [p.sound for p in intro.say] == ["all_kinds/intro", "all_kinds/text-thanks", "all_kinds/intro-2"]
    assert intro.say[1].texts == m.Texts(kk="Рахмет.", ru="Спасибо.")
    assert intro.next.node == "main"


def test_queue_transfer_hangup_and_jump_nodes(menu: m.Menu) -> None:
    operator = menu.nodes["operator"]
    assert isinstance(operator, m.QueueNode)
    assert (operator.queue.kk, operator.queue.ru) == ("kk-general", "ru-general")
    assert (operator.priority, operator.timeout, operator.callback_offer) == (2, 300, True)
    assert operator.next == m.Target("node", "bye")
    book = menu.nodes["book"]
    assert isinstance(book, m.QueueNode)
    assert (book.priority, book.timeout, book.callback_offer, book.next) == (0, None, False, None)
    transfer = menu.nodes["transfer_office"]
    assert isinstance(transfer, m.TransferNode)
    assert (transfer.to, transfer.context) == ("+77172000000", "from-ivr")
    assert menu.nodes["bye"].sound_names() == ("all_kinds/text-thanks",)
    assert menu.nodes["alias"].target == m.Target("node", "main")
    assert [type(menu.nodes[n]) for n in ("jump_back", "to_top", "again")] == [
        m.BackNode,
        m.TopNode,
        m.RepeatNode,
    ]


def test_global_keys_and_operator(menu: m.Menu) -> None:
    assert {a: k.key for a, k in menu.global_keys.items()} == {
        "operator": "0",
        "language": "9",
        "repeat": "*",
        "back": "#",
    }
    assert menu.operator == "operator"
    assert menu.global_key_for("#").action == "back"
    assert menu.global_key_for("5") is None


def test_hours_are_kept_as_data(menu: m.Menu) -> None:
    hours = menu.hours
    assert hours is not None and hours.timezone == "Asia/Almaty"
    assert hours.week["mon"] == ((dt.time(9), dt.time(18)),)
    assert hours.week["tue"] == ((dt.time(9), dt.time(13)), (dt.time(14), dt.time(18)))
    assert "sat" not in hours.week
    assert hours.holidays == (dt.date(2026, 3, 21), dt.date(2026, 12, 16))


def test_prompt_texts_lists_every_text_once_in_both_languages(menu: m.Menu) -> None:
    texts = menu.prompt_texts()
    names = [t.name for t in texts]
    assert len(names) == len(set(zip(names, [t.language for t in texts], strict=True)))
    assert {t.language for t in texts} == set(LANGUAGES)
    by_key = {(t.name, t.language): t.text for t in texts}
    assert by_key[("all_kinds/text-sorry", "ru")] == "Извините, мы не поняли."
    assert by_key[("all_kinds/main-invalid", "kk")] == "Ондай батырма жоқ."
    for node in menu.nodes.values():
        for sound in node.sound_names():
            assert (sound, "kk") in by_key and (sound, "ru") in by_key
    for name in names:
        assert all(ch in "abcdefghijklmnopqrstuvwxyz0123456789_-/" for ch in name), name


def test_sound_names_do_not_depend_on_other_nodes(tmp_path: Path) -> None:
    source = (FIXTURES / "all_kinds.yaml").read_text(encoding="utf-8")
    (tmp_path / "_shared.yaml").write_text((FIXTURES / "_shared.yaml").read_text(encoding="utf-8"))
    before = tmp_path / "all_kinds.yaml"
    before.write_text(source, encoding="utf-8")
    first = load_menu(before, OPTIONS)
    # Insert a node before the others and change a text of another node: names of the rest hold.
    edited = source.replace(
        "nodes:\n  hello:",
        'nodes:\n  extra:\n    kind: hangup\n    say: {kk: "Жаңа.", ru: "Новое."}\n  hello:',
    ).replace("Бір немесе екі.", "Бір, екі немесе үш.")
    before.write_text(edited, encoding="utf-8")
    second = check_menu(before, OPTIONS).menu
    assert second is not None
    for node_id, node in first.nodes.items():
        assert second.nodes[node_id].sound_names() == node.sound_names()
    assert second.nodes["extra"].sound_names() == ("all_kinds/extra",)


def test_queues_and_speech_phrases(menu: m.Menu) -> None:
    assert menu.queues() == ["kk-booking", "ru-booking", "kk-general", "ru-general"]
    ru = menu.speech_phrases("ru")
    assert {"оператор", "назад", "запись", "очередь", "русский", "вернуться"} <= set(ru)
    assert len(ru) == len(set(ru))
    assert "қазақша" in menu.speech_phrases("kk")


def test_menu_is_immutable(menu: m.Menu) -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        menu.start = "main"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        menu.nodes["main"].topic = "other"  # type: ignore[misc]


def _real_options() -> ValidatorOptions:
    return ValidatorOptions(
        queues_conf=REAL_QUEUES if REAL_QUEUES.exists() else FIXTURES / "queues_1414.conf"
    )


def test_the_1414_menu_validates_clean() -> None:
    result = check_menu(REAL_MENU, _real_options())
    assert result.problems == []
    assert result.menu is not None


def test_the_1414_menu_shape() -> None:
    menu = load_menu(REAL_MENU, _real_options())
    welcome = menu.nodes[menu.start]
    assert isinstance(welcome, m.LanguageNode)
    assert [c.language for c in welcome.choices] == ["kk", "ru"]  # Kazakh first, the state language
    assert menu.default_language == "kk"
    assert menu.global_keys["operator"].key == "0" and menu.operator == "operator"
    assert sorted(menu.queues()) == sorted(
        f"{lang}-{q}" for q in ("general", "egov", "booking", "vehicles") for lang in ("kk", "ru")
    )
    main = menu.nodes["main"]
    assert isinstance(main, m.MenuNode)
    assert {o.target.node for o in main.options} == {
        "egov",
        "booking",
        "home_visit",
        "vehicles",
        "documents",
        "other",
        "operator",
    }
    assert main.on_failure.node == "ask_topic" and isinstance(menu.nodes["ask_topic"], m.QuestionNode)
    # every input node offers phrases in both languages for every option it has its own reason for
    for node in menu.nodes.values():
        for option in getattr(node, "options", ()):
            if option.key == "0":
                continue
            assert option.phrases.kk and option.phrases.ru, (node.id, option)
    # the out-of-remit answers say where to turn
    texts = {t.name: t.text for t in menu.prompt_texts() if t.language == "ru"}
    assert "банк" in texts["1414/credits"]
    assert "акимат" in texts["1414/state_programmes"]
    assert "поликлиник" in texts["1414/health_passport"]
    assert "Ashyq" in texts["1414/ashyq"]
    assert menu.hours is not None and menu.hours.week["mon"] == ((dt.time(9), dt.time(18)),)
