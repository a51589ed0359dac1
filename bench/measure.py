"""What the HTTP benchmarks share: the machine they ran on, a free port, percentiles, and the CPU time a
server spent (its own cost, whatever else the shared machine is doing). Scripts in ``bench/`` import it by
name (``python bench/x.py`` puts ``bench/`` on the path)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from mynacard.web.serve import listening_sockets

__all__ = ["PG_ADMIN", "connected_clients", "cpu_seconds", "free_port", "machine", "percentile",
           "postgres_cpu_seconds", "scratch_database", "start_server", "stop_server"]

PG_ADMIN = os.environ.get("MYNACARD_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
"""Where benchmarks create their scratch databases (any database of the server; trust or a password in the URL)."""


def machine() -> dict[str, object]:
    """CPU model, cores, Python and the load average at the time of the call."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "load_average": os.getloadavg()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile ``p`` (0–100) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _processes_cpu(chosen: Callable[[int, str, list[str]], bool]) -> float:
    """CPU time (user + system) so far of the processes ``chosen(pid, command name, stat fields)`` picks."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, _, rest = (entry / "stat").read_text().partition(" (")[2].rpartition(")")
            fields = rest.split()
        except OSError:
            continue
        if chosen(int(entry.name), name, fields):
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def cpu_seconds(parent: int) -> float:
    """CPU time (user + system) so far of a process and its direct children (a server and its workers;
    PostgreSQL's backends are not counted)."""
    return _processes_cpu(lambda pid, name, fields: pid == parent or int(fields[1]) == parent)


def postgres_cpu_seconds() -> float:
    """CPU time (user + system) so far of every PostgreSQL process on the machine (a benchmark's backends among
    them; on a shared machine other users' queries are counted too)."""
    return _processes_cpu(lambda pid, name, fields: name in ("postgres", "postmaster"))


@contextlib.asynccontextmanager
async def connected_clients(base: str, n: int, **options: Any) -> AsyncIterator[list[httpx.AsyncClient]]:
    """``n`` clients of ``base``, each with its connection open before the clock starts, as terminals already
    on line. They share one TLS context: httpx builds one per client otherwise (about 18 ms of CPU to load the CA
    bundle), and 200 of those built inside a timed run stall every other client's request by seconds."""
    tls = ssl.create_default_context()
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(httpx.AsyncClient(base_url=base, verify=tls, **options))
                   for _ in range(n)]
        await asyncio.gather(*(c.get("/healthz") for c in clients))
        yield clients


def scratch_database(prefix: str) -> tuple[str, Callable[[], None]]:
    """A fresh PostgreSQL database for one run: its URL, and the function that drops it (call it in ``finally``;
    it disconnects whatever still holds the database)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name, drop


def start_server(factory: str, port: int, workers: int, env: dict[str, str],
                 *options: str, threads: int | None = None) -> subprocess.Popen[bytes]:
    """uvicorn serving the ASGI app ``factory`` (``module:function``) with ``workers`` processes; returns once
    ``/healthz`` answers (within 30 s). With ``threads``, the processes each have a listening socket of their own
    (``mynacard.web.serve``) and run that many requests at once; ``options`` are then not used."""
    if threads is not None:
        command = [sys.executable, "-m", "mynacard.web.serve", factory, "--port", str(port), "--workers",
                   str(workers), "--threads", str(threads)]
    else:
        command = [sys.executable, "-m", "uvicorn", factory, "--factory", "--port", str(port), "--workers",
                   str(workers), "--log-level", "warning", *options]
    proc = subprocess.Popen(command, env=env)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200 and (
                    threads is None or listening_sockets(port) >= workers):  # every process's socket is bound
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_server(proc)
    raise RuntimeError(f"{factory} did not answer on port {port}")


def stop_server(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        proc.terminate()
        proc.wait(timeout=30)
