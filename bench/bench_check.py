"""How long `ivr check` takes to prove every call of a menu ends (target: under 2 s for 1414).

Runs the path exploration (ivr.engine.explore) of the menu several times and prints the paths run,
then wall and CPU seconds as min / median / max.

.venv/bin/python bench/bench_check.py [menus/1414.yaml] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from ivr.engine.explore import explore
from ivr.menus.loader import load_menu
from ivr.menus.validator import ValidatorOptions

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("menu", nargs="?", default=str(REPO / "menus" / "1414.yaml"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    menu = load_menu(args.menu, ValidatorOptions.beside(Path(args.menu).parent))
    walls, cpus = [], []
    runs = 0
    for _ in range(max(3, args.repeat)):
        wall, cpu = time.perf_counter(), time.process_time()
        result = explore(menu)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        runs = result.runs
        assert result.ok, "the menu does not pass the check"

    def figures(values: list[float]) -> str:
        return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f} s"

    print(f"{menu.name}: {runs} paths per check, {len(walls)} checks")
    print(f"  wall (min / median / max): {figures(walls)}")
    print(f"  cpu  (min / median / max): {figures(cpus)}")


if __name__ == "__main__":
    main()
