"""What callers mean, decided as a call decides it: the phrase set through the 1414 menu.

Every phrase of tests/speech_phrases/1414.yaml is said (typed, each word with confidence 1.0, as
`ivr simulate` does) at the main menu (restricted grammar, Matcher) and at the open question
ask_topic (free-form, IntentClassifier), through the interpreter's own decision. Prints accuracy per
language and place, the wrong-branch rate, a confusion table and every miss.

Targets: at least 95% right, at most 1% wrong branch ("not sure, press a key" beats a wrong branch).

    .venv/bin/python bench/bench_intents.py [--menu menus/1414.yaml] [--phrases FILE] [--quiet]
        [--grammar-only]

--grammar-only is the pessimistic view of the restricted recogniser at a menu: a word the node's
grammar lacks is heard as "[unk]" (a real recogniser may instead force it onto a similar grammar
word). The targets are judged on the default, as `ivr simulate` recognises.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ivr.menus.loader import load_menu
from ivr.testing.phrase_bench import Tally, load_phrases, report, run

ROOT = Path(__file__).resolve().parent.parent
TARGET_RIGHT = 0.95
TARGET_WRONG = 0.01


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--menu", type=Path, default=ROOT / "menus" / "1414.yaml")
    parser.add_argument("--phrases", type=Path, default=ROOT / "tests" / "speech_phrases" / "1414.yaml")
    parser.add_argument("--quiet", action="store_true", help="figures only, not every miss")
    parser.add_argument(
        "--grammar-only", action="store_true", help='words outside a menu\'s grammar are heard as "[unk]"'
    )
    args = parser.parse_args(argv)

    menu = load_menu(args.menu)
    phrases = load_phrases(args.phrases)
    started = time.perf_counter()
    outcomes = run(menu, phrases, grammar_only=args.grammar_only)
    elapsed = time.perf_counter() - started
    print(f"{len(phrases)} phrases, {len(outcomes)} decisions in {elapsed:.2f} s\n")
    print(report(outcomes, show_misses=not args.quiet))
    total = Tally.of(outcomes)
    met = total.accuracy >= TARGET_RIGHT and total.wrong_rate <= TARGET_WRONG
    print(
        f"\ntargets: right >= {TARGET_RIGHT:.0%} ({total.accuracy:.1%}), wrong branch <= {TARGET_WRONG:.0%}"
        f" ({total.wrong_rate:.1%}): {'met' if met else 'NOT met'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
