"""The FastAGI server on its own: timeouts, hang-ups mid-command and routing, with the fake Asterisk."""

from __future__ import annotations

import asyncio

from ivr.agi.channel import CallHangup, Channel, CommandTimeout
from ivr.agi.server import AgiServer
from ivr.testing.fake_caller import FakeCall, HangUp, Press, env_block


async def start(handler, **options) -> AgiServer:
    server = AgiServer(lambda script: handler if script == "1414" else None, "127.0.0.1", 0, **options)
    await server.start()
    return server


async def test_a_command_asterisk_never_answers_times_out_and_hands_the_call_back() -> None:
    outcome: list[BaseException] = []

    async def handler(channel: Channel) -> None:
        try:
            await channel.answer()
        except CommandTimeout as exc:
            outcome.append(exc)
            raise

    server = await start(handler, command_timeout=0.3)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(env_block("1414"))
        assert await reader.readline() == b"ANSWER\n"
        # Asterisk stays silent: the engine gives up and closes, so the dialplan continues.
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert outcome and "no reply to ANSWER" in str(outcome[0])
        assert server.stats.handler_errors == 0
    finally:
        await server.stop(1)


async def test_one_watchdog_pass_times_out_every_overdue_call_slice_by_slice(monkeypatch) -> None:
    # The watchdog lets the loop serve calls between slices of connections; one pass checks them all.
    monkeypatch.setattr("ivr.agi.server._SWEEP_SLICE", 2)

    async def handler(channel: Channel) -> None:
        await channel.answer()

    server = await start(handler, command_timeout=600)  # its own passes find nothing due
    try:
        streams = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(7)]
        for reader, writer in streams:
            writer.write(env_block("1414"))
            assert await reader.readline() == b"ANSWER\n"
        # Asterisk answers none of them; a pass ten minutes on finds all seven overdue.
        await server.sweep_deadlines(asyncio.get_running_loop().time() + 601)
        for reader, writer in streams:
            assert await asyncio.wait_for(reader.read(), 5) == b""  # given back to the dialplan
            writer.close()
        assert server.active_calls == 0
    finally:
        await server.stop(1)


async def test_a_hang_up_mid_command_ends_the_handler_with_call_hangup() -> None:
    seen: list[str] = []

    async def handler(channel: Channel) -> None:
        await channel.answer()
        try:
            await channel.get_data("1414/main", 5000, 1)
        except CallHangup:
            seen.append("hangup")
            raise

    server = await start(handler)
    try:
        call = await FakeCall([HangUp()]).run("127.0.0.1", server.port)
        assert seen == ["hangup"] and call.dead
        assert server.stats.hangups == 1 and server.stats.handler_errors == 0
    finally:
        await server.stop(1)


async def test_a_handler_bug_is_logged_once_and_the_call_goes_back_to_the_dialplan(caplog) -> None:
    async def handler(channel: Channel) -> None:
        await channel.answer()
        raise ValueError("a bug")

    server = await start(handler)
    try:
        call = await FakeCall([Press("1")]).run("127.0.0.1", server.port)
        assert call.closed_by_engine and call.commands == ["ANSWER"]
        assert server.stats.handler_errors == 1
        assert sum("handler" in r.getMessage() for r in caplog.records) == 1
    finally:
        await server.stop(1)


async def test_a_silent_connection_is_dropped_after_the_environment_timeout() -> None:
    async def handler(channel: Channel) -> None:
        await channel.answer()

    server = await start(handler, env_timeout=0.2)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"agi_network: yes\n")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert server.stats.dropped == 1 and server.active_calls == 0
    finally:
        await server.stop(1)
