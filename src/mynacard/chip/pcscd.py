"""A private pcscd with a vpcd reader, for tests, benchmarks and demos on one machine.

pcscd 1.9 always serves its socket at ``/run/pcscd/pcscd.comm`` (the daemon ignores
``PCSCLITE_CSOCK_NAME``; only the client library honours it) and refuses to start while another pcscd runs.
So that a test never disturbs the machine's pcscd, nor another test run, :class:`PrivatePcscd` starts
pcscd in its own mount namespace (``unshare --mount``, which needs root) with a temporary folder bound over
``/run/pcscd``; clients reach it through ``PCSCLITE_CSOCK_NAME``. Without root it falls back to the
standard socket when no other pcscd is running. The reader configuration is a temporary copy of Debian's
``/etc/reader.conf.d/vpcd`` with a free port, passed with ``pcscd -c``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["VPCD_DRIVER", "PcscdUnavailable", "PrivatePcscd", "free_port_pair", "wait_for_card"]

VPCD_DRIVER = Path(os.environ.get("MYNACARD_VPCD_DRIVER", "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"))
"""Where Debian's vsmartcard-vpcd installs the driver (``MYNACARD_VPCD_DRIVER`` overrides it)."""
_SYSTEM_SOCKET = Path("/run/pcscd/pcscd.comm")


class PcscdUnavailable(RuntimeError):
    """pcscd, the vpcd driver or a free socket is missing; the message says which."""


def free_port_pair() -> int:
    """A port p such that p and p+1 are both free on every interface (vpcd listens on two)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("", 0))
            port = probe.getsockname()[1]
        if port >= 65535:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("", port))
                b.bind(("", port + 1))
        except OSError:
            continue
        return int(port)
    raise PcscdUnavailable("no two consecutive free TCP ports")


def _tcp_listening(port: int) -> bool:
    """Whether something listens on TCP ``port`` (read from /proc, without connecting: vpcd would take a
    connection to its port for a card)."""
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 3 and fields[1].endswith(wanted) and fields[3] == "0A":
                        return True
        except OSError:
            continue
    return False


def _socket_alive(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


class PrivatePcscd:
    """pcscd with one vpcd reader (two slots) on ``port`` (a free one by default)."""

    reader_label = "mynacard vpcd"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port_pair()
        self._tmp = Path(tempfile.mkdtemp(prefix="mynacard-pcscd-"))
        self._process: subprocess.Popen[bytes] | None = None
        self.socket_path: Path = _SYSTEM_SOCKET
        self.log_path = self._tmp / "pcscd.log"

    @property
    def reader(self) -> str:
        """The PC/SC name of the slot on :attr:`port`."""
        return f"{self.reader_label} 00 00"

    @property
    def env(self) -> dict[str, str]:
        """Environment for PC/SC clients (pyscard, OpenSC tools) of this pcscd."""
        return {"PCSCLITE_CSOCK_NAME": str(self.socket_path)}

    def start(self, timeout: float = 10.0) -> Self:
        pcscd = shutil.which("pcscd") or ("/usr/sbin/pcscd" if Path("/usr/sbin/pcscd").exists() else None)
        if pcscd is None:
            raise PcscdUnavailable("pcscd is not installed (Debian package pcscd)")
        if not VPCD_DRIVER.exists():
            raise PcscdUnavailable(f"the vpcd driver {VPCD_DRIVER} is missing (package vsmartcard-vpcd)")
        conf = self._tmp / "reader.conf.d"
        conf.mkdir()
        (conf / "vpcd").write_text(
            f'FRIENDLYNAME "{self.reader_label}"\nDEVICENAME   /dev/null:0x{self.port:04X}\n'
            f"LIBPATH      {VPCD_DRIVER}\nCHANNELID    0x{self.port:04X}\n")
        run = self._tmp / "run"
        run.mkdir()
        attempts: list[tuple[list[str], Path]] = []
        unshare = shutil.which("unshare")
        if unshare and os.geteuid() == 0:
            script = 'mkdir -p /run/pcscd && mount --bind "$1" /run/pcscd && exec "$2" --foreground -c "$3"'
            attempts.append(([unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                              str(run), pcscd, str(conf)], run / "pcscd.comm"))
        # Without a private mount namespace (no root, or a container without CAP_SYS_ADMIN): the standard
        # socket, as long as no other pcscd holds it.
        attempts.append(([pcscd, "--foreground", "-c", str(conf)], _SYSTEM_SOCKET))
        problems = []
        for command, socket_path in attempts:
            if socket_path == _SYSTEM_SOCKET and _socket_alive(_SYSTEM_SOCKET):
                problems.append("another pcscd is running and a private one needs root (unshare --mount)")
                continue
            problem = self._launch(command, socket_path, timeout)
            if problem is None:
                return self
            problems.append(problem)
        raise PcscdUnavailable("; ".join(problems))

    def _launch(self, command: list[str], socket_path: Path, timeout: float) -> str | None:
        """Start one way; None when pcscd serves its socket and the vpcd port listens, else why not."""
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
        self.socket_path = socket_path
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return f"pcscd exited at start: {self.log_path.read_text(errors='replace')[-300:]}"
            if _socket_alive(socket_path) and _tcp_listening(self.port):
                return None
            time.sleep(0.05)
        process, self._process = self._process, None
        process.terminate()
        process.wait(timeout=5)
        return "pcscd did not come up in time"

    def stop(self) -> None:
        """Stop the pcscd this object started (by its process id) and remove the temporary files."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        with contextlib.suppress(OSError):
            shutil.rmtree(self._tmp)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def wait_for_card(reader: str, present: bool, timeout: float = 10.0) -> None:
    """Block until PC/SC reports the card in ``reader`` present (or absent); raises ``TimeoutError``."""
    from smartcard import scard

    result, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if result != scard.SCARD_S_SUCCESS:
        raise PcscdUnavailable(f"cannot reach pcscd: {scard.SCardGetErrorMessage(result)}")
    try:
        deadline = time.monotonic() + timeout
        state = scard.SCARD_STATE_UNAWARE
        while True:
            left_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
            result, states = scard.SCardGetStatusChange(context, min(left_ms, 500), [(reader, state)])
            if result == scard.SCARD_S_SUCCESS:
                _, state, _ = states[0]
                if bool(state & scard.SCARD_STATE_PRESENT) == present and not state & scard.SCARD_STATE_MUTE:
                    return
                state &= ~scard.SCARD_STATE_CHANGED
            if time.monotonic() >= deadline:
                raise TimeoutError(f"card in {reader!r} not {'present' if present else 'absent'} in time")
    finally:
        scard.SCardReleaseContext(context)
