"""A real, throwaway PostgreSQL server for the state tests, and the backend fixture they share.

IVR_TEST_DATABASE_URL, when set, names a server to use instead (CI may provide one); each test gets
its own database on it either way. A test that stops the server (an outage) takes a cluster of its own
module (`cluster`), which needs the binaries. Otherwise the Debian server binaries start a cluster in a temporary
directory on a free port (as the `postgres` user when we run as root, since initdb refuses root),
once per test process, stopped at exit. Without the binaries the PostgreSQL cases fail with the
reason under CI=true and are skipped elsewhere.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

PG_BIN = Path(os.environ.get("IVR_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
BACKENDS = ("sqlite", "postgresql")

_server_url: str | None = None
_server_error: str | None = None
_counter = itertools.count(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


class Cluster:
    """A PostgreSQL cluster in a temporary directory on a free port: `start()`, `stop()` (as an outage
    would: the server goes, its connections with it), `start()` again on the same port, `remove()`."""

    def __init__(self) -> None:
        initdb, self._pg_ctl = PG_BIN / "initdb", PG_BIN / "pg_ctl"
        if not initdb.exists() or not self._pg_ctl.exists():
            raise RuntimeError(
                f"PostgreSQL server binaries not found in {PG_BIN} (apt-get install postgresql, "
                "or set IVR_TEST_DATABASE_URL to a server's URL)"
            )
        self._root = Path(tempfile.mkdtemp(prefix="ivr-pg-"))
        self._data, sockets = self._root / "data", self._root / "sock"
        sockets.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self._root, "postgres", "postgres")
            shutil.chown(sockets, "postgres", "postgres")
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        command = [
            str(initdb),
            "-D",
            str(self._data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ]
        subprocess.run(_as_server_user(command), check=True, capture_output=True)
        self._options = (
            f"-p {self.port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        )

    def start(self) -> None:
        log = str(self._root / "log")
        command = [str(self._pg_ctl), "-D", str(self._data), "-o", self._options, "-l", log, "-w", "start"]
        subprocess.run(_as_server_user(command), check=True, capture_output=True)

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            _as_server_user([str(self._pg_ctl), "-D", str(self._data), "-m", mode, "-w", "stop"]),
            capture_output=True,
        )

    def freeze(self) -> None:
        """The server stops answering without refusing (SIGSTOP to it and its backends): a hung server,
        or packets dropped on the way; what is sent to it waits, and a new connection waits for its
        connect_timeout. `thaw()` lets it go on."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, number: signal.Signals) -> None:
        postmaster = int((self._data / "postmaster.pid").read_text().split()[0])
        for pid in [postmaster, *_children(postmaster)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, number)

    def remove(self) -> None:
        with contextlib.suppress(OSError):  # not running: no postmaster.pid
            self.thaw()
        self.stop("immediate")
        shutil.rmtree(self._root, ignore_errors=True)

    def fresh_database_url(self) -> str:
        return _fresh_database(self.url)


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat.parent.name))
    return children


def _start_server() -> str:
    cluster = Cluster()
    cluster.start()
    atexit.register(cluster.remove)
    return cluster.url


def server_url() -> str:
    """The URL of the test server's maintenance database, starting the server on first use."""
    global _server_url, _server_error
    if _server_url is None and _server_error is None:
        try:
            _server_url = os.environ.get("IVR_TEST_DATABASE_URL") or _start_server()
        except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
            detail = (
                exc.stderr.decode(errors="replace") if isinstance(exc, subprocess.CalledProcessError) else ""
            )
            _server_error = f"cannot start a PostgreSQL server for the tests: {exc} {detail}".strip()
    if _server_url is None:
        if os.environ.get("CI") == "true":
            pytest.fail(_server_error or "no PostgreSQL server", pytrace=False)
        pytest.skip(_server_error or "no PostgreSQL server")
    return _server_url


def fresh_database_url() -> str:
    """A new, empty database on the test server."""
    return _fresh_database(server_url())


def _fresh_database(base: str) -> str:
    import psycopg

    name = f"ivr_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name}")
        connection.execute(f"CREATE DATABASE {name}")
    return urlsplit(base)._replace(path="/" + name).geturl()


@pytest.fixture(scope="module", name="cluster")
def cluster_fixture() -> Iterator[Cluster]:
    """A server of the test's own, to stop and start again (an outage); the module's tests share it."""
    try:
        cluster = Cluster()
        cluster.start()
    except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
        reason = f"cannot start a PostgreSQL server for the tests: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(params=BACKENDS, name="backend")
def backend_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Settings fields naming an empty state database: SQLite in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return {"state_dir": str(tmp_path / "state"), "database_url": ""}
    return {"state_dir": str(tmp_path / "state"), "database_url": fresh_database_url()}
