"""The OCSP responder as a server of its own (``mynacard jpki ocsp-serve``): the production deployment of
``/jpki/ocsp`` for throughput, beside the same routes in the web app.

HTTP/1.1 (and 1.0) on asyncio — uvloop when installed — with the request parsed by ``httptools`` (the parser
uvicorn uses). Answers that are in memory (a pre-signed response, a refusal, a malformed request) are written
from the event loop; anything needing the database or a signature runs in a small thread pool. Requests on
one connection are answered in order (pipelining is allowed); limits on header size, body size, queued
requests and idle time keep a bad client from holding the server. Paths: ``POST /jpki/ocsp``,
``GET /jpki/ocsp/{base64}``, ``GET /healthz``.

``workers`` > 1 forks that many responder processes, each with its own listening socket on the same port
(``SO_REUSEPORT``: the kernel spreads the connections), its own pre-signed answers and its own database pool;
the first process stops the others when it stops, and a worker whose parent is gone stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httptools

from mynacard.context import Context
from mynacard.jpki import ocsp, ocsp_http, verifiers
from mynacard.jpki.config import settings_of
from mynacard.jpki.ocsp import MAX_REQUEST_BYTES, ResponseStatus
from mynacard.jpki.responder import responder_for

__all__ = ["OcspServer", "serve"]

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
MAX_URL_BYTES = 32 * 1024  # base64 of the largest request, url-encoded
MAX_PIPELINED = 32
IDLE_SECONDS = 30.0
MAX_MEMO = 4096
MAX_MEMO_REQUEST = 2048  # a single-certificate request with its headers is a few hundred bytes


def _response(status: int, reason: str, body: bytes, content_type: bytes, keep_alive: bool) -> bytes:
    head = (b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nCache-Control: no-cache\r\n"
            b"Connection: %s\r\n\r\n" % (status, reason.encode(), content_type, len(body),
                                         b"keep-alive" if keep_alive else b"close"))
    return head + body


_OCSP_TYPE = b"application/ocsp-response"


@dataclass
class _Request:
    method: str
    url: bytes
    headers: dict[bytes, bytes]
    body: bytes
    keep_alive: bool
    too_large: bool = False


@dataclass
class _Parsing:
    url: bytearray = field(default_factory=bytearray)
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_bytes: int = 0
    body: bytearray = field(default_factory=bytearray)
    too_large: bool = False


@dataclass(frozen=True, slots=True)
class _Memo:
    """A complete reply to a request seen before, byte for byte, from the same address (see
    :attr:`OcspServer.memo`)."""

    reply: bytes
    keep_alive: bool
    answer: ocsp_http.Repeatable


class _Connection(asyncio.Protocol):
    __slots__ = ("active", "answered", "chunk", "closing", "current", "idle", "messages", "parser", "partial",
                 "queue", "remote", "server", "transport", "worker")

    def __init__(self, server: OcspServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser: httptools.HttpRequestParser | None = None
        """Made, with ``current``, on the first request that is not a repetition (most connections never need
        one)."""
        self.current: _Parsing
        self.queue: deque[_Request] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.idle: asyncio.TimerHandle | None = None
        self.remote: str | None = None
        self.closing = False
        self.active = False
        """Set by every read; the idle check clears it (one timer per idle period, not one per read)."""
        self.partial = False
        """A request begun and not complete."""
        self.chunk: bytes | None = None
        self.messages = 0
        self.answered: tuple[_Request, bytes] | None = None

    # --- asyncio ---------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport is not an asyncio.Transport
        peer = transport.get_extra_info("peername")
        self.remote = peer[0] if isinstance(peer, tuple) else None
        self.server.connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.closing = True
        if self.idle is not None:
            self.idle.cancel()
        if self.worker is not None and not self.worker.done():
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
        self.active = True
        at_boundary = not self.partial and not self.queue and (self.worker is None or self.worker.done())
        if at_boundary and self._repeat(data):
            return
        if self.parser is None:
            self.parser = httptools.HttpRequestParser(self)
            self.current = _Parsing()
        self.chunk, self.messages, self.answered = (data if at_boundary else None), 0, None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "Bad Request")
        except httptools.HttpParserError:
            self._fail(400, "Bad Request")
        else:
            if self.chunk is not None and self.answered is not None and self.messages == 1 and not self.partial:
                self.server.remember(self.chunk, self.remote, *self.answered)
        self.chunk = self.answered = None

    def _repeat(self, data: bytes) -> bool:
        """Answer a request seen before byte for byte, when its remembered reply still holds."""
        key = (self.remote, data)
        memo = self.server.memo.get(key)
        if memo is None:
            return False
        due = ocsp_http.repeat(self.server.ctx, memo.answer)
        if due is None:
            del self.server.memo[key]
            return False
        if due:
            self.server._flush_later()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(memo.reply)
            if not memo.keep_alive:
                self._close()
        return True

    def _arm_idle(self) -> None:
        self.idle = asyncio.get_running_loop().call_later(self.server.idle_seconds, self._idle_check)

    def _idle_check(self) -> None:
        """Close a connection that read nothing for a whole idle period (so after one to two periods)."""
        if self.active and not self.closing:
            self.active = False
            self._arm_idle()
        else:
            self._close()

    def _close(self) -> None:
        self.closing = True
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        if self.transport is not None:
            self.transport.close()

    def _fail(self, status: int, reason: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_response(status, reason, reason.encode() + b"\n", b"text/plain", False))
        self._close()

    # --- httptools callbacks ------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.current = _Parsing()
        self.partial = True

    def on_url(self, url: bytes) -> None:
        self.current.url += url
        if len(self.current.url) > MAX_URL_BYTES:
            raise httptools.HttpParserError("URL too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.header_bytes += len(name) + len(value)
        if self.current.header_bytes > MAX_HEADER_BYTES or len(self.current.headers) > 100:
            raise httptools.HttpParserError("headers too large")
        self.current.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        if len(self.current.body) + len(body) > MAX_REQUEST_BYTES:
            self.current.too_large = True
            return
        self.current.body += body

    def on_message_complete(self) -> None:
        assert self.parser is not None
        self.partial = False
        self.messages += 1
        method = self.parser.get_method().decode("ascii", "replace")
        self.queue.append(_Request(method, bytes(self.current.url), self.current.headers, bytes(self.current.body),
                                   self.parser.should_keep_alive(), self.current.too_large))
        if len(self.queue) > MAX_PIPELINED and self.transport is not None:
            self.transport.pause_reading()
        if self.worker is None or self.worker.done():
            if len(self.queue) == 1 and self._answer_now():
                return
            self.worker = asyncio.get_running_loop().create_task(self._work())

    def _answer_now(self) -> bool:
        """Answer the only queued request at once if it needs no thread (most do): no task, no await."""
        request = self.queue[0]
        reply = self.server.answer_in_memory(request, self.remote)
        if reply is None:
            return False
        self.queue.popleft()
        self.answered = (request, reply)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(reply)
            if not request.keep_alive:
                self._close()
        return True

    # --- answering, in order ------------------------------------------------------------------------------

    async def _work(self) -> None:
        while self.queue and not self.closing:
            request = self.queue.popleft()
            try:
                reply = await self.server.handle(request, self.remote)
            except Exception:  # never leave a client without an answer
                log.exception("OCSP server")
                reply = _response(200, "OK", ocsp.error_response(ResponseStatus.INTERNAL_ERROR), _OCSP_TYPE, False)
            if self.transport is None or self.transport.is_closing():
                return
            self.transport.write(reply)
            if not request.keep_alive:
                self._close()
                return
            if len(self.queue) <= MAX_PIPELINED // 2:
                self.transport.resume_reading()


class OcspServer:
    """The responder server of one installation (one database)."""

    def __init__(self, ctx: Context, threads: int = 4, idle_seconds: float = IDLE_SECONDS,
                 parent_pid: int | None = None) -> None:
        self.ctx = ctx
        self.parent_pid = parent_pid
        """In a forked worker: the first process, whose end ends this one too."""
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ocsp")
        self.idle_seconds = idle_seconds
        self.connections: set[_Connection] = set()
        self.memo: dict[tuple[str | None, bytes], _Memo] = {}
        """(Client address, request bytes: request line, headers, body) → the reply, for pre-signed answers:
        clients repeat the very same request, so a repetition needs neither HTTP parsing nor any look-up — only
        the checks of :func:`ocsp_http.repeat` (revocations, the caller's registration, the re-signing time)
        and the count in the query log. Bounded: at most :data:`MAX_MEMO` entries of at most
        :data:`MAX_MEMO_REQUEST` bytes (then it starts again empty)."""
        self._flushing = False
        self.settings = settings_of(ctx)
        header = self.settings.mtls_header
        self.mtls_header = header.lower().encode() if header else None

    def answer_in_memory(self, request: _Request, remote: str | None) -> bytes | None:
        """The complete reply when no database or signature is needed, else None."""
        routed = self._route(request, remote)
        if isinstance(routed, bytes):
            return routed
        data, caller = routed
        fast = ocsp_http.answer_from_memory(self.ctx, caller, data)
        if fast is None:
            return None
        der, log_due = fast
        if log_due:
            self._flush_later()
        return _response(200, "OK", der, _OCSP_TYPE, request.keep_alive)

    def remember(self, data: bytes, remote: str | None, request: _Request, reply: bytes) -> None:
        """Keep the reply to ``data`` (exactly one complete request) when it may be repeated."""
        routed = self._route(request, remote)
        if isinstance(routed, bytes) or len(data) > MAX_MEMO_REQUEST:
            return
        answer = ocsp_http.repeatable(self.ctx, routed[1], routed[0])
        if answer is None or not reply.endswith(answer.der):
            return
        if len(self.memo) >= MAX_MEMO:
            self.memo.clear()
        self.memo[(remote, data)] = _Memo(reply, request.keep_alive, answer)

    async def handle(self, request: _Request, remote: str | None) -> bytes:
        routed = self._route(request, remote)
        if isinstance(routed, bytes):
            return routed
        data, caller = routed
        fast = ocsp_http.answer_from_memory(self.ctx, caller, data)
        if fast is not None:
            der, log_due = fast
            if log_due:
                self._flush_later()
        else:
            loop = asyncio.get_running_loop()
            der = await loop.run_in_executor(self.executor, ocsp_http.answer, self.ctx, caller, data)
        return _response(200, "OK", der, _OCSP_TYPE, request.keep_alive)

    def _route(self, request: _Request, remote: str | None) -> bytes | tuple[bytes, ocsp_http.Caller]:
        """A finished reply (errors, health), or the OCSP request's bytes and who sent it."""
        keep = request.keep_alive
        path, _, _query = request.url.partition(b"?")
        if request.method == "GET" and path in (b"/healthz", b"/jpki/ocsp/healthz"):
            return _response(200, "OK", b"ok\n", b"text/plain", keep)
        if path == b"/jpki/ocsp" or path == b"/jpki/ocsp/":
            if request.method != "POST":
                return _response(405, "Method Not Allowed", b"POST the DER request\n", b"text/plain", keep)
            data = b"\0" * (MAX_REQUEST_BYTES + 1) if request.too_large else request.body  # "too large"
        elif path.startswith(b"/jpki/ocsp/"):
            if request.method != "GET":
                return _response(405, "Method Not Allowed", b"GET /jpki/ocsp/{base64}\n", b"text/plain", keep)
            data = ocsp_http.decode_get_path(path[len(b"/jpki/ocsp/"):].decode("ascii", "replace"))
            if not data:
                return _response(200, "OK", ocsp.error_response(ResponseStatus.MALFORMED_REQUEST), _OCSP_TYPE, keep)
        else:
            return _response(404, "Not Found", b"not found\n", b"text/plain", keep)
        return data, self._caller(request.headers, remote)

    def _caller(self, headers: dict[bytes, bytes], remote: str | None) -> ocsp_http.Caller:
        auth = headers.get(b"authorization", b"").decode("latin-1")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        header = self.mtls_header
        fingerprint = headers.get(header) if header else None
        # the header is believed only from the configured TLS proxies (MYNACARD_JPKI_MTLS_PROXIES)
        vouched = self.settings.client_certificate(fingerprint.decode("latin-1") if fingerprint else None, remote)
        return ocsp_http.Caller(key, vouched, remote)

    def _flush_later(self) -> None:
        if self._flushing:
            return
        self._flushing = True

        def flush() -> None:
            try:
                verifiers.flush_query_log(self.ctx)
            except Exception:  # the rows stay buffered for the next flush
                log.exception("OCSP query log")
            finally:
                self._flushing = False

        self.executor.submit(flush)

    async def run(self, host: str, port: int, ready: asyncio.Event | None = None,
                  stop: asyncio.Event | None = None, reuse_port: bool = False) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Connection(self), host, port, reuse_address=True, backlog=1024,
                                          reuse_port=reuse_port or None)
        stop = stop or asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        if ready is not None:
            ready.set()
        ticker = loop.create_task(self._tick(stop))
        try:
            await stop.wait()
        finally:
            server.close()
            for connection in list(self.connections):
                connection._close()
            await server.wait_closed()
            ticker.cancel()
            await loop.run_in_executor(self.executor, verifiers.flush_query_log, self.ctx)
            self.executor.shutdown(wait=True)

    async def _tick(self, stop: asyncio.Event) -> None:
        """Every half second: write the query log, and sign the answers of newly revoked certificates."""
        loop = asyncio.get_running_loop()
        responder = responder_for(self.ctx)
        while not stop.is_set():
            await asyncio.sleep(0.5)
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                stop.set()  # the first process is gone
                break
            try:
                await loop.run_in_executor(self.executor, verifiers.flush_query_log, self.ctx)
                await loop.run_in_executor(self.executor, responder.refresh_revoked, datetime.now(UTC))
            except Exception:  # the next tick tries again
                log.exception("OCSP responder tick")


def serve(ctx: Context, host: str = "127.0.0.1", port: int = 8001, threads: int = 4, workers: int = 1) -> None:
    """Run the responder until SIGINT/SIGTERM, in ``workers`` processes sharing the port."""
    runner: Any
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        runner = asyncio.run
    reuse_port = workers > 1
    children: list[int] = []
    for _ in range(workers - 1):
        pid = os.fork()
        if pid == 0:  # a worker: a fresh pool (never the parent's connections), then serve
            status = 0
            try:
                ctx.db.engine.dispose(close=False)
                runner(OcspServer(ctx, threads, parent_pid=os.getppid()).run(host, port, reuse_port=reuse_port))
            except BaseException:  # report, and leave without running the parent's clean-up
                log.exception("OCSP worker")
                status = 1
            finally:
                os._exit(status)
        children.append(pid)
    try:
        runner(OcspServer(ctx, threads).run(host, port, reuse_port=reuse_port))
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
