"""Load + validate a generated 2,000-node menu and print the seconds it takes (target: under 0.5 s).

Cold: each run is a fresh Python process loading the file once, as `ivr check` or an engine start
does. The speech dictionaries the phrase checks consult (pymorphy3's, the Kazakh rules) are loaded
before the clock starts and timed apart: a process loads them once whatever its menus. Again: the
same file loaded again in one process (word forms already cached). Figures are min / median / max.

.venv/bin/python bench/bench_menu_load.py [--nodes 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ivr.menus import ValidatorOptions, check_menu

QUEUES = "[kk-general]\n[ru-general]\n"


def generate(nodes: int) -> str:
    """A tree of menus (3 options each), each leaf an answer menu, plus texts and an operator queue."""
    lines = [
        "start: n0",
        "keys:",
        '  operator: {key: "0", goto: operator, phrases: {kk: [оператор, маман], ru: [оператор, специалист]}}',
        '  repeat: {key: "*", phrases: {kk: [қайталаңыз], ru: [повторите]}}',
        '  back: {key: "#", phrases: {kk: [артқа], ru: [назад]}}',
        "defaults: {retries: 3, timeout: 5, invalid: invalid, silence: silence}",
        "texts:",
        '  invalid: {kk: "Кешіріңіз, түсінбедік.", ru: "Извините, мы не поняли."}',
        '  silence: {kk: "Жауабыңызды естімедік.", ru: "Мы не услышали ваш ответ."}',
        "nodes:",
        "  operator:",
        "    kind: queue",
        "    queue: {kk: kk-general, ru: ru-general}",
        "    callback_offer: true",
    ]
    count = nodes - 1
    for index in range(count):
        children = [child for child in (3 * index + 1, 3 * index + 2, 3 * index + 3) if child < count]
        lines += [
            f"  n{index}:",
            "    kind: menu",
            f"    topic: t{index % 20}",
            "    say:",
            f'      kk: "Бөлім {index}. Бірінші тармақ — бір, екінші — екі, үшінші — үш."',
            f'      ru: "Раздел {index}. Первый пункт — один, второй — два, третий — три."',
            "    short:",
            f'      kk: "Бөлім {index}: нөмірді басыңыз."',
            f'      ru: "Раздел {index}: нажмите номер."',
            "    options:",
        ]
        targets = [f"n{child}" for child in children] or ["top"]
        for key, target in enumerate(targets, start=1):
            lines.append(
                f'      - {{key: "{key}", goto: {target}, '
                f"phrases: {{kk: [тармақ {index} {key}, {key}-тармақ], ru: [пункт {index} {key}, пункт {key}]}}}}"
            )
    return "\n".join(lines) + "\n"


def _figures(values: list[float]) -> str:
    return f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f} s"


def _time_load(menu: Path, queues: Path) -> dict[str, float]:
    """Seconds (wall, CPU) of one check_menu, and the nodes it read."""
    started, started_cpu = time.perf_counter(), time.process_time()
    result = check_menu(menu, ValidatorOptions(queues_conf=queues))
    wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    assert result.menu is not None, "\n".join(str(p) for p in result.errors[:10])
    return {"wall": wall, "cpu": cpu, "nodes": len(result.menu.nodes)}


def child(menu: Path, queues: Path) -> None:
    """One cold run: this process has never read the file."""
    from ivr.speech.matcher import load_matching_dictionaries

    started = time.perf_counter()
    load_matching_dictionaries()  # as the engine does at start
    dictionaries = time.perf_counter() - started
    print(json.dumps({**_time_load(menu, queues), "dictionaries": dictionaries}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", nargs=2, metavar=("MENU", "QUEUES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return
    runs = max(3, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        menu_path = Path(tmp) / "generated.yaml"
        text = generate(args.nodes)
        menu_path.write_text(text, encoding="utf-8")
        queues = Path(tmp) / "queues.conf"
        queues.write_text(QUEUES, encoding="utf-8")
        cold = []
        for _ in range(runs):
            command = [sys.executable, __file__, "--child", str(menu_path), str(queues)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            cold.append(json.loads(done.stdout))
        again = [_time_load(menu_path, queues) for _ in range(runs + 1)][1:]  # the first is cold here
        bare, events = [], []
        for _ in range(runs):
            # The floors: libyaml turning the same text into plain dicts, and into bare events.
            started = time.process_time()
            yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            bare.append(time.process_time() - started)
            started = time.process_time()
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
            while loader.get_event() is not None:
                pass
            loader.dispose()
            events.append(time.process_time() - started)
    lines = text.count("\n")
    print(
        f"menu: {cold[0]['nodes']} nodes, {lines} lines, {len(text.encode()) / 1024:.0f} KiB; {runs} runs each"
    )
    print("load+validate, min / median / max (target < 0.5 s):")
    print(f"  cold  wall {_figures([r['wall'] for r in cold])}  cpu {_figures([r['cpu'] for r in cold])}")
    print(f"  again wall {_figures([r['wall'] for r in again])}  cpu {_figures([r['cpu'] for r in again])}")
    print(f"speech dictionaries, once per process: {_figures([r['dictionaries'] for r in cold])}")
    print(
        f"floors (cpu, libyaml: {yaml.__with_libyaml__}): yaml.load {_figures(bare)}, events {_figures(events)}"
    )


if __name__ == "__main__":
    main()
