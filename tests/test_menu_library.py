"""Hot reload: valid edits reach new calls, invalid edits are rejected, calls keep their version."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

import pytest

from ivr.menus import MenuLibrary, ValidatorOptions
from ivr.menus.model import Menu

HERE = Path(__file__).parent
OPTIONS = ValidatorOptions(queues_conf=HERE / "menus" / "queues.conf")


@pytest.fixture
def menus_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "menus"
    directory.mkdir()
    shutil.copy(HERE / "menus" / "all_kinds.yaml", directory / "all_kinds.yaml")
    shutil.copy(HERE / "menus" / "_shared.yaml", directory / "_shared.yaml")
    return directory


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    # Make the change visible even on file systems with coarse timestamps.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_loads_menus_but_not_fragments(menus_dir: Path) -> None:
    library = MenuLibrary(menus_dir, OPTIONS)
    assert library.reload() == ["all_kinds"]
    assert library.names() == ["all_kinds"]
    assert library.get("_shared") is None
    assert library.get("nope") is None


def test_valid_edit_is_picked_up_and_running_calls_keep_their_version(menus_dir: Path) -> None:
    changes: list[tuple[str, Menu | None]] = []
    library = MenuLibrary(menus_dir, OPTIONS, on_change=lambda name, menu: changes.append((name, menu)))
    library.reload()
    in_progress = library.get("all_kinds")
    assert library.poll() == []  # nothing changed

    _edit(menus_dir / "all_kinds.yaml", "Бір немесе екі.", "Бір, екі немесе үш.")
    assert library.poll() == ["all_kinds"]
    fresh = library.get("all_kinds")
    assert fresh is not in_progress
    assert fresh.nodes["main"].say[0].texts.kk == "Бір, екі немесе үш."
    assert in_progress.nodes["main"].say[0].texts.kk == "Бір немесе екі."
    assert [name for name, _ in changes] == ["all_kinds", "all_kinds"]
    assert changes[-1][1] is fresh


def test_an_edit_to_an_included_fragment_reloads_the_menu(menus_dir: Path) -> None:
    library = MenuLibrary(menus_dir, OPTIONS)
    library.reload()
    _edit(menus_dir / "_shared.yaml", "priority: 2", "priority: 5")
    assert library.poll() == ["all_kinds"]
    assert library.get("all_kinds").nodes["operator"].priority == 5


def test_invalid_edit_is_rejected_logged_and_the_old_menu_kept(
    menus_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    library = MenuLibrary(menus_dir, OPTIONS)
    library.reload()
    good = library.get("all_kinds")
    _edit(menus_dir / "all_kinds.yaml", "goto: book, phrases", "goto: bok, phrases")
    with caplog.at_level(logging.ERROR, logger="ivr.menus.library"):
        assert library.poll() == []
    assert library.get("all_kinds") is good
    assert "menu all_kinds rejected (2 errors), keeping the previous version:" in caplog.text
    assert f"{menus_dir / 'all_kinds.yaml'}:45:" in caplog.text and 'leads to "bok"' in caplog.text
    assert library.problems["all_kinds"][0].message.startswith('node "main" leads to "bok"')
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="ivr.menus.library"):
        assert library.poll() == []  # the broken file is not re-read and re-logged every poll
    assert caplog.text == ""
    _edit(menus_dir / "all_kinds.yaml", "goto: bok, phrases", "goto: book, phrases")
    assert library.poll() == ["all_kinds"]
    assert library.get("all_kinds") is not good


def test_one_error_is_counted_as_one(menus_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    library = MenuLibrary(menus_dir, OPTIONS)
    library.reload()
    _edit(menus_dir / "all_kinds.yaml", "  timeout: 4\n", "  timeout: 400\n")
    with caplog.at_level(logging.ERROR, logger="ivr.menus.library"):
        assert library.poll() == []
    [rejected, problem] = [r.getMessage() for r in caplog.records]
    assert rejected == "menu all_kinds rejected (1 error), keeping the previous version:"
    assert "timeout" in problem


def test_new_and_removed_files(menus_dir: Path) -> None:
    library = MenuLibrary(menus_dir, OPTIONS)
    library.reload()
    shutil.copy(menus_dir / "all_kinds.yaml", menus_dir / "second.yaml")
    assert library.poll() == ["second"]
    (menus_dir / "second.yaml").unlink()
    assert library.poll() == ["second"]
    assert library.get("second") is None


async def test_watch_reloads_within_two_seconds(menus_dir: Path) -> None:
    library = MenuLibrary(menus_dir, OPTIONS)
    library.reload()
    changed = asyncio.Event()
    library.on_change(lambda name, menu: changed.set())
    watcher = asyncio.create_task(library.watch(interval=0.1))
    try:
        _edit(menus_dir / "all_kinds.yaml", "Бір немесе екі.", "Үш.")
        await asyncio.wait_for(changed.wait(), timeout=2)
        assert library.get("all_kinds").nodes["main"].say[0].texts.kk == "Үш."
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher


def test_a_reloaded_menu_is_prepared_for_speech_before_a_call_can_get_it(menus_dir: Path) -> None:
    from ivr.engine.services import EngineServices
    from ivr.menus.model import InputNode, LanguageNode, QuestionNode

    services = EngineServices()
    library = MenuLibrary(menus_dir, OPTIONS)
    library.reload()
    seen_in_service: list[Menu | None] = []

    def prepare(menu: Menu) -> None:
        seen_in_service.append(library.get("all_kinds"))
        services.prepare(menu)

    library.prepare_with(prepare)
    old = library.get("all_kinds")
    _edit(menus_dir / "all_kinds.yaml", "Бір немесе екі.", "Бір, екі немесе үш.")
    assert library.poll() == ["all_kinds"]
    fresh = library.get("all_kinds")
    assert seen_in_service == [old]  # prepared while the previous version still served calls

    built = services._matchers[fresh]
    listening = [n for n in fresh.nodes.values() if isinstance(n, InputNode) and n.input.speech]
    assert listening
    for node in listening:
        if isinstance(node, LanguageNode):
            assert {("language", f"{node.id}/{lang}") for lang in ("kk", "ru")} <= set(built)
        elif isinstance(node, QuestionNode):
            assert ("intents", node.id) in built
        else:
            assert {("grammar", f"{node.id}/{lang}") for lang in ("kk", "ru")} <= set(built)
    # What a call asks for later is what was built then, not built again.
    for node in listening:
        if isinstance(node, LanguageNode):
            assert services.language_matcher(fresh, node, "ru") is built[("language", f"{node.id}/ru")]
        elif isinstance(node, QuestionNode):
            assert services.classifier(fresh, node) is built[("intents", node.id)]
        else:
            assert services.grammar(fresh, node, "ru") is built[("grammar", f"{node.id}/ru")]
