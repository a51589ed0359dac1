"""What kind of installation this database is (導入の種別): a demonstration, or a real one.

``mynacard demo`` marks its database as a demo when it creates it; nothing else can, and nothing removes the
mark. Features that invent data or hand out known passwords (the demo logins on the login page, the demo card
reader) ask :func:`is_demo` and are refused in a real installation, whatever the environment says.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, String, Table, Text, select

from mynacard.db import UtcDateTime, metadata

__all__ = ["demo_cards", "demo_logins", "installation", "is_demo", "mark_demo", "save_demo_cards", "save_demo_logins"]

installation = Table(
    "installation",
    metadata,
    Column("key", String(32), primary_key=True),
    Column("value", Text, nullable=False),
    Column("set_at", UtcDateTime(), nullable=False),
)


def mark_demo(conn: Connection, now: datetime) -> None:
    """Mark a new database as a demonstration. Only ``mynacard demo`` calls it, on a database it has just
    created (it refuses a database that holds data, so that a real installation is never turned into a demo)."""
    if _get(conn, "kind") is None:
        conn.execute(installation.insert().values(key="kind", value="demo", set_at=now))


def _get(conn: Connection, key: str) -> str | None:
    value = conn.execute(select(installation.c.value).where(installation.c.key == key)).scalar()
    return None if value is None else str(value)


def is_demo(conn: Connection) -> bool:
    return _get(conn, "kind") == "demo"


def _save_demo_list(conn: Connection, key: str, items: list[dict[str, Any]], now: datetime) -> None:
    if not is_demo(conn):
        raise RuntimeError(f"{key} exist only in a demo installation")
    conn.execute(installation.delete().where(installation.c.key == key))
    conn.execute(installation.insert().values(key=key, value=json.dumps(items, ensure_ascii=False), set_at=now))


def _demo_list(conn: Connection, key: str) -> list[dict[str, Any]]:
    if not is_demo(conn):
        return []
    value = _get(conn, key)
    return list(json.loads(value)) if value else []


def save_demo_logins(conn: Connection, logins: list[dict[str, Any]], now: datetime) -> None:
    """The demo's accounts with their passwords and keys, for the login page of a demo (and only a demo)."""
    _save_demo_list(conn, "demo_logins", logins, now)


def demo_logins(conn: Connection) -> list[dict[str, Any]]:
    """The demo logins, or nothing outside a demo installation."""
    return _demo_list(conn, "demo_logins")


def save_demo_cards(conn: Connection, cards: list[dict[str, Any]], now: datetime) -> None:
    """The demo's chip cards (manufacture number, holder's name, PIN), for Mynaportal's login page of a demo."""
    _save_demo_list(conn, "demo_cards", cards, now)


def demo_cards(conn: Connection) -> list[dict[str, Any]]:
    """The demo cards, or nothing outside a demo installation."""
    return _demo_list(conn, "demo_cards")
