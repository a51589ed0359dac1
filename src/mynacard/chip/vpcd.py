"""The emulated card in a virtual reader: the card side ("vpicc") of vsmartcard's vpcd protocol.

Debian's ``vsmartcard-vpcd`` is a pcscd reader driver. Its ``/etc/reader.conf.d/vpcd`` declares
``DEVICENAME /dev/null:0x8C7B`` and ``CHANNELID 0x8C7B``: the driver *listens* on TCP port 35963 (0x8C7B)
on all interfaces, and the driver of this version opens a second slot on the next port. A virtual card
connects to that port; from then on every PC/SC program (OpenSC, pyscard, browsers through OpenSC's
PKCS#11 module) sees a card in the reader "Virtual PCD 00 00".

The protocol: every message is a two-byte big-endian length and that many bytes. A one-byte message is a
control code — 0 power off, 1 power on, 2 reset (no answer), 4 "send the ATR" (answered with the ATR) —
anything longer is a command APDU, answered with the response APDU. pcscd polls the card's presence by
asking for the ATR about every 400 ms, and accepts a waiting connection while it polls: pcscd need not be
restarted after a card connects, and a card may connect before or after pcscd starts (the card side
retries until the driver listens). Closing the connection is pulling the card out.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable

from mynacard.chip.emulator import Chip

__all__ = ["DEFAULT_PORT", "VpcdCard", "serve"]

log = logging.getLogger(__name__)

DEFAULT_PORT = 0x8C7B
"""35963, the port of Debian's vpcd reader configuration."""

_POWER_OFF, _POWER_ON, _RESET, _ATR = 0, 1, 2, 4
_POLL = 0.2


class _Closed(Exception):
    pass


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def _recv_exact(sock: socket.socket, size: int, stop: threading.Event) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        if stop.is_set():
            raise _Closed
        if _QUICKACK is not None:
            # Debian's vpcd writes the length and the message in two send() calls on a Nagle socket: the
            # second waits for our ACK of the first, which Linux would delay by ~40 ms. Acknowledge at once.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        try:
            chunk = sock.recv(size - len(buf))
        except TimeoutError:
            continue
        except OSError as exc:
            raise _Closed from exc
        if not chunk:
            raise _Closed
        buf += chunk
    return bytes(buf)


def _send(sock: socket.socket, payload: bytes) -> None:
    try:
        sock.sendall(len(payload).to_bytes(2, "big") + payload)
    except OSError as exc:
        raise _Closed from exc


def _answer(chip: Chip, message: bytes) -> bytes | None:
    if len(message) == 1:
        code = message[0]
        if code == _ATR:
            return chip.atr
        if code == _POWER_OFF:
            chip.power_off()
        elif code in (_POWER_ON, _RESET):
            chip.reset()
        return None
    if not message:
        return None
    return chip.transmit(message)


def _session(card: Callable[[], Chip | None], sock: socket.socket, stop: threading.Event) -> None:
    """Answer vpcd until it hangs up, ``stop`` is set, or ``card()`` gives no card any more."""
    sock.settimeout(_POLL)
    # One small message each way per APDU: no Nagle delay on our side either.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    last = card()
    while True:
        size = int.from_bytes(_recv_exact(sock, 2, stop), "big")
        message = _recv_exact(sock, size, stop) if size else b""
        chip = card()
        if chip is None:
            raise _Closed
        if chip is not last:
            chip.reset()  # a card swapped in between two messages starts from its reset state
            last = chip
        reply = _answer(chip, message)
        if reply is not None:
            _send(sock, reply)


def serve(chip: Chip | Callable[[], Chip | None], host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
          stop: threading.Event | None = None, reconnect: bool = True, connect_timeout: float | None = None,
          on_connect: Callable[[], None] | None = None) -> None:
    """Put the card in the vpcd reader at ``host:port`` until ``stop`` is set (or, without ``reconnect``,
    until vpcd hangs up). ``chip`` may be a function giving the card to insert at each (re)connection.

    Raises ``ConnectionError`` when vpcd does not listen within ``connect_timeout`` seconds.
    """
    stop = stop or threading.Event()
    started = time.monotonic()
    card: Callable[[], Chip | None] = (lambda: chip) if isinstance(chip, Chip) else chip
    while not stop.is_set():
        current = card()
        if current is None:
            stop.wait(_POLL)
            continue
        try:
            sock = socket.create_connection((host, port), timeout=2)
        except OSError:
            if connect_timeout is not None and time.monotonic() - started > connect_timeout:
                raise ConnectionError(f"vpcd is not listening on {host}:{port}") from None
            stop.wait(_POLL)
            continue
        log.info("card %s inserted in vpcd %s:%d", current.image.serial, host, port)
        if on_connect is not None:
            on_connect()
        try:
            _session(card, sock, stop)
        except _Closed:
            pass
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            current.power_off()
            now_in = card()
            if now_in is not None and now_in is not current:
                now_in.power_off()
        log.info("card %s removed from vpcd %s:%d", current.image.serial, host, port)
        if not reconnect:
            return
        started = time.monotonic()


class VpcdCard:
    """A background thread that keeps a card in a vpcd reader; :meth:`insert` and :meth:`remove` swap it."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
        self.host, self.port = host, port
        self._chip: Chip | None = None
        self._stop = threading.Event()
        self._session_stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"vpcd-card-{port}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._chip is None:
                self._stop.wait(_POLL / 4)
                continue
            self._session_stop.clear()
            try:
                serve(lambda: self._chip, self.host, self.port, stop=self._session_stop, reconnect=False,
                      on_connect=self._connected.set)
            except ConnectionError:  # pragma: no cover - serve() without a timeout does not raise this
                pass
            finally:
                self._connected.clear()

    def insert(self, chip: Chip, timeout: float | None = 10.0) -> None:
        """Put ``chip`` in the reader (removing the card there); returns once vpcd has the connection, or at
        once with ``timeout=None`` (the card then connects whenever vpcd starts listening)."""
        self.remove()
        self._chip = chip
        if timeout is not None and not self._connected.wait(timeout):
            raise TimeoutError(f"vpcd on port {self.port} did not take the card")

    def swap(self, chip: Chip) -> None:
        """Replace the card without pulling it out: the next message from vpcd goes to ``chip``, reset first
        (as if the card had been exchanged between two power cycles). Quicker than :meth:`insert` (pcscd
        notices nothing), for tests that each want a fresh card; PC/SC clients should reconnect with reset.
        """
        if not self._connected.is_set():
            self.insert(chip)
            return
        self._chip = chip

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def remove(self) -> None:
        """Pull the card out (close the connection)."""
        self._chip = None
        self._session_stop.set()
        deadline = time.monotonic() + 5
        while self._connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        self.remove()
        self._thread.join(timeout=5)
