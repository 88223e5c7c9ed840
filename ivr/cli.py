"""`ivr` command line: serve the engine, place a test call, and the admin tools of each area."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from ivr import __version__
from ivr.config import SECRET_ENV, ConfigError, load_settings, override, parse_hostport

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
    p.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING (default INFO)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    models = dict(settings.speech.models)
    for item in args.speech_model:
        lang, sep, path = item.partition("=")
        if not sep or not lang or not path:
            raise ConfigError(f"--speech-model {item!r}: expected LANG=DIR, e.g. ru=/opt/vosk/ru")
        models[lang] = path
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
        },
    )
    parse_hostport(settings.agi.bind, 4573)  # a bad address fails here, before anything starts
    _setup_logging(settings.log_level)
    from ivr.engine.app import Engine, StartupError, tune_gc_for_serving

    async def main() -> int:
        engine = Engine(settings)
        try:
            port = await engine.start()
        except StartupError as exc:
            logging.getLogger("ivr").error("cannot start: %s", exc)
            await engine.stop(0)
            return 2
        host, _ = parse_hostport(settings.agi.bind, 4573)
        tune_gc_for_serving()
        # Announced only once SIGTERM is handled, so a supervisor that reads this line can stop us cleanly.
        await engine.serve_forever(lambda: print(f"ivr: FastAGI on {host}:{port}", flush=True))
        return 0

    return _run(main())


def _run(coro: object) -> int:
    try:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


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
    p.add_argument("--queue-outcome", choices=("answered", "timeout", "hangup"), default="answered")
    p.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    p.set_defaults(func=cmd_testcall)


def _at(step: object, value: str) -> Action:
    """`--at SECONDS` after a step: when it happens over AudioSocket."""
    from ivr.testing.fake_caller import HangUp, Press, Say

    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"--at {value!r}: seconds, e.g. 1.5") from None
    if seconds < 0 or not isinstance(step, Press | Say | HangUp):
        raise ConfigError("--at SECONDS follows a --say, --press or --hangup, and is not negative")
    return attrs.evolve(step, at=seconds)


def cmd_testcall(args: argparse.Namespace) -> int:
    from ivr.testing.fake_caller import FakeCall, HangUp, Press, Say, Silence

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
    call = FakeCall(
        script,
        agi_script=args.script,
        callerid=args.callerid,
        hangup_at=args.hangup_at,
        queue_outcome=args.queue_outcome,
    )

    async def main() -> int:
        try:
            await call.run(host, port, timeout=args.timeout)
        except (ConnectionError, OSError) as exc:
            print(f"testcall: cannot reach the engine at {host}:{port}: {exc}", file=sys.stderr)
            return 3
        except TimeoutError:
            print(call.summary())
            print(f"testcall: the call did not end within {args.timeout:g} s", file=sys.stderr)
            return 4
        print(call.summary())
        for number, session in enumerate(call.media, 1):
            print(f"AudioSocket #{number}: {session.describe()}")
        print(f"language: {call.language}; queue: {call.queue or '-'}; prompts played: {len(call.prompts)}")
        return 0

    return asyncio.run(main())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivr", description="1414 IVR engine for Asterisk (FastAGI + AMI)")
    parser.add_argument("--version", action="version", version=f"ivr {__version__}")
    parser.add_argument("--config", metavar="FILE", help="settings file (default ./ivr.toml when present)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _serve_parser(sub)
    _testcall_parser(sub)
    for module in AREA_COMMANDS:
        importlib.import_module(module).register(sub)
    return parser


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
