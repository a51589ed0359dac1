"""``mynacard kiosk …`` as a user runs it: set up a town, make a chip card, issue a certificate from the command
line (authenticated through JPKI, as in production)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from mynacard import installation
from mynacard.bootstrap import build_context
from mynacard.context import Context
from mynacard.kiosk import demo, pdf, signing
from mynacard.kiosk.chip_card import make_resident_card
from mynacard.kiosk.demo_guard import DemoOnly
from mynacard.kiosk.service import clock_from_env
from mynacard.registry import service as registry
from tests.conftest import NOW
from tests.helpers import CHIYODA, SYSTEM, make_residents


def test_issue_a_resident_record_copy_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "MYNACARD_HOME": str(home), "MYNACARD_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}",
           "MYNACARD_KIOSK_CLOCK": NOW.isoformat()}
    env.pop("MYNACARD_KIOSK_TEST_JPKI", None)
    cli = [sys.executable, "-m", "mynacard.cli"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=300)

    assert run("db", "upgrade").returncode == 0
    ctx = build_context(home=home, database_url=env["MYNACARD_DATABASE_URL"])
    with ctx.db.begin() as conn:  # kiosk setup's records and make-card are a demonstration's (mynacard demo)
        installation.mark_demo(conn, NOW)
    assert run("seed", "-m", "131016", "-n", "40").returncode == 0
    setup = run("kiosk", "setup", "-m", "131016", "--fee", "juminhyo=150")
    assert setup.returncode == 0, setup.stderr
    assert "juminhyo 150円" in setup.stdout
    with ctx.db.connect() as conn:
        ids = registry.resident_ids_in(conn, "131016")
    adult = next(r for r in registry.residents_by_id(ctx, SYSTEM, ids).values() if r.age_on(NOW.date()) >= 20)
    made = run("kiosk", "make-card", "--resident-id", str(adult.id), "--pin", "4321")
    assert made.returncode == 0, made.stderr
    card = home / "chips" / f"K{adult.id:010d}01.card"  # a chip card file, certificates from JPKI
    assert card.exists(), made.stdout
    out = tmp_path / "juminhyo.pdf"
    args = ["kiosk", "issue", "--card", str(card), "--document", "juminhyo", "--out", str(out)]
    wrong = run(*args, "--pin", "0000")
    assert wrong.returncode == 2 and "wrong_pin" in wrong.stdout and not out.exists()
    issued = run(*args, "--pin", "4321")
    assert issued.returncode == 0, issued.stdout + issued.stderr
    assert f"{adult.facts.family_name}　{adult.facts.given_name}" in issued.stdout
    facts = pdf.read_facts(out.read_bytes())
    assert facts.document_id in issued.stdout
    roots = tmp_path / "roots.pem"
    assert run("kiosk", "ca-cert", "--out", str(roots)).returncode == 0
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    ders = [c.public_bytes(serialization.Encoding.DER) for c in x509.load_pem_x509_certificates(roots.read_bytes())]
    assert signing.validate_pdf(out.read_bytes(), ders).ok
    audit = run("kiosk", "audit")
    assert audit.returncode == 0 and "every chain is whole" in audit.stdout
    ctx.db.dispose()


def _said(result: object) -> str:
    """What a command printed, its lines joined (rich wraps them)."""
    return " ".join(str(getattr(result, "output", "")).split())


def _rows(ctx: Context) -> dict[str, int]:
    with ctx.db.connect() as conn:
        return {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
                for t in ("kiosk_municipal_settings", "kiosk_offerings", "kiosk_signing_keys", "kiosk_family_registers",
                          "kiosk_seal_registrations", "kiosk_tax_records", "jpki_certificates", "jpki_authorities")}


def test_a_real_installation_refuses_the_demonstrations_records_cards_and_clock(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """Security review: ``kiosk setup`` seeded invented family registers, seals and tax records for a town's
    real residents unless ``--no-records``; ``kiosk make-card`` issued good JPKI certificates for any resident
    with no application, identity check or window step, PIN 1234; ``MYNACARD_KIOSK_CLOCK`` shifted the
    production kiosk's clock. Outside a demo installation each is refused (exit 2, the reason, nothing
    written) — not by a default: by the database, whatever the options and the environment say."""
    from mynacard.kiosk.cli import app

    ids = make_residents(ctx, 12, NOW, CHIYODA)
    monkeypatch.setenv("MYNACARD_DATABASE_URL", ctx.db.url.render_as_string(hide_password=False))
    monkeypatch.delenv("MYNACARD_KIOSK_CLOCK", raising=False)
    home = ["--home", str(ctx.settings.home)]
    runner = CliRunner()
    before = _rows(ctx)
    refused = runner.invoke(app, ["setup", "-m", CHIYODA, *home])
    assert refused.exit_code == 2 and "not a demo installation" in _said(refused), refused.output
    assert "--no-records" in _said(refused) and _rows(ctx) == before
    card = runner.invoke(app, ["make-card", "--resident-id", str(ids[0]), *home])
    assert card.exit_code == 2 and "only in a demo installation" in _said(card), card.output
    assert _rows(ctx) == before and not (ctx.settings.home / "chips").exists()
    monkeypatch.setenv("MYNACARD_KIOSK_CLOCK", NOW.isoformat())
    clock = runner.invoke(app, ["setup", "-m", CHIYODA, "--no-records", *home])
    assert clock.exit_code == 2 and "MYNACARD_KIOSK_CLOCK" in _said(clock), clock.output
    assert _rows(ctx) == before
    # the service functions refuse on their own, whoever calls them
    with pytest.raises(DemoOnly):
        demo.seed_records(ctx, SYSTEM, CHIYODA, NOW)
    with pytest.raises(DemoOnly):
        make_resident_card(ctx, SYSTEM, ids[0], "1234", NOW)
    with pytest.raises(DemoOnly):
        clock_from_env(ctx)
    assert _rows(ctx) == before
    # what a real municipality does join with: offerings and a signing key, no invented records
    monkeypatch.delenv("MYNACARD_KIOSK_CLOCK")
    joined = runner.invoke(app, ["setup", "-m", CHIYODA, "--no-records", *home])
    assert joined.exit_code == 0, joined.output
    after = _rows(ctx)
    assert after["kiosk_municipal_settings"] == 1 and after["kiosk_family_registers"] == 0
    assert after["kiosk_seal_registrations"] == after["kiosk_tax_records"] == 0
    # in a demo installation the same switches work
    with ctx.db.begin() as conn:
        installation.mark_demo(conn, NOW)
    monkeypatch.setenv("MYNACARD_KIOSK_CLOCK", NOW.isoformat())
    assert abs((clock_from_env(ctx)() - NOW).total_seconds()) < 60
    assert demo.seed_records(ctx, SYSTEM, CHIYODA, NOW)["registers"] > 0
