"""Time is an input: every decision in ivr/ reads the injectable clock (ivr.clock), never the machine's
clock or time zone directly, so no result depends on when or where the suite runs."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ivr"
WALL_CLOCK = re.compile(
    r"\btime\.time\(\)|\bdatetime\.now\(|\bdate\.today\(\)|\butcnow\(|\btime\.localtime\(|\btime\.strftime\("
)
ALLOWED = {
    "clock.py": "the one place that reads the machine's clock",
    "journal/db.py": "when a schema migration was applied: a record, not a decision",
    "contact/hours.py": "an error message that shows how to build an aware datetime",
    # The fake Asterisk stamps its replies (uniqueids, Timestamp, Uptime) as Asterisk does.
    "testing/fake_ami.py": "Asterisk's own clock in its AMI replies",
    "testing/fake_caller.py": "Asterisk's uniqueid form (epoch.sequence)",
}


def test_no_module_reads_the_wall_clock_but_the_clock() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in ALLOWED:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if WALL_CLOCK.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"ivr/{relative}:{number}: {line.strip()}")
    assert offenders == [], "read time through ivr.clock (EngineServices.clock) instead:\n" + "\n".join(
        offenders
    )
