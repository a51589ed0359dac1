"""The demo's accounts (デモ用アカウント): one per role for the demo towns, with random passwords and keys kept in
the demo database for its login page. Only a database marked as a demo (:mod:`mynacard.installation`) takes
them; a real installation refuses, so no known password can exist outside a demo."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from mynacard.accounts import service
from mynacard.accounts.passwords import one_time_password
from mynacard.context import Context
from mynacard.installation import demo_logins, is_demo, save_demo_logins
from mynacard.principal import Principal, Role

__all__ = ["create_demo_accounts", "print_demo_logins"]

_DEMO = Principal.system("demo")


def _plan(towns: list[str]) -> list[tuple[str, Role, str | None, str, str]]:
    """(username, role, municipality, label, the page to start at) of every demo account."""
    rows: list[tuple[str, Role, str | None, str, str]] = [
        ("demo-operator", Role.OPERATOR, None, "J-LIS 運用者 operator", "/admin/accounts")]
    for code in towns:
        rows += [(f"clerk-{code}", Role.CLERK, code, f"窓口職員 clerk {code}", "/window"),
                 (f"supervisor-{code}", Role.SUPERVISOR, code, f"責任者 supervisor {code}", f"/office/m/{code}")]
    rows += [("demo-manufacturer", Role.MANUFACTURER, None, "カード発行事業者 manufacturer", ""),
             ("kiosk-demo-0001", Role.KIOSK, None, "コンビニ端末 kiosk", ""),
             ("demo-agency", Role.AGENCY, None, "行政機関 agency", ""),
             ("partner-demo", Role.AGENCY, None, "ポイント提携先 partner", ""),
             ("shop-demo", Role.AGENCY, None, "店舗 shop", "")]
    return rows


def create_demo_accounts(ctx: Context, towns: list[str], now: datetime) -> list[dict[str, Any]]:
    """Create the demo accounts and keep their logins for the demo's login page; returns them."""
    with ctx.db.connect() as conn:
        if not is_demo(conn):
            raise RuntimeError("demo accounts exist only in a demo installation")
    logins = []
    for username, role, code, label, url in _plan(towns):
        entry: dict[str, Any] = {"username": username, "role": role.value, "label": label, "url": url}
        if url:
            # A random password, but a fixed one (must_change_password stays False): it neither has to be replaced
            # nor expires like a one-time password, so the login page's list works for as long as the demo runs.
            entry["password"] = one_time_password()
            service.create_account(ctx, username, role, entry["password"], now, code, actor=_DEMO)
        else:
            service.create_account(ctx, username, role, None, now, code, actor=_DEMO)
            _, entry["api_key"] = service.add_api_key(ctx, _DEMO, username, now, label="demo")
        logins.append(entry)
    with ctx.transaction() as tx:
        conn = tx.conn
        save_demo_logins(conn, logins, now)
    return logins


def print_demo_logins(ctx: Context, console: Console) -> None:
    with ctx.db.connect() as conn:
        logins = demo_logins(conn)
    table = Table(title="demo logins (http://127.0.0.1:8000/login; also shown there, in a demo only)")
    table.add_column("who")
    for column in ("username", "password / API key", "start at"):
        table.add_column(column, overflow="fold")  # a secret is never cut short
    for d in logins:
        table.add_row(d["label"], d["username"], d.get("password") or d.get("api_key", ""), d.get("url", ""))
    console.print(table)
