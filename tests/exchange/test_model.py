"""The pure model of the network: identifiers, code derivation, the permitted table, the full-match rule,
record checks and the chain verifier. No database."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mynacard import numbers
from mynacard.exchange.model import (
    HOLDS,
    LOG_CHAINS,
    PERMITTED_EXCHANGES,
    AgencyCode,
    AgencyId,
    AgencyKind,
    ChainVerifier,
    EnrolmentDecision,
    ExchangeKind,
    ExchangeStatus,
    InfoItem,
    LogEntry,
    Procedure,
    SubmittedFacts,
    chain_hash,
    chain_of,
    check_record_data,
    decide_enrolment,
    derive_agency_code,
    find_permission,
    first_break,
    log_cutoff,
)
from mynacard.hashchain import GENESIS
from mynacard.registry.model import BasicFacts, Resident, ResidentStatus, Sex

ROOT = bytes(range(32))


# --- identifiers and codes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["131016-tax", "nenkin", "a1b", "x" * 40])
def test_agency_ids_accepted(value: str) -> None:
    assert AgencyId(value) == value


@pytest.mark.parametrize("value", ["ab", "x" * 41, "Tax", "131016_tax", "-tax", "tax-", "a--b", "税務課", ""])
def test_agency_ids_refused(value: str) -> None:
    with pytest.raises(ValueError):
        AgencyId(value)


def test_store_names_map_back_to_one_agency() -> None:
    assert AgencyId("131016-tax").store_name == "agency_131016_tax"
    # Underscores are not allowed in IDs, so two IDs can never share a store name.
    with pytest.raises(ValueError):
        AgencyId("131016_tax")


@given(st.lists(st.from_regex(r"[a-z0-9]{3,12}", fullmatch=True), min_size=2, max_size=6, unique=True),
       st.from_regex(r"[0-9]{11}", fullmatch=True), st.integers(0, 5))
@settings(max_examples=80, deadline=None)
def test_codes_differ_between_agencies_and_are_stable(agencies: list[str], resident_code: str,
                                                      generation: int) -> None:
    codes = [derive_agency_code(ROOT, a, resident_code, generation) for a in agencies]
    assert len(set(codes)) == len(codes)
    assert codes == [derive_agency_code(ROOT, a, resident_code, generation) for a in agencies]
    assert all(AgencyCode(c) == c for c in codes)
    # A code says nothing an outsider can read: not the resident code, not the agency.
    assert all(resident_code not in c and a.upper() not in c for a, c in zip(agencies, codes, strict=True))


def test_codes_depend_on_the_hub_secret_and_the_generation() -> None:
    a = derive_agency_code(ROOT, "nenkin", "12345678901", 0)
    assert derive_agency_code(os.urandom(32), "nenkin", "12345678901", 0) != a
    assert derive_agency_code(ROOT, "nenkin", "12345678901", 1) != a
    assert derive_agency_code(ROOT, "nenkin", "12345678902", 0) != a
    with pytest.raises(ValueError):
        derive_agency_code(b"short", "nenkin", "12345678901", 0)
    with pytest.raises(ValueError):
        AgencyCode("not-a-code")


# --- the permitted-exchange table -----------------------------------------------------------------------------

def test_every_row_asks_a_provider_for_an_item_it_holds() -> None:
    for row in PERMITTED_EXCHANGES:
        assert row.item in HOLDS[row.provider], row
        assert row.requester is not AgencyKind.PORTAL and row.provider is not AgencyKind.PORTAL
    labels = [row.row for row in PERMITTED_EXCHANGES]
    assert len(labels) == len(set(labels))
    keys = [(r.requester, r.procedure, r.provider, r.item) for r in PERMITTED_EXCHANGES]
    assert len(keys) == len(set(keys))


def test_the_table_covers_the_areas_the_issue_names() -> None:
    areas = {
        "pension": {Procedure.PENSION_PREMIUM_EXEMPTION, Procedure.PENSION_BENEFIT},
        "employment": {Procedure.EMPLOYMENT_INSURANCE_BENEFIT},
        "health insurance": {Procedure.HIGH_COST_MEDICAL, Procedure.HEALTH_INSURANCE_QUALIFICATION},
        "welfare": {Procedure.PUBLIC_ASSISTANCE, Procedure.DISABILITY_SERVICES},
        "local tax": {Procedure.LOCAL_TAX_ASSESSMENT},
        "child allowance": {Procedure.CHILD_ALLOWANCE},
        "disaster support": {Procedure.DISASTER_RECOVERY_SUPPORT, Procedure.DISASTER_CONDOLENCE},
    }
    used = {row.procedure for row in PERMITTED_EXCHANGES}
    for area, procedures in areas.items():
        assert used & procedures, area


def test_find_permission_is_exact() -> None:
    row = find_permission(AgencyKind.MUNICIPAL_CHILD, Procedure.CHILD_ALLOWANCE, AgencyKind.MUNICIPAL_TAX,
                          InfoItem.LOCAL_TAX)
    assert row is not None and row.row == "C-01"
    # The same parties for another procedure, or another item, are not permitted.
    assert find_permission(AgencyKind.MUNICIPAL_CHILD, Procedure.PUBLIC_ASSISTANCE, AgencyKind.MUNICIPAL_TAX,
                           InfoItem.LOCAL_TAX) is None
    assert find_permission(AgencyKind.MUNICIPAL_CHILD, Procedure.CHILD_ALLOWANCE, AgencyKind.MUNICIPAL_TAX,
                           InfoItem.RESIDENT_RECORD) is None
    # Direction matters: the tax division may not ask the child division for child allowance data here.
    assert find_permission(AgencyKind.MUNICIPAL_TAX, Procedure.CHILD_ALLOWANCE, AgencyKind.MUNICIPAL_CHILD,
                           InfoItem.CHILD_ALLOWANCE) is None


@given(st.sampled_from(list(AgencyKind)), st.sampled_from(list(Procedure)), st.sampled_from(list(AgencyKind)),
       st.sampled_from(list(InfoItem)))
def test_only_listed_combinations_are_permitted(requester: AgencyKind, procedure: Procedure,
                                                provider: AgencyKind, item: InfoItem) -> None:
    listed = any((r.requester, r.procedure, r.provider, r.item) == (requester, procedure, provider, item)
                 for r in PERMITTED_EXCHANGES)
    assert (find_permission(requester, procedure, provider, item) is not None) == listed


# --- enrolment: the full match ------------------------------------------------------------------------------

FACTS = BasicFacts.parse("山田", "太郎", date(1980, 1, 2), "1", "東京都千代田区千代田1-1")
RESIDENT = Resident(1, "12345678901", "131016", None, FACTS, "ヤマダ", "タロウ", None, ResidentStatus.ACTIVE,
                    "世帯主")


def test_full_match_links() -> None:
    assert decide_enrolment(SubmittedFacts(FACTS), RESIDENT).decision is EnrolmentDecision.LINK
    assert decide_enrolment(SubmittedFacts(FACTS, "ヤマダ", "タロウ"), RESIDENT).decision is EnrolmentDecision.LINK
    # Input is normalised as the registry normalises it: full-width digits and spaces do not break a match.
    typed = SubmittedFacts.parse("山田 ", "太郎", date(1980, 1, 2), "1", "東京都千代田区千代田１-１",
                                 "やまだ", "たろう")
    assert decide_enrolment(typed, RESIDENT).decision is EnrolmentDecision.LINK


@pytest.mark.parametrize(("change", "reason"), [
    ({"family_name": "山口"}, "name"),
    ({"given_name": "太朗"}, "name"),
    ({"birth_date": date(1980, 1, 3)}, "birth_date"),
    ({"sex": Sex.FEMALE}, "sex"),
    ({"address": "東京都千代田区千代田1-2"}, "address"),
])
def test_any_single_difference_goes_to_review(change: dict[str, object], reason: str) -> None:
    verdict = decide_enrolment(SubmittedFacts(dataclasses.replace(FACTS, **change)), RESIDENT)  # type: ignore[arg-type]
    assert verdict.decision is EnrolmentDecision.REVIEW
    assert verdict.reasons == (reason,)


def test_kana_when_given_must_match_too_and_other_guards() -> None:
    assert decide_enrolment(SubmittedFacts(FACTS, "ヤマグチ", "タロウ"), RESIDENT).reasons == ("kana",)
    assert decide_enrolment(SubmittedFacts(FACTS), None).reasons == ("unknown_number",)
    closed = dataclasses.replace(RESIDENT, status=ResidentStatus.DECEASED)
    assert decide_enrolment(SubmittedFacts(FACTS), closed).reasons == ("record_closed",)
    assert decide_enrolment(SubmittedFacts(FACTS), RESIDENT, person_linked_elsewhere=True).reasons == (
        "person_linked_to_other_record",)
    assert decide_enrolment(SubmittedFacts(FACTS), RESIDENT, record_linked_to_other=True).reasons == (
        "record_linked_to_other_person",)
    with pytest.raises(ValueError):
        SubmittedFacts.parse("山田", "太郎", date(1980, 1, 2), "1", "x", "ヤマダ", None)


@given(st.text(min_size=1, max_size=4).filter(lambda s: s.strip() != ""), st.integers(-20000, 20000),
       st.sampled_from(list(Sex)), st.text(min_size=1, max_size=30).filter(lambda s: s.strip() != ""))
@settings(max_examples=300)
def test_a_match_is_never_made_on_partial_facts(given_name: str, days: int, sex: Sex, address: str) -> None:
    try:
        other = BasicFacts.parse("山田", given_name, date(1980, 1, 2) + timedelta(days=days), sex, address)
    except ValueError:
        return
    verdict = decide_enrolment(SubmittedFacts(other), RESIDENT)
    assert (verdict.decision is EnrolmentDecision.LINK) == (other == FACTS)


# --- record copies --------------------------------------------------------------------------------------------

def test_record_data_is_checked() -> None:
    assert check_record_data({"所得": 3200000, "年度": 2025, "備考": None, "該当": True}) == {
        "所得": 3200000, "年度": 2025, "備考": None, "該当": True}
    for bad in [{}, [], {"a": {"nested": 1}}, {"": 1}, {f"k{i}": i for i in range(65)}, {"a": "x" * 20000}]:
        with pytest.raises(ValueError):
            check_record_data(bad)


def test_record_data_never_carries_an_individual_number() -> None:
    number = "12345678901" + str(numbers.individual_number_check_digit("12345678901"))
    for data in [{"番号": number}, {"番号": int(number)}, {"memo": f"番号 {number[:4]}-{number[4:8]}-{number[8:]}"},
                 {number: "key"}]:
        with pytest.raises(ValueError, match="individual number"):
            check_record_data(data)
    wrong_check = number[:11] + str((int(number[11]) + 1) % 10)
    assert check_record_data({"phone": wrong_check})  # 12 digits that are not a valid number pass


# --- the chain -----------------------------------------------------------------------------------------------------

T0 = datetime(2026, 4, 6, 0, 30, tzinfo=UTC)


def entries(n: int, chain: int = 3) -> list[tuple[LogEntry, str, str]]:
    """``n`` entries of one chain (entry numbers 10, 20, 30 …: other chains took the numbers between)."""
    out = []
    prev = GENESIS
    for pos in range(1, n + 1):
        e = LogEntry(pos * 10, chain, pos, ExchangeKind.QUERY, f"m{pos}", "131016-child", "131016-tax",
                     "child_allowance", "local_tax", "A" * 26, ExchangeStatus.PROVIDED, "C-01",
                     T0 + timedelta(seconds=pos), T0 + timedelta(seconds=pos))
        h = chain_hash(prev, e)
        out.append((e, prev, h))
        prev = h
    return out


def verify(rows: list[tuple[LogEntry, str, str]], head: tuple[int, str] | None = None,
           checkpoints: dict[int, str] | None = None, chain: int = 3) -> ChainVerifier:
    v = ChainVerifier(chain, checkpoints=checkpoints or {})
    for e, prev, h in rows:
        v.feed(e, prev, h)
    v.finish(*(head or (rows[-1][0].chain_seq, rows[-1][2])) if rows else (None, None))
    return v


def test_a_person_always_lands_in_the_same_chain_and_nobody_in_chain_0() -> None:
    codes = [derive_agency_code(ROOT, "mynaportal", f"{i:011d}", 0) for i in range(2000)]
    chains = [chain_of(c) for c in codes]
    assert chains == [chain_of(c) for c in codes] and chain_of(None) == 0
    assert set(chains) == set(range(1, LOG_CHAINS))  # spread over every chain but 0


def test_a_whole_chain_verifies() -> None:
    rows = entries(50)
    assert verify(rows).breaks == []
    assert chain_hash(GENESIS, rows[0][0]) == rows[0][2]


@given(st.integers(1, 40), st.sampled_from(["item", "requester", "status", "subject_code", "completed_at", "seq"]))
def test_an_altered_entry_is_found_where_it_is(pos: int, field: str) -> None:
    rows = entries(40)
    e, prev, h = rows[pos - 1]
    value = {"item": "pension_benefit", "requester": "nenkin", "status": ExchangeStatus.REFUSED,
             "subject_code": "B" * 26, "completed_at": e.completed_at + timedelta(microseconds=1),
             "seq": e.seq + 1}[field]
    rows[pos - 1] = (dataclasses.replace(e, **{field: value}), prev, h)
    found = first_break(verify(rows).breaks)
    assert found is not None and (found.chain_seq, found.kind) == (pos, "altered")


@given(st.integers(1, 39))
def test_a_removed_entry_is_found(pos: int) -> None:
    rows = entries(40)
    del rows[pos - 1]
    found = first_break(verify(rows, head=(40, entries(40)[-1][2])).breaks)
    assert found is not None and (found.chain_seq, found.kind) == (pos, "missing")
    assert f"position {pos} " in found.detail and f"before entry {(pos + 1) * 10}" in found.detail


def test_removing_the_last_entries_is_caught_by_the_head() -> None:
    full = entries(40)
    found = first_break(verify(full[:37], head=(40, full[-1][2])).breaks)
    assert found is not None and (found.chain_seq, found.kind) == (38, "missing")
    assert "after entry 370" in found.detail


def test_an_entry_altered_and_rehashed_breaks_the_link_to_the_next() -> None:
    rows = entries(20)
    e, prev, _ = rows[9]
    forged = dataclasses.replace(e, provider="nenkin")
    rows[9] = (forged, prev, chain_hash(prev, forged))
    assert [(b.chain_seq, b.seq, b.kind) for b in verify(rows).breaks] == [(11, 110, "relinked")]


def test_an_entry_moved_to_another_chain_is_found() -> None:
    rows = entries(5)
    e, prev, _ = rows[2]
    moved = dataclasses.replace(e, chain=4)
    rows[2] = (moved, prev, chain_hash(prev, moved))
    assert any(b.kind == "relinked" and b.chain_seq == 3 for b in verify(rows).breaks)


def test_a_rewritten_tail_is_caught_by_a_signed_checkpoint() -> None:
    rows = entries(30)
    checkpoint = {20: rows[19][2]}
    # Rewrite position 15 and recompute every hash after it, head included: the chain itself is consistent...
    rewritten = rows[:14]
    prev = rows[13][2]
    for e, _, _ in rows[14:]:
        e2 = dataclasses.replace(e, item="pension_benefit") if e.chain_seq == 15 else e
        h = chain_hash(prev, e2)
        rewritten.append((e2, prev, h))
        prev = h
    assert verify(rewritten).breaks == []
    # ...but not with what the hub signed at position 20.
    found = first_break(verify(rewritten, checkpoints=checkpoint).breaks)
    assert found is not None and (found.chain_seq, found.seq, found.kind) == (20, 200, "checkpoint")
    assert "positions 1–20 of chain 3" in found.detail


def test_the_cutoff_is_seven_years() -> None:
    assert log_cutoff(datetime(2026, 4, 6, tzinfo=UTC)) == datetime(2019, 4, 6, tzinfo=UTC)
    assert log_cutoff(datetime(2028, 2, 29, tzinfo=UTC)) == datetime(2021, 2, 28, tzinfo=UTC)
