"""The per-language Vosk model registry: one loaded model per language per process.

A vosk.Model is read-only once loaded and safe to share between threads; each decode makes its
own KaldiRecognizer from it. A language whose model is missing or fails to load is not an
error for the engine: it runs DTMF-only for that language and says so once at start.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any

import attrs

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_RATE = 16000
# What Vosk models call the out-of-grammar word; absent from some models (the Korean package).
UNKNOWN_WORD = "[unk]"

_vosk_lock = threading.Lock()
_vosk_module: Any = None
# Loaded vosk.Model objects by resolved directory: a reloaded configuration or a second service in
# the same process shares them instead of paying 540 MB again.
_models_lock = threading.Lock()
_models_by_path: dict[str, Any] = {}


class ModelUnavailable(Exception):
    """The model for a language cannot be used; the message says which path and why."""


def vosk_module() -> Any:
    """Import vosk once with its Kaldi INFO chatter off (warnings still reach stderr)."""
    global _vosk_module
    with _vosk_lock:
        if _vosk_module is None:
            import vosk

            vosk.SetLogLevel(-1)
            _vosk_module = vosk
        return _vosk_module


def model_sample_rate(model_dir: str | Path) -> int:
    """The rate the model's features expect: --sample-frequency in conf/mfcc.conf, else 16 kHz."""
    conf = Path(model_dir) / "conf" / "mfcc.conf"
    try:
        text = conf.read_text(encoding="utf-8")
    except OSError:
        return DEFAULT_SAMPLE_RATE
    match = re.search(r"^\s*--sample-frequency\s*=\s*([0-9.]+)", text, re.MULTILINE)
    return int(float(match.group(1))) if match else DEFAULT_SAMPLE_RATE


@attrs.frozen
class LoadedModel:
    language: str
    path: str
    model: Any = attrs.field(repr=False)  # vosk.Model
    sample_rate: int
    unknown_word: str | None  # "[unk]" when the model has it

    def knows(self, word: str) -> bool:
        return self.model.vosk_model_find_word(word) >= 0


def check_model_dir(path: str | Path) -> None:
    """Raise ModelUnavailable unless `path` looks like a Vosk model directory."""
    directory = Path(path)
    if not directory.exists():
        raise ModelUnavailable(f"model directory {directory} does not exist")
    if not directory.is_dir():
        raise ModelUnavailable(f"model path {directory} is not a directory")
    if not (directory / "am" / "final.mdl").is_file():
        raise ModelUnavailable(f"{directory} is not a Vosk model (no am/final.mdl)")


def load_model(language: str, path: str | Path) -> LoadedModel:
    """Load one model (about 1.8 s and 540 MB for a small model), once per process; blocking."""
    check_model_dir(path)
    key = str(Path(path).resolve())
    with _models_lock:
        model = _models_by_path.get(key)
        if model is None:
            vosk = vosk_module()
            try:
                model = vosk.Model(key)
            except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
                raise ModelUnavailable(f"{path}: Vosk could not load the model ({exc})") from None
            _models_by_path[key] = model
    unknown = UNKNOWN_WORD if model.vosk_model_find_word(UNKNOWN_WORD) >= 0 else None
    return LoadedModel(language, str(path), model, model_sample_rate(path), unknown)
