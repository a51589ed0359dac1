"""Fixtures for the JPKI tests (builders are in :mod:`tests.jpki.support`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mynacard.context import Context
from mynacard.jpki import keys
from tests.jpki.support import CA_KEYS, Town


@pytest.fixture
def town(ctx: Context) -> Town:
    return Town(ctx)


@pytest.fixture
def sqlite_town(sqlite_ctx: Context) -> Town:
    return Town(sqlite_ctx)


@pytest.fixture(autouse=True)
def _jpki_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No PKCS#11 unless a test asks for it; no background scheduler in test apps."""
    for name in ("MYNACARD_JPKI_PKCS11_MODULE", "MYNACARD_JPKI_PKCS11_TOKEN", "MYNACARD_JPKI_PKCS11_PIN",
                 "MYNACARD_JPKI_PKCS11_PIN_FILE", "MYNACARD_JPKI_BASE_URL", "MYNACARD_JPKI_MTLS_HEADER",
                 "MYNACARD_JPKI_MTLS_PROXIES", "MYNACARD_JPKI_CHALLENGES_MAX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MYNACARD_JPKI_SCHEDULER", "0")
    monkeypatch.setattr(keys, "generate_software_key", lambda: keys.SoftwareSigner(CA_KEYS.take()))
    yield
