"""`ivr` command line: serve the engine, place a test call, and the admin tools of each area."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
import wave
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ivr import __version__
from ivr.clock import Clock, share_test_clock
from ivr.config import (
    HTTP_TOKEN_ENV,
    SECRET_ENV,
    ConfigError,
    check_model_languages,
    load_settings,
    override,
    parse_hostport,
)
from ivr.journal.timeutil import zone
from ivr.testing.fake_caller import QUEUE_OUTCOME_HELP, QUEUE_OUTCOMES

if TYPE_CHECKING:
    from ivr.testing.fake_caller import Action

# Areas that add their own subcommands with register(subparsers).
AREA_COMMANDS = ("ivr.menus.cli", "ivr.prompts.cli", "ivr.journal.cli", "ivr.engine.cli")


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the engine (FastAGI server, AMI watcher)",
        description="Run the IVR engine. Settings come from built-in defaults, then the TOML file "
        f"(--config, or ./ivr.toml if present), then these flags. The AMI secret is read from "
        f"${SECRET_ENV} or the file, never from the command line.",
    )
    p.add_argument(
        "--agi-bind",
        metavar="HOST:PORT",
        help="FastAGI listen address (default 127.0.0.1:4573; port 0 = any free port)",
    )
    p.add_argument("--menus", metavar="DIR", help="menu directory (default menus/)")
    p.add_argument(
        "--default-menu", metavar="NAME", help="menu for agi://host/ with no script name (default 1414)"
    )
    p.add_argument(
        "--prompts", metavar="DIR", help="prompt directory, Asterisk sound layout (default prompts/)"
    )
    p.add_argument(
        "--synthesize-missing",
        action="store_true",
        default=None,
        help="build missing prompts at start instead of refusing to start",
    )
    p.add_argument("--ami-host", metavar="HOST", help="Asterisk manager host (AMI off when unset)")
    p.add_argument("--ami-port", metavar="PORT", type=int, help="Asterisk manager port (default 5038)")
    p.add_argument("--ami-user", metavar="USER", help="Asterisk manager user (default ivr)")
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where the SQLite journal, incidents and callbacks live (default var/)",
    )
    p.add_argument(
        "--database-url", metavar="URL", help="postgresql://... shared by several engines (instead of SQLite)"
    )
    p.add_argument(
        "--speech-model",
        metavar="LANG=DIR",
        action="append",
        default=[],
        help="Vosk model directory per language, e.g. ru=/opt/vosk/ru (repeatable)",
    )
    p.add_argument(
        "--spool",
        metavar="DIR",
        help="recordings directory shared with Asterisk (default /var/spool/asterisk/ivr)",
    )
    p.add_argument(
        "--shutdown-grace",
        metavar="SECONDS",
        type=float,
        help="on SIGTERM, how long running calls may go on (default 30)",
    )
    p.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve the wallboard, /metrics, /healthz and /readyz here (a bare port: 127.0.0.1; off by "
        f"default). Without a token only this machine is served; with one (${HTTP_TOKEN_ENV}, or the "
        "file) every client needs it, local ones too; /healthz and /readyz stay open",
    )
    p.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING (default INFO)")
    p.add_argument(
        "--clock",
        metavar="MOMENT",
        help="for test deployments only: run the engine's clock from this moment (ISO 8601 with its "
        "offset, e.g. 2026-11-25T10:00+05:00) instead of the real time; opening hours, holidays, "
        "outages and the journal all follow it. Only a flag, never a setting, so it cannot be left on "
        "by accident in ivr.toml",
    )
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    models = dict(settings.speech.models)
    for item in args.speech_model:
        lang, sep, path = item.partition("=")
        if not sep or not lang or not path:
            raise ConfigError(f"--speech-model {item!r}: expected LANG=DIR, e.g. ru=/opt/vosk/ru")
        models[lang] = path
    check_model_languages(models, "--speech-model")
    settings = override(
        settings,
        **{
            "agi.bind": args.agi_bind,
            "menus_dir": args.menus,
            "default_menu": args.default_menu,
            "prompts.dir": args.prompts,
            "prompts.synthesize_missing": args.synthesize_missing,
            "ami.host": args.ami_host,
            "ami.port": args.ami_port,
            "ami.user": args.ami_user,
            "state_dir": args.state_dir,
            "database_url": args.database_url,
            "speech.models": models or None,
            "speech.spool": args.spool,
            "agi.shutdown_grace": args.shutdown_grace,
            "log_level": args.log_level,
            "http.bind": args.http,
        },
    )
    parse_hostport(settings.agi.bind, 4573)  # a bad address fails here, before anything starts
    clock = _serve_clock(args.clock)
    if settings.http.enabled:
        from ivr.http import parse_bind

        parse_bind(settings.http.bind)
    _setup_logging(settings.log_level, settings.timezone)
    from ivr.engine.app import Engine, StartupError
    from ivr.engine.services import EngineServices

    async def main() -> int:
        engine = Engine(settings, EngineServices(settings=settings, clock=clock))
        if args.clock:
            logging.getLogger("ivr").warning(
                "TEST CLOCK: the engine's time starts at %s (%s), not the real time (--clock)",
                clock.now().astimezone(zone(settings.timezone)).strftime("%Y-%m-%d %H:%M"),
                settings.timezone,
            )
        try:
            port = await engine.start()
        except StartupError as exc:
            logging.getLogger("ivr").error("cannot start: %s", exc)
            await engine.stop(0)
            return 2
        host, _ = parse_hostport(settings.agi.bind, 4573)
        board = None
        if settings.http.enabled:
            from ivr.http import BoardServer

            board = BoardServer(engine)
            try:
                await board.start()
            except OSError as exc:
                logging.getLogger("ivr").error("cannot start: HTTP on %s: %s", settings.http.bind, exc)
                await engine.stop(0)
                return 2
        engine.pace_garbage_collection()
        engine.refresh_prompts()
        try:
            share_test_clock(settings.state_dir, clock)
        except OSError as exc:
            logging.getLogger("ivr").warning("the admin commands will not see the test clock: %s", exc)

        def ready() -> None:
            # Announced only once SIGTERM is handled, so a supervisor that reads this can stop us cleanly.
            print(f"ivr: FastAGI on {host}:{port}", flush=True)
            if board is not None:
                print(f"ivr: wallboard on http://{board.host}:{board.port}/", flush=True)

        try:
            await engine.serve_forever(ready)
        finally:
            if board is not None:
                await board.stop()
        return 0

    return _run(main())


def _serve_clock(moment: str | None) -> Clock:
    from ivr.clock import SYSTEM_CLOCK, ClockError, RunningClock, parse_clock_moment

    if moment is None:
        return SYSTEM_CLOCK
    try:
        return RunningClock(parse_clock_moment(moment))
    except ClockError as exc:
        raise ConfigError(f"--clock: {exc}") from None


def _run(coro: object) -> int:
    try:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]


class _CentreTimeFormatter(logging.Formatter):
    """Log times in the centre's time zone with its offset (2026-11-25 10:00:01,234+05:00), as the board,
    `ivr stats` and the callbacks list show them: the machine's own zone is often UTC."""

    def __init__(self, timezone: str) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._zone = zone(timezone)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, self._zone)
        offset = moment.isoformat()[-6:]  # +05:00
        return f"{moment:%Y-%m-%d %H:%M:%S},{int(record.msecs):03d}{offset}"


def _setup_logging(level: str, timezone: str = "UTC") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_CentreTimeFormatter(timezone))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])


def _testcall_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "testcall",
        help="place one scripted call into a running engine as Asterisk would",
        description="Connect to an engine's FastAGI port as a fake Asterisk 22 and play a caller. "
        "Each --press/--say/--silence/--hangup is one answer, in order, to the prompts that wait "
        "for input. Prints every command the engine sent and what Asterisk answered.",
    )
    p.add_argument("target", metavar="HOST:PORT", help="the engine's FastAGI address, e.g. 127.0.0.1:4573")
    p.add_argument("--script", default="1414", help="AGI script name (the menu), default 1414")
    p.add_argument(
        "--press",
        action="append",
        dest="steps",
        type=lambda v: ("press", v),
        help="digits to press at the next prompt",
    )
    p.add_argument(
        "--say",
        action="append",
        dest="steps",
        type=lambda v: ("say", v),
        help="WAV file to speak at the next prompt",
    )
    p.add_argument(
        "--at",
        action="append",
        dest="steps",
        type=lambda v: ("at", v),
        metavar="SECONDS",
        help="over AudioSocket: the previous --say/--press/--hangup happens this many seconds into the "
        "prompt (mid-prompt: barge-in) instead of after it",
    )
    p.add_argument(
        "--silence",
        action="append_const",
        dest="steps",
        const=("silence", ""),
        help="stay silent at the next prompt",
    )
    p.add_argument(
        "--hangup",
        action="append_const",
        dest="steps",
        const=("hangup", ""),
        help="hang up at the next prompt",
    )
    p.add_argument("--hangup-at", type=int, metavar="N", help="hang up as the N-th command arrives")
    p.add_argument("--callerid", default="77011234567", help="caller number")
    p.add_argument("--calleridname", default="IVR Tester", help="caller name")
    p.add_argument("--json", action="store_true", help="print the transcript as JSON, for machines")
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        help="the engine's state directory, to read the call's journal entry (default: the configured one, "
        "var/); with a shared PostgreSQL, database_url in ivr.toml",
    )
    p.add_argument(
        "--queue-outcome",
        choices=QUEUE_OUTCOMES,
        default="answered",
        help=QUEUE_OUTCOME_HELP,
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="how long the engine may keep the call before testcall reports it (default 120 s)",
    )
    p.set_defaults(func=cmd_testcall)


EXIT_UNREACHABLE = 3  # no connection to the engine
EXIT_CALL_NOT_ENDED = 4  # the engine kept the call past --timeout
EXIT_BROKEN = 5  # the connection broke in the middle of the call


def _at(step: object, value: str) -> Action:
    """`--at SECONDS` after a step: when it happens over AudioSocket."""
    from ivr.testing.fake_caller import HangUp, Press, Say

    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"--at {value!r}: seconds, e.g. 1.5") from None
    if seconds < 0 or not isinstance(step, Press | Say | HangUp):
        raise ConfigError("--at SECONDS follows a --say, --press or --hangup, and is not negative")
    if isinstance(step, Say):  # said over AudioSocket, as the line carries it: 8 kHz slin
        from ivr.testing.fake_audiosocket import read_slin

        try:
            read_slin(step.audio)
        except (ValueError, EOFError, wave.Error) as exc:
            raise ConfigError(
                f"--say {step.audio} --at: over AudioSocket the caller speaks 8 kHz mono 16-bit WAV "
                f"({exc}); convert it: sox {step.audio} -r 8000 -c 1 -b 16 answer-8k.wav"
            ) from None
    return attrs.evolve(step, at=seconds)


def cmd_testcall(args: argparse.Namespace) -> int:
    from ivr.testing.fake_caller import FakeCall, HangUp, Press, Say, Silence
    from ivr.testing.sounds import SoundsOnDisk
    from ivr.testing.transcript import render, render_json, steps, unused_steps

    script: list[Action] = []
    for kind, value in args.steps or []:
        if kind == "at":
            script[-1:] = [_at(script[-1] if script else None, value)]
            continue
        if kind == "press":
            if not value or any(ch not in "0123456789*#" for ch in value):
                raise ConfigError(f"--press {value!r}: digits are 0-9, * and #")
            script.append(Press(value))
        elif kind == "say":
            if not Path(value).is_file():
                raise ConfigError(f"--say {value!r}: no such file")
            script.append(Say(value))
        elif kind == "silence":
            script.append(Silence())
        else:
            script.append(HangUp())
    host, port = parse_hostport(args.target)
    settings = override(load_settings(args.config), state_dir=args.state_dir)
    # The sounds as the Asterisk sharing this machine's prompts folder would find them (a missing one
    # answers -1: the caller hears nothing there); elsewhere every sound plays.
    prompts = Path(settings.prompts.dir)
    sounds = SoundsOnDisk(prompts) if prompts.is_dir() else None
    call = FakeCall(
        script,
        agi_script=args.script,
        callerid=args.callerid,
        calleridname=args.calleridname,
        hangup_at=args.hangup_at,
        queue_outcome=args.queue_outcome,
        prompt_samples=None if sounds is None else lambda name: sounds.samples(name, call.language),
    )

    async def main() -> int:
        try:
            await call.run(host, port, timeout=args.timeout)
        except TimeoutError:
            print(call.summary())
            last = "\n".join(f"  {line}" for line in call.summary().splitlines()[-5:])
            print(
                f"testcall: the engine kept the call for {args.timeout:g} s: {len(call.exchanges)} commands; "
                f"the last ones:\n{last}",
                file=sys.stderr,
            )
            return EXIT_CALL_NOT_ENDED
        except (ConnectionError, OSError) as exc:
            if not call.connected:
                why = str(exc) or type(exc).__name__
                print(f"testcall: cannot reach the engine at {host}:{port}: {why}", file=sys.stderr)
                return EXIT_UNREACHABLE
            print(call.summary())
            print(f"testcall: the connection broke mid-call: {exc or type(exc).__name__}", file=sys.stderr)
            return EXIT_BROKEN
        ending, incidents = await _testcall_ending(call, settings)
        menu_text = _prompt_texts(settings, args.script)

        def text_of(sound: str, language: str) -> str | None:
            said = incidents.get(sound)  # an outage's announcement, from the engine's state
            if said is not None:
                return said.text(language)
            return menu_text(sound, language) if menu_text is not None else None

        lines, notes = (
            steps(call, text_of, sounds.describe if sounds is not None else None),
            unused_steps(call),
        )
        if sounds is None:
            notes.append(f"sounds not looked up: no prompts folder {prompts} here, so every sound played")
        notes += [
            f"AudioSocket #{number}: {session.describe()}" for number, session in enumerate(call.media, 1)
        ]
        print(render_json(lines, ending, notes) if args.json else render(lines, ending, notes))
        return 0

    return asyncio.run(main())


def _prompt_texts(settings: Any, menu_name: str) -> Any:
    """What each sound says, from the menus on this machine (None when they cannot be read)."""
    from ivr.engine.simulate import TextCatalogue
    from ivr.menus.loader import check_menu

    path = Path(settings.menus_dir) / f"{menu_name}.yaml"
    result = check_menu(path) if path.is_file() else None
    if result is None or result.menu is None:
        return None
    return TextCatalogue(result.menu).text


async def _testcall_ending(call: Any, settings: Any) -> tuple[Any, dict[str, Any]]:
    """How the call ended, with the engine's journal entry when its database is reachable from here
    (the same machine's state directory, or the shared PostgreSQL); and the incidents by sound name,
    for what an announcement said."""
    from ivr.engine.system_texts import incident_sound
    from ivr.testing.transcript import Ending

    fields = {
        "call_id": call.uniqueid,
        "language": call.language,
        "queue": call.queue,
        "queue_result": call.queue_result,
        "hangup_by": call.hangup_by,
        "how": call.ending(),
    }
    if not settings.database_url and not (Path(settings.state_dir) / "ivr.db").is_file():
        return Ending(**fields, journal_note=f"not readable from here (no {settings.state_dir}/ivr.db)"), {}
    from ivr.journal.state import open_state

    try:
        state = await open_state(settings)
    except Exception as exc:
        return Ending(**fields, journal_note=f"not readable from here ({exc})"), {}
    try:
        incidents = {incident_sound(i.id): i for i in await state.incidents.list(include_expired=True)}
        for _ in range(20):  # the engine commits its journal in small batches
            record = await state.journal.call(call.uniqueid)
            if record is not None and record.outcome is not None:
                fields["call_id"] = record.call_id  # the journal's key: uniqueid@the Asterisk it came from
                return Ending(**fields, outcome=record.outcome, topic=record.topic), incidents
            await asyncio.sleep(0.1)
        where = "the shared database" if settings.database_url else f"{settings.state_dir}/ivr.db"
        note = f"no outcome recorded in {where} (is it this engine's? --state-dir)"
        return Ending(**fields, journal_note=note), incidents
    finally:
        await state.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivr", description="1414 IVR engine for Asterisk (FastAGI + AMI)")
    parser.add_argument("--version", action="version", version=f"ivr {__version__}")
    parser.add_argument("--config", metavar="FILE", help="settings file (default ./ivr.toml when present)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _serve_parser(sub)
    _testcall_parser(sub)
    for module in AREA_COMMANDS:
        importlib.import_module(module).register(sub)
    _config_after_the_command(parser)
    return parser


def _config_after_the_command(parser: argparse.ArgumentParser) -> None:
    """`ivr serve --config F` as well as `ivr --config F serve`: every command takes it (SUPPRESS keeps
    the one given before the command when none comes after)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                if not any("--config" in a.option_strings for a in command._actions):
                    command.add_argument(
                        "--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="settings file (default ./ivr.toml when present)",
                    )  # fmt: skip
                _config_after_the_command(command)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `ivr stats | head`: the reader has gone; say nothing more (Python's advice: stdout to devnull,
        # so the flush at exit does not raise again)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
