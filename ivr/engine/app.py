"""The engine process: menus, prompts, speech, state and AMI wired to the FastAGI server.

Start-up refuses, with every reason listed, when no menu loads or a prompt the menus need is missing
(unless prompts.synthesize_missing is set). Optional parts degrade with one log line: no AMI means no
queue figures and no callbacks dialled; no speech model means DTMF only for that language.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any

import attrs

from ivr.agi.channel import Channel
from ivr.agi.server import AgiServer, Handler
from ivr.config import Settings, parse_hostport
from ivr.contact.hours import OpeningHours
from ivr.engine.gc_pacing import GcPacer
from ivr.engine.interpreter import CallSession, hand_back_unknown_menu
from ivr.engine.services import EngineServices
from ivr.engine.system_texts import system_prompt_texts
from ivr.menus.library import MenuLibrary
from ivr.menus.model import Menu
from ivr.menus.validator import ValidatorOptions
from ivr.prompts.synth import shutdown_worker
from ivr.speech.matcher import load_matching_dictionaries
from ivr.texts import LANGUAGES, PromptText

log = logging.getLogger("ivr")

# How often the engine looks for prompts its menus need that are gone from disk (a recording deleted by
# hand, to hear the text synthesised, say), and synthesises them; /readyz reports what it last found.
PROMPTS_LOOKED_AT_EVERY = 10.0


class StartupError(Exception):
    """The engine cannot serve calls as configured; the message lists every reason."""


def engine_prompt_texts(menus: Iterable[Menu]) -> list[PromptText]:
    """Every text the engine may play: all menus' texts and the engine's own (apologies, queue, callback)."""
    texts: list[PromptText] = []
    for menu in menus:
        texts.extend(menu.prompt_texts())
    texts.extend(system_prompt_texts())
    return texts


def hours_for(menu: Menu | None) -> OpeningHours:
    """The menu's opening hours plus Kazakhstan's public holidays; without them, the 1414 default
    (Mon-Fri 09:00-18:00 Asia/Almaty)."""
    default = OpeningHours.kazakhstan_1414()
    if menu is None or menu.hours is None:
        return default
    own = OpeningHours.from_menu_hours(menu.hours)
    return attrs.evolve(own, holidays=own.holidays | default.holidays)


def menu_options(settings: Settings) -> ValidatorOptions:
    """What the engine validates menus against: the queues of asterisk-conf/ beside the menus."""
    return ValidatorOptions.beside(settings.menus_dir)


def log_prompts_report(what: str, report: Any) -> None:
    """A build's report, one log record a line (each with its timestamp, each saying what it is about):
    failures as errors, refused recordings as warnings (callers hear a consistent prompt, but not the
    admin's recording), the rest as information; then the counts, at the level of the worst line."""
    for message in report.failed:
        log.error("%s; prompts: error: %s", what, message)
    for message in report.refused:
        log.warning("%s; prompts: %s", what, message)
    for message in report.notices():
        log.info("%s; prompts: %s", what, message)
    level = logging.ERROR if report.failed else logging.WARNING if report.refused else logging.INFO
    log.log(level, "%s; prompts: %s", what, report.counts())


def _prompts(count: int, verb: str = "") -> str:
    """ "1 prompt is", "2 prompts are"; "1 prompt", "2 prompts" without a verb."""
    if count == 1:
        return f"1 prompt{' is' if verb else ''}"
    return f"{count} prompts{' are' if verb else ''}"


class Engine:
    def __init__(self, settings: Settings, services: EngineServices | None = None) -> None:
        self.settings = settings
        self.services = services or EngineServices(settings=settings)
        self.library = MenuLibrary(settings.menus_dir, menu_options(settings))
        self.server: AgiServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._stopped = False  # stop() has run (or is running): a second call does nothing
        self._hours_from_menu = False  # services.hours follows the default menu's reloads
        self._reloaded: set[str] = set()  # menus reloaded since their prompts were last built
        self._owned: set[str] = set()
        self._lease: Any = None  # ivr.journal.engines.EngineLease, with the journal
        self._prompt_build: asyncio.Task[None] | None = None
        # Prompts the menus need and the disk lacks, at the engine's last look (/readyz reads it).
        self.missing_prompts: list[str] = []
        self._missing_not_made: frozenset[str] = frozenset()  # what the last build for them left missing
        self._menu_version = 0  # parts this engine opened (and so closes); given ones stay open
        # Set by pace_garbage_collection(): `ivr serve` and the benches, not engines inside a test run.
        self.gc_pacer: GcPacer | None = None

    # --- routing -----------------------------------------------------------------------------
    def route(self, script: str) -> Handler:
        """agi://host/1414 runs menus/1414.yaml; a bare agi://host/ runs the default menu; a menu the
        engine does not have hands the call back to the dialplan, which queues the caller."""
        name = script or self.settings.default_menu
        menu = self.library.get(name)
        services = self.services
        if menu is None:
            if self.server is not None:
                self.server.stats.unknown_scripts += 1
            return functools.partial(
                hand_back_unknown_menu, menu=name, services=services, menus=self.library.names()
            )

        def handle(channel: Channel) -> Coroutine[Any, Any, None]:
            # The call keeps this menu version. Returning the session's coroutine rather than awaiting
            # it in another one: every AGI reply resumes each frame of the await chain.
            return CallSession(channel, menu, services).run()

        return handle

    # --- life cycle --------------------------------------------------------------------------
    async def start(self) -> int:
        """Load everything, check it, listen. Returns the FastAGI port."""
        await asyncio.to_thread(self.library.reload)
        if not self.library.names():
            problems = (
                "\n".join(f"  {p}" for problems in self.library.problems.values() for p in problems)
                or f"  no menu files in {self.settings.menus_dir}/"
            )
            raise StartupError(f"no menu could be loaded:\n{problems}")
        # The library has logged each menu's warnings as it loaded them: once is enough.
        await self._check_prompts()
        # The default menu's hours, followed through its reloads; hours given by the caller stay.
        self._hours_from_menu = self.services.hours is None
        self.services.hours = self.services.hours or hours_for(self.library.get(self.settings.default_menu))
        await self._start_optional_parts()
        if self.services.speech is not None:
            await asyncio.to_thread(self._prepare_for_speech)
        host, port = parse_hostport(self.settings.agi.bind, 4573)
        agi = self.settings.agi
        self.server = AgiServer(
            self.route,
            host,
            port,
            backlog=agi.backlog,
            max_line=agi.max_line,
            env_timeout=agi.env_timeout,
            command_timeout=agi.command_timeout,
        )
        self.library.on_change(self._menu_changed)
        bound = await self.server.start()
        self._tasks.append(asyncio.create_task(self.library.watch(0.5), name="menu-watch"))
        self._tasks.append(asyncio.create_task(self._watch_prompts(), name="prompt-watch"))
        log.info("FastAGI listening on %s:%d; menus: %s", host, bound, ", ".join(self.library.names()))
        return bound

    def _prepare_for_speech(self) -> None:
        """Matchers and grammars of every menu built off the event loop, now and at each reload."""
        self.library.prepare_with(self.services.prepare)  # first, so no reload slips in between
        for menu in self.library.menus().values():
            self.services.prepare(menu)

    async def _check_prompts(self) -> None:
        from ivr.prompts.build import build_prompts, missing_prompts

        texts = engine_prompt_texts(self.library.menus().values())
        missing = await asyncio.to_thread(
            missing_prompts, texts, self.settings.prompts.dir, include_asterisk_sounds=True
        )
        if not missing:
            return
        if not self.settings.prompts.synthesize_missing:
            shown = "\n".join(f"  {self.settings.prompts.dir}/{name}" for name in missing)
            raise StartupError(
                f"{_prompts(len(missing), 'be')} missing:\n{shown}\n"
                "Run `ivr prompts build`, or start with --synthesize-missing."
            )
        log.info("synthesising %s missing", _prompts(len(missing)))
        report = await asyncio.to_thread(build_prompts, texts, self.settings.prompts.dir, self.settings)
        if not report.ok:
            raise StartupError(f"prompts could not be built:\n{report.summary()}")

    async def _missing_now(self) -> list[str]:
        from ivr.prompts.build import missing_prompts

        texts = engine_prompt_texts(self.library.menus().values())
        return await asyncio.to_thread(
            missing_prompts, texts, self.settings.prompts.dir, include_asterisk_sounds=True
        )

    async def _watch_prompts(self) -> None:
        while True:
            await asyncio.sleep(PROMPTS_LOOKED_AT_EVERY)
            try:
                await self.make_missing_prompts()
            except Exception:
                log.exception(
                    "looking for missing prompts failed; looking again in %g s", PROMPTS_LOOKED_AT_EVERY
                )

    async def make_missing_prompts(self) -> list[str]:
        """Look for prompts gone from disk and synthesise them, so that a recording deleted by hand (as
        the build's messages suggest, to hear the text) does not take the engine out of service until
        someone builds. Returns what is still missing. A set a build could not make is not tried again
        every look (each try would log the same failure): a new menu version's build tries it anyway."""
        missing = self.missing_prompts = await self._missing_now()
        if not missing:
            self._missing_not_made = frozenset()
            return missing
        if frozenset(missing) == self._missing_not_made:
            return missing
        if self._prompt_build is not None and not self._prompt_build.done():
            return missing  # a reload's build is under way; the next look sees what it left
        log.warning(
            "%s missing from %s (deleted?), e.g. %s: synthesising %s; until then callers get its .wav16 "
            "where there is one, else nothing in its place (the call goes on, and logs the sound as missing)",
            _prompts(len(missing), "be"), self.settings.prompts.dir, missing[0], "it" if len(missing) == 1 else "them",
        )  # fmt: skip
        self._prompt_build = asyncio.get_running_loop().create_task(
            self._build_changed_prompts(f"{_prompts(len(missing))} missing")
        )
        await asyncio.shield(self._prompt_build)
        self._missing_not_made = frozenset(self.missing_prompts)  # looked at again by the build's end
        return self.missing_prompts

    def _menu_changed(self, name: str, menu: Menu | None) -> None:
        """A reloaded menu may bring new texts: synthesise them (incrementally) off the event loop;
        new opening hours (or holidays) of the default menu hold from the next call on."""
        self._menu_version += 1
        if self._hours_from_menu and name == self.settings.default_menu and menu is not None:
            hours = hours_for(menu)
            if hours != self.services.hours:
                self.services.hours = hours
                log.info("menu %s reloaded: its opening hours and holidays are in force", name)
        self._reloaded.add(name)
        if self._prompt_build is None or self._prompt_build.done():
            self._prompt_build = asyncio.get_running_loop().create_task(self._build_changed_prompts())

    async def _build_changed_prompts(self, what: str = "") -> None:
        from ivr.prompts.build import build_prompts

        names: set[str] = set()
        while True:  # again if another edit landed while building
            names |= self._reloaded  # every menu reloaded meanwhile (a renamed file is two)
            self._reloaded.clear()
            version = self._menu_version
            texts = engine_prompt_texts(self.library.menus().values())
            try:
                report = await asyncio.to_thread(
                    functools.partial(build_prompts, remove_unused=False),
                    texts, self.settings.prompts.dir, self.settings,
                )  # fmt: skip
            except Exception as exc:
                what = what or f"menus {', '.join(sorted(names))} reloaded"
                log.error("%s, but their prompts could not be built: %s", what, exc)
                break
            if version == self._menu_version:
                what = what or f"menu{'s' if len(names) > 1 else ''} {', '.join(sorted(names))} reloaded"
                log_prompts_report(what, report)
                break
        # What /readyz reports, as this build left it: not as the last look, up to 10 s ago, found it.
        self.missing_prompts = await self._missing_now()

    def refresh_prompts(self) -> None:
        """`ivr serve`, once started: prompts whose text was edited while the engine was stopped are
        synthesised again beside the calls, as a reload does for an edit made while it runs."""
        task = asyncio.get_running_loop().create_task(self._refresh_stale_prompts(), name="prompt-refresh")
        self._tasks.append(task)

    async def _refresh_stale_prompts(self) -> None:
        from ivr.prompts.build import build_prompts

        texts = engine_prompt_texts(self.library.menus().values())
        report = await asyncio.to_thread(
            build_prompts, texts, self.settings.prompts.dir, self.settings, check_only=True
        )
        if report.stale:
            log.warning(
                "%s older than %s text (edited while the engine was stopped), e.g. %s: synthesising "
                "%s now; until then callers hear the old words",
                _prompts(len(report.stale), "be"), "their" if len(report.stale) > 1 else "its",
                report.stale[0], "them" if len(report.stale) > 1 else "it",
            )  # fmt: skip
            await self._build_changed_prompts("prompts edited while the engine was stopped")
        elif report.refused or report.to_convert:  # recordings dropped in while the engine was stopped:
            await self._build_changed_prompts("engine started")  # broken ones set aside, good converted

    async def _start_optional_parts(self) -> None:
        settings = self.settings
        if self.services.state is None:
            from ivr.journal.db import StateError
            from ivr.journal.engines import EngineLease
            from ivr.journal.state import open_state

            try:
                self.services.state = await open_state(
                    settings,
                    settings.http.name or None,  # one name for an engine, on the board and in the journal
                    clock=self.services.clock,
                    journal_writer=settings.journal_writer,
                )
            except StateError as exc:
                raise StartupError(f"the journal's database: {exc}") from None
            self._owned.add("state")
            # The name first: the calls closed below as an earlier run's are those of this name.
            self._lease = EngineLease(
                self.services.state.db, self.services.state.engine_id, self.services.clock.time
            )
            try:
                taken_from = await self._lease.claim()
            except StateError as exc:
                self._lease = None
                raise StartupError(str(exc)) from None
            if taken_from is not None and taken_from.host != self._lease.host:
                log.warning(
                    'the name "%s" was held by %s (process %d), not heard of for %.0f s: taken over',
                    self._lease.engine_id,
                    taken_from.host,
                    taken_from.pid,
                    self.services.clock.time() - taken_from.seen_at,
                )
            self._tasks.append(asyncio.create_task(self._renew_lease(), name="engine-lease"))
            closed = await self.services.state.hand_back_orphans(self.services.clock.time())
            if closed:
                log.warning(
                    "calls left unfinished by %s (stopped without closing them: killed, or the machine went "
                    "down) are journalled as handed back: their callers went to the dialplan's queue",
                    ", ".join(f"{engine} ({count})" for engine, count in closed),
                )
        if self.services.speech is None:
            from ivr.speech.recognizer import SpeechService

            speech = SpeechService.from_settings(settings.speech)
            await speech.start()
            self.services.speech = speech
            self._owned.add("speech")
        if any(self.services.speech.available(language) for language in LANGUAGES):
            self._prepare_spool(settings.speech.spool)
            # Else the first caller who speaks would load them, on the event loop, mid-call.
            await asyncio.to_thread(load_matching_dictionaries)
        if self.services.ami is None and settings.ami.enabled:
            from ivr.ami.client import AmiClient

            self.services.ami = AmiClient(settings.ami)
            self.services.ami.start()
            self._owned.add("ami")
        elif not settings.ami.enabled:
            log.info("AMI not configured: no queue figures, callbacks are stored but not dialled")
        if self.services.media is None and settings.audiosocket.enabled:
            await self._start_media()
        from ivr.engine.background import CallbackDialer, CallbackGivenBack, IncidentAudio

        audio = IncidentAudio(self.services.state, settings)
        self.services.incident_audio = audio
        self._tasks.append(asyncio.create_task(audio.run(), name="incident-audio"))
        if self.services.ami is not None:
            dialer = CallbackDialer(self.services)
            self._tasks.append(asyncio.create_task(dialer.run(), name="callback-dialer"))
            CallbackGivenBack(self.services).start()

    async def _renew_lease(self) -> None:
        from ivr.journal.engines import RENEW_EVERY
        from ivr.journal.outage import Unanswered, describe, unreachable

        outage = Unanswered()  # one line when the database stops answering, one when it answers again
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                await self._lease.renew()
            except Exception as exc:  # the database is away: the lease lasts several renewals
                if not unreachable(exc):
                    log.warning("engine name lease not renewed: %s", describe(exc))
                elif outage.failed(exc, asyncio.get_running_loop().time()):
                    log.warning(
                        "engine name lease not renewed: the state database does not answer (%s); tried "
                        "again every %g s",
                        outage.error, RENEW_EVERY,
                    )  # fmt: skip
            else:
                lasted = outage.answered(asyncio.get_running_loop().time())
                if lasted is not None:
                    log.warning(
                        "engine name lease renewed: the state database answers again after %.1f s", lasted
                    )

    @staticmethod
    def _prepare_spool(spool: str) -> None:
        """RECORD FILE writes the caller's answers here; a fresh machine does not have it yet."""
        try:
            Path(spool).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.error(
                "speech.spool %s cannot be created (%s): spoken answers cannot be recorded; create it, "
                "writable by Asterisk and readable by the engine (asterisk-conf/README.md)",
                spool,
                exc.strerror or exc,
            )

    async def _start_media(self) -> None:
        """The AudioSocket listener for streaming answers with barge-in (ivr.engine.media)."""
        from ivr.audiosocket.server import AudioSocketServer
        from ivr.engine.media import MediaPath

        host, port = parse_hostport(self.settings.audiosocket.bind, 9093)
        server = AudioSocketServer(host, port)
        await server.start()
        self.services.media = MediaPath(self.settings, server)
        self._owned.add("media")
        if await self.services.media.self_test():
            self.services.media.started()

    def pace_garbage_collection(self) -> None:
        """Once started: collections on the engine's schedule (ivr.engine.gc_pacing), process-wide."""
        self.gc_pacer = GcPacer()
        self.gc_pacer.start()

    @property
    def stopping(self) -> bool:
        """Told to stop (SIGTERM, SIGINT or stop()): takes no new calls, so /readyz says not ready."""
        return self._stopping.is_set()

    async def stop(self, grace: float | None = None) -> None:
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.agi.shutdown_grace if grace is None else grace
        self._stopping.set()
        if self.gc_pacer is not None:
            self.gc_pacer.stop()
        if self.server is not None:
            await self.server.stop(grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if "media" in self._owned:
            await self.services.media.server.stop()
        if "ami" in self._owned:
            with contextlib.suppress(Exception):
                await self.services.ami.close()
        if "speech" in self._owned:
            self.services.speech.close()
        # The speech synthesiser's child (outage announcements, prompts re-made after an edit), if any.
        await asyncio.to_thread(shutdown_worker)
        if "state" in self._owned:
            if self._lease is not None:
                with contextlib.suppress(Exception):  # a lease not given back runs out
                    await self._lease.release()
            await self.services.state.close()

    async def serve_forever(self, ready: Callable[[], None] | None = None) -> None:
        """Run until SIGTERM/SIGINT; SIGHUP reloads the menus. `ready` runs once the signals are handled."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        if ready is not None:
            ready()
        try:
            await self._stopping.wait()
            log.info("stopping: no new calls; running calls have %g s", self.settings.agi.shutdown_grace)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await self.stop()
            log.info("stopped")

    def _reload(self) -> None:
        """SIGHUP: reload the menus off the event loop (calls in progress keep their version)."""
        self._tasks = [task for task in self._tasks if not task.done()]
        self._tasks.append(asyncio.get_running_loop().create_task(self._reload_menus(), name="menu-reload"))

    async def _reload_menus(self) -> None:
        try:
            changed = await self.library.reload_off_loop()
        except Exception:
            log.exception("SIGHUP: menu reload failed; keeping the menus in service")
            return
        log.info("SIGHUP: menus re-read%s", f": {', '.join(changed)}" if changed else "")
