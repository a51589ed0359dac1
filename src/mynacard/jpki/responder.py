"""The OCSP responder (RFC 6960) with its per-process cache of pre-signed responses.

A request for one certificate without a nonce — what RFC 5019 clients, and most of the traffic, send — is
answered from memory with a response signed in advance; the database holds the same responses for other
processes and restarts. A request with a nonce, or for several certificates, gets a freshly signed answer.

Revocations reach every process within :attr:`~mynacard.jpki.config.JpkiSettings.ocsp_poll_seconds`: each
request first checks (at most that often) the CAs' revocation counters, which advance in commit order, and
drops the cached answers of every certificate revoked since. A cached entry filled while such a check found
news is not kept, so an answer read just before a revocation cannot linger.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from weakref import WeakKeyDictionary

from mynacard.context import Context
from mynacard.db import Database
from mynacard.jpki import ocsp, service
from mynacard.jpki.config import settings_of
from mynacard.jpki.model import CaKind, RevocationReason
from mynacard.jpki.ocsp import ResponseStatus
from mynacard.principal import Principal

__all__ = ["Answer", "OcspResponder", "responder_for", "revoke"]


@dataclass(frozen=True)
class Answer:
    """What the responder sent, for the HTTP layer and the query log."""

    der: bytes
    status: ResponseStatus
    serials: tuple[str, ...] = ()
    kinds: tuple[CaKind, ...] = ()
    detail: str | None = None
    cached: bool = False
    fresh_until: datetime | None = None
    """For a pre-signed answer from memory: when it is due to be re-signed (it may be repeated until then,
    unless :meth:`OcspResponder.unchanged_since` says a revocation came in between)."""


@dataclass(frozen=True)
class _Entry:
    der: bytes
    refresh_at: datetime
    status: str
    revoked_at: datetime | None
    reason: RevocationReason | None


class OcspResponder:
    """Answers OCSP requests for every generation of both CAs of one database."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, bytes, int], _Entry] = OrderedDict()
        self._by_request: dict[bytes, tuple[tuple[str, bytes, int], CaKind, str]] = {}
        """Request bytes → its cache key: clients repeat the very same DER for a certificate, so a hit needs
        no parsing (the entry itself is still checked, so an evicted answer is never served)."""
        self._authorities: dict[tuple[str, bytes], service.Authority] = {}
        self._counters: dict[int, int] = {}
        self._changes = 0
        self._last_poll = 0.0
        self._last_reload = 0.0
        settings = settings_of(ctx)
        self._signers: dict[int, tuple[service.OcspSigner, float]] = {}
        self._lifetime = settings.ocsp_lifetime
        self._max_entries = settings.ocsp_cache_entries
        self._poll_seconds = settings.ocsp_poll_seconds
        self._reload()

    # --- authorities and revocations -----------------------------------------------------------------

    def _reload(self) -> None:
        found = service.authorities(self.ctx)
        with self._lock:
            for a in found:
                self._authorities[("sha1", bytes.fromhex(a.key_sha1))] = a
                self._authorities[("sha256", bytes.fromhex(a.key_sha256))] = a
                self._counters.setdefault(a.id, a.revocation_counter)
            self._last_reload = time.monotonic()

    def poll(self, force: bool = False) -> list[tuple[int, int]]:
        """Drop cached answers of certificates revoked since the last look; returns (authority id, serial)
        of each of them."""
        if not force and time.monotonic() - self._last_poll < self._poll_seconds:
            return []
        with self._lock:
            counters = dict(self._counters)
        now_counters, changed = service.revocations_since(self.ctx, counters)
        if any(authority_id not in counters for authority_id in now_counters):
            self._reload()  # a CA generation made since the last look (first start, or a rollover)
        with self._lock:
            self._last_poll = time.monotonic()
            for authority_id, counter in now_counters.items():
                if authority_id in self._counters:
                    self._counters[authority_id] = max(self._counters[authority_id], counter)
            if changed:
                self._changes += 1
                by_id = {a.id: a for a in self._authorities.values()}
                for authority_id, serial in changed:
                    authority = by_id.get(authority_id)
                    if authority is None:
                        continue
                    for algorithm, key_hash in (("sha1", authority.key_sha1), ("sha256", authority.key_sha256)):
                        self._cache.pop((algorithm, bytes.fromhex(key_hash), serial), None)
        return changed

    def refresh_revoked(self, now: datetime) -> int:
        """Poll now and sign the revoked answers at once (a background tick calls this), so that the next
        request for a newly revoked certificate is answered from a pre-signed response again."""
        changed = self.poll(force=True)
        by_id = {a.id: a for a in self._authorities.values()}
        for authority_id, serial in changed:
            authority = by_id.get(authority_id)
            if authority is not None:
                service.presigned_response(self.ctx, authority, serial, "sha1", now)
        return len(changed)

    def _authority(self, ref: ocsp.CertRef) -> service.Authority | None:
        key = (ref.hash_algorithm, ref.issuer_key_hash)
        authority = self._authorities.get(key)
        if authority is None and time.monotonic() - self._last_reload > self._poll_seconds:
            self._reload()  # a rollover made a new generation since this process started
            authority = self._authorities.get(key)
        if authority is None:
            return None
        name_hash = {"sha1": authority.name_sha1, "sha256": authority.name_sha256}[ref.hash_algorithm]
        return authority if bytes.fromhex(name_hash) == ref.issuer_name_hash else None

    # --- answering ------------------------------------------------------------------------------------

    def answer(self, data: bytes, now: datetime, allowed: Callable[[CaKind], bool]) -> Answer:
        """The response to one request; ``allowed`` says which CA's status the caller may receive."""
        try:
            request = ocsp.parse_request(data)
        except ocsp.MalformedRequest as exc:
            return Answer(ocsp.error_response(ResponseStatus.MALFORMED_REQUEST),
                          ResponseStatus.MALFORMED_REQUEST, detail=str(exc))
        self.poll()
        serials = tuple(f"{r.serial:X}" for r in request.refs)
        found = [self._authority(r) if r.hash_algorithm in ("sha1", "sha256") else None for r in request.refs]
        authorities = [a for a in found if a is not None]
        if len(authorities) != len(found) or len({a.id for a in authorities}) != 1:
            return Answer(ocsp.error_response(ResponseStatus.UNAUTHORIZED), ResponseStatus.UNAUTHORIZED,
                          serials, detail="not a certificate of this responder's CAs (or of more than one)")
        authority = authorities[0]
        if not allowed(authority.kind):
            return Answer(ocsp.error_response(ResponseStatus.UNAUTHORIZED), ResponseStatus.UNAUTHORIZED,
                          serials, (authority.kind,), detail=f"not registered to verify {authority.kind.value}")
        if len(request.refs) == 1 and request.nonce is None:
            ref = request.refs[0]
            entry = self._lookup(ref, now)
            if entry is None:
                entry = self._fill(authority, ref, now)
            if entry is not None:
                self._remember(data, ref, authority.kind)
                return Answer(entry.der, ResponseStatus.SUCCESSFUL, serials, (authority.kind,))
        return self._sign_fresh(authority, request, now, serials)

    def answer_from_memory(self, data: bytes, now: datetime, allowed: Callable[[CaKind], bool]) -> Answer | None:
        """The answer when it needs neither the database nor a signature (malformed, refused, or a cached
        pre-signed response), else None — so that the web layer can answer without leaving its event loop."""
        if time.monotonic() - self._last_poll >= self._poll_seconds:
            return None
        known = self._by_request.get(data)
        if known is not None:
            key, kind, serial = known
            if not allowed(kind):
                return Answer(ocsp.error_response(ResponseStatus.UNAUTHORIZED), ResponseStatus.UNAUTHORIZED,
                              (serial,), (kind,), detail=f"not registered to verify {kind.value}")
            entry = self._get(key, now)
            if entry is not None:
                return Answer(entry.der, ResponseStatus.SUCCESSFUL, (serial,), (kind,), cached=True,
                              fresh_until=entry.refresh_at)
        try:
            request = ocsp.parse_request(data)
        except ocsp.MalformedRequest as exc:
            return Answer(ocsp.error_response(ResponseStatus.MALFORMED_REQUEST),
                          ResponseStatus.MALFORMED_REQUEST, detail=str(exc))
        if len(request.refs) != 1:
            return None
        ref = request.refs[0]
        with self._lock:
            authority = self._authorities.get((ref.hash_algorithm, ref.issuer_key_hash))
        if authority is None or bytes.fromhex(
                authority.name_sha1 if ref.hash_algorithm == "sha1" else authority.name_sha256) != ref.issuer_name_hash:
            return None
        serials = (f"{ref.serial:X}",)
        if not allowed(authority.kind):
            return Answer(ocsp.error_response(ResponseStatus.UNAUTHORIZED), ResponseStatus.UNAUTHORIZED,
                          serials, (authority.kind,), detail=f"not registered to verify {authority.kind.value}")
        entry = self._lookup(ref, now)
        if entry is None:
            return None
        if request.nonce is not None:
            # the status is in memory and so is the responder key: sign here (the signature holds the
            # interpreter either way, so a thread would only add a hand-over)
            with self._lock:
                signer = self._signers.get(authority.id)
            if signer is None or signer[1] <= time.monotonic():
                return None
            return self._sign_fresh(authority, request, now, serials)
        self._remember(data, ref, authority.kind)
        return Answer(entry.der, ResponseStatus.SUCCESSFUL, serials, (authority.kind,), cached=True,
                      fresh_until=entry.refresh_at)

    def knows(self, data: bytes) -> bool:
        """Whether these request bytes were last answered with a pre-signed response."""
        return data in self._by_request

    def revision(self) -> int:
        """Advances whenever a poll finds revocations (read it before taking an answer to repeat)."""
        return self._changes

    def unchanged_since(self, revision: int, monotonic_now: float) -> bool:
        """No revocation seen since ``revision``, and the last look is recent enough that none can be
        missed: an answer taken then may be sent again as it is."""
        return self._changes == revision and monotonic_now - self._last_poll < self._poll_seconds

    def _remember(self, data: bytes, ref: ocsp.CertRef, kind: CaKind) -> None:
        with self._lock:
            if len(self._by_request) >= 2 * self._max_entries:
                self._by_request.clear()
            self._by_request[data] = ((ref.hash_algorithm, ref.issuer_key_hash, ref.serial), kind, f"{ref.serial:X}")

    def _lookup(self, ref: ocsp.CertRef, now: datetime) -> _Entry | None:
        return self._get((ref.hash_algorithm, ref.issuer_key_hash, ref.serial), now)

    def _get(self, key: tuple[str, bytes, int], now: datetime) -> _Entry | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            if now >= entry.refresh_at:
                del self._cache[key]
                return None
            self._cache.move_to_end(key)
            return entry

    def _fill(self, authority: service.Authority, ref: ocsp.CertRef, now: datetime) -> _Entry | None:
        with self._lock:
            changes = self._changes
        stored = service.presigned_response(self.ctx, authority, ref.serial, ref.hash_algorithm, now)
        if stored is None:
            return None
        lifetime = stored.next_update - stored.this_update
        entry = _Entry(stored.der, stored.this_update + lifetime / 2, stored.status, stored.revoked_at, stored.reason)
        with self._lock:
            if self._changes == changes:  # no revocation seen meanwhile: safe to keep
                self._cache[(ref.hash_algorithm, ref.issuer_key_hash, ref.serial)] = entry
                while len(self._cache) > self._max_entries:
                    self._cache.popitem(last=False)
        return entry

    def _sign_fresh(self, authority: service.Authority, request: ocsp.OcspRequest, now: datetime,
                    serials: tuple[str, ...]) -> Answer:
        """A response signed now (a nonce, or several certificates): the status from the cached entry when
        there is one (it is exactly as fresh as the pre-signed answer), else from the database."""
        moment = now.replace(microsecond=0)
        statuses = []
        for ref in request.refs:
            entry = self._get((ref.hash_algorithm, ref.issuer_key_hash, ref.serial), now)
            if entry is not None:
                statuses.append(ocsp.SingleStatus(ref.der, entry.status, moment, moment + self._lifetime,
                                                  entry.revoked_at, entry.reason))
            else:
                row = service.certificate_status_row(self.ctx, authority, ref.serial)
                statuses.append(service.single_status(row, ref.der, moment, self._lifetime))
        signer = self._signer(authority, now)
        der = ocsp.build_response(statuses, produced_at=moment, responder_key_hash=signer.key_hash,
                                  responder_cert_der=signer.certificate_der, signer=signer.signer,
                                  nonce=request.nonce)
        return Answer(der, ResponseStatus.SUCCESSFUL, serials, (authority.kind,))

    def _signer(self, authority: service.Authority, now: datetime) -> service.OcspSigner:
        """The generation's delegated responder, looked up again at most once a minute."""
        with self._lock:
            found = self._signers.get(authority.id)
        if found is not None and found[1] > time.monotonic():
            return found[0]
        signer = service.ocsp_signer(self.ctx, authority, now)
        with self._lock:
            self._signers[authority.id] = (signer, time.monotonic() + 60)
        return signer

    def cache_size(self) -> int:
        with self._lock:
            return len(self._cache)


_RESPONDERS: WeakKeyDictionary[Database, OcspResponder] = WeakKeyDictionary()
_RESPONDERS_LOCK = threading.Lock()


def responder_for(ctx: Context) -> OcspResponder:
    """This process's responder for the context's database."""
    responder = _RESPONDERS.get(ctx.db)
    if responder is not None:
        return responder
    with _RESPONDERS_LOCK:
        responder = _RESPONDERS.get(ctx.db)
        if responder is None:
            responder = _RESPONDERS[ctx.db] = OcspResponder(ctx)
    return responder


def revoke(ctx: Context, principal: Principal, serial: int, reason: RevocationReason | str, now: datetime,
           detail: str | None = None) -> service.CertificateView:
    """Revoke one certificate (the JSON API and the operator's page alike): the service commits it — with the CRL
    entry and the pre-signed OCSP answers — then this process's responder, if it has one, drops the cached
    answers at once rather than at its next poll (other processes see it within their poll)."""
    view = service.revoke_certificate(ctx, principal, serial, reason, now, detail)
    responder = _RESPONDERS.get(ctx.db)
    if responder is not None:
        responder.poll(force=True)
    return view
