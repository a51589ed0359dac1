"""Keys at rest (security review, issue 22): one secret per purpose, generated keys announced, private files,
sealed photos.

The data key seals data at rest, the session key signs sessions and CSRF tokens, the issuer key is the chip
issuer's master key: changing one leaves what the others protect alone. Keys that are not in the environment
are generated once into ``$MYNACARD_HOME/keys`` with a WARNING, and ``mynacard status`` names them. The
database, the keys and the photos are 0600 in 0700 folders; photos are sealed with AES-GCM, and photos written
before that (plain JPEG) still read.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from typer.testing import CliRunner

from mynacard.accounts.login import attempt_login
from mynacard.accounts.service import create_account
from mynacard.accounts.sessions import resolve_session
from mynacard.bootstrap import build_context
from mynacard.cards.photo import PhotoDamaged, PhotoStore, check_photo
from mynacard.chip.issuerkey import IssuerMasterKey
from mynacard.config import load_settings
from mynacard.context import Context
from mynacard.migrate import upgrade
from mynacard.principal import Role
from mynacard.registry import service as registry
from mynacard.sealing import Sealer
from mynacard.sim.photos import face_photo
from mynacard.webkit.csrf import csrf_token
from tests.conftest import NOW
from tests.helpers import SYSTEM, apply_all, make_residents

KEYS = {"MYNACARD_NUMBER_SECRET": "number.key", "MYNACARD_DATA_KEY": "data.key",
        "MYNACARD_SESSION_KEY": "session.key", "MYNACARD_ISSUER_KEY": "issuer.key"}
SERIAL = "AB12345678901"
PASSWORD = "correct horse battery"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _old_issuer_master(data_key: bytes) -> bytes:
    """How the issuer master key used to be made: derived from the data key."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"mynacard:chip-issuer-master").derive(data_key)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(autouse=True)
def _no_keys_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for env in KEYS:
        monkeypatch.delenv(env, raising=False)
    monkeypatch.delenv("MYNACARD_DATABASE_URL", raising=False)
    old = os.umask(0o022)  # the usual umask, which made 0644 files of the database and the photos
    yield
    os.umask(old)


def _context(home: Path) -> Context:
    return build_context(home=home, database_url=f"sqlite:///{home / 'mynacard.db'}")


# --- one secret per purpose ------------------------------------------------------------------------------------

def test_each_key_is_a_secret_of_its_own(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    values = [settings.number_secret, settings.data_key, settings.session_key, settings.issuer_key]
    assert len(set(values)) == 4 and all(len(v) == 32 for v in values)
    for env, name in KEYS.items():
        assert base64.b64decode((tmp_path / "keys" / name).read_text()) == getattr(
            settings, {"MYNACARD_NUMBER_SECRET": "number_secret", "MYNACARD_DATA_KEY": "data_key",
                       "MYNACARD_SESSION_KEY": "session_key", "MYNACARD_ISSUER_KEY": "issuer_key"}[env])
    shown = repr(settings)
    assert not [v for v in values if repr(v) in shown or _b64(v) in shown]  # no secret in a log line
    # the same keys on the next run
    again = load_settings(home=tmp_path)
    assert (again.data_key, again.session_key, again.issuer_key) == (
        settings.data_key, settings.session_key, settings.issuer_key)


def test_the_issuer_key_is_not_derived_from_the_data_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(home=tmp_path)
    master = IssuerMasterKey.from_settings(settings)
    assert master.card_key(SERIAL) == IssuerMasterKey(settings.issuer_key).card_key(SERIAL)
    assert master.card_key(SERIAL) != IssuerMasterKey(_old_issuer_master(settings.data_key)).card_key(SERIAL)
    # another data key: the same chips' keys; another issuer key: other chips' keys
    monkeypatch.setenv("MYNACARD_DATA_KEY", _b64(os.urandom(32)))
    assert IssuerMasterKey.from_settings(load_settings(home=tmp_path)).card_key(SERIAL) == master.card_key(SERIAL)
    monkeypatch.setenv("MYNACARD_ISSUER_KEY", _b64(os.urandom(32)))
    assert IssuerMasterKey.from_settings(load_settings(home=tmp_path)).card_key(SERIAL) != master.card_key(SERIAL)


def test_a_home_with_chips_keeps_the_issuer_key_they_were_made_with(tmp_path: Path) -> None:
    """An installation from before the keys were separated: its chips answer the issuer key derived from the
    data key, so that is what its new issuer.key holds (a home without chips gets a random one, above)."""
    data_key = os.urandom(32)
    (tmp_path / "keys").mkdir(mode=0o700)
    (tmp_path / "keys" / "data.key").write_text(_b64(data_key))
    (tmp_path / "chips").mkdir()
    (tmp_path / "chips" / f"{SERIAL}.card").write_bytes(b"a chip made by the old version")
    settings = load_settings(home=tmp_path)
    assert settings.data_key == data_key
    assert settings.issuer_key == _old_issuer_master(data_key)
    assert base64.b64decode((tmp_path / "keys" / "issuer.key").read_text()) == settings.issuer_key
    assert settings.session_key != data_key


def _login(ctx: Context) -> str:
    create_account(ctx, "chiyoda-clerk", Role.CLERK, PASSWORD, NOW, municipality_code="131016")
    outcome = attempt_login(ctx, "chiyoda-clerk", PASSWORD, "test", NOW)
    assert outcome.token is not None, outcome
    return outcome.token


def test_a_new_session_key_ends_sessions_and_leaves_sealed_numbers(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data_key, session_key = _b64(os.urandom(32)), _b64(os.urandom(32))
    monkeypatch.setenv("MYNACARD_DATA_KEY", data_key)
    monkeypatch.setenv("MYNACARD_SESSION_KEY", session_key)
    first = _context(tmp_path)
    upgrade(first.db)
    (resident_id,) = make_residents(first, 1, NOW)
    number = registry.individual_number_of(first, SYSTEM, resident_id, "test", NOW)
    token = _login(first)
    later = NOW + timedelta(minutes=5)
    assert resolve_session(first, token, later) is not None
    first.db.dispose()

    monkeypatch.setenv("MYNACARD_SESSION_KEY", _b64(os.urandom(32)))
    rotated = _context(tmp_path)
    assert resolve_session(rotated, token, later) is None  # everyone logs in again
    assert registry.individual_number_of(rotated, SYSTEM, resident_id, "test", later) == number
    rotated.db.dispose()

    # the other way round: another data key does not touch the sessions (it would not open the numbers)
    monkeypatch.setenv("MYNACARD_SESSION_KEY", session_key)
    monkeypatch.setenv("MYNACARD_DATA_KEY", _b64(os.urandom(32)))
    other_data = _context(tmp_path)
    assert resolve_session(other_data, token, later) is not None
    other_data.db.dispose()


def _csrf(settings: Any) -> str:
    request: Any = SimpleNamespace(scope={"session": {"bid": "browser-1"}},
                                   app=SimpleNamespace(state=SimpleNamespace(ctx=SimpleNamespace(settings=settings))))
    return csrf_token(request)


def test_csrf_tokens_follow_the_session_key_not_the_data_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYNACARD_SESSION_KEY", _b64(os.urandom(32)))
    before = _csrf(load_settings(home=tmp_path))
    monkeypatch.setenv("MYNACARD_DATA_KEY", _b64(os.urandom(32)))
    assert _csrf(load_settings(home=tmp_path)) == before
    monkeypatch.setenv("MYNACARD_SESSION_KEY", _b64(os.urandom(32)))
    assert _csrf(load_settings(home=tmp_path)) != before


@pytest.mark.parametrize("env", ["MYNACARD_DATA_KEY", "MYNACARD_SESSION_KEY", "MYNACARD_ISSUER_KEY"])
@pytest.mark.parametrize(("value", "says"), [("not base64 at all!", "is not base64"),
                                             (_b64(bytes(range(16))), "must decode to 32 bytes, not 16")],
                         ids=["not-base64", "16-bytes"])
def test_a_key_in_the_environment_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str, value: str,
                                             says: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValueError, match=f"{env} {says}"):
        load_settings(home=tmp_path)
    assert not (tmp_path / "keys" / KEYS[env]).exists()


def test_a_key_from_the_environment_is_used_and_not_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = {env: os.urandom(32) for env in KEYS}
    for env, value in raw.items():
        monkeypatch.setenv(env, _b64(value))
    settings = load_settings(home=tmp_path)
    assert (settings.number_secret, settings.data_key, settings.session_key, settings.issuer_key) == tuple(
        raw.values())
    assert settings.keys_from_files == ()
    assert not (tmp_path / "keys").exists() or not any((tmp_path / "keys").iterdir())


# --- the warning and the status ------------------------------------------------------------------------------

def test_a_generated_key_is_announced_once(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYNACARD_DATA_KEY", _b64(os.urandom(32)))
    with caplog.at_level(logging.WARNING, logger="mynacard.config"):
        load_settings(home=tmp_path)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for env, name in KEYS.items():
        said = [m for m in warnings if m.startswith(f"{env} is not set")]
        if env == "MYNACARD_DATA_KEY":
            assert not said  # it came from the environment
            continue
        assert len(said) == 1, warnings
        assert str(tmp_path / "keys" / name) in said[0] and "secret store" in said[0] and env in said[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mynacard.config"):
        load_settings(home=tmp_path)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # generated once, said once


def test_status_names_the_keys_that_come_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mynacard.cli import app

    env = {"MYNACARD_HOME": str(tmp_path), "MYNACARD_DATABASE_URL": f"sqlite:///{tmp_path / 'mynacard.db'}",
           "COLUMNS": "300"}
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    shown = runner.invoke(app, ["status"], env={**env, "MYNACARD_SESSION_KEY": _b64(os.urandom(32))})
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "keys from files" in text and "secret store" in text
    for name in ("MYNACARD_NUMBER_SECRET", "MYNACARD_DATA_KEY", "MYNACARD_ISSUER_KEY"):
        assert name in text
    assert "MYNACARD_SESSION_KEY" not in text  # supplied by the environment
    everything = {**env, **{k: _b64(os.urandom(32)) for k in KEYS}}
    for k in ("MYNACARD_NUMBER_SECRET", "MYNACARD_DATA_KEY"):  # the data already stored needs these two
        everything[k] = (tmp_path / "keys" / KEYS[k]).read_text().strip()
    shown = runner.invoke(app, ["status"], env=everything)
    assert shown.exit_code == 0 and "keys: all from the environment" in shown.output, shown.output


# --- private files -----------------------------------------------------------------------------------------------

def test_a_fresh_home_keeps_its_files_to_its_owner(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    upgrade(ctx.db)
    apply_all(ctx, make_residents(ctx, 2, NOW), NOW)  # their photos are stored
    db = tmp_path / "mynacard.db"
    with ctx.db.connect() as conn:  # an open connection: the -wal and -shm files are there
        conn.exec_driver_sql("SELECT 1")
        journal = [p for p in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")) if p.exists()]
        assert journal, "WAL mode keeps a -wal file while a connection is open"
        assert {str(p): _mode(p) for p in [db, *journal]} == {str(p): 0o600 for p in [db, *journal]}
    ctx.db.dispose()
    assert _mode(tmp_path / "keys") == 0o700
    assert {p.name: _mode(p) for p in (tmp_path / "keys").iterdir()} == {name: 0o600 for name in KEYS.values()}
    photos = tmp_path / "photos"
    files = [p for p in photos.rglob("*") if p.is_file()]
    folders = [photos, *(p for p in photos.rglob("*") if p.is_dir())]
    assert files and {str(p): _mode(p) for p in files} == {str(p): 0o600 for p in files}
    assert {str(p): _mode(p) for p in folders} == {str(p): 0o700 for p in folders}


def test_an_older_homes_files_are_tightened(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir(mode=0o755)
    (tmp_path / "keys").chmod(0o755)
    (tmp_path / "keys" / "data.key").write_text(_b64(os.urandom(32)))
    (tmp_path / "keys" / "data.key").chmod(0o644)
    db = tmp_path / "mynacard.db"
    db.touch()
    db.chmod(0o644)
    ctx = _context(tmp_path)
    ctx.db.dispose()
    assert (_mode(tmp_path / "keys"), _mode(tmp_path / "keys" / "data.key"), _mode(db)) == (0o700, 0o600, 0o600)


# --- sealed photos -----------------------------------------------------------------------------------------------

def test_a_stored_photo_is_sealed_and_reads_back(sqlite_ctx: Context) -> None:
    ctx = sqlite_ctx
    (resident_id,) = make_residents(ctx, 1, NOW)
    apply_all(ctx, [resident_id], NOW)
    jpeg = face_photo(resident_id % 16)  # what tests.helpers.application_for sent
    sha = hashlib.sha256(jpeg).hexdigest()
    stored = (ctx.settings.photo_dir / sha[:2] / sha).read_bytes()
    assert jpeg not in stored and not stored.startswith(b"\xff\xd8")
    assert jpeg[100:132] not in stored  # not even a piece of it
    assert PhotoStore(ctx.settings.photo_dir, Sealer(ctx.settings.data_key)).get(sha) == jpeg


def test_a_sealed_photo_is_bound_to_its_key_and_its_name(tmp_path: Path) -> None:
    jpeg = face_photo(3)
    info = check_photo(jpeg)
    store = PhotoStore(tmp_path, Sealer(os.urandom(32)))
    store.put(info, jpeg)
    with pytest.raises(PhotoDamaged):
        PhotoStore(tmp_path, Sealer(os.urandom(32))).get(info.sha256)  # another installation's data key
    other = check_photo(face_photo(4))
    store.path(other.sha256).parent.mkdir(parents=True, exist_ok=True)
    store.path(other.sha256).write_bytes(store.path(info.sha256).read_bytes())  # a file moved to another name
    with pytest.raises(PhotoDamaged):
        store.get(other.sha256)
    sealed = bytearray(store.path(info.sha256).read_bytes())
    sealed[-1] ^= 1
    store.path(info.sha256).write_bytes(bytes(sealed))
    with pytest.raises(PhotoDamaged):
        store.get(info.sha256)
    with pytest.raises(ValueError, match="SHA-256"):
        store.path("../../etc/passwd")


def test_a_legacy_plaintext_photo_still_reads(tmp_path: Path) -> None:
    """A photo written by a version that did not seal them: plain JPEG bytes under its SHA-256."""
    jpeg = face_photo(5)
    info = check_photo(jpeg)
    store = PhotoStore(tmp_path, Sealer(os.urandom(32)))
    legacy = store.path(info.sha256)
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(jpeg)
    assert store.get(info.sha256) == jpeg
    store.put(info, jpeg)  # stored again: now sealed
    assert jpeg not in legacy.read_bytes() and store.get(info.sha256) == jpeg
    assert _mode(legacy) == 0o600
    other = check_photo(face_photo(6))
    store.path(other.sha256).parent.mkdir(parents=True, exist_ok=True)
    store.path(other.sha256).write_bytes(jpeg)  # plaintext under a name that is not its hash
    with pytest.raises(PhotoDamaged):
        store.get(other.sha256)
