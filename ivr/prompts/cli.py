"""`ivr prompts build` and `ivr prompts say`: audio for every menu text, and a way to try wording."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import attrs

from ivr.config import ConfigError, PromptSettings, load_settings
from ivr.prompts.audio import NARROWBAND_RATE, WIDEBAND_RATE, AudioError, convert
from ivr.prompts.build import BuildReport, PromptError, build_prompts
from ivr.prompts.manifest import ManifestError
from ivr.prompts.progress import StderrProgress
from ivr.prompts.synth import SynthError, synthesize, voice_for
from ivr.texts import LANGUAGES, PromptText


def register(subparsers: argparse._SubParsersAction) -> None:
    prompts = subparsers.add_parser("prompts", help="build Kazakh and Russian audio from the menu texts")
    actions = prompts.add_subparsers(dest="prompts_command", required=True)

    build = actions.add_parser(
        "build",
        help="synthesise missing or changed prompts, convert human recordings, remove unused ones",
        description="Turn every text of every menu into prompts/<lang>/<name>.wav (8 kHz) and .wav16 "
        "(16 kHz), plus Asterisk's digits/ and queue- sounds. Unchanged texts are not synthesised "
        "again; a recording a person put in prompts/<lang>/ is kept and never overwritten.",
    )
    build.add_argument("--menus", metavar="DIR", help="menu directory (default: settings menus_dir)")
    build.add_argument("--prompts", metavar="DIR", help="prompt directory (default: [prompts] dir)")
    build.add_argument("--lang", choices=LANGUAGES, action="append", help="only this language (repeatable)")
    build.add_argument("--check", action="store_true", help="report missing or stale prompts, write nothing")
    build.add_argument("--force", action="store_true", help="synthesise every generated prompt again")
    build.add_argument("--no-wideband", action="store_true", help="do not write the 16 kHz .wav16 files")
    build.add_argument("--workers", type=int, metavar="N", help="parallel conversions (default: CPU count)")
    build.set_defaults(func=build_handler)

    say = actions.add_parser("say", help="speak one text with a language's configured voice, to try wording")
    say.add_argument("text", help="the words to speak")
    say.add_argument("--lang", choices=LANGUAGES, required=True)
    say.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write the audio")
    say.add_argument(
        "--rate", type=int, choices=(NARROWBAND_RATE, WIDEBAND_RATE), default=NARROWBAND_RATE, help="Hz"
    )
    say.set_defaults(func=say_handler)


def build_handler(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(getattr(args, "config", None))
        menus_dir = Path(args.menus or settings.menus_dir)
        texts = texts_for_engine(menus_dir)
    except (ConfigError, MenuLoadError) as exc:
        print(f"ivr prompts build: {exc}", file=sys.stderr)
        return 2
    return run_build(
        texts,
        args.prompts or settings.prompts.dir,
        settings.prompts,
        languages=tuple(args.lang or LANGUAGES),
        check_only=args.check,
        force=args.force,
        wideband=not args.no_wideband,
        workers=args.workers,
    )


def run_build(
    texts: Iterable[PromptText],
    prompts_dir: str | os.PathLike[str],
    settings: PromptSettings,
    *,
    languages: tuple[str, ...] = LANGUAGES,
    check_only: bool = False,
    force: bool = False,
    wideband: bool = True,
    workers: int | None = None,
) -> int:
    """The command's core, given texts: build (or check), print the summary, return the exit code."""
    try:
        report: BuildReport = build_prompts(
            texts,
            prompts_dir,
            settings,
            check_only=check_only,
            force=force,
            languages=languages,
            wideband=wideband,
            workers=workers,
            progress=None if check_only else StderrProgress(),
        )
    except (PromptError, SynthError, ManifestError) as exc:
        print(f"ivr prompts build: {exc}", file=sys.stderr)
        return 2
    print(report.summary(label="prompts: "), file=sys.stderr if report.exit_code else sys.stdout)
    return report.exit_code


class MenuLoadError(RuntimeError):
    """A menu file could not be loaded; the message lists the problems with file:line."""


def texts_for_engine(menus_dir: Path) -> list[PromptText]:
    """Everything the engine plays: the menus' texts and the engine's own (apologies, queue, callback).

    The build treats its texts as the complete set, so it must be given the engine's own texts too, or
    it would delete their audio as unused.
    """
    from ivr.engine.system_texts import system_prompt_texts

    return [*texts_from_menus(menus_dir), *system_prompt_texts()]


def texts_from_menus(menus_dir: Path) -> list[PromptText]:
    """Every PromptText of every menu in the directory (fragments, files starting '_', excluded)."""
    from ivr.menus.loader import load_menu, menu_files
    from ivr.menus.problems import MenuError
    from ivr.menus.validator import ValidatorOptions

    if not menus_dir.is_dir():
        raise MenuLoadError(f"{menus_dir}: no such menu directory")
    options = ValidatorOptions.beside(menus_dir)  # as the engine validates: queues.conf beside menus/
    texts: list[PromptText] = []
    for path in menu_files(menus_dir):
        try:
            texts += load_menu(path, options).prompt_texts()
        except MenuError as exc:  # its message lists every problem with file:line
            raise MenuLoadError(str(exc)) from exc
    return texts


def say_handler(args: argparse.Namespace) -> int:
    if Path(args.output).suffix.lower() != ".wav":  # it writes WAV: another ending would mislead
        print(f"ivr prompts say: -o {args.output}: the audio is a WAV file; name it .wav", file=sys.stderr)
        return 2
    try:
        settings = load_settings(getattr(args, "config", None))
        voice = voice_for(settings.prompts, args.lang)
        with tempfile.TemporaryDirectory(prefix="ivr-say-") as tmp:
            raw = Path(tmp) / "speech.wav"
            synthesize(args.text, voice, raw)
            convert(raw, Path(args.output), args.rate, normalize=True)
    except (ConfigError, SynthError, AudioError) as exc:
        print(f"ivr prompts say: {exc}", file=sys.stderr)
        return 2
    fields = ", ".join(f"{k}={v}" for k, v in attrs.asdict(voice).items())
    print(f"{args.output}: {args.lang} ({fields}), {args.rate} Hz")
    return 0
