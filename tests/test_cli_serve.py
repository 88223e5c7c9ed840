"""`ivr serve` and `ivr testcall` as an admin and a tester run them: real processes, real sockets, uvloop."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ivr.testing.engine_fixtures import private_prompts

REPO = Path(__file__).resolve().parents[1]
IVR = [sys.executable, "-m", "ivr"]


def start_engine(
    tmp_path: Path, *flags: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        [*IVR, "serve", "--agi-bind", "127.0.0.1:0", "--state-dir", str(tmp_path / "state"), *flags],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    process.startup_lines = []  # type: ignore[attr-defined]  # what it printed before listening
    for line in process.stdout:
        process.startup_lines.append(line)  # type: ignore[attr-defined]
        match = re.match(r"ivr: FastAGI on 127\.0\.0\.1:(\d+)", line)
        if match:
            return process, int(match.group(1))
    process.wait(10)
    pytest.fail(f"ivr serve exited with {process.returncode} before listening")


# The engine's clock is pinned with --clock: what a caller gets must not depend on when CI runs.
WEDNESDAY_10 = "2026-11-25T10:00+05:00"
SUNDAY_3AM = "2026-11-29T03:00+05:00"


def run_testcall(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*IVR, "testcall", f"127.0.0.1:{port}", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_serve_answers_a_testcall_and_stops_cleanly_on_sigterm(tmp_path: Path, project_prompts: Path) -> None:
    process, port = start_engine(tmp_path, "--clock", WEDNESDAY_10)
    try:
        result = run_testcall(port, "--press", "2", "--press", "0", "--state-dir", str(tmp_path / "state"))
        assert result.returncode == 0, result.stderr
        assert "EXEC Queue ru-general" in result.stdout
        assert "language ru; queue ru-general (answered); the engine hung up" in result.stdout
        # a tester's transcript: keys as keys, the step that answered, each prompt's text, the journal
        assert "[key 2]  <- step 1: press 2" in result.stdout
        assert "«Соединяем со специалистом. Пожалуйста, оставайтесь на линии.» (ru)" in result.stdout
        assert result.stdout.rstrip().endswith("@127.0.0.1")  # the journal's key, as its log says it
        assert "journal: outcome queued; topic general; key 1" in result.stdout
        as_json = json.loads(
            run_testcall(port, "--press", "2", "--press", "0", "--json", "--calleridname", "Айгерим").stdout
        )
        assert (as_json["queue"], as_json["queue_result"], as_json["hangup_by"]) == (
            "ru-general",
            "answered",
            "engine",
        )
        assert as_json["commands"][0]["command"] == "ANSWER"
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "Traceback" not in output
    assert any("TEST CLOCK" in line for line in process.startup_lines)  # a pinned clock is never silent


def test_the_readme_example_at_night_ends_with_a_goodbye(tmp_path: Path, project_prompts: Path) -> None:
    process, port = start_engine(tmp_path, "--clock", SUNDAY_3AM)
    try:
        result = run_testcall(port, "--press", "2", "--press", "0", "--timeout", "30")
        assert result.returncode == 0, result.stderr
        assert "STREAM FILE ivr/closed" in result.stdout
        assert "STREAM FILE ivr/callback-offer-closed" in result.stdout
        assert "STREAM FILE ivr/goodbye" in result.stdout
        assert "language ru; the engine hung up" in result.stdout
        assert "EXEC Queue" not in result.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def test_admin_commands_live_at_the_time_of_an_engine_on_a_test_clock(
    tmp_path: Path, project_prompts: Path
) -> None:
    # `ivr incident add --for 2h` on the real time would never be heard by this engine's callers
    state = str(tmp_path / "state")
    prompts = str(private_prompts(tmp_path))
    process, port = start_engine(tmp_path, "--clock", WEDNESDAY_10, "--prompts", prompts)
    try:
        added = subprocess.run(
            [*IVR, "incident", "add", "--kk", "Ақау.", "--ru", "Сбой.", "--for", "2h", "--state-dir", state],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert "on the test clock of `ivr serve --clock`" in added.stderr
        assert re.search(r"announced 2026-11-25 10:0\d \.\. 2026-11-25 12:0\d", added.stdout), added.stdout
        for _ in range(100):  # its audio is made about a second after it is seen
            call = run_testcall(port, "--press", "2", "--press", "0", "--state-dir", state)
            if "STREAM FILE incidents/incident-1" in call.stdout:
                break
        assert "STREAM FILE incidents/incident-1" in call.stdout, call.stdout
        assert "«Сбой.» (ru)" in call.stdout  # what the announcement said, from the engine's state
        assert (tmp_path / "prompts" / "ru" / "incidents" / "incident-1.wav").is_file()
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def test_serve_refuses_a_clock_without_an_offset(tmp_path: Path) -> None:
    result = subprocess.run(
        [*IVR, "serve", "--clock", "2026-11-25T10:00"], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "no UTC offset" in result.stderr and "+05:00" in result.stderr


def test_testcall_says_cannot_reach_only_when_nothing_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        result = run_testcall(port, "--press", "2")
    assert result.returncode == 3
    assert "cannot reach the engine" in result.stderr


def test_testcall_reports_an_engine_that_keeps_the_call() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        # accepts the connection, reads the environment, never sends a command
        result = run_testcall(server.getsockname()[1], "--press", "2", "--timeout", "1")
    assert result.returncode == 4
    assert "the engine kept the call for 1 s: 0 commands" in result.stderr
    assert "cannot reach" not in result.stderr


def test_serve_refuses_to_start_when_prompts_are_missing(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *IVR,
            "serve",
            "--agi-bind",
            "127.0.0.1:0",
            "--prompts",
            str(tmp_path / "empty"),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "prompts are missing" in result.stderr
    assert "ru/1414/main" in result.stderr and "ivr prompts build" in result.stderr


def test_the_ami_secret_comes_from_the_environment_never_argv(tmp_path: Path, project_prompts: Path) -> None:
    help_text = subprocess.run([*IVR, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--ami-secret" not in help_text and "IVR_AMI_SECRET" in help_text
    for option in (
        "--agi-bind",
        "--ami-host",
        "--ami-port",
        "--ami-user",
        "--menus",
        "--prompts",
        "--config",
    ):
        assert option in help_text or option == "--config"
    env = dict(os.environ, IVR_AMI_SECRET="s3cret")
    process, _ = start_engine(tmp_path, "--ami-host", "127.0.0.1", "--ami-port", "1", env=env)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert "s3cret" not in output  # never logged
    assert process.returncode == 0


def test_a_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "ivr.toml"
    config.write_text('[agi]\nbnid = "127.0.0.1:4573"\n', encoding="utf-8")
    result = subprocess.run(
        [*IVR, "--config", str(config), "serve"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "unknown setting 'bnid'" in result.stderr


def test_testcall_reports_an_unreachable_engine(tmp_path: Path) -> None:
    result = subprocess.run([*IVR, "testcall", "127.0.0.1:1"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 3 and "cannot reach the engine" in result.stderr
