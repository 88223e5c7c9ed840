"""Load + validate a generated 2,000-node menu and print the seconds it takes (target: under 0.5 s).

.venv/bin/python bench/bench_menu_load.py [--nodes 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
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


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        menu_path = Path(tmp) / "generated.yaml"
        text = generate(args.nodes)
        menu_path.write_text(text, encoding="utf-8")
        queues = Path(tmp) / "queues.conf"
        queues.write_text(QUEUES, encoding="utf-8")
        options = ValidatorOptions(queues_conf=queues)
        wall, cpu, bare = [], [], []
        for _ in range(args.repeat):
            started, started_cpu = time.perf_counter(), time.process_time()
            result = check_menu(menu_path, options)
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
            # The floor: PyYAML (libyaml) turning the same text into plain dicts, nothing else.
            started_cpu = time.process_time()
            yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            bare.append(time.process_time() - started_cpu)
        assert result.menu is not None, "\n".join(str(p) for p in result.errors[:10])
    lines = text.count("\n")
    print(f"menu: {len(result.menu.nodes)} nodes, {lines} lines, {len(text.encode()) / 1024:.0f} KiB")
    print(f"problems: {len(result.problems)}, prompt texts: {len(result.menu.prompt_texts())}")
    print(f"load+validate wall: best {min(wall):.3f} s, median {_median(wall):.3f} s (target < 0.5 s)")
    print(f"load+validate CPU:  best {min(cpu):.3f} s, median {_median(cpu):.3f} s")
    print(
        f"bare yaml.load CPU: best {min(bare):.3f} s (libyaml: {yaml.__with_libyaml__}), the floor for this file"
    )


if __name__ == "__main__":
    main()
