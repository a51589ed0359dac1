"""The chip image: everything a card keeps in its persistent memory (EEPROM), as one value.

Files, PIN values and retry counters, private keys and the issuer key live here; what the card forgets on
reset (the selected application, verified PINs) lives in the emulator. :mod:`mynacard.chip.cardfile`
seals an image into the card file. The encoding is canonical JSON (bytes in base64), versioned, and strictly
checked when read back. Pure: no I/O.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from mynacard.chip.model import FILE_SYSTEM, Application, EfKind, KeyKind, PinKind

__all__ = ["FORMAT_VERSION", "ChipImage", "PinState"]

FORMAT_VERSION = 1


@dataclass
class PinState:
    """One PIN in persistent memory."""

    value: bytes | None
    """The reference data, or None while the PIN has not been set (before the window sets it)."""
    tries_left: int
    """The retry counter; 0 means blocked (until the issuer resets it)."""


def common_record(serial: str) -> bytes:
    """Record 1 of SFI 1 in the common DF: a TLV whose value holds the manufacture number at [2:15]
    (jpki/myna ``unknown.rs``). The tag and the two leading bytes are **[uncertain]**; we use ``DF 01``
    and ``01``."""
    value = b"01" + serial.encode("ascii")
    return bytes((0xDF, 0x01, len(value))) + value


@dataclass
class ChipImage:
    """The persistent state of one card."""

    serial: str
    """製造番号 (manufacture number)."""
    issuer_key: bytes = field(repr=False)
    """The card's diversified issuer key (see :mod:`mynacard.chip.issuerkey`)."""
    files: dict[tuple[Application, int], bytes] = field(default_factory=dict, repr=False)
    """Contents of the data and record EFs; an absent entry is an empty EF."""
    pins: dict[PinKind, PinState] = field(default_factory=dict, repr=False)
    keys: dict[KeyKind, bytes] = field(default_factory=dict, repr=False)
    """Private keys (PKCS#8 DER), generated inside the card; never leave it through any command."""
    meta: dict[str, str] = field(default_factory=dict)
    """Facts the card-management system keeps with the card (municipality code, when personalised); not
    reachable by APDU."""

    @classmethod
    def blank(cls, serial: str, issuer_key: bytes) -> ChipImage:
        """A chip as the fab delivers it: file structure, issuer key, no keys, PINs not yet set."""
        if len(issuer_key) != 16:
            raise ValueError("the card's issuer key is 16 bytes")
        if len(serial) != 13 or not serial.isascii() or not serial.isalnum():
            raise ValueError("a manufacture number (製造番号) is 13 ASCII letters and digits")
        pins = {kind: PinState(None, kind.policy.max_tries) for kind in PinKind}
        image = cls(serial, issuer_key, {}, pins, {}, {})
        image.files[(Application.COMMON, 0x0001)] = common_record(serial)
        return image

    def file(self, app: Application, fid: int) -> bytes:
        return self.files.get((app, fid), b"")

    def copy(self) -> ChipImage:
        """A copy sharing no mutable state with this one."""
        return ChipImage(self.serial, self.issuer_key, dict(self.files),
                         {k: PinState(v.value, v.tries_left) for k, v in self.pins.items()},
                         dict(self.keys), dict(self.meta))

    def restore(self, other: ChipImage) -> None:
        """Become ``other`` (used to undo a change whose write to persistent memory failed)."""
        self.serial, self.issuer_key = other.serial, other.issuer_key
        self.files, self.pins = dict(other.files), {k: PinState(v.value, v.tries_left)
                                                    for k, v in other.pins.items()}
        self.keys, self.meta = dict(other.keys), dict(other.meta)

    # --- encoding -----------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "serial": self.serial,
            "issuer_key": _b64(self.issuer_key),
            "files": sorted([app.name, f"{fid:04X}", _b64(data)]
                            for (app, fid), data in self.files.items()),
            "pins": {kind.value: {"value": None if st.value is None else _b64(st.value),
                                  "tries_left": st.tries_left} for kind, st in sorted(self.pins.items())},
            "keys": {kind.value: _b64(der) for kind, der in sorted(self.keys.items())},
            "meta": dict(sorted(self.meta.items())),
        }
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ChipImage:
        """Decode and check an image; raises ``ValueError`` on anything unexpected."""
        try:
            doc = json.loads(raw)
            if doc.get("format") != FORMAT_VERSION:
                raise ValueError(f"unsupported chip image format {doc.get('format')!r}")
            image = cls(str(doc["serial"]), _unb64(doc["issuer_key"]))
            for app_name, fid_hex, data in doc["files"]:
                app, fid = Application[app_name], int(fid_hex, 16)
                spec = FILE_SYSTEM[app].get(fid)
                if spec is None or spec.kind not in (EfKind.DATA, EfKind.RECORDS):
                    raise ValueError(f"no data EF {fid_hex} in {app_name}")
                content = _unb64(data)
                if len(content) > spec.max_size:
                    raise ValueError(f"EF {fid_hex} in {app_name} is larger than its capacity")
                image.files[(app, fid)] = content
            for kind_value, st in doc["pins"].items():
                kind = PinKind(kind_value)
                tries = int(st["tries_left"])
                if not 0 <= tries <= kind.policy.max_tries:
                    raise ValueError(f"retry counter of {kind_value} out of range")
                image.pins[kind] = PinState(None if st["value"] is None else _unb64(st["value"]), tries)
            if set(image.pins) != set(PinKind):
                raise ValueError("the image lacks PINs")
            image.keys = {KeyKind(k): _unb64(v) for k, v in doc["keys"].items()}
            image.meta = {str(k): str(v) for k, v in doc["meta"].items()}
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"not a chip image ({type(exc).__name__})") from None
        if len(image.issuer_key) != 16:
            raise ValueError("the card's issuer key is 16 bytes")
        return image


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError("base64 text expected")
    return base64.b64decode(text, validate=True)
