"""mynacard.web.serve: worker processes with a listening socket each, restarted when they die, stopped together."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mynacard.context import Context
from mynacard.web.serve import default_workers, listening_sockets


def _until(condition: object, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def _workers(parent: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[1]) == parent and b"resource_tracker" not in cmdline:
                found.add(int(entry.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT and /proc: Linux")
def test_each_worker_listens_serves_and_is_replaced_when_it_dies(sqlite_ctx: Context) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MYNACARD_HOME": str(sqlite_ctx.settings.home),
           "MYNACARD_DATABASE_URL": sqlite_ctx.settings.database_url}
    proc = subprocess.Popen([sys.executable, "-m", "mynacard.web.serve", "mynacard.kiosk.cli:asgi_app",
                             "--port", str(port), "--workers", "2", "--threads", "2"], env=env)
    try:
        _until(lambda: listening_sockets(port) == 2)
        for _ in range(20):  # a new connection each time
            with httpx.Client() as client:
                assert client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        workers = _workers(proc.pid)
        assert len(workers) == 2
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        _until(lambda: len(_workers(proc.pid) - {victim}) == 2 and listening_sockets(port) == 2)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        workers = _workers(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    # SIGTERM to the parent stops every worker and frees the port
    _until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), 30)
    _until(lambda: listening_sockets(port) == 0, 30)


def test_one_worker_per_core_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cores this process may use where the system tells them (Linux), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        assert default_workers() == len(os.sched_getaffinity(0))
        monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert default_workers() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert default_workers() == 1
