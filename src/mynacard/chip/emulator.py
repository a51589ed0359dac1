"""The chip: an ISO/IEC 7816-4 card that answers APDUs as the My Number Card does.

:class:`Chip` runs a :class:`~mynacard.chip.image.ChipImage` (the persistent memory) and keeps the volatile
state a reset clears: the selected application and EF, the PINs verified in that application, the issuer's
authentication, a pending challenge and a pending long response. :meth:`Chip.transmit` takes any bytes and
always answers with a well-formed response APDU — it never raises, whatever arrives.

Commands (reference/jpki-technical.md §1.4, §8; ISO/IEC 7816-4/-8):

===========================  =====================  ==========================================================
command                      APDU                   notes
===========================  =====================  ==========================================================
SELECT application / EF      ``00 A4 04|02 0C``     reselecting an application clears its security status
READ BINARY                  ``00 B0``              short or extended Le; ``6B 00`` past the end
READ RECORD                  ``00 B2 01 0C``        common DF: manufacture number
VERIFY                       ``00 20 00 80``        empty: ``63 Cx`` tries left, no try used
CHANGE REFERENCE DATA        ``00 24 01 80``        new PIN, after VERIFY in this session
COMPUTE DIGITAL SIGNATURE    ``80 2A 00 80``        PKCS#1 v1.5 type 1 pads the DigestInfo, RSA-2048
GET CHALLENGE                ``00 84 00 00 08``     for the issuer
EXTERNAL AUTHENTICATE        ``00 82 00 81``        the issuer's cryptogram (:mod:`.issuerkey`)
RESET RETRY COUNTER          ``00 2C 02|03 80``     issuer only: new PIN / unblock
UPDATE / ERASE BINARY        ``00 D6`` / ``00 0E``  issuer only
GENERATE ASYMMETRIC KEY      ``00 47 80|81 00``     80: make a key pair in the chip (issuer only); 81: read
                                                    the public key
GET RESPONSE                 ``00 C0``              the rest of a long response (after ``61 xx``)
===========================  =====================  ==========================================================

The retry counter is decremented and written *before* the PIN is compared, and restored only after a match,
so that pulling the card mid-command never yields a free guess (the classic anti-tearing order).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Callable
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo

from mynacard.chip import tlv
from mynacard.chip.apdu import SW, ApduError, CommandApdu, parse_command
from mynacard.chip.image import ChipImage
from mynacard.chip.issuerkey import CHALLENGE_LENGTH, CRYPTOGRAM_LENGTH, cryptogram_ok
from mynacard.chip.model import (
    ATR,
    FILE_SYSTEM,
    Application,
    EfKind,
    EfSpec,
    KeyKind,
    PinKind,
    check_pin_format,
)
from mynacard.errors import InvalidInput

__all__ = ["MAX_SIGN_INPUT", "Chip", "public_key_template"]

log = logging.getLogger(__name__)

MAX_SIGN_INPUT = 245
"""k − 11 bytes: the most a PKCS#1 v1.5 type-1 block of a 2048-bit key can carry."""
KEY_BITS = 2048
_ISSUER_KEY_REF = 0x81

Response = tuple[bytes, int]
Persist = Callable[[ChipImage], None]


@lru_cache(maxsize=256)
def _load_key(der: bytes) -> rsa.RSAPrivateKey:
    """Parse (and, once, fully check) a key of the image; OpenSSL's RSA check costs ~0.1 s per load, so
    parsed keys are shared between chip objects holding the same image (copies of a card, reopened files)."""
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("the chip holds only RSA keys")
    return key


def public_key_template(key: rsa.RSAPublicKey) -> bytes:
    """ISO/IEC 7816-8 public key data object: ``7F49 { 81 modulus, 82 exponent }``."""
    numbers = key.public_numbers()
    size = (key.key_size + 7) // 8
    exponent = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
    return tlv.encode(0x7F49, tlv.encode(0x81, numbers.n.to_bytes(size, "big")) + tlv.encode(0x82, exponent))


class Chip:
    """One card's chip, powered and in a reader. Thread-safe: one APDU at a time."""

    def __init__(self, image: ChipImage, *, persist: Persist | None = None,
                 random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self.image = image
        """The persistent memory. Read it for inspection; change it only through APDUs."""
        self._persist = persist
        self._random = random_bytes
        self._lock = threading.RLock()
        self._keys: dict[KeyKind, tuple[bytes, rsa.RSAPrivateKey]] = {}
        self.apdu_count = 0
        """APDUs answered since the chip object was made (for benchmarks and tests)."""
        self.reset()

    @property
    def atr(self) -> bytes:
        return ATR

    # --- power -------------------------------------------------------------------------------------------

    def reset(self) -> bytes:
        """Warm or cold reset: everything volatile is forgotten; returns the ATR."""
        with self._lock:
            self._app: Application | None = None
            self._ef: EfSpec | None = None
            self._clear_session()
            self._pending = b""
            return ATR

    power_on = reset

    def power_off(self) -> None:
        self.reset()

    def _clear_session(self) -> None:
        self._verified: set[PinKind] = set()
        self._issuer = False
        self._challenge: bytes | None = None

    @property
    def selected_application(self) -> Application | None:
        return self._app

    def is_verified(self, kind: PinKind) -> bool:
        """Whether ``kind`` is verified in the current session (for tests and tools, not an APDU)."""
        return kind in self._verified

    # --- the APDU interface -------------------------------------------------------------------------------

    def transmit(self, raw: bytes) -> bytes:
        """Answer one command APDU with a response APDU (data + SW1 SW2). Never raises."""
        with self._lock:
            self.apdu_count += 1
            try:
                data, sw = self._process(bytes(raw))
            except Exception:
                log.exception("chip: internal error on INS %02X", raw[1] if len(raw) > 1 else -1)
                data, sw = b"", SW.NO_PRECISE_DIAGNOSIS
            return data + sw.to_bytes(2, "big")

    def _process(self, raw: bytes) -> Response:
        try:
            cmd = parse_command(raw)
        except ApduError as exc:
            self._pending = b""
            return b"", exc.sw
        if cmd.ins != 0xC0:
            self._pending = b""  # GET RESPONSE must follow the command it continues at once
        cla = cmd.cla
        if cla == 0xFF or cla & 0x60:
            return b"", SW.CLA_NOT_SUPPORTED
        if cla & 0x03:
            return b"", SW.LOGICAL_CHANNEL_NOT_SUPPORTED
        if cla & 0x0C:
            return b"", SW.SECURE_MESSAGING_NOT_SUPPORTED
        if cla & 0x10:
            return b"", SW.CHAINING_NOT_SUPPORTED
        proprietary = bool(cla & 0x80)
        if cmd.ins == 0xC0 and not proprietary:
            return self._get_response(cmd)
        table = _PROPRIETARY if proprietary else _INTERINDUSTRY
        handler = table.get(cmd.ins)
        if handler is None:
            other = _INTERINDUSTRY if proprietary else _PROPRIETARY
            return b"", SW.CLA_NOT_SUPPORTED if cmd.ins in other else SW.INS_NOT_SUPPORTED
        data, sw = handler(self, cmd)
        return self._chain(cmd, data, sw)

    def _chain(self, cmd: CommandApdu, data: bytes, sw: int) -> Response:
        """Hand out at most Le bytes; the rest waits for GET RESPONSE (``61 xx``)."""
        limit = cmd.le if cmd.le is not None else 256
        if len(data) > limit and sw == SW.OK:
            self._pending = data[limit:]
            return data[:limit], SW.more_data(len(self._pending))
        return data, sw

    def _get_response(self, cmd: CommandApdu) -> Response:
        if cmd.p1 or cmd.p2:
            self._pending = b""
            return b"", SW.WRONG_P1P2
        if cmd.data:
            self._pending = b""
            return b"", SW.WRONG_LENGTH
        if not self._pending:
            return b"", SW.CONDITIONS_NOT_SATISFIED
        pending, self._pending = self._pending, b""
        le = cmd.le if cmd.le is not None else 256
        if len(pending) > le:
            self._pending = pending[le:]
            return pending[:le], SW.more_data(len(self._pending))
        return pending, SW.OK

    # --- persistence --------------------------------------------------------------------------------------

    def _commit(self, change: Callable[[ChipImage], None]) -> bool:
        """Apply ``change`` to the image and write it; on a failed write undo it and return False."""
        if self._persist is None:
            change(self.image)
            return True
        before = self.image.copy()
        change(self.image)
        try:
            self._persist(self.image)
        except Exception:
            log.exception("chip %s: could not write persistent memory", self.image.serial)
            self.image.restore(before)
            return False
        return True

    # --- SELECT -------------------------------------------------------------------------------------------

    def _select(self, cmd: CommandApdu) -> Response:
        if cmd.p2 != 0x0C:
            return b"", SW.WRONG_P1P2
        if cmd.p1 == 0x04:
            if not 1 <= len(cmd.data) <= 16:
                return b"", SW.WRONG_LENGTH
            app = Application.by_aid(cmd.data)
            if app is None:
                return b"", SW.FILE_NOT_FOUND
            self._app, self._ef = app, None
            self._clear_session()
            return b"", SW.OK
        if cmd.p1 == 0x02:
            if len(cmd.data) != 2:
                return b"", SW.WRONG_LENGTH
            if self._app is None:
                return b"", SW.NO_CURRENT_EF
            spec = FILE_SYSTEM[self._app].get(int.from_bytes(cmd.data, "big"))
            if spec is None:
                return b"", SW.FILE_NOT_FOUND
            self._ef = spec
            return b"", SW.OK
        if cmd.p1 == 0x00:
            if cmd.data in (b"", b"\x3f\x00"):
                self._app, self._ef = None, None
                self._clear_session()
                return b"", SW.OK
            return b"", SW.FILE_NOT_FOUND
        return b"", SW.WRONG_P1P2

    # --- reading ------------------------------------------------------------------------------------------

    def _may_read(self, spec: EfSpec) -> bool:
        return spec.read.free or self._issuer or bool(spec.read.pins & self._verified)

    def _read_binary(self, cmd: CommandApdu) -> Response:
        if cmd.p1 & 0x80:
            return b"", SW.FUNCTION_NOT_SUPPORTED
        if cmd.data:
            return b"", SW.WRONG_LENGTH
        if cmd.le is None:
            return b"", SW.WRONG_LENGTH
        spec = self._ef
        if spec is None or self._app is None:
            return b"", SW.NO_CURRENT_EF
        if spec.kind is not EfKind.DATA:
            return b"", SW.INCOMPATIBLE_FILE_STRUCTURE
        if not self._may_read(spec):
            return b"", SW.SECURITY_STATUS_NOT_SATISFIED
        content = self.image.file(self._app, spec.fid)
        offset = cmd.offset
        if offset >= len(content):
            return b"", SW.OFFSET_OUTSIDE_EF
        chunk = content[offset:offset + cmd.le]
        wanted_max = cmd.le == (65536 if cmd.extended else 256)
        if len(chunk) < cmd.le and not wanted_max:
            return chunk, SW.END_OF_FILE
        return chunk, SW.OK

    def _read_record(self, cmd: CommandApdu) -> Response:
        if cmd.p2 & 0x07 != 0x04:
            return b"", SW.WRONG_P1P2
        if cmd.data or cmd.le is None:
            return b"", SW.WRONG_LENGTH
        if self._app is None:
            return b"", SW.NO_CURRENT_EF
        sfi = cmd.p2 >> 3
        if sfi == 0:
            spec = self._ef
            if spec is None:
                return b"", SW.NO_CURRENT_EF
        else:
            spec = next((s for s in FILE_SYSTEM[self._app].values() if s.sfi == sfi), None)
            if spec is None:
                return b"", SW.FILE_NOT_FOUND
        if spec.kind is not EfKind.RECORDS:
            return b"", SW.INCOMPATIBLE_FILE_STRUCTURE
        if not self._may_read(spec):
            return b"", SW.SECURITY_STATUS_NOT_SATISFIED
        if cmd.p1 != 1:
            return b"", SW.RECORD_NOT_FOUND
        if sfi:
            self._ef = spec
        record = self.image.file(self._app, spec.fid)
        if not record:
            return b"", SW.RECORD_NOT_FOUND
        return record[:cmd.le], SW.OK

    # --- PINs ---------------------------------------------------------------------------------------------

    def _current_pin(self, cmd: CommandApdu) -> tuple[PinKind | None, int]:
        if cmd.p2 != 0x80:
            return None, SW.WRONG_P1P2
        spec = self._ef
        if spec is None:
            return None, SW.NO_CURRENT_EF
        if spec.kind is not EfKind.PIN or spec.pin is None:
            return None, SW.REFERENCED_DATA_NOT_FOUND
        return spec.pin, SW.OK

    def _verify(self, cmd: CommandApdu) -> Response:
        if cmd.p1 != 0x00:
            return b"", SW.WRONG_P1P2
        kind, sw = self._current_pin(cmd)
        if kind is None:
            return b"", sw
        state = self.image.pins[kind]
        if not cmd.data:
            # Retry-counter query: uses no try. ISO: 90 00 when already verified in this session.
            if kind in self._verified:
                return b"", SW.OK
            return b"", SW.tries(state.tries_left if state.value is not None else 0)
        if state.value is None or state.tries_left == 0:
            self._verified.discard(kind)
            return b"", SW.REFERENCE_DATA_NOT_USABLE

        def decrement(img: ChipImage) -> None:
            img.pins[kind].tries_left -= 1

        self._verified.discard(kind)
        if not self._commit(decrement):
            return b"", SW.MEMORY_FAILURE
        state = self.image.pins[kind]
        if state.value is not None and hmac.compare_digest(state.value, cmd.data):
            def restore(img: ChipImage) -> None:
                img.pins[kind].tries_left = kind.policy.max_tries

            if not self._commit(restore):
                return b"", SW.MEMORY_FAILURE
            self._verified.add(kind)
            return b"", SW.OK
        return b"", SW.tries(state.tries_left)

    def _new_pin_value(self, kind: PinKind, data: bytes) -> bytes | None:
        try:
            text = data.decode("ascii")
            check_pin_format(kind, text)
        except (UnicodeDecodeError, InvalidInput):
            return None
        return data

    def _change_reference_data(self, cmd: CommandApdu) -> Response:
        if cmd.p1 != 0x01:
            return b"", SW.WRONG_P1P2
        kind, sw = self._current_pin(cmd)
        if kind is None:
            return b"", sw
        if not cmd.data:
            return b"", SW.WRONG_LENGTH
        if not kind.policy.holder_sets:
            return b"", SW.CONDITIONS_NOT_SATISFIED
        if kind not in self._verified:
            return b"", SW.SECURITY_STATUS_NOT_SATISFIED
        value = self._new_pin_value(kind, cmd.data)
        if value is None:
            return b"", SW.WRONG_DATA
        return b"", SW.OK if self._store_pin(kind, value) else SW.MEMORY_FAILURE

    def _reset_retry_counter(self, cmd: CommandApdu) -> Response:
        if cmd.p1 not in (0x02, 0x03):
            return b"", SW.WRONG_P1P2
        kind, sw = self._current_pin(cmd)
        if kind is None:
            return b"", sw
        if (cmd.p1 == 0x02 and not cmd.data) or (cmd.p1 == 0x03 and cmd.data):
            return b"", SW.WRONG_LENGTH
        if not self._issuer:
            return b"", SW.SECURITY_STATUS_NOT_SATISFIED
        value: bytes | None
        if cmd.p1 == 0x02:
            value = self._new_pin_value(kind, cmd.data)
            if value is None:
                return b"", SW.WRONG_DATA
        else:
            value = self.image.pins[kind].value
            if value is None:
                return b"", SW.REFERENCE_DATA_NOT_USABLE
        if not self._store_pin(kind, value):
            return b"", SW.MEMORY_FAILURE
        self._verified.discard(kind)
        return b"", SW.OK

    def _store_pin(self, kind: PinKind, value: bytes) -> bool:
        """A new value for ``kind`` with a full retry counter, written to persistent memory."""
        def store(img: ChipImage) -> None:
            img.pins[kind].value = value
            img.pins[kind].tries_left = kind.policy.max_tries

        return self._commit(store)

    # --- the issuer ---------------------------------------------------------------------------------------

    def _get_challenge(self, cmd: CommandApdu) -> Response:
        if cmd.p1 or cmd.p2:
            return b"", SW.WRONG_P1P2
        if cmd.data or cmd.le != CHALLENGE_LENGTH:
            return b"", SW.WRONG_LENGTH
        if self._app is None:
            return b"", SW.NO_CURRENT_EF
        self._challenge = self._random(CHALLENGE_LENGTH)
        return self._challenge, SW.OK

    def _external_authenticate(self, cmd: CommandApdu) -> Response:
        if cmd.p1 != 0x00:
            return b"", SW.WRONG_P1P2
        if cmd.p2 != _ISSUER_KEY_REF:
            return b"", SW.REFERENCED_DATA_NOT_FOUND
        if len(cmd.data) != CRYPTOGRAM_LENGTH:
            return b"", SW.WRONG_LENGTH
        if self._app is None:
            return b"", SW.NO_CURRENT_EF
        challenge, self._challenge = self._challenge, None
        if challenge is None:
            return b"", SW.CONDITIONS_NOT_SATISFIED
        if cryptogram_ok(self.image.issuer_key, challenge, self._app.aid, self.image.serial, cmd.data):
            self._issuer = True
            return b"", SW.OK
        self._issuer = False
        return b"", SW.VERIFICATION_FAILED

    def _writable(self, cmd: CommandApdu) -> tuple[EfSpec | None, int]:
        if cmd.p1 & 0x80:
            return None, SW.FUNCTION_NOT_SUPPORTED
        spec = self._ef
        if spec is None or self._app is None:
            return None, SW.NO_CURRENT_EF
        if spec.kind is not EfKind.DATA:
            return None, SW.INCOMPATIBLE_FILE_STRUCTURE
        if not self._issuer:
            return None, SW.SECURITY_STATUS_NOT_SATISFIED
        return spec, SW.OK

    def _update_binary(self, cmd: CommandApdu) -> Response:
        if not cmd.data:
            return b"", SW.WRONG_LENGTH
        spec, sw = self._writable(cmd)
        if spec is None or self._app is None:
            return b"", sw
        app, offset = self._app, cmd.offset
        content = self.image.file(app, spec.fid)
        if offset > len(content):
            return b"", SW.OFFSET_OUTSIDE_EF
        if offset + len(cmd.data) > spec.max_size:
            return b"", SW.NOT_ENOUGH_MEMORY
        new = content[:offset] + cmd.data + content[offset + len(cmd.data):]

        def write(img: ChipImage) -> None:
            img.files[(app, spec.fid)] = new

        return b"", SW.OK if self._commit(write) else SW.MEMORY_FAILURE

    def _erase_binary(self, cmd: CommandApdu) -> Response:
        """ERASE BINARY from the offset in P1-P2 to the end; our EFs then shrink to that offset."""
        if cmd.data:
            return b"", SW.WRONG_LENGTH
        spec, sw = self._writable(cmd)
        if spec is None or self._app is None:
            return b"", sw
        app, offset = self._app, cmd.offset
        content = self.image.file(app, spec.fid)
        if offset > len(content):
            return b"", SW.OFFSET_OUTSIDE_EF

        def erase(img: ChipImage) -> None:
            if offset:
                img.files[(app, spec.fid)] = content[:offset]
            else:
                img.files.pop((app, spec.fid), None)

        return b"", SW.OK if self._commit(erase) else SW.MEMORY_FAILURE

    # --- keys ---------------------------------------------------------------------------------------------

    def _private_key(self, kind: KeyKind) -> rsa.RSAPrivateKey | None:
        der = self.image.keys.get(kind)
        if der is None:
            return None
        cached = self._keys.get(kind)
        if cached is not None and cached[0] is der:
            return cached[1]
        key = _load_key(der)
        self._keys[kind] = (der, key)
        return key

    def _current_key(self) -> tuple[KeyKind | None, int]:
        spec = self._ef
        if spec is None or self._app is None:
            return None, SW.NO_CURRENT_EF
        if spec.kind is not EfKind.KEY or spec.key is None:
            return None, SW.INCOMPATIBLE_FILE_STRUCTURE
        return spec.key, SW.OK

    def _generate_key_pair(self, cmd: CommandApdu) -> Response:
        if cmd.p1 not in (0x80, 0x81) or cmd.p2 != 0x00:
            return b"", SW.WRONG_P1P2
        if cmd.data:
            return b"", SW.WRONG_LENGTH
        kind, sw = self._current_key()
        if kind is None:
            return b"", sw
        if cmd.p1 == 0x81:
            key = self._private_key(kind)
            if key is None:
                return b"", SW.REFERENCED_DATA_NOT_FOUND
            return public_key_template(key.public_key()), SW.OK
        if not self._issuer:
            return b"", SW.SECURITY_STATUS_NOT_SATISFIED
        new_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        der = new_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())

        def store(img: ChipImage) -> None:
            img.keys[kind] = der
            # A new key makes the old certificate meaningless: it goes with the old key.
            img.files.pop((Application.JPKI, kind.certificate_fid), None)

        if not self._commit(store):
            return b"", SW.MEMORY_FAILURE
        self._keys[kind] = (der, new_key)
        return public_key_template(new_key.public_key()), SW.OK

    def _compute_signature(self, cmd: CommandApdu) -> Response:
        if cmd.p1 != 0x00 or cmd.p2 != 0x80:
            return b"", SW.WRONG_P1P2
        if not 1 <= len(cmd.data) <= MAX_SIGN_INPUT:
            return b"", SW.WRONG_LENGTH
        kind, sw = self._current_key()
        if kind is None:
            return b"", sw
        if kind.pin not in self._verified:
            return b"", SW.SECURITY_STATUS_NOT_SATISFIED
        key = self._private_key(kind)
        if key is None:
            return b"", SW.REFERENCED_DATA_NOT_FOUND
        return key.sign(cmd.data, padding.PKCS1v15(), NoDigestInfo()), SW.OK


_INTERINDUSTRY: dict[int, Callable[[Chip, CommandApdu], Response]] = {
    0xA4: Chip._select,
    0xB0: Chip._read_binary,
    0xB2: Chip._read_record,
    0x20: Chip._verify,
    0x24: Chip._change_reference_data,
    0x2C: Chip._reset_retry_counter,
    0x84: Chip._get_challenge,
    0x82: Chip._external_authenticate,
    0xD6: Chip._update_binary,
    0x0E: Chip._erase_binary,
    0x47: Chip._generate_key_pair,
}
_PROPRIETARY: dict[int, Callable[[Chip, CommandApdu], Response]] = {
    0x2A: Chip._compute_signature,
}
