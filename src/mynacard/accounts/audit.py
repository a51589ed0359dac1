"""The account administration log (利用者管理の監査記録): every act on an account — created, disabled, enabled,
password reset, key issued or revoked, role changed, unlocked, locked by wrong passwords, a login refused for an
expired one-time password — with who did it, when and from where, appended in the transaction of the act itself
(:mod:`mynacard.hashchain`, the mechanism every audit log shares). Passwords and keys never appear in it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from mynacard.accounts.tables import account_audit, account_audit_heads
from mynacard.db import Database
from mynacard.hashchain import AuditReport, HashChain

__all__ = ["STREAM", "AuditEntry", "entries", "record", "verify"]

STREAM = "accounts"
_CHAIN = HashChain(account_audit, account_audit_heads)


def record(conn: Connection, action: str, actor: str, target: str, client: str, now: datetime,
           **details: Any) -> None:
    """Append one act on ``target`` (a username) by ``actor`` from ``client`` (an address, or ``cli``)."""
    _CHAIN.append(conn, STREAM, action, actor[:64], now, details={"target": target, "from": client, **details})


AuditEntry = dict[str, Any]


def entries(conn: Connection, *, target: str | None = None, limit: int = 200) -> list[AuditEntry]:
    """The newest entries first (optionally about one account)."""
    import json

    query = select(account_audit).order_by(account_audit.c.seq.desc()).limit(max(1, min(limit, 1000)))
    rows = []
    for row in conn.execute(query if target is None else query.where(
            account_audit.c.details.contains(f'"target":{json.dumps(target, ensure_ascii=False)}',
                                             autoescape=True))):
        details = json.loads(row.details)
        rows.append({"seq": row.seq, "at": row.at, "actor": row.actor, "action": row.action,
                     "target": details.pop("target", ""), "from": details.pop("from", ""), "details": details})
    return rows


def verify(db: Database) -> AuditReport:
    """Recompute the log's hash chain against its recorded head."""
    return _CHAIN.verify(db, STREAM)
