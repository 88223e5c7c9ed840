"""The [audiosocket] settings: read from TOML, documented in ivr.example.toml, mapped onto the detector."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ivr.audiosocket.server import AudioSocketServer
from ivr.config import AudioSocketSettings, ConfigError, Settings, load_settings
from ivr.engine.media import MediaPath

REPO = Path(__file__).resolve().parents[1]


def test_the_example_file_loads_and_keeps_the_media_path_off() -> None:
    settings = load_settings(REPO / "ivr.example.toml", env={})
    assert settings.audiosocket.enabled is False
    assert settings.audiosocket.bind == "127.0.0.1:9093"
    assert settings.speech.max_streams == 200


def test_settings_from_a_file(tmp_path: Path) -> None:
    config = tmp_path / "ivr.toml"
    config.write_text('[audiosocket]\nenabled = true\nbind = "0.0.0.0:9000"\nend_silence_ms = 300\n')
    settings = load_settings(config, env={})
    assert settings.audiosocket.enabled and settings.audiosocket.end_silence_ms == 300
    config.write_text("[audiosocket]\nbarge_inn = true\n")
    with pytest.raises(ConfigError, match="barge_inn"):
        load_settings(config, env={})


async def test_the_media_path_tells_asterisk_a_reachable_address_and_maps_the_detector() -> None:
    server = AudioSocketServer("0.0.0.0", 0)
    await server.start()
    try:
        settings = Settings(
            audiosocket=AudioSocketSettings(bind="0.0.0.0:0", end_silence_ms=300, onset_ms=40)
        )
        media = MediaPath(settings, server)
        assert media.advertise == f"127.0.0.1:{server.port}"  # 0.0.0.0 is not an address to connect to
        assert (media.vad.hangover_frames, media.vad.onset_frames) == (15, 2)
        assert media.enabled
        media.turn_off("test", seconds=60)
        assert not media.enabled
        media.turn_off("test", seconds=0)
        await asyncio.sleep(0)
        assert media.enabled
    finally:
        await server.stop()


def media_path(server: AudioSocketServer, advertise: str = "") -> MediaPath:
    settings = Settings(
        audiosocket=AudioSocketSettings(bind="127.0.0.1:0", advertise=advertise, connect_timeout=0.2)
    )
    return MediaPath(settings, server)


async def test_the_probe_sent_to_the_advertised_address_reaches_the_engines_own_listener() -> None:
    server = AudioSocketServer("127.0.0.1", 0)
    await server.start()
    try:
        media = media_path(server)
        assert await media.self_test()
        assert media.enabled and server.waiting == 0
    finally:
        await server.stop()


async def test_a_listener_that_accepts_but_is_not_the_engine_turns_the_media_path_off(caplog) -> None:
    server = AudioSocketServer("127.0.0.1", 0)
    await server.start()
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # a load balancer with nothing behind it: accepts, never answers
        await reader.read()

    stranger = await asyncio.start_server(silent, "127.0.0.1", 0)
    address = f"127.0.0.1:{stranger.sockets[0].getsockname()[1]}"
    try:
        media = media_path(server, advertise=address)
        assert not await media.self_test()
        assert accepted and not media.enabled and server.waiting == 0
        assert f"connect to {address} ([audiosocket] advertise)" in caplog.text
        assert "did not reach this engine" in caplog.text and "RECORD FILE" in caplog.text
    finally:
        stranger.close()
        await server.stop()


async def test_another_engines_listener_is_told_apart_at_once(caplog) -> None:
    ours, theirs = AudioSocketServer("127.0.0.1", 0), AudioSocketServer("127.0.0.1", 0)
    await ours.start()
    await theirs.start()
    try:
        media = media_path(ours, advertise=f"127.0.0.1:{theirs.port}")
        assert not await media.self_test()  # theirs hangs up on a UUID it does not expect
        assert not media.enabled
        assert "answered the probe itself" in caplog.text
    finally:
        await theirs.stop()
        await ours.stop()
