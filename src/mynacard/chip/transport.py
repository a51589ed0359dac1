"""How APDUs reach a card: in process, or through PC/SC (pyscard) to any reader — a real one, or vpcd.

A :class:`Transport` moves one command APDU to the card and brings its response back; it knows nothing of
what the bytes mean. The same :class:`~mynacard.chip.client.CardClient` runs over every transport, so the
code that talks to the emulator is the code that talks to a real card in a real reader.

The vpcd connection, which makes pcscd show an emulated card as a reader to every program on the machine,
lives in :mod:`mynacard.chip.vpcd`; on the client side it is just another PC/SC reader.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Protocol, Self

from mynacard.chip.emulator import Chip
from mynacard.errors import DomainError

__all__ = ["CardTransportError", "InProcessTransport", "PcscTransport", "Transport", "pcsc_readers"]


class CardTransportError(DomainError):
    """The card could not be reached: no reader, no card, card removed, PC/SC not running."""


class Transport(Protocol):
    """One connection to one card."""

    @property
    def name(self) -> str:
        """Where the card is (for messages)."""
        ...

    @property
    def supports_extended(self) -> bool:
        """Whether extended-length APDUs get through (responses beyond 256 bytes in one exchange)."""
        ...

    def transmit(self, apdu: bytes) -> bytes:
        """Send a command APDU, return the response APDU (data + SW1 SW2)."""
        ...

    def reset(self) -> None:
        """Reset the card (its volatile state: selected application, verified PINs)."""
        ...

    def close(self) -> None: ...


class InProcessTransport:
    """The emulated chip in this process: each APDU is a method call."""

    def __init__(self, chip: Chip) -> None:
        self.chip = chip
        chip.power_on()

    @property
    def name(self) -> str:
        return f"in-process chip {self.chip.image.serial}"

    @property
    def supports_extended(self) -> bool:
        return True

    def transmit(self, apdu: bytes) -> bytes:
        return self.chip.transmit(apdu)

    def reset(self) -> None:
        self.chip.reset()

    def close(self) -> None:
        self.chip.power_off()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _scard() -> Any:
    try:
        from smartcard import scard
    except ImportError as exc:  # pragma: no cover - pyscard is a dependency; this is for broken installs
        raise CardTransportError("pyscard is not installed; PC/SC is unavailable") from exc
    return scard


def _check(scard: Any, result: int, what: str) -> None:
    if result != scard.SCARD_S_SUCCESS:
        raise CardTransportError(f"PC/SC: {what} failed: {scard.SCardGetErrorMessage(result)}")


def pcsc_readers() -> list[str]:
    """Names of the PC/SC readers pcscd knows (empty when none; error when pcscd is not running)."""
    scard = _scard()
    result, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    _check(scard, result, "connecting to pcscd")
    try:
        result, readers = scard.SCardListReaders(context, [])
        if result == scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        _check(scard, result, "listing readers")
        return list(readers)
    finally:
        scard.SCardReleaseContext(context)


class PcscTransport:
    """A card in a PC/SC reader, through pcscd and pyscard.

    ``reader`` is a reader name or a part of one (the first reader whose name contains it); None takes the
    first reader with a card. Waits up to ``wait`` seconds for a card to be present.
    """

    def __init__(self, reader: str | None = None, *, wait: float = 5.0, extended: bool = True) -> None:
        self._scard = scard = _scard()
        result, self._context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        _check(scard, result, "connecting to pcscd")
        self._card: Any = None
        self._extended = extended
        try:
            self._reader = self._find_reader(reader, wait)
            result, self._card, self._protocol = scard.SCardConnect(
                self._context, self._reader, scard.SCARD_SHARE_SHARED,
                scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
            _check(scard, result, f"connecting to the card in {self._reader!r}")
        except BaseException:
            self.close()
            raise

    def _find_reader(self, wanted: str | None, wait: float) -> str:
        scard = self._scard
        deadline = time.monotonic() + wait
        while True:
            result, readers = scard.SCardListReaders(self._context, [])
            names = list(readers) if result == scard.SCARD_S_SUCCESS else []
            candidates = [r for r in names if wanted is None or wanted in r]
            if candidates:
                states = [(r, scard.SCARD_STATE_UNAWARE) for r in candidates]
                result, states = scard.SCardGetStatusChange(self._context, 0, states)
                if result == scard.SCARD_S_SUCCESS:
                    present = [r for r, state, _ in states if state & scard.SCARD_STATE_PRESENT]
                    if present:
                        return str(present[0])
            if time.monotonic() >= deadline:
                if not candidates:
                    what = f"no reader matching {wanted!r}" if wanted else "no PC/SC reader"
                    raise CardTransportError(f"{what} (readers: {', '.join(names) or 'none'})")
                raise CardTransportError(f"no card in {', '.join(candidates)}")
            time.sleep(0.1)

    @property
    def name(self) -> str:
        return f"PC/SC reader {self._reader!r}"

    @property
    def reader(self) -> str:
        return self._reader

    @property
    def supports_extended(self) -> bool:
        return self._extended

    def transmit(self, apdu: bytes) -> bytes:
        if self._card is None:
            raise CardTransportError("the card connection is closed")
        result, response = self._scard.SCardTransmit(self._card, self._protocol, list(apdu))
        _check(self._scard, result, "transmitting an APDU")
        return bytes(response)

    def reset(self) -> None:
        scard = self._scard
        result, self._protocol = scard.SCardReconnect(self._card, scard.SCARD_SHARE_SHARED,
                                                      scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
                                                      scard.SCARD_RESET_CARD)
        _check(scard, result, "resetting the card")

    def close(self) -> None:
        scard = self._scard
        if self._card is not None:
            # Reset on the way out, so that no verified PIN outlives this connection.
            scard.SCardDisconnect(self._card, scard.SCARD_RESET_CARD)
            self._card = None
        if self._context is not None:
            scard.SCardReleaseContext(self._context)
            self._context = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
