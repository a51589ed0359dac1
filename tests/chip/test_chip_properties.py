"""Property tests (Hypothesis) of the emulator: fuzzing, secrecy, and the PIN rules against a model.

* Fuzzing: more than 100,000 random and malformed APDUs — noise, wrong lengths, every class byte, the
  card's own commands with random parameters — never raise out of the emulator; each answer is a well-formed
  status word (never ``6F 00``, which would mean a bug), data only comes with success, and the persistent
  state stays consistent (files, keys and serial untouched without the issuer key; counters in range; PIN
  values of the card's format).
* Secrecy: random command sequences by someone who does not know the PINs never reveal a private key, a
  PIN, or any PIN-protected file.
* A state machine compares VERIFY, the retry counters, blocking, reselect and reset with a reference model.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from mynacard.chip.apdu import SW, encode_command, is_well_formed_status
from mynacard.chip.emulator import Chip
from mynacard.chip.image import ChipImage
from mynacard.chip.model import FILE_SYSTEM, Application, EfKind, PinKind, check_pin_format

from .conftest import CardSetup, key_secrets

FUZZ_APDUS = 100_000
_INS = [0xA4, 0xB0, 0xB2, 0x20, 0x24, 0x2C, 0x84, 0x82, 0xD6, 0x0E, 0x47, 0xC0, 0x2A, 0x88, 0xCA, 0x22]
_AIDS = [app.aid for app in Application] + [Application.JPKI.aid[:5], bytes(16)]
_FIDS = sorted({fid for files in FILE_SYSTEM.values() for fid in files} | {0x3F00, 0x0099, 0xFFFF})


def _apdus(pin_guesses: list[bytes]) -> st.SearchStrategy[bytes]:
    fids = st.sampled_from(_FIDS).map(lambda f: f.to_bytes(2, "big"))
    data = st.one_of(st.just(b""), st.sampled_from(_AIDS), fids, st.sampled_from(pin_guesses),
                     st.binary(max_size=300))
    structured = st.builds(
        lambda cla, ins, p1, p2, body, le, ext: encode_command(cla, ins, p1, p2, body, le, extended=ext),
        st.sampled_from([0x00, 0x00, 0x00, 0x80, 0x0C, 0x10, 0x01, 0xFF]) | st.integers(0, 255),
        st.sampled_from(_INS) | st.integers(0, 255),
        st.sampled_from([0x00, 0x02, 0x04, 0x80, 0x81, 0x01, 0x03]) | st.integers(0, 255),
        st.sampled_from([0x00, 0x0C, 0x80, 0x81, 0x04]) | st.integers(0, 255),
        data,
        st.none() | st.sampled_from([4, 8, 256, 65536]) | st.integers(1, 65536),
        st.booleans())
    # Malformed: a well-formed APDU cut short or with bytes added; and plain noise.
    cut = st.tuples(structured, st.integers(1, 6)).map(lambda t: t[0][:-t[1]])
    padded = st.tuples(structured, st.binary(min_size=1, max_size=3)).map(lambda t: t[0] + t[1])
    return st.one_of(structured, structured, structured, cut, padded, st.binary(max_size=12),
                     st.binary(min_size=5, max_size=270))


def _plausible(rng: random.Random, pin_guesses: list[bytes]) -> list[bytes]:
    """A short sequence as a terminal would send it, so that the fuzz also reaches verified PINs,
    signatures, long responses, PIN changes and protected reads (when the guesses hold the right PINs)."""
    def select(aid: bytes) -> bytes:
        return encode_command(0x00, 0xA4, 0x04, 0x0C, aid)

    def select_ef(fid: int) -> bytes:
        return encode_command(0x00, 0xA4, 0x02, 0x0C, fid.to_bytes(2, "big"))

    def verify() -> bytes:
        return encode_command(0x00, 0x20, 0x00, 0x80, rng.choice(pin_guesses))

    script = rng.random()
    if script < 0.25:  # sign with either key
        pin, key = rng.choice([(0x0018, 0x0017), (0x001B, 0x001A)])
        return [select(Application.JPKI.aid), select_ef(pin), verify(), select_ef(key),
                encode_command(0x80, 0x2A, 0x00, 0x80, rng.randbytes(rng.randrange(1, 250)), 256)]
    if script < 0.40:  # change a PIN
        kind = rng.choice(list(PinKind))
        return [select(kind.policy.application.aid), select_ef(kind.policy.fid), verify(),
                encode_command(0x00, 0x24, 0x01, 0x80, rng.choice(pin_guesses))]
    if script < 0.55:  # read a protected file after a PIN
        kind = rng.choice(list(PinKind))
        app = kind.policy.application
        data = [f for f, spec in FILE_SYSTEM[app].items() if spec.kind is EfKind.DATA] or [0x0001]
        return [select(app.aid), select_ef(kind.policy.fid), verify(), select_ef(rng.choice(data)),
                encode_command(0x00, 0xB0, 0x00, 0x00, le=rng.choice([4, 256, 65536]),
                               extended=rng.random() < 0.5)]
    app = rng.choice(list(Application))
    fids = sorted(FILE_SYSTEM[app])
    out = [select(app.aid if rng.random() < 0.9 else rng.choice(_AIDS)),
           select_ef(rng.choice(fids) if rng.random() < 0.9 else rng.choice(_FIDS))]
    offset = rng.choice([0, 4, rng.randrange(0x8000)])
    le = rng.choice([4, 8, 256, 65536, rng.randrange(1, 65537)])
    out.append(rng.choice([
        verify(),
        encode_command(0x00, 0x20, 0x00, 0x80),
        encode_command(0x00, 0xB0, offset >> 8, offset & 0xFF, le=le, extended=le > 256),
        encode_command(0x00, 0xB2, 0x01, 0x0C, le=256),
        encode_command(0x00, 0x84, 0x00, 0x00, le=8),
        encode_command(0x00, 0x82, 0x00, 0x81, rng.randbytes(16)),
        encode_command(0x00, 0x47, rng.choice([0x80, 0x81]), 0x00, le=rng.choice([256, 65536])),
        encode_command(0x00, 0xC0, 0x00, 0x00, le=rng.choice([8, 256])),
        encode_command(0x00, 0xD6, 0x00, 0x00, rng.randbytes(rng.randrange(1, 40))),
        encode_command(0x00, 0x0E, 0x00, 0x00),
        encode_command(0x00, 0x2C, rng.choice([2, 3]), 0x80, rng.choice([b"", *pin_guesses])),
    ]))
    return out


def _expand(rng: random.Random, bases: list[bytes], count: int, pin_guesses: list[bytes]) -> list[bytes]:
    """``count`` APDUs around the Hypothesis-drawn ``bases``: terminal-like sequences, bit flips, cuts,
    extensions, new parameters and plain noise. Drawing each of 100,000 APDUs through Hypothesis would take
    minutes; this keeps Hypothesis in charge of the shapes and the seed, Python's PRNG of the volume."""
    out: list[bytes] = []
    while len(out) < count:
        r = rng.random()
        base = rng.choice(out[-20:] + bases) if out or bases else b"\x00\xa4\x04\x0c"
        if r < 0.40:
            out += _plausible(rng, pin_guesses)
        elif r < 0.48:
            out.append(rng.randbytes(rng.randrange(0, 12)))
        elif r < 0.53:
            out.append(rng.randbytes(rng.randrange(5, 300)))
        elif r < 0.68 and base:
            flipped = bytearray(base)
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            out.append(bytes(flipped))
        elif r < 0.76 and base:
            out.append(base[:rng.randrange(len(base))])
        elif r < 0.82:
            out.append(base + rng.randbytes(rng.randrange(1, 4)))
        elif len(base) >= 4:
            out.append(base[:2] + rng.randbytes(2) + base[4:])
    return out[:count]


def _check_response(response: bytes) -> int:
    assert len(response) >= 2
    sw = int.from_bytes(response[-2:], "big")
    assert is_well_formed_status(sw), f"{sw:04X}"
    assert sw != SW.NO_PRECISE_DIAGNOSIS, "internal error in the emulator"
    if len(response) > 2:
        assert sw == SW.OK or sw >> 8 == 0x61 or sw == SW.END_OF_FILE, f"data with {sw:04X}"
    return sw


def _check_state(image: ChipImage, original: ChipImage) -> None:
    assert image.serial == original.serial and image.issuer_key == original.issuer_key
    assert image.files == original.files
    assert image.keys == original.keys
    for kind, state in image.pins.items():
        assert 0 <= state.tries_left <= kind.policy.max_tries
        assert state.value is not None
        check_pin_format(kind, state.value.decode("ascii"))


def test_fuzz_never_raises_and_always_answers_a_status_word(card_setup: CardSetup) -> None:
    original = card_setup.image
    pins = card_setup.pins
    known = [p.encode() for p in (pins.auth, pins.sign or "", pins.card_info, pins.residence,
                                  card_setup.number)]
    guesses = [*known, b"0000", b"ABCDEF12", b"", b"1" * 17, "１２３４".encode()]
    sent = 0

    @settings(max_examples=500, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(_apdus(guesses), min_size=1, max_size=8), st.integers(0, 2**32 - 1), st.booleans())
    def run(bases: list[bytes], seed: int, resets: bool) -> None:
        nonlocal sent
        chip = Chip(original.copy())
        apdus = bases + _expand(random.Random(seed), bases, 200, guesses)
        for i, apdu in enumerate(apdus):
            try:
                _check_response(chip.transmit(apdu))
            except AssertionError as exc:
                raise AssertionError(f"APDU {apdu.hex()} (#{i} of seed {seed}): {exc}") from None
            if resets and i % 37 == 0:
                chip.reset()
        sent += len(apdus)
        image = chip.image
        # PIN values may change (CHANGE REFERENCE DATA after a right VERIFY); nothing else may.
        _check_state(image, original)

    run()
    assert sent >= FUZZ_APDUS, sent


def test_random_sequences_never_reveal_a_key_a_pin_or_a_protected_file(card_setup: CardSetup) -> None:
    original = card_setup.image
    pins = card_setup.pins
    secrets = key_secrets(original)
    protected = [content for (app, fid), content in original.files.items()
                 if not FILE_SYSTEM[app][fid].read.free and content]
    assert len(protected) >= 8
    windows = [c[len(c) // 2:len(c) // 2 + 24] if len(c) > 40 else c[:17] for c in protected]
    never = [*secrets, *windows, card_setup.number.encode(), (pins.sign or "").encode(),
             card_setup.resident_code.encode(), card_setup.holder.facts.address.encode()]
    # Control: the same check does see these secrets when the PIN is given.
    control = Chip(original.copy())
    for apdu in (encode_command(0x00, 0xA4, 0x04, 0x0C, Application.CARD_INFO.aid),
                 encode_command(0x00, 0xA4, 0x02, 0x0C, b"\x00\x11"),
                 encode_command(0x00, 0x20, 0x00, 0x80, pins.card_info.encode()),
                 encode_command(0x00, 0xA4, 0x02, 0x0C, b"\x00\x01")):
        control.transmit(apdu)
    leaked = control.transmit(encode_command(0x00, 0xB0, 0x00, 0x00, le=256))[:-2]
    assert any(secret in leaked for secret in never)
    real = {pins.auth, pins.sign, pins.card_info, pins.residence, card_setup.number}
    guesses = [g.encode() for g in ("0000", "9999", "1235", "ABCDEF12", "WRONGPASS1", "123456789017")
               if g not in real]

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(_apdus(guesses), min_size=1, max_size=6), st.integers(0, 2**32 - 1))
    def run(bases: list[bytes], seed: int) -> None:
        chip = Chip(original.copy())
        apdus = bases + _expand(random.Random(seed), bases, 120, guesses)
        for apdu in apdus:
            response = chip.transmit(apdu)
            _check_response(response)
            data = response[:-2]
            if len(data) >= 4:
                assert not any(secret in data for secret in never), apdu.hex()
        assert chip.image.files == original.files and chip.image.keys == original.keys

    run()


# --- the PIN rules against a reference model ---------------------------------------------------------

_HOLDER_PINS = [PinKind.AUTH, PinKind.SIGN, PinKind.CARD_INFO, PinKind.RESIDENCE]


class PinMachine(RuleBasedStateMachine):
    """Random VERIFY/query/reselect/reset/read sequences; the card must answer as the model says."""

    setup: CardSetup

    @initialize()
    def start(self) -> None:
        self.chip = Chip(self.setup.image.copy())
        pins = self.setup.pins
        self.right = {PinKind.AUTH: pins.auth, PinKind.SIGN: pins.sign or "",
                      PinKind.CARD_INFO: pins.card_info, PinKind.RESIDENCE: pins.residence}
        self.tries = {k: k.policy.max_tries for k in _HOLDER_PINS}
        self.app: Application | None = None
        self.verified: set[PinKind] = set()

    def _send(self, apdu: bytes) -> int:
        response = self.chip.transmit(apdu)
        return int.from_bytes(response[-2:], "big")

    def _select(self, app: Application) -> None:
        assert self._send(encode_command(0x00, 0xA4, 0x04, 0x0C, app.aid)) == SW.OK
        self.app = app
        self.verified = set()

    @rule(kind=st.sampled_from(_HOLDER_PINS), outcome=st.sampled_from(["right", "wrong", "query"]),
          reselect=st.booleans())
    def verify(self, kind: PinKind, outcome: str, reselect: bool) -> None:
        app = kind.policy.application
        if reselect or self.app is not app:
            self._select(app)
        assert self._send(encode_command(0x00, 0xA4, 0x02, 0x0C, kind.policy.fid.to_bytes(2, "big"))) == SW.OK
        if outcome == "query":
            expected = SW.OK if kind in self.verified else SW.tries(self.tries[kind])
            assert self._send(encode_command(0x00, 0x20, 0x00, 0x80)) == expected
            return
        wrong = "0000" if kind is not PinKind.SIGN else "WRONG000"
        value = self.right[kind] if outcome == "right" else wrong
        sw = self._send(encode_command(0x00, 0x20, 0x00, 0x80, value.encode()))
        if self.tries[kind] == 0:
            assert sw == SW.REFERENCE_DATA_NOT_USABLE
            self.verified.discard(kind)
        elif outcome == "right":
            assert sw == SW.OK
            self.tries[kind] = kind.policy.max_tries
            self.verified.add(kind)
        else:
            self.tries[kind] -= 1
            assert sw == SW.tries(self.tries[kind])
            self.verified.discard(kind)

    @rule(fid=st.sampled_from([(Application.JPKI, 0x0001, PinKind.SIGN), (Application.CARD_INFO, 0x0001,
                                                                              PinKind.CARD_INFO),
                               (Application.RESIDENCE, 0x0001, PinKind.RESIDENCE)]))
    def read_protected(self, fid: tuple[Application, int, PinKind]) -> None:
        app, ef, pin = fid
        if self.app is not app:
            self._select(app)
        self._send(encode_command(0x00, 0xA4, 0x02, 0x0C, ef.to_bytes(2, "big")))
        response = self.chip.transmit(encode_command(0x00, 0xB0, 0x00, 0x00, le=4))
        sw = int.from_bytes(response[-2:], "big")
        assert sw == (SW.OK if pin in self.verified else SW.SECURITY_STATUS_NOT_SATISFIED)
        assert (len(response) > 2) == (pin in self.verified)

    @rule()
    def reset(self) -> None:
        self.chip.reset()
        self.app = None
        self.verified = set()

    @invariant()
    def counters_match(self) -> None:
        if hasattr(self, "chip"):
            for kind in _HOLDER_PINS:
                assert self.chip.image.pins[kind].tries_left == self.tries[kind]


def test_pin_rules_match_the_model(card_setup: CardSetup) -> None:
    PinMachine.setup = card_setup
    runner = PinMachine.TestCase
    runner.settings = settings(max_examples=150, stateful_step_count=40, deadline=None, database=None,
                               suppress_health_check=[HealthCheck.too_slow])
    runner().runTest()


def test_the_file_system_has_no_readable_secret() -> None:
    """Static check of the access table: every file that carries a personal fact needs a PIN."""
    for app, files in FILE_SYSTEM.items():
        for fid, spec in files.items():
            if (app, fid) in {(Application.JPKI, 0x0001), (Application.CARD_INFO, 0x0001),
                              (Application.CARD_INFO, 0x0002), (Application.CARD_FACE, 0x0002),
                              (Application.CARD_FACE, 0x0005), (Application.RESIDENCE, 0x0001)}:
                assert not spec.read.free
