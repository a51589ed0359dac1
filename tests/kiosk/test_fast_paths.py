"""The shortcuts taken for speed keep their promises: the kiosk key memory forgets within its TTL, audit
entries appended together (and concurrently) still form one valid chain, and the one-statement steps fall
back to the careful path for retries and wrong calls."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from mynacard.accounts import service as accounts
from mynacard.context import Context
from mynacard.errors import Conflict
from mynacard.kiosk import audit, municipal
from mynacard.kiosk.centre import CENTRE, Centre
from mynacard.kiosk.keys import KeyCache
from mynacard.kiosk.model import DocumentKind, DocumentOptions, DocumentState
from mynacard.kiosk.tables import kiosk_audit
from mynacard.kiosk.testing import TestJpki
from mynacard.principal import Principal, Role
from tests.conftest import NOW
from tests.kiosk.conftest import KIOSK, Town, card_for


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_replaced_kiosk_key_stops_working_once_the_ttl_is_over(ctx: Context) -> None:
    accounts.create_account(ctx, "kiosk-k", Role.KIOSK, None, NOW)
    old = accounts.issue_api_key(ctx, "kiosk-k")
    clock = _Clock()
    keys = KeyCache(ttl=2.0, clock=clock)
    assert keys.principal(ctx, old) == Principal(Role.KIOSK, "kiosk-k")
    new = accounts.issue_api_key(ctx, "kiosk-k")  # the old key is revoked by replacing it
    clock.t += 1.9
    assert keys.principal(ctx, old) == Principal(Role.KIOSK, "kiosk-k")  # believed within the TTL
    assert keys.principal(ctx, new) == Principal(Role.KIOSK, "kiosk-k")  # a new key works at once
    clock.t += 0.2
    assert keys.principal(ctx, old) is None
    assert keys.principal(ctx, "myna_not-a-key") is None


def test_only_kiosk_keys_are_remembered(ctx: Context) -> None:
    accounts.create_account(ctx, "operator-k", Role.OPERATOR, None, NOW)
    key = accounts.issue_api_key(ctx, "operator-k")
    keys = KeyCache(ttl=60.0, clock=_Clock())
    assert keys.principal(ctx, key) is not None
    accounts.issue_api_key(ctx, "operator-k")
    assert keys.principal(ctx, key) is None  # not kept: the replaced key is refused at once


def test_entries_appended_together_and_concurrently_form_one_chain(ctx: Context) -> None:
    def writer(n: int) -> None:
        for i in range(5):
            with ctx.transaction() as tx:
                audit.append_many(tx.conn, "kiosk:test", NOW, [
                    audit.Entry("first", f"w{n}", None, {"i": i, "町": "千代田区"}),
                    audit.Entry("second", f"w{n}", "r" * 32, {"i": i})])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = audit.verify_chains(ctx.db, "kiosk:test")
    assert report.ok, report.problems
    assert report.entries == 40
    with ctx.db.connect() as conn:
        rows = conn.execute(select(kiosk_audit.c.seq, kiosk_audit.c.action, kiosk_audit.c.actor).where(
            kiosk_audit.c.stream == "kiosk:test").order_by(kiosk_audit.c.seq)).all()
    assert [r.seq for r in rows] == list(range(1, 41))
    # a pair written together stays together: "second" always follows its own "first"
    for first, second in zip(rows[::2], rows[1::2], strict=True):
        assert (first.action, second.action) == ("first", "second") and first.actor == second.actor


def test_one_statement_steps_fall_back_for_retries_and_wrong_calls(ctx: Context, town: Town, jpki: TestJpki,
                                                                   centre: Centre) -> None:
    card = card_for(jpki, town.adult().id)
    opened = centre.open_session(KIOSK, "b" * 32, NOW)
    centre.authenticate(KIOSK, "b" * 32, card.certificate, card.sign_challenge("1234", opened.challenge), NOW)
    released = centre.order(KIOSK, "b" * 32, DocumentOptions(DocumentKind.RESIDENT_RECORD_ENTRY), 200, NOW)
    with pytest.raises(Conflict, match="not the document"):
        centre.printed(KIOSK, "b" * 32, released.document_id, "0" * 64, NOW)
    with pytest.raises(Exception, match="no such request"):
        centre.printed(Principal(Role.KIOSK, "kiosk-0002"), "b" * 32, released.document_id,
                       released.pdf_sha256, NOW)
    centre.printed(KIOSK, "b" * 32, released.document_id, released.pdf_sha256, NOW)
    centre.printed(KIOSK, "b" * 32, released.document_id, released.pdf_sha256, NOW)  # a retry: nothing new
    assert municipal.verification(ctx, released.document_id, NOW).state is DocumentState.PRINTED
    # the municipality's steps: a retry is a no-op, a step back is refused, an unknown document is not found
    municipal.mark_printed(ctx, CENTRE, released.document_id, "b" * 32, NOW + timedelta(seconds=1))
    with pytest.raises(Conflict):
        municipal.confirm(ctx, CENTRE, released.document_id, "b" * 32, NOW)
    with pytest.raises(Exception, match="no such document"):
        municipal.confirm(ctx, CENTRE, released.document_id, "c" * 32, NOW)
    with ctx.db.connect() as conn:
        actions = list(conn.execute(select(kiosk_audit.c.action).where(
            kiosk_audit.c.request_id == "b" * 32).order_by(kiosk_audit.c.id)).scalars())
    assert actions.count("printed") == 1 and actions.count("document_printed") == 1
    assert actions.count("document_issued") == 1
    assert audit.verify_chains(ctx.db).ok
