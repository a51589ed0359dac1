"""``mynacard kiosk …`` as a user runs it: set up a town, make a chip card, issue a certificate from the command
line (authenticated through JPKI, as in production)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mynacard.bootstrap import build_context
from mynacard.kiosk import pdf, signing
from mynacard.registry import service as registry
from tests.conftest import NOW
from tests.helpers import SYSTEM


def test_issue_a_resident_record_copy_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "MYNACARD_HOME": str(home), "MYNACARD_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}",
           "MYNACARD_KIOSK_CLOCK": NOW.isoformat()}
    env.pop("MYNACARD_KIOSK_TEST_JPKI", None)
    cli = [sys.executable, "-m", "mynacard.cli"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=300)

    assert run("db", "upgrade").returncode == 0
    assert run("seed", "-m", "131016", "-n", "40").returncode == 0
    setup = run("kiosk", "setup", "-m", "131016", "--fee", "juminhyo=150")
    assert setup.returncode == 0, setup.stderr
    assert "juminhyo 150円" in setup.stdout
    ctx = build_context(home=home, database_url=env["MYNACARD_DATABASE_URL"])
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
