"""Serve an ASGI app from several processes, each with a listening socket of its own on the same port.

uvicorn's ``--workers`` shares one listening socket, and whichever worker wakes first accepts every connection
waiting (asyncio and libuv accept until the queue is empty). Kiosks keep their connection alive, so when they
connect at once most of them stay with one or two workers while the others idle (seen: 40 kiosks on 2 of 4
workers). With ``SO_REUSEPORT`` the kernel spreads the connections over the processes' sockets instead.

``python -m mynacard.web.serve module:factory --port 8000 --workers 2 --threads 4`` (Linux).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

__all__ = ["DEFAULT_THREADS", "default_workers", "listening_sockets", "serve"]

DEFAULT_THREADS = 4
"""Requests each process runs at once: enough to overlap one request's database waits with another's work."""


def default_workers() -> int:
    """One process per core this process may run on: each interpreter's lock lets a process use about one core.
    (On the 2-core reference machine 2 processes × 4 threads kept the kiosk bench's p95 under 1 s in 10 of 10
    alternated runs, 4 × 2 in 7: docs/PERFORMANCE.md, kiosk, seventh round.)"""
    if hasattr(os, "sched_getaffinity"):  # Linux: the cores this process is allowed, not the machine's
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def listening_sockets(port: int) -> int:
    """How many sockets listen on TCP ``port`` (IPv4), from /proc/net/tcp: all of :func:`serve`'s processes are
    ready when it equals their number."""
    with open("/proc/net/tcp") as table:
        next(table)
        return sum(1 for line in table
                   if line.split()[3] == "0A" and int(line.split()[1].rsplit(":", 1)[1], 16) == port)


def _worker(factory: str, host: str, port: int) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    config = uvicorn.Config(factory, factory=True, log_level="warning", backlog=4096)
    uvicorn.Server(config).run(sockets=[sock])


def serve(factory: str, host: str, port: int, workers: int, threads: int) -> None:
    """Run ``workers`` processes of the app ``factory`` (``module:function``), each running ``threads`` requests
    at once, until SIGTERM or Ctrl-C; a process that dies is started again."""
    from mynacard.web.app import THREADS_ENV

    if workers < 1 or threads < 1:
        raise ValueError("workers and threads must be at least 1")
    os.environ[THREADS_ENV] = str(threads)  # read by each process as its app starts
    spawn = multiprocessing.get_context("spawn")

    def start() -> BaseProcess:
        process = spawn.Process(target=_worker, args=(factory, host, port), daemon=True)
        process.start()
        return process

    processes = [start() for _ in range(workers)]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            process.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        wait([p.sentinel for p in processes], timeout=1.0)
        for i, process in enumerate(processes):
            if not stopping and not process.is_alive():
                processes[i] = start()
    for process in processes:
        process.join(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("factory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    args = parser.parse_args()
    serve(args.factory, args.host, args.port, args.workers, args.threads)


if __name__ == "__main__":
    main()
