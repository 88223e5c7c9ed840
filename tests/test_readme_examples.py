"""The README's example tests are the test files that run them, word for word."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "example",
    ["test_readme_ami_example.py", "test_readme_speech_example.py", "test_readme_outage_example.py"],
)
def test_the_readme_shows_the_example_test_as_it_runs(example: str) -> None:
    code = (REPO / "tests" / example).read_text(encoding="utf-8").split('"""', 2)[2].strip()
    assert f"```python\n{code}\n```" in (REPO / "README.md").read_text(encoding="utf-8")
