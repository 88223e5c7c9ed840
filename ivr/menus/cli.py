"""`ivr check` and `ivr graph`: the admin's tools for menu files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ivr.config import ConfigError, load_settings
from ivr.menus.graph import GraphError, branch, render, to_dot
from ivr.menus.loader import check_menu, menu_files
from ivr.menus.model import Menu
from ivr.menus.problems import MenuProblem
from ivr.menus.validator import ValidatorOptions
from ivr.texts import LANGUAGES


def register(subparsers: argparse._SubParsersAction) -> None:
    check = subparsers.add_parser(
        "check",
        help="validate menu files",
        description="Validate menus: schema, texts in kk and ru, targets, reachability, loops, keys, queues.",
    )
    check.add_argument(
        "path",
        nargs="?",
        help="a menu file or a directory of them (default: the configured menus_dir if it exists here, "
        "else the current directory when it holds menu files)",
    )
    check.add_argument(
        "--queues-conf",
        help="Asterisk queues.conf to check queue names against (default: asterisk-conf/queues.conf "
        "beside the menus directory)",
    )
    check.add_argument("--strict", action="store_true", help="treat warnings as errors (exit non-zero)")
    check.add_argument(
        "--no-paths",
        action="store_true",
        help="skip running every path of each menu through the interpreter (the proof that every call ends)",
    )
    check.set_defaults(func=run_check)

    graph = subparsers.add_parser(
        "graph", help="draw a menu as SVG or PNG", description="Draw a menu tree with Graphviz dot."
    )
    graph.add_argument(
        "menu", nargs="?", help="menu name (file stem in the menus dir) or a path to a menu file"
    )
    graph.add_argument("-o", "--output", required=True, help="output file: .svg, .png, .pdf or .dot")
    graph.add_argument("--lang", choices=LANGUAGES, default=LANGUAGES[0], help="language of texts and words")
    graph.add_argument(
        "--from",
        dest="root",
        metavar="NODE",
        help="draw only the branch starting at this node (default: start)",
    )
    graph.add_argument(
        "--depth", type=int, metavar="N", help="draw nodes at most N steps away (deeper ones as stubs)"
    )
    graph.set_defaults(func=run_graph)


def _menus_dir(args: argparse.Namespace) -> Path:
    """The configured menus_dir when it exists from here; else the current directory when it holds
    menu files (an admin at work inside menus/); else the configured one, which the caller reports."""
    try:
        configured = Path(load_settings(getattr(args, "config", None)).menus_dir)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if not configured.is_dir() and menu_files(Path.cwd()):
        return Path(".")
    return configured


def _options(menus_dir: Path, queues_conf: str | None, config: str | None = None) -> ValidatorOptions:
    """Queues from asterisk-conf/, prompts from the configured prompt directory (present or buildable),
    speech phrases against the configured Vosk models' vocabularies (where a model is present)."""
    from ivr.prompts.build import check_prompts
    from ivr.speech.vocabulary import vocabulary_for

    settings = load_settings(config)
    conf = Path(queues_conf) if queues_conf else menus_dir.resolve().parent / "asterisk-conf" / "queues.conf"
    prompts_dir = Path(settings.prompts.dir)
    beside = menus_dir.resolve().parent / prompts_dir
    if not prompts_dir.is_dir() and beside.is_dir():
        prompts_dir = beside  # run inside menus/: the project's prompts/ sits beside it, as queues.conf does

    def prompts_hook(texts: list) -> list:
        return check_prompts(texts, prompts_dir, settings, buildable_is_fine=True)

    return ValidatorOptions(
        queues_conf=conf, check_prompts=prompts_hook, vocabulary=vocabulary_for(settings.speech)
    )


def run_check(args: argparse.Namespace) -> int:
    target = Path(args.path) if args.path else _menus_dir(args)
    if not args.path and not target.is_dir():
        print(
            f"error: no menus here: {target}/ (menus_dir) does not exist in {Path.cwd()}, which holds no "
            "menu files either; run from the project directory or inside menus/, or name it: ivr check PATH",
            file=sys.stderr,
        )
        return 1
    if target.is_dir():
        files, menus_dir = menu_files(target), target
        if not files:
            print(f"error: no menu files (*.yaml) in {target}", file=sys.stderr)
            return 1
    elif target.is_file():
        files, menus_dir = [target], target.parent
    else:
        print(f"error: {target}: no such file or directory", file=sys.stderr)
        return 1
    options = _options(menus_dir, args.queues_conf, getattr(args, "config", None))
    errors: list[MenuProblem] = []
    warnings: list[MenuProblem] = []
    nodes = 0
    proofs: list[str] = []
    read: set[Path] = set()
    for file in files:
        result = check_menu(file, options)
        read.update(Path(source).resolve() for source in result.sources)
        errors += result.errors
        warnings += result.warnings
        if result.menu is not None:
            nodes += len(result.menu.nodes)
            if not args.no_paths:
                found, proof = _every_call_ends(result.menu)
                errors += [p for p in found if p.is_error]
                warnings += [p for p in found if not p.is_error]
                proofs += [proof] if proof else []
    if target.is_dir():  # a fragment no menu includes is neither checked nor used: say so
        for fragment in sorted(target.glob("_*.yaml")):
            if fragment.resolve() not in read:
                warnings.append(
                    MenuProblem(
                        str(fragment), 1, 1,
                        f"fragment {fragment.name} is included by no menu, so it is neither checked nor used; "
                        "add it to a menu's include: list, or remove it",
                        "warning",
                    )
                )  # fmt: skip
    for problem in errors:
        print(problem)
    if warnings:
        if errors:
            print()
        for problem in warnings:
            print(problem)
    failed = bool(errors) or (args.strict and bool(warnings))
    if failed:
        print(
            f"FAILED: {_count(errors, 'error')}, {_count(warnings, 'warning')} in {_count(files, 'menu')}",
            file=sys.stderr,
        )
        return 1
    for proof in proofs:
        print(proof)
    tail = f", {_count(warnings, 'warning')}" if warnings else ""
    print(f"OK: {_count(files, 'menu')}, {nodes} nodes{tail}")
    return 0


def _count(items: list, noun: str) -> str:
    return f"{len(items)} {noun}" + ("" if len(items) == 1 else "s")


def _every_call_ends(menu: Menu) -> tuple[list[MenuProblem], str]:
    """Run every path of the menu through the real interpreter (ivr.engine.explore)."""
    from ivr.engine.explore import explore, problems, summary

    result = explore(menu)
    return list(problems(menu, result)), summary(menu, result) if result.ok else ""


def run_graph(args: argparse.Namespace) -> int:
    menus_dir = _menus_dir(args)
    name = args.menu or load_settings(getattr(args, "config", None)).default_menu
    path = Path(name)
    if not path.is_file():
        path = menus_dir / f"{name}.yaml"
    if not path.is_file():
        print(f"error: no menu {name!r} (looked for {path})", file=sys.stderr)
        return 1
    result = check_menu(path, _options(path.parent, None))
    if result.menu is None:
        for problem in result.errors:
            print(problem, file=sys.stderr)
        print(f"error: {path} has errors; fix them first (ivr check {path})", file=sys.stderr)
        return 1
    root, depth = getattr(args, "root", None), getattr(args, "depth", None)
    try:
        shown = len(branch(result.menu, root, depth))
        output = render(to_dot(result.menu, args.lang, root, depth), args.output)
    except (GraphError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {output} ({shown} of {len(result.menu.nodes)} nodes, {args.lang})")
    return 0
