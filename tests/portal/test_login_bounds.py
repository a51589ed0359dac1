"""Mynaportal's login page as an anonymous visitor reaches it (security review): it never creates the JPKI CAs,
and the challenges it makes for every visitor are bounded — expired ones are deleted, outstanding ones capped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from mynacard.context import Context
from mynacard.jpki import service as jpki
from mynacard.jpki import verifiers
from mynacard.jpki.tables import jpki_challenges
from mynacard.portal import service as portal
from mynacard.portal.card_login import MYNAPORTAL
from mynacard.principal import Principal, Role
from mynacard.web.app import create_app

OPERATOR = Principal(Role.OPERATOR, "jlis")


def _challenges(ctx: Context) -> int:
    with ctx.db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(jpki_challenges)).scalar_one())


def test_the_login_page_never_creates_the_cas_it_answers_503_until_the_operator_has(ctx: Context) -> None:
    """An anonymous GET of /portal/login on a fresh database created both CAs (the relying party made them at
    first use) with whatever key store the web process has."""
    client = TestClient(create_app(ctx))
    page = client.get("/portal/login")
    assert page.status_code == 503 and "mynacard jpki init" in page.text, page.text
    assert jpki.authorities(ctx) == [] and _challenges(ctx) == 0
    jpki.ensure_authorities(ctx, OPERATOR, datetime.now(UTC) - timedelta(days=1))  # mynacard jpki init
    assert TestClient(create_app(ctx)).get("/portal/login").status_code == 200
    assert _challenges(ctx) == 1


def test_anonymous_login_pages_write_a_bounded_number_of_rows(ctx: Context,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Each GET /portal/login inserted a challenge that nothing purged. Now a party has at most
    MYNACARD_JPKI_CHALLENGES_MAX outstanding (then 429 with Retry-After), expired ones are deleted as new ones
    are made and by ``mynacard portal sweep-sessions``."""
    now = datetime.now(UTC)
    jpki.ensure_authorities(ctx, OPERATOR, now - timedelta(days=1))
    monkeypatch.setenv("MYNACARD_JPKI_CHALLENGES_MAX", "3")
    ctx.reload_settings()  # as a restarted process would read it
    client = TestClient(create_app(ctx))
    for _ in range(3):
        assert client.get("/portal/login").status_code == 200
    flood = client.get("/portal/login")
    assert flood.status_code == 429 and 1 <= int(flood.headers["retry-after"]) <= 300, flood.text
    assert _challenges(ctx) == 3
    # another party (a registered verifier) has a budget of its own
    verifiers.register_verifier(ctx, OPERATOR, "ログイン事業者", "certified_private", ["authentication"], "av", now)
    assert verifiers.issue_challenge(ctx, Principal(Role.VERIFIER, "av"), now).id
    assert _challenges(ctx) == 4

    # five minutes on, the page's challenges have expired: the next one made deletes them (the first in a minute)
    later = now + timedelta(minutes=6)
    verifiers._LAST_PURGE.clear()  # as in a process that has not purged for a minute
    verifiers.issue_challenge(ctx, MYNAPORTAL, later)
    assert _challenges(ctx) == 1
    # and the operator's sweep deletes whatever has expired
    counts = portal.sweep_sessions(ctx, OPERATOR, later + timedelta(minutes=6))
    assert counts.challenges_purged == 1 and _challenges(ctx) == 0


def test_sweep_sessions_from_the_command_line_deletes_expired_challenges(ctx: Context,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from mynacard.portal.cli import app

    now = datetime.now(UTC)
    jpki.ensure_authorities(ctx, OPERATOR, now - timedelta(days=1))
    for minutes in (20, 10, 0):
        verifiers.issue_challenge(ctx, MYNAPORTAL, now - timedelta(minutes=minutes))
    assert _challenges(ctx) == 3
    monkeypatch.setenv("MYNACARD_DATABASE_URL", ctx.db.url.render_as_string(hide_password=False))
    done = CliRunner().invoke(app, ["sweep-sessions", "--home", str(ctx.settings.home)])
    assert done.exit_code == 0 and "2 expired login challenges deleted" in done.output, done.output
    assert _challenges(ctx) == 1
