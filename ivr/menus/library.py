"""All menus of a directory, reloaded when their files change.

A call takes `library.get(name)` once at its start and keeps that Menu object: menus are immutable,
so a reload only swaps which object new calls get, and calls in progress finish on their version.
An edit that does not validate is rejected with its errors logged (file:line:column) and the last
good version stays in service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from ivr.menus.loader import check_menu, menu_files
from ivr.menus.model import Menu
from ivr.menus.problems import MenuProblem
from ivr.menus.validator import ValidatorOptions

log = logging.getLogger(__name__)

ChangeCallback = Callable[[str, "Menu | None"], None]
_Signature = tuple[tuple[str, int, int], ...]


def _signature(files: list[str] | tuple[str, ...]) -> _Signature:
    """What we compare between polls: each file's mtime and size (0, -1 when it is gone)."""
    result = []
    for name in files:
        try:
            stat = os.stat(name)
            result.append((name, stat.st_mtime_ns, stat.st_size))
        except OSError:
            result.append((name, 0, -1))
    return tuple(result)


class MenuLibrary:
    def __init__(
        self,
        menus_dir: str | os.PathLike[str],
        options: ValidatorOptions | None = None,
        on_change: ChangeCallback | None = None,
    ) -> None:
        self.menus_dir = Path(menus_dir)
        self.options = options or ValidatorOptions()
        self._menus: dict[str, Menu] = {}
        self._seen: dict[str, _Signature] = {}  # menu file -> signature of the files last read for it
        self._lock = threading.Lock()
        self._pending: list[tuple[str, Menu | None]] = []
        self._callbacks: list[ChangeCallback] = [on_change] if on_change else []
        self._preparers: list[Callable[[Menu], None]] = []
        self.problems: dict[str, list[MenuProblem]] = {}  # menu name -> problems of the last attempt

    # -- queries ---------------------------------------------------------------------------------

    def get(self, name: str) -> Menu | None:
        """The current good version of a menu, or None if there never was one."""
        return self._menus.get(name)

    def names(self) -> list[str]:
        return sorted(self._menus)

    def menus(self) -> dict[str, Menu]:
        return dict(self._menus)

    def on_change(self, callback: ChangeCallback) -> None:
        """callback(name, menu) after a menu is (re)loaded; menu is None when its file was removed."""
        self._callbacks.append(callback)

    def prepare_with(self, prepare: Callable[[Menu], None]) -> None:
        """prepare(menu) for each menu loaded from now on, in the loading thread before the menu is
        put in service: work every call would otherwise do on the event loop the first time."""
        self._preparers.append(prepare)

    # -- loading ---------------------------------------------------------------------------------

    def reload(self) -> list[str]:
        """Re-read every menu file now; returns the names whose menu changed."""
        return self._deliver(self._scan(force=True))

    async def reload_off_loop(self) -> list[str]:
        """reload() for a running engine (SIGHUP): the files are read and checked in a worker thread,
        so calls on the event loop never wait for YAML (the 1414 menu: ~0.1 s; a 2,000-node one:
        ~0.5 s); each finished menu is swapped in whole, and the callbacks run on the loop."""
        return self._deliver(await asyncio.to_thread(self._scan, True))

    def poll(self) -> list[str]:
        """Re-read only menu files that changed (or whose included fragments changed) since last time."""
        return self._deliver(self._scan(force=False))

    def _scan(self, force: bool) -> list[tuple[str, Menu | None]]:
        with self._lock:  # SIGHUP reload and the watcher's poll thread may overlap
            self._pending = []
            self._scan_locked(force)
            return self._pending

    def _deliver(self, changes: list[tuple[str, Menu | None]]) -> list[str]:
        """Run the callbacks in the caller's thread (the event loop's, for watch())."""
        for name, menu in changes:
            for callback in self._callbacks:
                try:
                    callback(name, menu)
                except Exception:
                    log.exception("menu change callback failed for %s", name)
        return [name for name, _ in changes]

    def _scan_locked(self, force: bool) -> None:
        if not self.menus_dir.is_dir():
            log.error("menus directory %s does not exist", self.menus_dir)
            return
        files = [str(path) for path in menu_files(self.menus_dir)]
        for gone in set(self._seen) - set(files):
            del self._seen[gone]
            name = Path(gone).stem
            self.problems.pop(name, None)
            if self._menus.pop(name, None) is not None:
                log.warning("menu %s removed (%s deleted); new calls to it are refused", name, gone)
                self._notify(name, None)
        for file in files:
            before = self._seen.get(file)
            if not force and before is not None and _signature([f for f, _, _ in before]) == before:
                continue
            self._load(file)

    def _load(self, file: str) -> None:
        name = Path(file).stem
        previous_sources = [f for f, _, _ in self._seen.get(file, ())] or [file]
        before_read = _signature(previous_sources)  # taken first: an edit during the read is seen next poll
        result = check_menu(file, self.options)
        # Remember what was read even on failure, so a broken file is not re-read every poll.
        sources = list(result.sources) or [file]
        self._seen[file] = before_read if set(sources) == set(previous_sources) else _signature(sources)
        self.problems[name] = result.problems
        if result.menu is None:
            kept = "keeping the previous version" if name in self._menus else "menu not available"
            errors = len(result.errors)
            log.error("menu %s rejected (%d error%s), %s:", name, errors, "" if errors == 1 else "s", kept)
            for problem in result.errors:
                log.error("  %s", problem)
            for warning in result.warnings:
                log.warning("  %s", warning)
            return
        for warning in result.warnings:
            log.warning("%s", warning)
        for prepare in self._preparers:
            try:
                prepare(result.menu)
            except Exception:  # calls build what they need themselves, as before
                log.exception("menu %s: preparing it for calls failed", name)
        previous = self._menus.get(name)
        self._menus[name] = result.menu
        log.info(
            "menu %s %s: %d nodes",
            name,
            "reloaded" if previous is not None else "loaded",
            len(result.menu.nodes),
        )
        self._notify(name, result.menu)

    def _notify(self, name: str, menu: Menu | None) -> None:
        self._pending.append((name, menu))

    async def watch(self, interval: float = 0.5) -> None:
        """Poll file mtimes every `interval` seconds until cancelled; loading runs off the event loop."""
        while True:
            await asyncio.sleep(interval)
            try:
                changed = self._deliver(await asyncio.to_thread(self._scan, False))
            except Exception:
                log.exception("menu reload failed; keeping the menus in service")
                continue
            if changed:
                log.info("menus changed: %s", ", ".join(changed))
