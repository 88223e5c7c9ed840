"""ivr.example.toml says it keeps the built-in defaults: copying it to ivr.toml must change nothing."""

from pathlib import Path

import attrs

from ivr.config import Settings, load_settings
from ivr.prompts.synth import voice_for
from ivr.texts import LANGUAGES

EXAMPLE = Path(__file__).resolve().parents[1] / "ivr.example.toml"


def test_the_example_settings_are_the_built_in_defaults() -> None:
    example, built_in = load_settings(EXAMPLE, env={}), Settings()
    # the voices are spelt out in the example; the defaults leave them to voice_for
    for language in LANGUAGES:
        assert voice_for(example.prompts, language) == voice_for(built_in.prompts, language), language
    assert attrs.evolve(example, prompts=built_in.prompts) == built_in
