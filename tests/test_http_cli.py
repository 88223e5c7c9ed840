"""`ivr serve --http` as an admin runs it: one process serving calls and the board, the token from the
environment, stopped cleanly by SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOKEN = "env-token-1414"


def fetch(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_serve_with_http_takes_its_token_from_the_environment(tmp_path: Path, project_prompts: Path) -> None:
    env = {**os.environ, "IVR_HTTP_TOKEN": TOKEN}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ivr",
            "serve",
            "--agi-bind",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    base = ""
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            match = re.match(r"ivr: wallboard on (http://127\.0\.0\.1:\d+)/", line)
            if match:
                base = match.group(1)
                break
        assert base, "".join(seen)
        status, body = fetch(f"{base}/healthz")
        assert status == 200 and json.loads(body)["alive"] is True
        assert fetch(f"{base}/api/board")[0] == 401
        status, body = fetch(f"{base}/api/board", TOKEN)
        assert status == 200 and json.loads(body)["ami"] == "off"
        status, body = fetch(f"{base}/readyz")
        assert status == 200 and json.loads(body)["checks"]["journal"] == "ok"
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    output = "".join(seen) + output
    assert process.returncode == 0
    assert "Traceback" not in output and TOKEN not in output
    assert len(re.findall(r"ivr\.http: 401 GET /api/board", output)) == 1
    assert "token required from every client" in output
