"""Engine settings: embedded defaults, overridden by ivr.toml, overridden by command-line flags.

The AMI secret (IVR_AMI_SECRET) and the HTTP token (IVR_HTTP_TOKEN) are read from the environment or
the file, never from argv, so they do not show up in `ps`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import attrs

SECRET_ENV = "IVR_AMI_SECRET"
HTTP_TOKEN_ENV = "IVR_HTTP_TOKEN"
DEFAULT_CONFIG_FILE = "ivr.toml"


class ConfigError(ValueError):
    """A setting is missing, of the wrong type or unknown; the message names it."""


def parse_hostport(text: str, default_port: int | None = None) -> tuple[str, int]:
    """'127.0.0.1:4573' -> ('127.0.0.1', 4573); '[::1]:4573' for IPv6."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.lstrip(":")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not port_text:
        if default_port is None:
            raise ConfigError(f"{text!r}: expected HOST:PORT")
        return host or "127.0.0.1", default_port
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{text!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{text!r}: port {port} is out of range 0-65535")
    return host or "127.0.0.1", port


@attrs.frozen
class AgiSettings:
    bind: str = "127.0.0.1:4573"
    backlog: int = 1024
    # Longest AGI line accepted; Asterisk's own lines are far shorter (a 520 usage line is ~200 bytes).
    max_line: int = 8192
    # Seconds to wait for the environment block before dropping a silent connection.
    env_timeout: float = 10.0
    # Default reply timeout for a command that is not itself a wait (ANSWER, SET VARIABLE, ...).
    command_timeout: float = 30.0
    # On SIGTERM: seconds running calls may take before they are ended.
    shutdown_grace: float = 30.0


@attrs.frozen
class AmiSettings:
    host: str = ""  # empty: AMI disabled
    port: int = 5038
    user: str = "ivr"
    secret: str = attrs.field(default="", repr=False)
    reconnect_min: float = 1.0
    reconnect_max: float = 30.0
    # Longest a caller waits for AMI (queue figures) before the engine goes on without them.
    wait_on_call: float = 1.0

    @property
    def enabled(self) -> bool:
        return bool(self.host)


@attrs.frozen
class SpeechSettings:
    models: dict[str, str] = attrs.field(factory=dict)  # language -> model directory
    spool: str = "/var/spool/asterisk/ivr"
    workers: int = 2
    max_pending: int = 8  # decodes waiting beyond this degrade the call to DTMF
    max_streams: int = 200  # answers decoded while spoken (AudioSocket); more are recorded instead
    max_record_seconds: int = 8
    silence_seconds: int = 2
    # Mean word confidence below which a speech match is not trusted (the caller is asked for a key).
    confidence: float = 0.8


@attrs.frozen
class AudioSocketSettings:
    """The streaming media path (barge-in): Asterisk's AudioSocket connects to the engine per answer.

    Off by default because Asterisk must load res_audiosocket + app_audiosocket (README: "Speech while
    the prompt plays"); without them, or when no connection arrives, the engine records as before.
    """

    enabled: bool = False
    bind: str = "127.0.0.1:9093"  # where the engine listens for Asterisk's AudioSocket connections
    advertise: str = ""  # HOST:PORT Asterisk connects to, when not the bind address (NAT, 0.0.0.0)
    connect_timeout: float = 3.0  # seconds for Asterisk's connection after EXEC AudioSocket
    barge_in: bool = True  # speech interrupts the prompt; False: only keys do
    end_silence_ms: int = 200  # silence that ends an answer
    onset_ms: int = 60  # voice needed before it counts as speech
    echo_loss_db: float = 12.0  # the prompt's echo is assumed at least this much quieter than the prompt
    min_level_dbfs: float = -40.0  # quieter than this is never speech


@attrs.frozen
class PromptSettings:
    dir: str = "prompts"
    synthesize_missing: bool = False
    voices: dict[str, dict[str, Any]] = attrs.field(factory=dict)


@attrs.frozen
class HttpSettings:
    bind: str = ""  # empty: no wallboard, metrics or health endpoints
    # Needed by every client that is not on this machine; read from IVR_HTTP_TOKEN or the file, never argv.
    token: str = attrs.field(default="", repr=False)
    name: str = ""  # what the board calls this engine; empty: host:pid

    @property
    def enabled(self) -> bool:
        return bool(self.bind)


def _check_writer(value: str) -> None:
    if value not in ("process", "thread"):
        raise ConfigError(f'journal_writer: expected "process" or "thread", got {value!r}')


def _check_hold_rows(value: int) -> None:
    if value < 0:
        raise ConfigError(f"journal_hold_rows: expected 0 or more, got {value}")


@attrs.frozen
class Settings:
    menus_dir: str = "menus"
    default_menu: str = "1414"
    state_dir: str = "var"  # journal, callbacks, incidents (SQLite) when no database URL is set
    database_url: str = ""  # postgresql://... for several engines sharing state
    # Who writes `ivr serve`'s journal rows: "thread", the database's writer thread, or "process", a child
    # process: no second thread taking the GIL from the event loop, so fewer and shorter stalls at
    # thousands of lines, for some 0.04 ms more of the loop's CPU a call (README: "What a call costs").
    journal_writer: str = attrs.field(default="thread", validator=lambda _i, _a, v: _check_writer(v))
    # Journal rows kept in memory, in order, while the database does not answer (README: "When the
    # database is away"); past this the oldest are dropped, counted. About 1 KiB a row.
    journal_hold_rows: int = attrs.field(default=100_000, validator=lambda _i, _a, v: _check_hold_rows(v))
    timezone: str = "Asia/Almaty"
    log_level: str = "INFO"
    agi: AgiSettings = AgiSettings()
    ami: AmiSettings = AmiSettings()
    speech: SpeechSettings = SpeechSettings()
    prompts: PromptSettings = PromptSettings()
    http: HttpSettings = HttpSettings()
    audiosocket: AudioSocketSettings = AudioSocketSettings()


_SECTIONS = {
    "agi": AgiSettings,
    "ami": AmiSettings,
    "speech": SpeechSettings,
    "prompts": PromptSettings,
    "http": HttpSettings,
    "audiosocket": AudioSocketSettings,
}


def _check_type(where: str, value: Any, default: Any) -> Any:
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {expected.__name__}, got {type(value).__name__} {value!r}")
    return value


def _build(cls: type, where: str, table: dict[str, Any]) -> Any:
    defaults = cls()
    known = {f.name for f in attrs.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key in _SECTIONS and cls is Settings:
            if not isinstance(value, dict):
                raise ConfigError(f"[{key}] must be a table")
            values[key] = _build(_SECTIONS[key], key, value)
            continue
        if key not in known:
            hint = ", ".join(sorted(known | (set(_SECTIONS) if cls is Settings else set())))
            raise ConfigError(f"{where or 'top level'}: unknown setting {key!r} (known: {hint})")
        values[key] = _check_type(f"{where + '.' if where else ''}{key}", value, getattr(defaults, key))
    return attrs.evolve(defaults, **values)


def load_settings(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Settings:
    """Defaults, then the TOML file if it exists (or must exist when named), then IVR_AMI_SECRET and
    IVR_HTTP_TOKEN."""
    env = dict(os.environ) if env is None else env
    table: dict[str, Any] = {}
    if path is not None or Path(DEFAULT_CONFIG_FILE).exists():
        file = Path(path if path is not None else DEFAULT_CONFIG_FILE)
        try:
            table = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{file}: configuration file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: {exc}") from None
    settings = _build(Settings, "", table)
    check_model_languages(settings.speech.models, "speech.models")
    if env.get(SECRET_ENV):
        settings = attrs.evolve(settings, ami=attrs.evolve(settings.ami, secret=env[SECRET_ENV]))
    if env.get(HTTP_TOKEN_ENV):
        settings = attrs.evolve(settings, http=attrs.evolve(settings.http, token=env[HTTP_TOKEN_ENV]))
    return settings


def check_model_languages(models: dict[str, str], where: str) -> None:
    """The engine's callers speak kk and ru: a model for another language is a typo, not a setting."""
    unknown = sorted(set(models) - {"kk", "ru"})
    if unknown:
        raise ConfigError(f"{where}: {', '.join(unknown)}: the languages are kk and ru")


def override(settings: Settings, **changes: Any) -> Settings:
    """Apply command-line flags: dotted names ('agi.bind', 'ami.host'); None means 'not given'."""
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for name, value in changes.items():
        if value is None:
            continue
        section, _, key = name.rpartition(".")
        if section:
            sections.setdefault(section, {})[key] = value
        else:
            top[name] = value
    for section, values in sections.items():
        top[section] = attrs.evolve(getattr(settings, section), **values)
    return attrs.evolve(settings, **top)
