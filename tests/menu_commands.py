"""`ivr check` / `ivr graph` run in-process, as the `ivr` command line would run them."""

from __future__ import annotations

import argparse

from ivr.menus.cli import register


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ivr")
    parser.add_argument("--config")
    register(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    return args.func(args)
