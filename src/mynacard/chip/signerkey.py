"""The installation's card-info signer (券面事項署名鍵): one RSA-2048 key kept under ``$MYNACARD_HOME/keys``.

The signer signs the card-info input support data, the card-face data and endorsements (追記) of every card
the installation makes, so it must outlive a process: a card made today is endorsed years later with the
same key, and clients check its signature against the CV certificate in EF 0004. The key is generated once,
sealed with the data key (AES-GCM) and written atomically with mode 0600, like the other generated keys
(:mod:`mynacard.config`); production would keep it in the issuer's HSM.
"""

from __future__ import annotations

import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mynacard.chip.cardinfo import CardInfoSigner
from mynacard.config import Settings
from mynacard.private_files import write_private
from mynacard.sealing import Sealer

__all__ = ["card_info_signer"]

_CONTEXT = b"mynacard:card-info-signer"
_CACHE: dict[tuple[Path, bytes], CardInfoSigner] = {}
_LOCK = threading.Lock()


def _path(home: Path) -> Path:
    return home / "keys" / "card-info-signer"


def _load(path: Path, sealer: Sealer) -> CardInfoSigner:
    key = serialization.load_der_private_key(sealer.open(path.read_bytes(), _CONTEXT), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the card-info signer key is RSA-2048")
    return CardInfoSigner(key)


def card_info_signer(settings: Settings) -> CardInfoSigner:
    """The signer of this installation, generated (and sealed) on first use."""
    cache_key = (settings.home, settings.data_key)
    with _LOCK:
        if cache_key in _CACHE:
            return _CACHE[cache_key]
        sealer = Sealer(settings.data_key)
        path = _path(settings.home)
        if not path.exists():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            path.parent.mkdir(parents=True, exist_ok=True)
            # first writer wins across processes; the others load its key
            write_private(path, sealer.seal(der, _CONTEXT), replace=False)
        signer = _load(path, sealer)
        _CACHE[cache_key] = signer
        return signer
