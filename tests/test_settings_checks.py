"""Settings an admin can get wrong are refused with the reason, before the engine starts."""

import pytest

from ivr.cli import main
from ivr.config import ConfigError, load_settings


def test_a_speech_model_for_a_language_callers_do_not_speak_is_refused(tmp_path) -> None:
    config = tmp_path / "ivr.toml"
    config.write_text('[speech.models]\nen = "/opt/vosk/en"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"speech\.models: en: the languages are kk and ru"):
        load_settings(config, env={})


def test_the_same_on_the_command_line(capsys) -> None:
    assert main(["serve", "--speech-model", "ky=/opt/vosk/ky", "--agi-bind", "127.0.0.1:0"]) == 2
    assert "--speech-model: ky: the languages are kk and ru" in capsys.readouterr().err
