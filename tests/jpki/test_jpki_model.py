"""The pure JPKI rules: no database, no clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from asn1crypto import crl as asn1_crl
from hypothesis import given, settings
from hypothesis import strategies as st

from mynacard.clock import JST
from mynacard.jpki import crl
from mynacard.jpki.model import (
    SUBSTITUTE_CHARACTER,
    CaKind,
    CrlSchedule,
    Era,
    Purpose,
    RevocationReason,
    certificate_not_after,
    end_of_jst_day,
    era_of,
    jpki_birth_date,
    may_hold_sign_certificate,
    parse_jpki_birth_date,
    revocations_for_life_event,
    rollover_due,
    romanise_kana,
    romanise_municipality,
    root_not_after,
    signing_facts,
    substitute,
)
from mynacard.registry.model import BasicFacts

AFF = RevocationReason.AFFILIATION_CHANGED


@pytest.mark.parametrize(("kind", "payload", "plan"), [
    ("registry.resident_moved", {"basic_facts_changed": True}, {CaKind.SIGN: AFF}),
    ("registry.resident_moved", {"basic_facts_changed": False}, {}),
    ("registry.name_changed", {"basic_facts_changed": True}, {CaKind.SIGN: AFF}),
    ("registry.resident_died", {"basic_facts_changed": True}, {CaKind.SIGN: AFF, CaKind.AUTH: AFF}),
    ("registry.moved_abroad", {"continued_use": True}, {CaKind.SIGN: AFF}),
    ("registry.moved_abroad", {"continued_use": False}, {CaKind.SIGN: AFF, CaKind.AUTH: AFF}),
    ("registry.something_else", {"basic_facts_changed": True}, {}),
])
def test_which_life_events_revoke_what(kind: str, payload: dict[str, object],
                                       plan: dict[CaKind, RevocationReason]) -> None:
    assert revocations_for_life_event(kind, payload) == plan


def test_reason_codes_and_names() -> None:
    assert [r.code for r in RevocationReason] == [0, 1, 2, 3, 4, 5, 6]
    assert RevocationReason.parse("certificateHold") is RevocationReason.CERTIFICATE_HOLD
    assert RevocationReason.parse("key_compromise") is RevocationReason.KEY_COMPROMISE
    assert RevocationReason.parse("3") is AFF
    assert RevocationReason.parse("CessationOfOperation") is RevocationReason.CESSATION_OF_OPERATION
    with pytest.raises(ValueError, match="unknown revocation reason"):
        RevocationReason.parse("removeFromCRL")  # J-LIS never releases a hold
    assert Purpose.for_ca(CaKind.SIGN) is Purpose.SIGNATURE and Purpose.AUTHENTICATION.ca_kind is CaKind.AUTH


@pytest.mark.parametrize(("day", "era", "text"), [
    (date(1868, 10, 22), Era.UNKNOWN, "018681022"),
    (date(1868, 10, 23), Era.MEIJI, "118681023"),
    (date(1912, 7, 29), Era.MEIJI, "119120729"),
    (date(1912, 7, 30), Era.TAISHO, "219120730"),
    (date(1926, 12, 24), Era.TAISHO, "219261224"),
    (date(1926, 12, 25), Era.SHOWA, "319261225"),
    (date(1989, 1, 7), Era.SHOWA, "319890107"),
    (date(1989, 1, 8), Era.HEISEI, "419890108"),
    (date(2019, 4, 30), Era.HEISEI, "420190430"),
    (date(2019, 5, 1), Era.REIWA, "520190501"),
])
def test_era_codes_at_their_boundaries(day: date, era: Era, text: str) -> None:
    assert era_of(day) is era and jpki_birth_date(day) == text and parse_jpki_birth_date(text) == day


@given(st.dates(min_value=date(1850, 1, 1), max_value=date(2100, 12, 31)))
def test_birth_dates_round_trip(day: date) -> None:
    assert parse_jpki_birth_date(jpki_birth_date(day)) == day


def test_a_wrong_era_is_refused() -> None:
    with pytest.raises(ValueError, match="era code"):
        parse_jpki_birth_date("419800101")


def test_substitute_characters() -> None:
    assert substitute("山田\u3000太郎") == ("山田\u3000太郎", "00000")
    assert substitute("𠮷田") == (f"{SUBSTITUTE_CHARACTER}田", "10")  # outside JIS X 0208/0212
    assert substitute("髙橋")[1] == "10"  # an IBM extension kanji, not JIS X 0208/0212
    assert substitute("渡邊")[1] == "00" and substitute("齋藤")[1] == "00"
    assert substitute("東京都千代田区1-1")[1] == "0" * 10


@given(st.text(min_size=1, max_size=60))
def test_substitution_keeps_length_and_marks_exactly_the_replaced(text: str) -> None:
    out, marks = substitute(text)
    assert len(out) == len(marks) and set(marks) <= {"0", "1"}
    assert all((o == SUBSTITUTE_CHARACTER) for o, m in zip(out, marks, strict=True) if m == "1")
    out.encode("euc_jp")  # whatever is kept is representable


def test_signing_facts() -> None:
    facts = signing_facts(BasicFacts.parse("𠮷田", "花子", date(1995, 3, 3), "9", "北海道札幌市中央区北1条西2丁目"))
    assert facts.name == f"{SUBSTITUTE_CHARACTER}田\u3000花子" and facts.name_substitutions == "10000"
    assert facts.sex == "3" and facts.birth_date == "419950303" and facts.birth_day == date(1995, 3, 3)
    assert facts.address_substitutions == "0" * len(facts.address)


@pytest.mark.parametrize(("name", "kana", "roman"), [
    ("千代田区", "ちよだく", "Chiyoda-ku"), ("札幌市", "さっぽろし", "Sapporo-shi"),
    ("清瀬市", "きよせし", "Kiyose-shi"), ("大洗町", "おおあらいまち", "Oarai-machi"),
    ("八丈町", "はちじょうまち", "Hachijo-machi"), ("中央町", "ちゅうおうちょう", "Chuo-cho"),
    ("檜原村", "ひのはらむら", "Hinohara-mura"), ("読谷村", "よみたんそん", "Yomitan-son"),
    ("京都市", "きょうとし", "Kyoto-shi"), ("八千代市", "やちよし", "Yachiyo-shi"),
])
def test_romanised_place_names(name: str, kana: str, roman: str) -> None:
    assert romanise_municipality(name, kana) == roman


def test_romanisation_covers_every_municipality() -> None:
    from importlib.resources import files

    rows = (files("mynacard.registry") / "data" / "municipalities.csv").read_text(encoding="utf-8").splitlines()[1:]
    for row in rows:
        _, _, _, name, kana, *_ = row.split(",")
        roman = romanise_municipality(name, kana)
        assert roman.isascii() and roman[0].isupper() and "-" in roman, (name, kana, roman)
    assert romanise_kana("っち") == "tchi" and romanise_kana("がっこう") == "gakko"


ISSUED = datetime(2026, 4, 6, 0, 30, tzinfo=UTC)
CA_END = datetime(2036, 4, 5, 14, 59, 59, tzinfo=UTC)


def test_certificates_run_to_the_fifth_birthday_never_past_the_card() -> None:
    birth = date(1980, 6, 1)
    end = certificate_not_after(birth_date=birth, issued_at=ISSUED, card_valid_until=date(2036, 6, 1),
                                ca_not_after=CA_END)
    assert end == end_of_jst_day(date(2030, 6, 1)) and end.astimezone(JST).hour == 23
    capped = certificate_not_after(birth_date=birth, issued_at=ISSUED, card_valid_until=date(2028, 1, 1),
                                   ca_not_after=CA_END)
    assert capped == end_of_jst_day(date(2028, 1, 1))
    by_ca = certificate_not_after(birth_date=birth, issued_at=ISSUED, card_valid_until=date(2036, 6, 1),
                                  ca_not_after=datetime(2029, 1, 1, tzinfo=UTC))
    assert by_ca == datetime(2029, 1, 1, tzinfo=UTC)
    by_auth = certificate_not_after(birth_date=birth, issued_at=ISSUED, card_valid_until=date(2036, 6, 1),
                                    ca_not_after=CA_END, auth_not_after=end_of_jst_day(date(2029, 6, 1)))
    assert by_auth == end_of_jst_day(date(2029, 6, 1))


def test_renewal_in_the_last_three_months_runs_to_the_sixth_birthday() -> None:
    birth = date(1980, 6, 1)
    early = certificate_not_after(birth_date=birth, issued_at=ISSUED, card_valid_until=date(2040, 1, 1),
                                  ca_not_after=CA_END, previous_not_after=ISSUED + timedelta(days=200))
    late = certificate_not_after(birth_date=birth, issued_at=ISSUED, card_valid_until=date(2040, 1, 1),
                                 ca_not_after=CA_END, previous_not_after=ISSUED + timedelta(days=60))
    assert early.astimezone(JST).date() == date(2030, 6, 1)
    assert late.astimezone(JST).date() == date(2031, 6, 1)


@given(st.dates(min_value=date(1920, 1, 1), max_value=date(2026, 4, 1)))
def test_validity_never_exceeds_any_limit(birth: date) -> None:
    card_end = date(2036, 4, 5)
    end = certificate_not_after(birth_date=birth, issued_at=ISSUED, card_valid_until=card_end, ca_not_after=CA_END)
    assert ISSUED < end <= min(end_of_jst_day(card_end), CA_END)
    assert end.astimezone(JST).date() <= date(2031, 4, 6)


def test_no_signing_certificate_before_fifteen() -> None:
    assert not may_hold_sign_certificate(date(2011, 4, 7), date(2026, 4, 6))
    assert may_hold_sign_certificate(date(2011, 4, 6), date(2026, 4, 6))


def test_roots_and_rollover() -> None:
    end = root_not_after(datetime(2023, 7, 16, 0, 50, 27, tzinfo=UTC))
    assert end == datetime(2033, 7, 15, 14, 59, 59, tzinfo=UTC)  # exactly the real 2023 generation's dates
    assert not rollover_due(end, datetime(2026, 7, 1, tzinfo=UTC))
    assert rollover_due(end, datetime(2027, 8, 1, tzinfo=UTC))  # the real CAs rolled over after four years


def test_crl_schedule() -> None:
    schedule = CrlSchedule()
    this = datetime(2026, 4, 6, tzinfo=UTC)
    assert schedule.due(None, this)
    nxt = schedule.full_next_update(this)
    assert not schedule.due(nxt, this + timedelta(hours=23))
    assert schedule.due(nxt, nxt - timedelta(seconds=30))


@settings(max_examples=300)
@given(serial=st.integers(min_value=1, max_value=2**159),
       moment=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2120, 1, 1),
                           timezones=st.just(UTC)),
       reason=st.sampled_from(list(RevocationReason)))
def test_the_fast_crl_entry_encoding_equals_the_reference(serial: int, moment: datetime,
                                                          reason: RevocationReason) -> None:
    fast = crl.encode_entry(serial, moment, reason)
    assert fast == crl.encode_entry_slow(serial, moment, reason)
    parsed = asn1_crl.RevokedCertificate.load(fast)
    assert parsed["user_certificate"].native == serial
    assert parsed["revocation_date"].native == moment.replace(microsecond=0)
    assert (parsed.crl_reason_value.native if parsed.crl_reason_value else "unspecified") == {
        RevocationReason.UNSPECIFIED: "unspecified", RevocationReason.KEY_COMPROMISE: "key_compromise",
        RevocationReason.CA_COMPROMISE: "ca_compromise", AFF: "affiliation_changed",
        RevocationReason.SUPERSEDED: "superseded",
        RevocationReason.CESSATION_OF_OPERATION: "cessation_of_operation",
        RevocationReason.CERTIFICATE_HOLD: "certificate_hold"}[reason]
