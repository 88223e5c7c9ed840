"""Prompt build benchmark: a cold build of every 1414 menu text plus Asterisk's number and queue sounds in
both languages, then a warm build with nothing changed. Prints seconds; not a test.

    .venv/bin/python bench/bench_prompts.py [--menus menus] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ivr.config import PromptSettings
from ivr.prompts.build import build_prompts
from ivr.prompts.cli import texts_for_engine
from ivr.texts import LANGUAGES, PromptText


def menu_texts(menus: Path) -> tuple[list[PromptText], str]:
    try:
        return texts_for_engine(menus), f"{menus}/*.yaml and the engine's own texts"
    except Exception as exc:  # a bench still runs while the menu model is broken: say so, use a stand-in
        print(f"menus not loadable ({exc}); using 100 generated texts per language")
        words = {
            "kk": "Қызмет туралы ақпарат алу үшін {} басыңыз.",
            "ru": "Для информации об услуге {} нажмите.",
        }
        texts = [
            PromptText(f"bench/t{i}", lang, words[lang].format(i)) for lang in LANGUAGES for i in range(100)
        ]
        return texts, "generated"


def timed_build(texts: list[PromptText], prompts: Path, workers: int) -> tuple[float, object]:
    started = time.perf_counter()
    report = build_prompts(texts, prompts, PromptSettings(), workers=workers)
    return time.perf_counter() - started, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--menus", default="menus")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to compare")
    args = parser.parse_args()
    texts, source = menu_texts(Path(args.menus))
    print(f"texts: {len(texts)} from {source} (+ digits/ and queue- sounds for {', '.join(LANGUAGES)})")
    for workers in (int(w) for w in args.workers.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-prompts-") as tmp:
            prompts = Path(tmp) / "prompts"
            cold, report = timed_build(texts, prompts, workers)
            assert report.ok, report.summary()
            files = sum(1 for p in prompts.rglob("*.wav*"))
            audio = sum(p.stat().st_size for p in prompts.rglob("*.wav*")) / 1e6
            warm, again = timed_build(texts, prompts, workers)
            assert not again.synthesized, again.summary()
            print(
                f"workers={workers}: cold build {cold:.2f} s ({len(report.synthesized)} prompts, {files} files, "
                f"{audio:.1f} MB, {1000 * cold / len(report.synthesized):.1f} ms/prompt); "
                f"warm no-change build {warm:.3f} s"
            )


if __name__ == "__main__":
    main()
