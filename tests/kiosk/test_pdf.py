"""The certificate PDF: validated by poppler's pdfsig (NSS trusting the document-signing root) and by pyHanko
against the municipality's chain; one changed byte fails both; fonts embedded; the QR code opens a
verification page with the same content; the anti-forgery patterns do what they claim on a rendering."""

from __future__ import annotations

import io
import random
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mynacard.bootstrap import build_context
from mynacard.context import Context
from mynacard.kiosk import antiforgery, municipal, pdf, signing
from mynacard.kiosk.centre import Centre, LocalGateway
from mynacard.kiosk.model import DocumentKind, DocumentOptions
from mynacard.kiosk.terminal import KioskTerminal, LocalCentreClient, MemoryPrinter, VirtualReader
from mynacard.kiosk.testing import TestJpki
from mynacard.registry.model import Resident
from mynacard.web.app import create_app
from tests.conftest import ARTIFACTS, NOW, require
from tests.helpers import csrf
from tests.kiosk.conftest import VERIFY_BASE, seed_town

MM = 600 / 25.4  # pixels per millimetre at 600 dpi


@dataclass
class Issued:
    ctx: Context
    holder: Resident
    pdf: bytes
    document_id: str
    request_id: str
    roots: list[bytes]
    number: str


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, jpki_ca: TestJpki) -> Iterator[Issued]:
    """One resident record copy (whole household, relationship, domicile and individual number)."""
    folder = tmp_path_factory.mktemp("pdf")
    shutil.copy(sqlite_template, folder / "db.sqlite")
    ctx = build_context(home=folder, database_url=f"sqlite:///{folder / 'db.sqlite'}")
    town = seed_town(ctx, 30)
    holder = town.adult(household_size=3)
    jpki = TestJpki(NOW, ca_cert=jpki_ca.ca_cert, ca_key=jpki_ca.ca_key)
    jpki.clock = lambda: NOW
    centre = Centre(ctx, jpki.authenticator(), jpki, LocalGateway(ctx), VERIFY_BASE)
    reader, printer = VirtualReader(jpki.issue_card(holder.id, NOW)), MemoryPrinter()
    terminal = KioskTerminal("kiosk-pdf", LocalCentreClient(centre, "kiosk-pdf", lambda: NOW), reader, printer)
    session = terminal.start()
    menu = terminal.enter_pin(session, "1234")
    options = DocumentOptions(DocumentKind.RESIDENT_RECORD, tuple(m.resident_id for m in menu.household),
                              include_relationship=True, include_domicile=True, include_individual_number=True)
    result = terminal.order_and_print(session, options, 200)
    data = printer.jobs[session.request_id][0]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "kiosk-juminhyo.pdf").write_bytes(data)
    from mynacard.registry import service as registry
    from tests.helpers import SYSTEM

    number = registry.individual_number_of(ctx, SYSTEM, holder.id, "test", NOW)
    yield Issued(ctx, holder, data, result.document_id, session.request_id, municipal.trust_roots_der(ctx), number)
    ctx.db.dispose()


def _pdfsig(path: Path, nssdir: Path) -> str:
    run = subprocess.run(["pdfsig", "-nssdir", f"sql:{nssdir}", str(path)], capture_output=True, text=True,
                         timeout=60)
    return run.stdout + run.stderr


@pytest.fixture(scope="module")
def nssdir(issued: Issued, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An NSS database that trusts the document-signing root (what a relying party configures once)."""
    require(shutil.which("pdfsig") is not None, "poppler-utils (pdfsig) not installed")
    require(shutil.which("certutil") is not None, "libnss3-tools (certutil) not installed")
    folder = tmp_path_factory.mktemp("nss")
    subprocess.run(["certutil", "-N", "-d", f"sql:{folder}", "--empty-password"], check=True, capture_output=True)
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    for i, der in enumerate(issued.roots):
        pem = folder / f"root{i}.pem"
        pem.write_bytes(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM))
        subprocess.run(["certutil", "-A", "-d", f"sql:{folder}", "-n", f"mynacard-doc-ca-{i}", "-t", "CT,C,C",
                        "-i", str(pem)], check=True, capture_output=True)
    return folder


def test_pdfsig_and_pyhanko_accept_the_signature(issued: Issued, nssdir: Path, tmp_path: Path) -> None:
    path = tmp_path / "cert.pdf"
    path.write_bytes(issued.pdf)
    out = _pdfsig(path, nssdir)
    assert "Signature Validation: Signature is Valid." in out, out
    assert "Certificate Validation: Certificate is Trusted." in out, out
    assert "Total document signed" in out and "ETSI.CAdES.detached" in out
    assert "東京都千代田区長" in out
    check = signing.validate_pdf(issued.pdf, issued.roots)
    assert check.ok, check
    assert "東京都千代田区長" in (check.signer or "")
    stranger = signing.new_authority(NOW)[0]
    from cryptography.hazmat.primitives import serialization

    untrusted = signing.validate_pdf(issued.pdf, [stranger.public_bytes(serialization.Encoding.DER)])
    assert untrusted.intact and untrusted.valid and not untrusted.trusted and not untrusted.ok


def _byte_range(data: bytes) -> tuple[int, int, int, int]:
    found = re.search(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", data)
    assert found is not None
    a, b, c, d = (int(x) for x in found.groups())
    return a, b, c, d


def test_one_changed_byte_fails_both_validators(issued: Issued, nssdir: Path, tmp_path: Path) -> None:
    data = issued.pdf
    a, b, c, d = _byte_range(data)
    assert a == 0 and c + d == len(data), "the signature covers the whole file"
    rng = random.Random(7)
    signed = [rng.randrange(0, b) for _ in range(5)] + [rng.randrange(c, c + d) for _ in range(3)]
    hex_start = b + 1  # after '<'
    from asn1crypto import cms

    contents = bytes.fromhex(data[hex_start:c - 1].decode())
    real = len(cms.ContentInfo.load(contents, strict=False).dump())
    in_signature = [hex_start + 2 * (real - 200) + rng.randrange(0, 100)]  # inside the RSA signature value
    for pos in signed + in_signature:
        changed = bytearray(data)
        if pos >= hex_start and pos < c - 1:
            changed[pos] = ord("1") if changed[pos] != ord("1") else ord("2")
        else:
            changed[pos] ^= 0x01
        path = tmp_path / f"changed-{pos}.pdf"
        path.write_bytes(bytes(changed))
        out = _pdfsig(path, nssdir)
        assert "Signature is Valid" not in out, (pos, out)
        assert not signing.validate_pdf(bytes(changed), issued.roots).ok, pos
    appended = data + b"\n% appended after signing\n"
    check = signing.validate_pdf(appended, issued.roots)
    assert not check.whole_file and not check.ok


def test_fonts_are_the_embedded_ipaex_fonts(issued: Issued, tmp_path: Path) -> None:
    require(shutil.which("pdffonts") is not None, "poppler-utils (pdffonts) not installed")
    path = tmp_path / "cert.pdf"
    path.write_bytes(issued.pdf)
    lines = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout.splitlines()
    fonts = [line.split() for line in lines[2:] if line.strip()]
    names = {f[0].split("+")[-1] for f in fonts}
    assert names == {"IPAexMincho", "IPAexGothic"}, lines
    assert all(f[-5] == "yes" for f in fonts), lines  # the 'emb' column


def _page_text(data: bytes) -> str:
    return subprocess.run(["pdftotext", "-layout", "-", "-"], input=data, capture_output=True,
                          check=True).stdout.decode()


def test_the_page_carries_the_request_the_people_and_the_number(issued: Issued) -> None:
    text = _page_text(issued.pdf)
    facts = pdf.read_facts(issued.pdf)
    assert facts.request_id == issued.request_id and facts.document_id == issued.document_id
    assert issued.request_id in text and issued.document_id in text
    assert "住民票の写し" in text and issued.holder.facts.given_name in text
    n = issued.number
    assert f"{n[:4]} {n[4:8]} {n[8:]}" in text
    assert "令和8年4月6日" in text.replace("８", "8").replace("４", "4").replace("６", "6")


def _render(data: bytes, dpi: int, x_mm: float, y_from_top_mm: float, w_mm: float, h_mm: float) -> np.ndarray:
    scale = dpi / 25.4
    out = subprocess.run(["pdftoppm", "-gray", "-r", str(dpi), "-f", "1", "-l", "1", "-x", str(round(x_mm * scale)),
                          "-y", str(round(y_from_top_mm * scale)), "-W", str(round(w_mm * scale)),
                          "-H", str(round(h_mm * scale)), "-"], input=data, capture_output=True, check=True).stdout
    return np.asarray(Image.open(io.BytesIO(out)), dtype=np.float64) / 255.0


def test_the_qr_code_opens_the_verification_page_with_the_same_content(issued: Issued) -> None:
    zxingcpp = pytest.importorskip("zxingcpp")
    qx, qy = pdf.LAYOUT["qr_origin_mm"]
    size = pdf.LAYOUT["qr_size_mm"][0]
    image = _render(issued.pdf, 300, qx - 2, 297 - qy - size - 2, size + 4, size + 4)
    codes = zxingcpp.read_barcodes(Image.fromarray((image * 255).astype(np.uint8)))
    assert len(codes) == 1
    url = codes[0].text
    assert url == f"{VERIFY_BASE}/kiosk/verify/{issued.document_id}"
    client = TestClient(create_app(issued.ctx))
    client.app.state.ctx.clock = lambda: NOW  # type: ignore[attr-defined]
    page = client.get(url.removeprefix(VERIFY_BASE))
    assert page.status_code == 200 and 'data-state="printed"' in page.text
    view = client.get(url.removeprefix(VERIFY_BASE), headers={"accept": "application/json"}).json()
    assert view["valid"] and view["request_id"] == issued.request_id
    text = re.sub(r"\s", "", _page_text(issued.pdf))  # pdftotext drops the full-width spaces
    for section in view["content"]["sections"]:
        for f in section["fields"]:
            if f["secret"]:
                assert re.fullmatch(r"●●●● ●●●● \d{4}", f["value"]) and f["value"][-4:] in text
                assert not re.search(r"\b\d{4} \d{4} \d{4}\b", page.text)  # never a whole number
            else:
                assert re.sub(r"\s", "", f["value"]) in text, f
                assert f["value"] in page.text
    assert issued.number not in page.text
    token = {"csrf": csrf(client, "/kiosk/verify")}
    upload = client.post("/kiosk/verify", data=token, files={"file": ("c.pdf", issued.pdf, "application/pdf")})
    assert 'id="signature" data-ok="1"' in upload.text
    tampered = bytearray(issued.pdf)
    tampered[2000] ^= 1
    bad = client.post("/kiosk/verify", data=token, files={"file": ("c.pdf", bytes(tampered), "application/pdf")})
    assert 'data-ok="0"' in bad.text


def _blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    radius = int(3 * sigma_px) + 1
    xs = np.arange(-radius, radius + 1)
    kernel = np.exp(-(xs ** 2) / (2 * sigma_px ** 2))
    kernel /= kernel.sum()
    padded = np.pad(image, radius, mode="edge")
    rows = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="valid"), 1, padded)
    return np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="valid"), 0, rows)


def test_the_background_reads_copy_when_copied_but_not_to_the_eye(issued: Issued) -> None:
    spec = antiforgery.COPY_VOID_TILE
    # the left margin (0–14 mm) carries nothing but the background; one tile height of it, tile row 4
    y0_mm = 4 * spec.tile_h
    strip = _render(issued.pdf, 600, 0, 297 - y0_mm - spec.tile_h, 14, spec.tile_h)
    darkness = 1 - strip
    mask = np.array(antiforgery.copy_void_mask(), dtype=bool)
    cell_px = spec.coarse_pitch * MM
    rows, cols = np.indices(darkness.shape)
    cell = mask[np.minimum((rows / cell_px).astype(int), mask.shape[0] - 1),
                np.minimum((cols / cell_px).astype(int), mask.shape[1] - 1)]
    assert 0.1 < cell.mean() < 0.9, "the strip crosses the hidden word"
    eye = _blur(darkness, 0.6 * MM)
    word, ground = eye[cell].mean(), eye[~cell].mean()
    assert abs(word - ground) / ground < 0.12, (word, ground)  # an even tint
    copier = _blur(darkness, 0.12 * MM) > 0.22  # a copier's optics, then its black/white threshold
    kept_word, kept_ground = copier[cell].mean(), copier[~cell].mean()
    Image.fromarray(((1 - copier) * 255).astype(np.uint8)).save(ARTIFACTS / "kiosk-copy-void-as-copied.png")
    Image.fromarray((strip * 255).astype(np.uint8)).save(ARTIFACTS / "kiosk-copy-void-original.png")
    # the word's dots survive (most of their ink) while the background's vanish: 「複写」 appears
    assert kept_word > 0.05 and kept_ground < 0.005, (kept_word, kept_ground)


def test_the_latent_image_shows_only_through_a_line_filter(issued: Issued) -> None:
    lx, ly = pdf.LAYOUT["latent_origin_mm"]
    size = antiforgery.LATENT_SIZE
    box = _render(issued.pdf, 600, lx, 297 - ly - size, size, size)
    darkness = 1 - box
    block = int(MM)  # 1 mm blocks
    n = darkness.shape[0] // block
    dy = np.abs(np.diff(darkness, axis=0))[: n * block - 1, : n * block]
    dx = np.abs(np.diff(darkness, axis=1))[: n * block, : n * block - 1]
    ey = dy[: (n - 1) * block, : n * block].reshape(n - 1, block, n, block).mean(axis=(1, 3))
    ex = dx[: (n - 1) * block, : (n - 1) * block].reshape(n - 1, block, n - 1, block).mean(axis=(1, 3))
    score = (ey[:, : n - 1] - ex) / (ey[:, : n - 1] + ex + 1e-9)  # +1: horizontal lines, -1: vertical
    mask = np.array(antiforgery.latent_mask(), dtype=float)
    k = mask.shape[0] // n
    glyph = mask[: (n - 1) * k, : (n - 1) * k].reshape(n - 1, k, n - 1, k).mean(axis=(1, 3))
    inside, outside = score[glyph > 0.9], score[glyph < 0.1]
    assert inside.mean() > 0.5 and outside.mean() < -0.5, (inside.mean(), outside.mean())  # the filter sees 「証」
    eye = _blur(darkness, 0.6 * MM)
    margin = int(2 * MM)
    core = eye[margin:-margin, margin:-margin]
    assert core.std() / core.mean() < 0.12, core.std() / core.mean()  # the eye sees an even grey
