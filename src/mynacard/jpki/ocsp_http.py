"""Answering an OCSP request that came over HTTP, whoever serves the HTTP: the web app's ``/jpki/ocsp`` routes
and the dedicated responder server (:mod:`mynacard.jpki.ocsp_server`) both call these.

Only registered verifiers — or J-LIS's own services — get answers, each only about the CA its registration
covers; everything else gets the RFC 6960 ``unauthorized`` status. Every answer is logged against the
verifier (refusals at once, the rest in batches). Nothing here ever raises: a failure is ``internalError``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

from mynacard.context import Context
from mynacard.jpki import ocsp, verifiers
from mynacard.jpki.config import settings_of
from mynacard.jpki.model import CaKind, Purpose
from mynacard.jpki.ocsp import ResponseStatus
from mynacard.jpki.responder import Answer, responder_for
from mynacard.principal import Principal, Role

__all__ = ["Caller", "Repeatable", "answer", "answer_from_memory", "decode_get_path", "repeat", "repeatable"]

log = logging.getLogger(__name__)

_INTERNAL = (Role.OPERATOR, Role.SYSTEM, Role.KIOSK)


@dataclass(frozen=True)
class Caller:
    """Who sent the request, as the HTTP layer saw it."""

    api_key: str | None
    client_cert_sha256: str | None = None
    """From the TLS proxy's header (``MYNACARD_JPKI_MTLS_HEADER``), when configured."""
    remote: str | None = None
    session: Principal | None = None
    """A logged-in web session (the web app only)."""


_OUTCOMES = {ResponseStatus.SUCCESSFUL: "answered", ResponseStatus.MALFORMED_REQUEST: "malformed"}


def _outcome(result: Answer) -> tuple[str, bool]:
    if result.status is ResponseStatus.UNAUTHORIZED:
        refused = bool(result.kinds)
        return ("refused" if refused else "unknown_ca"), refused
    return _OUTCOMES.get(result.status, "error"), False


def _allowed(who: Principal | None, verifier: verifiers.Verifier | None) -> Callable[[CaKind], bool]:
    internal = who is not None and who.role in _INTERNAL

    def allowed(kind: CaKind) -> bool:
        return internal or (verifier is not None and verifier.may(Purpose.for_ca(kind)))

    return allowed


def answer(ctx: Context, caller: Caller, data: bytes) -> bytes:
    """The whole answer, with database look-ups and signing as needed (blocking: run it off the event loop)."""
    now = datetime.now(UTC)
    try:
        header = settings_of(ctx).mtls_header
        who = verifiers.authenticate(ctx, caller.api_key, caller.client_cert_sha256 if header else None)
        who = who or caller.session
        verifier = verifiers.verifier_of(ctx, who)
        label = verifiers.caller_label(who, caller.remote)
        if verifier is None and not (who is not None and who.role in _INTERNAL):
            # an anonymous refusal joins its address's row of the minute at the next flush (verifiers.log_query)
            verifiers.log_query(ctx, None, label, "ocsp", None, "refused", "not a registered verifier", now,
                                immediate=who is not None)
            return ocsp.error_response(ResponseStatus.UNAUTHORIZED)
        result = responder_for(ctx).answer(data, now, _allowed(who, verifier))
        outcome, refused = _outcome(result)
        verifiers.log_query(ctx, verifier, label, "ocsp", ",".join(result.serials)[:48] or None, outcome,
                            result.detail, now, immediate=refused)
        return result.der
    except Exception:  # RFC 6960: internalError, never an HTTP 500
        log.exception("OCSP responder")
        return ocsp.error_response(ResponseStatus.INTERNAL_ERROR)


def answer_from_memory(ctx: Context, caller: Caller, data: bytes) -> tuple[bytes, bool] | None:
    """(response, query log due) when the caller and the answer are both in memory — no database, no
    signature, safe on an event loop; None when :func:`answer` is needed."""
    if caller.client_cert_sha256 and settings_of(ctx).mtls_header:
        return None
    try:
        known, who, verifier = verifiers.cached_caller(ctx, caller.api_key)
        if not known or verifier is None:
            return None
        now = datetime.now(UTC)
        result = responder_for(ctx).answer_from_memory(data, now, _allowed(who, verifier))
        if result is None:
            return None
        outcome, refused = _outcome(result)
        if refused:
            return None  # refusals are written at once, by the full path
        due = verifiers.log_query(ctx, verifier, verifiers.caller_label(who, caller.remote), "ocsp",
                                  ",".join(result.serials)[:48] or None, outcome, result.detail, now, flush=False)
        return result.der, due
    except Exception:  # the full path answers (and reports) properly
        return None


@dataclass(frozen=True, slots=True)
class Repeatable:
    """A pre-signed answer that the very same request (same bytes, same caller) may get again without any
    look-up, while :func:`repeat` allows: until the caller's cached registration or the response's re-signing
    time is due (``until``, monotonic), and as long as the responder saw no revocation since ``revision``."""

    der: bytes
    until: float
    revision: int
    callers: int
    """:func:`verifiers.cache_generation` when taken: a suspension in this process voids it at once."""
    log_key: verifiers.LogKey


def repeatable(ctx: Context, caller: Caller, data: bytes) -> Repeatable | None:
    """What :func:`repeat` needs to answer this request again, when its answer is a pre-signed response held
    in memory for a registered verifier (None otherwise: nonces, refusals, anything needing the database)."""
    if caller.client_cert_sha256 or not caller.api_key:
        return None
    try:
        callers = verifiers.cache_generation()  # before the look-up: a suspension in between voids it
        known, who, verifier = verifiers.cached_caller(ctx, caller.api_key)
        if not known or verifier is None:
            return None
        responder = responder_for(ctx)
        if not responder.knows(data):  # not a request answered by a pre-signed response (a nonce, …)
            return None
        revision = responder.revision()  # before the answer: a revocation in between voids it
        now = datetime.now(UTC)
        result = responder.answer_from_memory(data, now, _allowed(who, verifier))
        if result is None or result.status is not ResponseStatus.SUCCESSFUL or result.fresh_until is None:
            return None
        until = min(verifiers.cached_caller_until(ctx, caller.api_key),
                    time.monotonic() + (result.fresh_until - now).total_seconds())
        key = verifiers.query_key(verifier, verifiers.caller_label(who, caller.remote), "ocsp",
                                  ",".join(result.serials)[:48] or None, "answered", result.detail)
        return Repeatable(result.der, until, revision, callers, key)
    except Exception:  # then the request is simply answered the ordinary way each time
        log.exception("OCSP repeatable answer")
        return None


def repeat(ctx: Context, memo: Repeatable) -> bool | None:
    """Count the query of a repeated answer when it may still be sent: whether the query log is due to be
    written; None when it may not (the request then takes the ordinary path)."""
    now = time.monotonic()
    if (now >= memo.until or memo.callers != verifiers.cache_generation()
            or not responder_for(ctx).unchanged_since(memo.revision, now)):
        return None
    return verifiers.count_query(ctx, memo.log_key, datetime.now(UTC))


def decode_get_path(encoded: str) -> bytes:
    """The DER request from the GET path: url-decoding of base64 (RFC 6960 A.1); empty when unreadable."""
    raw = unquote(encoded)
    try:
        return base64.b64decode(raw.replace("-", "+").replace("_", "/") + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        return b""
