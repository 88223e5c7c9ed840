"""`ivr simulate`: run a menu in the terminal with the real interpreter (see ivr.engine.simulate)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from ivr.clock import SYSTEM_CLOCK
from ivr.config import ConfigError, load_settings, override
from ivr.engine.simulate import (
    DEFAULT_CALLERID,
    HELP,
    FixedHours,
    print_line,
    simulate,
    terminal_lines,
)
from ivr.testing.fake_caller import QUEUE_OUTCOME_HELP, QUEUE_OUTCOMES
from ivr.texts import LANGUAGES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="run a menu in the terminal: read the prompts, type keys or words",
        description="Run one call through a menu with the real interpreter. Each prompt is shown as "
        "[node] sound (language): text. Answer when asked: keys (2, 12#), words (запись, or `say "
        "запись`) matched as the engine matches speech, an empty line for silence, `lang kk|ru` to "
        "switch language as a caller would, `hangup` or Ctrl-D to hang up. Queue, transfer, callback "
        "and hang-up decisions are printed; nothing reaches Asterisk and callbacks go to a scratch "
        "database that is thrown away.",
    )
    p.add_argument("menu", nargs="?", help="menu name (file stem in the menus dir) or a path to a menu file")
    p.add_argument("--menus", metavar="DIR", help="menu directory (default: the configured one, menus/)")
    p.add_argument("--lang", choices=LANGUAGES, help="answer the language choice with this language")
    hours = p.add_mutually_exclusive_group()
    hours.add_argument(
        "--open",
        dest="hours",
        action="store_const",
        const="open",
        help="operators at work, whatever the time",
    )
    hours.add_argument(
        "--closed", dest="hours", action="store_const", const="closed", help="outside opening hours"
    )
    p.add_argument(
        "--queue-outcome",
        choices=QUEUE_OUTCOMES,
        default="answered",
        help=QUEUE_OUTCOME_HELP,
    )
    p.add_argument("--callerid", default=DEFAULT_CALLERID, help="the caller's number (for callbacks)")
    p.add_argument(
        "--dtmf-only", action="store_true", help="as a deployment without speech models: keys only"
    )
    p.add_argument("--no-callbacks", action="store_true", help="run without the state a callback needs")
    p.set_defaults(func=run_simulate, hours=None)


def find_menu_file(name: str | None, menus_dir: Path, default_menu: str) -> Path:
    """A path to a menu file as given, else NAME.yaml in the menus directory."""
    wanted = name or default_menu
    path = Path(wanted)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"no menu file {path}")
        return path
    path = menus_dir / f"{wanted}.yaml"
    if not path.is_file():
        raise ConfigError(f"no menu {wanted!r} (looked for {path})")
    return path


def run_simulate(args: argparse.Namespace) -> int:
    from ivr.engine.app import hours_for
    from ivr.menus.loader import check_menu
    from ivr.menus.validator import ValidatorOptions

    settings = load_settings(getattr(args, "config", None))
    settings = override(settings, menus_dir=args.menus)
    path = find_menu_file(args.menu, Path(settings.menus_dir), settings.default_menu)
    result = check_menu(path, ValidatorOptions.beside(path.parent))
    if result.menu is None:
        for problem in result.errors:
            print(problem, file=sys.stderr)
        print(f"error: {path} has errors; fix them first (ivr check {path})", file=sys.stderr)
        return 1
    menu = result.menu
    if args.hours is None:
        hours = hours_for(menu)
        state = "open" if hours.is_open(SYSTEM_CLOCK.now()) else "closed"
        hours_note = f"operators {state} now (the menu's hours)"
    else:
        hours = FixedHours(args.hours == "open")
        hours_note = f"operators {args.hours} (--{args.hours})"
    speech = "keys only (--dtmf-only)" if args.dtmf_only else "typed words"
    print_line(f"ivr simulate: menu {menu.name} ({path}); {hours_note}; speech: {speech}")
    print_line(HELP)

    async def main() -> None:
        await simulate(
            menu,
            terminal_lines(),
            print_line,
            settings=settings,
            hours=hours,
            language=args.lang,
            speech=not args.dtmf_only,
            callbacks=not args.no_callbacks,
            queue_outcome=args.queue_outcome,
            callerid=args.callerid,
        )

    asyncio.run(main())
    return 0
