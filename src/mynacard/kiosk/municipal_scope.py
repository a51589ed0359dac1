"""What every piece of the municipal issuing server (証明発行サーバ) shares: who may act on it and in which
municipality, the municipality names, its audit streams, and the key its records are sealed with."""

from __future__ import annotations

from mynacard.context import Context
from mynacard.errors import NotFound
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.sealing import Sealer

__all__ = [
    "CENTRE_ROLES",
    "KEEPER_ROLES",
    "audit_stream",
    "holder_ref",
    "require_scope",
    "sealer",
    "server_principal",
    "town",
    "towns",
]

KEEPER_ROLES = (Role.CLERK, Role.SUPERVISOR, Role.OPERATOR, Role.SYSTEM)
"""Who keeps a municipality's records and its kiosk settings."""
CENTRE_ROLES = (Role.OPERATOR, Role.SYSTEM)
"""Who asks for menus and documents: the certificate issuance centre (J-LIS)."""


def audit_stream(code: str, request_id: str | None = None) -> str:
    """The audit chain of a municipality's server: record keeping in one chain, certificates in sixteen
    (by the request ID's first hex digit) so that concurrent requests do not queue on one chain head."""
    return f"municipal:{code}" + (f":{request_id[0]}" if request_id else "")


def server_principal(code: str) -> Principal:
    """The issuing server itself, reading the registry: scoped to its own municipality like a clerk."""
    return Principal(Role.CLERK, f"certificate-server-{code}", code)


def holder_ref(sealer: Sealer, resident_code: str) -> str:
    """The opaque reference to the holder that a certificate carries in its signed metadata (a keyed hash
    of the resident record code, so the PDF reveals nothing new and cannot be matched without the key)."""
    return sealer.lookup_hash("kiosk-holder:" + resident_code)[:32]


def sealer(ctx: Context) -> Sealer:
    """The sealer of what the server keeps encrypted at rest (signing keys, certificate contents and PDFs)."""
    return Sealer(ctx.settings.data_key)


_TOWNS: dict[str, dict[str, registry.Municipality]] = {}


def towns(ctx: Context) -> dict[str, registry.Municipality]:
    """Every municipality's names: reference data loaded by the first migration, read once per process.
    Call it before opening a connection, so that a request never asks the pool for a second connection while
    it holds one (under load, threads doing that starve the pool)."""
    key = str(ctx.db.url)
    found = _TOWNS.get(key)
    if found is None:
        found = _TOWNS.setdefault(key, {m.code: m for m in registry.list_municipalities(ctx)})
    return found


def town(ctx: Context, code: str) -> registry.Municipality:
    """One municipality's names (:class:`NotFound` for an unknown code)."""
    found = towns(ctx).get(code)
    if found is None:
        raise NotFound(f"unknown municipality {code!r}")
    return found


def require_scope(principal: Principal, code: str) -> None:
    """A keeper of records, and of this municipality (:class:`NotFound` outside the principal's scope)."""
    principal.require(*KEEPER_ROLES)
    if not principal.can_see_municipality(code):
        raise NotFound("no such municipality in your scope")
