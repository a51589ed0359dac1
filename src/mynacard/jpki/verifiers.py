"""Verifiers (署名検証者・利用者証明検証者): the registry, what each may receive, the per-verifier log of
validity queries, platform operators' subscriptions (現況確認) and login challenges.

Only registered verifiers receive revocation information, and each only for the CA its registration
covers: a signature verifier for the signing CA (and the basic four facts), an authentication verifier for
the user-authentication CA (no personal facts). Every query is logged against the verifier who made it;
a refusal is logged against the caller who was refused.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from weakref import WeakKeyDictionary

from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import and_, case, delete, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from mynacard.accounts import service as accounts
from mynacard.context import Context
from mynacard.db import Database, UtcDateTime
from mynacard.errors import Conflict, Forbidden, InvalidInput, NotFound
from mynacard.jpki import profiles, service
from mynacard.jpki import relying_party as rp
from mynacard.jpki.config import settings_of
from mynacard.jpki.model import CHALLENGE_BYTES, CHALLENGE_TTL, OPERATOR_ROLES, CaKind, Purpose, VerifierKind
from mynacard.jpki.relying_party import RevocationInfo
from mynacard.jpki.tables import (
    jpki_certificates,
    jpki_challenges,
    jpki_notifications,
    jpki_subscriptions,
    jpki_verifier_queries,
    jpki_verifiers,
)
from mynacard.principal import Principal, Role
from mynacard.sealing import Sealer

__all__ = [
    "Challenge",
    "Notification",
    "ServiceChallengeStore",
    "ServiceStatusSource",
    "TooManyChallenges",
    "Verifier",
    "acknowledge_notifications",
    "authenticate",
    "cache_generation",
    "cached_caller_until",
    "consume_challenge",
    "count_query",
    "flush_query_log",
    "issue_challenge",
    "list_verifiers",
    "log_query",
    "notifications",
    "purge_challenges",
    "queries",
    "query_key",
    "register_verifier",
    "require_verifier",
    "service_trust",
    "set_suspended",
    "subscribe",
    "subscribed_certificate",
    "verifier_of",
]


_INTERNAL = (Role.OPERATOR, Role.SYSTEM, Role.KIOSK)
"""J-LIS itself and the services it runs (Mynaportal, the kiosk certificate issuance centre)."""


@dataclass(frozen=True)
class Verifier:
    """A registered verifier."""

    id: int
    name: str
    kind: VerifierKind
    purposes: frozenset[Purpose]
    username: str
    """Its API account (role ``verifier``)."""
    registered_at: datetime
    suspended_at: datetime | None

    @property
    def active(self) -> bool:
        return self.suspended_at is None

    def may(self, purpose: Purpose) -> bool:
        return self.active and purpose in self.purposes

    @property
    def may_receive_facts(self) -> bool:
        """The basic four facts go only to signature verifiers."""
        return self.may(Purpose.SIGNATURE)


def _verifier(row: Any) -> Verifier:
    purposes = {p for p, on in ((Purpose.SIGNATURE, row.verifies_signatures),
                                (Purpose.AUTHENTICATION, row.verifies_authentication)) if on}
    return Verifier(row.id, row.name, VerifierKind(row.kind), frozenset(purposes), row.username, row.registered_at,
                    row.suspended_at)


def register_verifier(ctx: Context, principal: Principal, name: str, kind: VerifierKind | str,
                      purposes: Iterable[Purpose | str], username: str, now: datetime,
                      client_cert_sha256: str | None = None) -> tuple[Verifier, str]:
    """Register a verifier (J-LIS, after the Minister's certification for private businesses) and give it an
    API account; returns the verifier and its API key (shown once). One transaction: the account, its key and
    the registration are written together or not at all — an account name or a client certificate already
    registered is a :class:`~mynacard.errors.Conflict` (409) that leaves nothing behind."""
    principal.require(*OPERATOR_ROLES)
    try:
        kind = VerifierKind(kind)
        wanted = frozenset(Purpose(p) for p in purposes)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if not name.strip() or len(name) > 200:
        raise InvalidInput("a verifier needs a name of 1–200 characters")
    if not wanted:
        raise InvalidInput("a verifier is registered for signature and/or authentication verification")
    if client_cert_sha256 is not None and (len(client_cert_sha256) != 64
                                           or not all(c in "0123456789abcdef" for c in client_cert_sha256)):
        raise InvalidInput("a client certificate fingerprint is 64 lower-case hex digits (SHA-256)")
    try:
        with ctx.transaction() as tx:
            conn = tx.conn
            if conn.execute(select(jpki_verifiers.c.id).where(jpki_verifiers.c.username == username)).first():
                raise Conflict(f"a verifier with account {username!r} exists")
            if client_cert_sha256 is not None and conn.execute(select(jpki_verifiers.c.id).where(
                    jpki_verifiers.c.client_cert_sha256 == client_cert_sha256)).first():
                raise Conflict("this client certificate is registered to another verifier")
            accounts.create_account(ctx, username, Role.VERIFIER, None, now, actor=principal, tx=tx)
            key = accounts.issue_api_key(ctx, username, now, actor=principal, tx=tx)
            verifier_id = conn.execute(insert(jpki_verifiers).values(
                name=name.strip(), kind=kind.value, verifies_signatures=Purpose.SIGNATURE in wanted,
                verifies_authentication=Purpose.AUTHENTICATION in wanted, username=username,
                client_cert_sha256=client_cert_sha256, registered_at=now, registered_by=principal.subject,
                suspended_at=None).returning(jpki_verifiers.c.id)).scalar_one()
            row = conn.execute(select(jpki_verifiers).where(jpki_verifiers.c.id == verifier_id)).one()
    except IntegrityError:  # the same name or certificate registered concurrently: rolled back whole
        raise Conflict("a verifier with this account or client certificate exists") from None
    return _verifier(row), key


def set_suspended(ctx: Context, principal: Principal, verifier_id: int, suspended: bool, now: datetime) -> Verifier:
    """Suspend a verifier (it receives nothing more) or reinstate it."""
    principal.require(*OPERATOR_ROLES)
    with ctx.transaction() as tx:
        conn = tx.conn
        done = conn.execute(update(jpki_verifiers).where(jpki_verifiers.c.id == verifier_id)
                            .values(suspended_at=now if suspended else None)).rowcount
        if not done:
            raise NotFound("no such verifier")
        row = conn.execute(select(jpki_verifiers).where(jpki_verifiers.c.id == verifier_id)).one()
    cache = _cache(ctx)
    with _CACHE_LOCK:
        cache.clear()
        _CLEARED[0] += 1
    return _verifier(row)


def list_verifiers(ctx: Context, principal: Principal) -> list[Verifier]:
    principal.require(*OPERATOR_ROLES)
    with ctx.db.connect() as conn:
        return [_verifier(r) for r in conn.execute(select(jpki_verifiers).order_by(jpki_verifiers.c.id))]


# --- who is asking -----------------------------------------------------------------------------------------

_CACHE_SECONDS = 2.0
_CACHES: WeakKeyDictionary[Database, dict[str, tuple[float, Any]]] = WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()
_CLEARED = [0]
"""How often a cache was cleared in this process (a suspension): answers remembered before are void."""


def _cache(ctx: Context) -> dict[str, tuple[float, Any]]:
    """This database's short-lived cache (per Database object: a test's or a tenant's data never mixes)."""
    with _CACHE_LOCK:
        found = _CACHES.get(ctx.db)
        if found is None:
            found = _CACHES[ctx.db] = {}
        return found


_MISSING = object()


@lru_cache(maxsize=8)
def _sealer(data_key: bytes) -> Sealer:
    return Sealer(data_key)


@lru_cache(maxsize=4096)
def _key_digest(data_key: bytes, api_key: str) -> str:
    """The keyed hash an API key is stored under (a verifier sends the same key with every request)."""
    return _sealer(data_key).lookup_hash(api_key)


def _peek(ctx: Context, key: str) -> Any:
    """A cached value, or ``_MISSING``, without loading anything (for the non-blocking OCSP path)."""
    cache = _cache(ctx)
    with _CACHE_LOCK:
        hit = cache.get(key)
    return hit[1] if hit is not None and hit[0] > time.monotonic() else _MISSING


def _cached(ctx: Context, key: str, load: Any) -> Any:
    """A short-lived per-process cache: the OCSP hot path must not query accounts on every request; a
    suspension takes effect within two seconds (or at once in this process)."""
    now = time.monotonic()
    cache = _cache(ctx)
    with _CACHE_LOCK:
        hit = cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    value = load()
    with _CACHE_LOCK:
        if len(cache) > 10000:
            cache.clear()
            _CLEARED[0] += 1
        cache[key] = (now + _CACHE_SECONDS, value)
    return value


def verifier_of(ctx: Context, principal: Principal | None) -> Verifier | None:
    """The registration behind a caller, if it is an active registered verifier."""
    if principal is None or principal.role is not Role.VERIFIER:
        return None

    def load() -> Verifier | None:
        with ctx.db.connect() as conn:
            row = conn.execute(select(jpki_verifiers).where(jpki_verifiers.c.username == principal.subject)).first()
        return None if row is None else _verifier(row)

    verifier: Verifier | None = _cached(ctx, "v:" + principal.subject, load)
    return verifier if verifier is not None and verifier.active else None


def authenticate(ctx: Context, api_key: str | None, client_cert_sha256: str | None = None) -> Principal | None:
    """The caller behind an API key (or a client certificate fingerprint vouched for by the TLS proxy)."""
    if client_cert_sha256:
        fingerprint = client_cert_sha256.lower()

        def by_cert() -> Principal | None:
            with ctx.db.connect() as conn:
                username = conn.execute(select(jpki_verifiers.c.username).where(
                    jpki_verifiers.c.client_cert_sha256 == fingerprint)).scalar()
            return None if username is None else Principal(Role.VERIFIER, username)

        found: Principal | None = _cached(ctx, "c:" + fingerprint, by_cert)
        if found is not None:
            return found
    if not api_key:
        return None
    digest = _key_digest(ctx.settings.data_key, api_key)
    key_principal: Principal | None = _cached(ctx, "k:" + digest, lambda: accounts.authenticate_api_key(ctx, api_key))
    return key_principal


def cached_caller(ctx: Context, api_key: str | None, client_cert_sha256: str | None = None
                  ) -> tuple[bool, Principal | None, Verifier | None]:
    """(known, principal, verifier) from the caches only; ``known`` is False when a database look-up is
    needed. Lets the OCSP responder answer from memory without leaving the event loop."""
    if client_cert_sha256:
        return False, None, None
    if not api_key:
        return True, None, None
    who = _peek(ctx, "k:" + _key_digest(ctx.settings.data_key, api_key))
    if who is _MISSING:
        return False, None, None
    if who is None or who.role is not Role.VERIFIER:
        return True, who, None
    verifier = _peek(ctx, "v:" + who.subject)
    if verifier is _MISSING:
        return False, None, None
    return True, who, verifier if verifier is not None and verifier.active else None


def cached_caller_until(ctx: Context, api_key: str) -> float:
    """When (``time.monotonic()``) the cached key → principal → verifier look-ups behind ``api_key`` expire:
    an answer remembered for this caller must not outlive them (a suspension takes effect by then)."""
    cache = _cache(ctx)
    with _CACHE_LOCK:
        by_key = cache.get("k:" + _key_digest(ctx.settings.data_key, api_key))
        who = by_key[1] if by_key is not None else None
        by_name = cache.get("v:" + who.subject) if who is not None else None
    return min(by_key[0] if by_key is not None else 0.0, by_name[0] if by_name is not None else 0.0)


def cache_generation() -> int:
    """Advances when this process drops its cached callers (a suspension here takes effect at once)."""
    return _CLEARED[0]


def caller_label(principal: Principal | None, remote: str | None = None) -> str:
    """How the query log names a caller: role and account, and the client address. An anonymous caller is
    its address alone — an IPv6 one by its /64, which one client holds whole (else each address of it would
    be a caller of its own)."""
    who = "anonymous" if principal is None else f"{principal.role.value}:{principal.subject}"
    if remote and principal is None:
        remote = _client_network(remote)
    return f"{who}@{remote}" if remote else who


def _client_network(remote: str) -> str:
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote[:64]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else address)


def require_verifier(ctx: Context, principal: Principal | None, purpose: Purpose, action: str, now: datetime,
                     serial: str | None = None, remote: str | None = None) -> Verifier | None:
    """The registered verifier allowed ``purpose``, or J-LIS's own services (``None``); anything else is
    refused with :class:`Forbidden`, and the refusal is logged at once."""
    if principal is not None and principal.role in _INTERNAL:
        return None
    verifier = verifier_of(ctx, principal)
    if verifier is None or not verifier.may(purpose):
        why = ("not a registered verifier" if verifier is None
               else f"registered for {', '.join(sorted(p.value for p in verifier.purposes))}, not {purpose.value}")
        # A known caller's refusal is written at once; an anonymous one waits for the next flush (half a
        # second), counted in its client address's row of the minute (see flush_query_log).
        log_query(ctx, verifier, caller_label(principal, remote), action, serial, "refused", why, now,
                  immediate=principal is not None)
        raise Forbidden(f"refused: {why}")
    return verifier


# --- the query log -----------------------------------------------------------------------------------------

LogKey = tuple[int | None, str, str, str | None, str, str | None]



class _QueryLog:
    """Queries waiting to be written, counted per verifier, caller, action, certificate, outcome and detail
    (with the first and last time) — a verifier asking about one certificate a thousand times in half a
    second is one row with ``count`` 1,000. OCSP answers and anonymous refusals wait up to half a second; a
    known caller's refusals and everything else are written at once.

    Refusals are also counted across flushes: a refusal joins the row of the same caller, action and reason
    of the same minute (:func:`flush_query_log`), so that anonymous requests — which anyone can send without
    end — add at most one row per client address (an IPv6 /64) per minute, and beyond
    :data:`_ANONYMOUS_PER_MINUTE` addresses in a minute one row for all the others."""

    def __init__(self) -> None:
        self.rows: dict[LogKey, list[Any]] = {}
        self.lock = threading.Lock()
        self.last_flush = time.monotonic()


_LOGS: WeakKeyDictionary[Database, _QueryLog] = WeakKeyDictionary()
_LOGS_LOCK = threading.Lock()
_FLUSH_ROWS = 500
_FLUSH_SECONDS = 0.5


def _log(ctx: Context) -> _QueryLog:
    with _LOGS_LOCK:
        log = _LOGS.get(ctx.db)
        if log is None:
            log = _LOGS[ctx.db] = _QueryLog()
    return log


def log_query(ctx: Context, verifier: Verifier | None, caller: str, action: str, serial: str | None,
              outcome: str, detail: str | None, now: datetime, immediate: bool = False,
              flush: bool = True) -> bool:
    """Record one validity query (or refusal) against the verifier that made it. Returns whether the
    buffer is due to be written; with ``flush=False`` the caller writes it (off the event loop)."""
    if outcome == "refused" and verifier is None and caller.startswith("anonymous"):
        caller = _anonymous_caller(ctx, caller, now)
        serial = None  # whatever a stranger sends does not make rows of its own
    key = query_key(verifier, caller, action, serial, outcome, detail)
    due = count_query(ctx, key, now) or immediate
    if due and flush:
        flush_query_log(ctx)
        return False
    return due


_ANONYMOUS_PER_MINUTE = 1000
"""Client addresses whose anonymous refusals get a row of their own per minute (per process); the others of
that minute share the row ``anonymous@(other addresses)``."""
_OTHER_ADDRESSES = "anonymous@(other addresses)"
_SEEN: WeakKeyDictionary[Database, tuple[datetime, set[str]]] = WeakKeyDictionary()


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _anonymous_caller(ctx: Context, caller: str, now: datetime) -> str:
    minute = _minute(now)
    with _LOGS_LOCK:
        seen = _SEEN.get(ctx.db)
        if seen is None or seen[0] != minute:
            seen = _SEEN[ctx.db] = (minute, set())
        if caller in seen[1] or len(seen[1]) < _ANONYMOUS_PER_MINUTE:
            seen[1].add(caller)
            return caller
    return _OTHER_ADDRESSES


def query_key(verifier: Verifier | None, caller: str, action: str, serial: str | None, outcome: str,
              detail: str | None) -> LogKey:
    """The row a query is counted in (see :func:`log_query`)."""
    return (verifier.id if verifier else None, caller[:128], action[:24], serial[:48] if serial else None,
            outcome[:16], detail[:500] if detail else None)


def count_query(ctx: Context, key: LogKey, now: datetime) -> bool:
    """Count one query in its buffered row; returns whether the buffer is due to be written (the caller
    writes it, off any event loop). The OCSP server's repeated answers come here directly."""
    log = _log(ctx)
    with log.lock:
        seen = log.rows.get(key)
        if seen is None:
            log.rows[key] = [now, now, 1]
        else:
            if now > seen[1]:
                seen[1] = now
            seen[2] += 1
        return len(log.rows) >= _FLUSH_ROWS or time.monotonic() - log.last_flush >= _FLUSH_SECONDS


def flush_query_log(ctx: Context) -> int:
    """Write the buffered rows of this process; returns how many."""
    log = _log(ctx)
    with log.lock:
        pending, log.rows = log.rows, {}
        log.last_flush = time.monotonic()
    if not pending:
        return 0
    rows = [{"verifier_id": k[0], "caller": k[1], "action": k[2], "certificate_serial": k[3], "outcome": k[4],
             "detail": k[5], "at": v[0], "last_at": v[1], "count": v[2]} for k, v in pending.items()]
    try:
        with ctx.transaction() as tx:
            conn = tx.conn
            _write_rows(conn, rows)
    except IntegrityError:
        _log_one_by_one(ctx, rows)
    except OperationalError:
        with log.lock:  # the database is busy or away: keep the counts for the next flush (bounded)
            for key, (first, last, count) in pending.items():
                seen = log.rows.get(key)
                if seen is None:
                    if len(log.rows) < 100_000:
                        log.rows[key] = [first, last, count]
                else:
                    seen[0], seen[1], seen[2] = min(seen[0], first), max(seen[1], last), seen[2] + count
        raise
    return sum(r["count"] for r in rows)


def _same(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def _write_rows(conn: Any, rows: list[dict[str, Any]]) -> None:
    """Insert the rows; a refusal is added to the row of the same caller, action, certificate and reason whose
    first refusal falls in the same minute, if there is one (so refusals make at most a row a minute each)."""
    q = jpki_verifier_queries
    fresh = []
    for row in rows:
        if row["outcome"] != "refused":
            fresh.append(row)
            continue
        minute = _minute(row["at"])
        done = conn.execute(update(q).where(and_(
            q.c.outcome == "refused", q.c.caller == row["caller"], q.c.action == row["action"],
            _same(q.c.verifier_id, row["verifier_id"]), _same(q.c.certificate_serial, row["certificate_serial"]),
            _same(q.c.detail, row["detail"]), q.c.at >= minute, q.c.at < minute + timedelta(minutes=1))).values(
            count=q.c.count + row["count"],
            last_at=case((q.c.last_at < row["last_at"], literal(row["last_at"], UtcDateTime())),
                         else_=q.c.last_at))).rowcount
        if not done:
            fresh.append(row)
    if fresh:
        conn.execute(insert(q), fresh)


def _log_one_by_one(ctx: Context, rows: list[dict[str, Any]]) -> None:
    """A row the batch could not take (its verifier was removed meanwhile) is kept without the link."""
    for row in rows:
        try:
            with ctx.transaction() as tx:
                conn = tx.conn
                _write_rows(conn, [row])
        except IntegrityError:
            with ctx.transaction() as tx:
                conn = tx.conn
                _write_rows(conn, [{**row, "verifier_id": None, "detail": f"verifier {row['verifier_id']} gone"}])


def queries(ctx: Context, principal: Principal, verifier_id: int | None = None, refused_only: bool = False,
            limit: int = 200) -> list[dict[str, Any]]:
    """The query log: the operator sees everyone's (refusals included), a verifier its own."""
    flush_query_log(ctx)
    query = select(jpki_verifier_queries).order_by(jpki_verifier_queries.c.id.desc()).limit(min(limit, 5000))
    if principal.role in OPERATOR_ROLES:
        if verifier_id is not None:
            query = query.where(jpki_verifier_queries.c.verifier_id == verifier_id)
    else:
        own = verifier_of(ctx, principal)
        if own is None:
            raise Forbidden("only the operator and registered verifiers may read query logs")
        query = query.where(jpki_verifier_queries.c.verifier_id == own.id)
    if refused_only:
        query = query.where(jpki_verifier_queries.c.outcome == "refused")
    with ctx.db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


# --- platform operators: subscriptions and notifications (現況確認) ------------------------------------------

def _require_platform(ctx: Context, principal: Principal, action: str, now: datetime,
                      serial: str | None = None) -> Verifier:
    verifier = require_verifier(ctx, principal, Purpose.SIGNATURE, action, now, serial)
    if verifier is None or verifier.kind is not VerifierKind.PLATFORM_OPERATOR:
        log_query(ctx, verifier, caller_label(principal), action, serial, "refused",
                  "only platform operators subscribe to certificates", now, immediate=True)
        raise Forbidden("only platform operators subscribe to certificates")
    return verifier


def subscribe(ctx: Context, principal: Principal, serial: int, now: datetime) -> int:
    """A platform operator asks to be told when a signing certificate is revoked (and where its successor
    is). The holder gave the operator the certificate, with consent to the check. Idempotent."""
    verifier = _require_platform(ctx, principal, "subscribe", now, f"{serial:X}")
    with ctx.transaction() as tx:
        conn = tx.conn
        cert = conn.execute(select(jpki_certificates.c.id, jpki_certificates.c.kind, jpki_certificates.c.status)
                            .where(jpki_certificates.c.serial == serial)).first()
        if cert is None or cert.kind != CaKind.SIGN.value:
            raise NotFound("no such signing certificate")
        existing = conn.execute(select(jpki_subscriptions.c.id).where(
            jpki_subscriptions.c.verifier_id == verifier.id,
            jpki_subscriptions.c.certificate_id == cert.id)).scalar()
        if existing is None:
            existing = conn.execute(insert(jpki_subscriptions).values(
                verifier_id=verifier.id, certificate_id=cert.id, created_at=now)
                .returning(jpki_subscriptions.c.id)).scalar_one()
    log_query(ctx, verifier, caller_label(principal), "subscribe", f"{serial:X}", "answered", None, now,
              immediate=True)
    return int(existing)


@dataclass(frozen=True)
class Notification:
    """Something a platform operator subscribed to has happened."""

    id: int
    certificate_serial: int
    event: str
    """``revoked`` or ``reissued``."""
    reason: str | None
    new_certificate_serial: int | None
    new_certificate_url: str | None
    created_at: datetime


def notifications(ctx: Context, principal: Principal, now: datetime, pending_only: bool = True,
                  limit: int = 500) -> list[Notification]:
    """What happened to the certificates a platform operator follows, oldest first."""
    verifier = _require_platform(ctx, principal, "notifications", now)
    old = jpki_certificates.alias("old")
    new = jpki_certificates.alias("new")
    query = (select(jpki_notifications.c.id, old.c.serial, jpki_notifications.c.event, jpki_notifications.c.reason,
                    new.c.serial.label("new_serial"), jpki_notifications.c.created_at)
             .join(old, old.c.id == jpki_notifications.c.certificate_id)
             .outerjoin(new, new.c.id == jpki_notifications.c.new_certificate_id)
             .where(jpki_notifications.c.verifier_id == verifier.id)
             .order_by(jpki_notifications.c.id).limit(min(limit, 5000)))
    if pending_only:
        query = query.where(jpki_notifications.c.acknowledged_at.is_(None))
    settings = settings_of(ctx)
    with ctx.db.connect() as conn:
        rows = conn.execute(query).all()
    log_query(ctx, verifier, caller_label(principal), "notifications", None, "answered", f"{len(rows)} items", now,
              immediate=True)
    return [Notification(r.id, r.serial, r.event, r.reason, r.new_serial,
                         settings.url(f"/api/jpki/certificates/{r.new_serial:X}") if r.new_serial else None,
                         r.created_at) for r in rows]


def acknowledge_notifications(ctx: Context, principal: Principal, ids: Sequence[int], now: datetime) -> int:
    verifier = _require_platform(ctx, principal, "acknowledge", now)
    with ctx.transaction() as tx:
        conn = tx.conn
        return int(conn.execute(update(jpki_notifications).where(
            jpki_notifications.c.verifier_id == verifier.id, jpki_notifications.c.id.in_(list(ids)),
            jpki_notifications.c.acknowledged_at.is_(None)).values(acknowledged_at=now)).rowcount)


def subscribed_certificate(ctx: Context, principal: Principal, serial: int, now: datetime) -> service.CertificateRecord:
    """A signing certificate (with the holder's current facts) for a platform operator that follows it —
    the link in a ``reissued`` notification. Any other caller is refused."""
    verifier = _require_platform(ctx, principal, "certificate", now, f"{serial:X}")
    with ctx.db.connect() as conn:
        allowed = conn.execute(select(jpki_subscriptions.c.id).join(
            jpki_certificates, jpki_certificates.c.id == jpki_subscriptions.c.certificate_id).where(
            jpki_subscriptions.c.verifier_id == verifier.id, jpki_certificates.c.serial == serial)).first()
    if allowed is None:
        log_query(ctx, verifier, caller_label(principal), "certificate", f"{serial:X}", "refused",
                  "not subscribed", now, immediate=True)
        raise NotFound("no such certificate among those you follow")
    log_query(ctx, verifier, caller_label(principal), "certificate", f"{serial:X}", "answered", None, now,
              immediate=True)
    return service.certificate_by_serial(ctx, Principal.system("jpki"), serial)


# --- login challenges ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Challenge:
    """A login challenge: random bytes the card signs with its authentication key; valid once, briefly."""

    id: str
    nonce: bytes
    expires_at: datetime


def _issued_to(principal: Principal) -> str:
    return f"{principal.role.value}:{principal.subject}"


class TooManyChallenges(Conflict):
    """The party has ``MYNACARD_JPKI_CHALLENGES_MAX`` challenges outstanding (a flood of login pages): no new
    one until some expire (HTTP 429, ``retry_after`` seconds)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many login challenges outstanding; try again in {retry_after} s")
        self.retry_after = retry_after


_PURGE_EVERY = 60.0
"""Seconds between the opportunistic purges of expired challenges in one process (per database)."""
_LAST_PURGE: WeakKeyDictionary[Database, float] = WeakKeyDictionary()
_PURGE_LOCK = threading.Lock()


def purge_challenges(ctx: Context, now: datetime) -> int:
    """Delete the challenges that have expired (used or not: an expired one can never be answered); returns
    how many. ``mynacard portal sweep-sessions`` runs it, and :func:`issue_challenge` does now and then."""
    with ctx.transaction() as tx:
        conn = tx.conn
        deleted = int(conn.execute(delete(jpki_challenges).where(jpki_challenges.c.expires_at <= now)).rowcount)
    with _PURGE_LOCK:
        _LAST_PURGE[ctx.db] = time.monotonic()
    return deleted


def _purge_due(ctx: Context) -> bool:
    with _PURGE_LOCK:
        last = _LAST_PURGE.get(ctx.db)
        return last is None or time.monotonic() - last >= _PURGE_EVERY


def issue_challenge(ctx: Context, principal: Principal, now: datetime) -> Challenge:
    """A fresh challenge for an authentication verifier (or Mynaportal, the kiosk centre).

    Bounded, since Mynaportal's login page makes one for every anonymous visitor: expired challenges are
    deleted (here once a minute per process, and by ``mynacard portal sweep-sessions``), and a party with
    ``MYNACARD_JPKI_CHALLENGES_MAX`` unexpired challenges gets :class:`TooManyChallenges` until some expire —
    so the table never holds much more than that per party, whoever sends requests."""
    require_verifier(ctx, principal, Purpose.AUTHENTICATION, "challenge", now)
    issued_to = _issued_to(principal)
    limit = settings_of(ctx).challenges_max
    if _purge_due(ctx):
        purge_challenges(ctx, now)
    challenge = Challenge(secrets.token_urlsafe(24), secrets.token_bytes(CHALLENGE_BYTES), now + CHALLENGE_TTL)
    with ctx.transaction() as tx:
        conn = tx.conn
        outstanding, oldest = conn.execute(
            select(func.count(), func.min(jpki_challenges.c.expires_at)).where(
                jpki_challenges.c.issued_to == issued_to, jpki_challenges.c.expires_at > now)).one()
        if outstanding >= limit:
            wait = (oldest - now).total_seconds() if oldest is not None else CHALLENGE_TTL.total_seconds()
            raise TooManyChallenges(max(1, min(int(wait) + 1, int(CHALLENGE_TTL.total_seconds()))))
        conn.execute(insert(jpki_challenges).values(id=challenge.id, issued_to=issued_to,
                                                    nonce=challenge.nonce, created_at=now,
                                                    expires_at=challenge.expires_at, used_at=None, outcome=None))
    return challenge


def consume_challenge(ctx: Context, principal: Principal, challenge_id: str, now: datetime) -> bytes:
    """Use a challenge up: only its own issuer, only once, only before it expires. Returns its bytes."""
    if not isinstance(challenge_id, str) or not 1 <= len(challenge_id) <= 48:
        raise InvalidInput("unknown, used or expired challenge")
    with ctx.transaction() as tx:
        conn = tx.conn
        done = conn.execute(update(jpki_challenges).where(
            jpki_challenges.c.id == challenge_id, jpki_challenges.c.issued_to == _issued_to(principal),
            jpki_challenges.c.used_at.is_(None), jpki_challenges.c.expires_at > now).values(used_at=now)).rowcount
        if done != 1:
            raise InvalidInput("unknown, used or expired challenge")
        return bytes(conn.execute(select(jpki_challenges.c.nonce).where(
            jpki_challenges.c.id == challenge_id)).scalar_one())


def record_challenge_outcome(ctx: Context, challenge_id: str, outcome: str) -> None:
    with ctx.transaction() as tx:
        conn = tx.conn
        conn.execute(update(jpki_challenges).where(jpki_challenges.c.id == challenge_id).values(outcome=outcome[:16]))


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


# --- the relying-party SDK, in-process ----------------------------------------------------------------------

class ServiceStatusSource:
    """Revocation status straight from the CA database, for relying parties inside mynacard (kiosk centre,
    Mynaportal) and for verifiers calling the verification API. Every look-up is logged against the caller;
    a caller not registered for the certificate's CA gets ``unknown`` and a logged refusal."""

    def __init__(self, ctx: Context, principal: Principal) -> None:
        self.ctx = ctx
        self.principal = principal
        verifier = verifier_of(ctx, principal)
        self.may_receive_facts = principal.role in OPERATOR_ROLES or (
            verifier is not None and verifier.may_receive_facts)

    def status(self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> RevocationInfo:
        kind = CaKind.SIGN if issuer.subject == profiles.ca_name(CaKind.SIGN) else CaKind.AUTH
        serial = f"{cert.serial_number:X}"
        try:
            verifier = require_verifier(self.ctx, self.principal, Purpose.for_ca(kind), "status", now, serial)
        except Forbidden as exc:
            return RevocationInfo("unknown", source="service", detail=str(exc))
        spki = issuer.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        authority = service.authority_for_key_hash(self.ctx, "sha1", asn1_keys.PublicKeyInfo.load(spki).sha1)
        row = None if authority is None else service.certificate_status_row(self.ctx, authority, cert.serial_number)
        log_query(self.ctx, verifier, caller_label(self.principal), "status", serial,
                  "answered" if row is not None else "unknown", None, now)
        if row is None:
            return RevocationInfo("unknown", source="service", detail="not issued by these CAs")
        if row.status == "revoked":
            return RevocationInfo("revoked", row.revoked_at, row.revocation_reason, source="service")
        return RevocationInfo("good", source="service")


class ServiceChallengeStore:
    """Login challenges kept in the database: any process or host can check a response."""

    def __init__(self, ctx: Context, principal: Principal) -> None:
        self.ctx = ctx
        self.principal = principal

    def issue(self, now: datetime) -> rp.Challenge:
        made = issue_challenge(self.ctx, self.principal, now)
        return rp.Challenge(made.id, made.nonce, made.expires_at)

    def consume(self, challenge_id: str, now: datetime) -> bytes:
        return consume_challenge(self.ctx, self.principal, challenge_id, now)


def service_trust(ctx: Context, now: datetime | None = None) -> rp.TrustStore:
    """Every generation's root of both CAs; :class:`~mynacard.jpki.service.AuthoritiesMissing` before the
    operator has created them (``mynacard jpki init``): a relying party never creates a CA. ``now`` is kept
    for the callers' signature."""
    found = service.authorities(ctx)
    if {a.kind for a in found if a.retired_at is None} != set(CaKind):
        raise service.AuthoritiesMissing()
    return rp.TrustStore([a.der for a in found])
