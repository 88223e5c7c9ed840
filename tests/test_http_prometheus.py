"""/metrics as the real Prometheus sees it: Debian's `prometheus` scrapes the engine with the bearer token
(read from a file, as the token must never be on a command line), and `promtool check metrics` lints the
names and units."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from pathlib import Path

import aiohttp
import pytest

from ivr.config import HttpSettings
from ivr.http.server import BoardServer
from ivr.testing.fake_caller import FakeCall, Press

# Skipped without the binary, except under CI=true, where it must be there (as tests/pg.py does).
pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None and os.environ.get("CI") != "true",
    reason="prometheus missing (apt-get install prometheus; .ci/run does)",
)
TOKEN = "scrape-token"


def free_port() -> int:
    # Prometheus does not report the port it bound, so it is given one that was free a moment ago.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def query(session: aiohttp.ClientSession, prometheus: str, expression: str) -> list[dict]:
    try:
        async with session.get(f"{prometheus}/api/v1/query", params={"query": expression}) as response:
            if response.status != 200:
                return []
            return (await response.json())["data"]["result"]
    except aiohttp.ClientConnectionError:
        return []  # not listening yet


async def test_prometheus_scrapes_the_engine_with_its_token(board_engine, tmp_path: Path) -> None:
    server = BoardServer(board_engine, HttpSettings(bind="127.0.0.1:0", token=TOKEN))
    await server.start()
    call = FakeCall([Press("2"), Press("2")])
    await call.run("127.0.0.1", board_engine.server.port, timeout=30)
    (tmp_path / "token").write_text(TOKEN, encoding="utf-8")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: ivr\n"
        f"    authorization: {{credentials_file: {tmp_path / 'token'}}}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n",
        encoding="utf-8",
    )
    listen = f"127.0.0.1:{free_port()}"
    prometheus = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={listen}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    try:
        async with aiohttp.ClientSession() as session:
            found: dict[str, list[dict]] = {}
            for _ in range(150):
                await asyncio.sleep(0.2)
                found = {
                    name: await query(session, f"http://{listen}", name)
                    for name in (
                        "up",
                        "ivr_ami_connected",
                        "ivr_agi_command_duration_seconds_count",
                        "ivr_calls_total",
                    )
                }
                if all(found.values()):
                    break
            async with session.get(
                f"http://127.0.0.1:{server.port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
            ) as response:
                exposition = await response.read()
    finally:
        prometheus.terminate()
        prometheus.wait(10)
        await server.stop()
    log = (tmp_path / "prometheus.log").read_text(errors="replace")
    assert all(found.values()), f"Prometheus did not get the metrics: {found}\n{log[-2000:]}"
    assert found["up"][0]["value"][1] == "1"
    assert found["ivr_ami_connected"][0]["value"][1] == "1"
    commands = {r["metric"]["command"] for r in found["ivr_agi_command_duration_seconds_count"]}
    assert {"ANSWER", "STREAM FILE"} <= commands
    lint = subprocess.run(["promtool", "check", "metrics"], input=exposition, capture_output=True, timeout=30)
    assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode()
