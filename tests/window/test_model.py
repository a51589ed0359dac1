"""The window's identity rules (pure): one A or two B; legal representatives with the person; proxies only
with a reason and evidence, and stricter documents on both sides."""

from __future__ import annotations

import pytest

from mynacard.errors import InvalidInput
from mynacard.window.model import (
    STEPS,
    Attendance,
    Document,
    IdentityCheck,
    IssuanceStatus,
    ProxyReason,
    check_identity,
)

A1, A2 = Document.DRIVING_LICENCE, Document.PASSPORT
B1, B2, B3 = Document.HEALTH_INSURANCE, Document.PENSION_BOOK, Document.STUDENT_ID


@pytest.mark.parametrize(("docs", "ok"), [([A1], True), ([B1, B2], True), ([B1], False), ([], False),
                                           ([A1, B1], True)])
def test_in_person(docs: list[Document], ok: bool) -> None:
    check = IdentityCheck(docs)
    if ok:
        check_identity(check)
    else:
        with pytest.raises(InvalidInput):
            check_identity(check)


def test_the_same_document_twice_is_not_two() -> None:
    with pytest.raises(InvalidInput):
        check_identity(IdentityCheck([B1, B1]))


def test_legal_representative_needs_both_and_authority() -> None:
    check_identity(IdentityCheck([B1, B2], Attendance.LEGAL_REPRESENTATIVE, [A1], authority_confirmed=True))
    with pytest.raises(InvalidInput) as refused:
        check_identity(IdentityCheck([B1, B2], Attendance.LEGAL_REPRESENTATIVE, [A1]))
    assert any("代理権" in p for p in refused.value.problems)
    with pytest.raises(InvalidInput):
        check_identity(IdentityCheck([B1, B2], Attendance.LEGAL_REPRESENTATIVE, [B3], authority_confirmed=True))


@pytest.mark.parametrize(("person", "photo", "agent", "ok"), [
    ([A1, A2], False, [A1, B1], True),
    ([A1, B1], False, [A1, A2], True),
    ([B1, B2, B3], True, [A1, B1], True),
    ([B1, B2, B3], False, [A1, B1], False),  # three B without a photo
    ([A1], False, [A1, B1], False),          # one A is not enough for a proxy pickup
    ([A1, A2], False, [A1], False),          # the proxy's own: two A or A + B
    ([A1, A2], False, [B1, B2], False),
])
def test_proxy(person: list[Document], photo: bool, agent: list[Document], ok: bool) -> None:
    check = IdentityCheck(person, Attendance.PROXY, agent, proxy_reason=ProxyReason.CARE_FACILITY,
                          evidence_of_inability=True, photo_among_b=photo)
    if ok:
        check_identity(check)
    else:
        with pytest.raises(InvalidInput):
            check_identity(check)


def test_proxy_needs_a_reason_and_evidence() -> None:
    with pytest.raises(InvalidInput) as refused:
        check_identity(IdentityCheck([A1, A2], Attendance.PROXY, [A1, B1]))
    assert len(refused.value.problems) == 2


def test_steps_and_states() -> None:
    assert STEPS[0] == "started" and STEPS[-1] == "committed"
    assert [s for s in IssuanceStatus if not s.open] == [IssuanceStatus.ISSUED, IssuanceStatus.ROLLED_BACK]
