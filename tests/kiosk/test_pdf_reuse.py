"""What a certificate PDF shares with every other one (the background, the latent image, the seal, the fonts'
subsets of the fixed text) is made once and written as the same bytes, and only that; two threads rendering at
once give the documents one thread gives; read_facts reads the signed revision as pyHanko's full reader does."""

from __future__ import annotations

import hashlib
import io
import random
import re
import shutil
import subprocess
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from functools import cache

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader

from mynacard import fonts
from mynacard.kiosk import antiforgery, pdf, seal, signing
from mynacard.kiosk.model import DocumentContent, DocumentKind, Field, Section
from tests.conftest import NOW, require

DOCUMENT = "01HZZZZZZZZZZZZZZZZZZZZZZZ"
REQUEST = "0123456789abcdef0123456789abcdef"
HOLDER = "f" * 32


def _record(family: str, given: str, address: str) -> DocumentContent:
    """A resident record copy as documents.resident_record makes it (no database needed)."""
    name = f"{family}　{given}"
    return DocumentContent(
        kind=DocumentKind.RESIDENT_RECORD, title="住民票の写し", municipality_code="131016",
        municipality_name="東京都千代田区", issuer="東京都千代田区長", issued_on=date(2026, 4, 6),
        certification="この写しは、住民票の原本と相違ないことを証明する。",
        sections=(Section("世帯", (Field("住所", address),)),
                  Section(f"1　{name}", (Field("氏名", name), Field("生年月日", "昭和55年3月2日"), Field("性別", "男"),
                                        Field("住所", address)))),
        notes=("この写しは、世帯全員の住民票です。",))


ALICE = _record("山田", "太郎", "東京都千代田区丸の内1丁目1番1号")
BOB = _record("齋藤", "榮一", "東京都千代田区神田鍛冶町3丁目4番5号")


@cache
def _seal() -> bytes:
    return seal.on_paper_jpeg(seal.municipal_seal_png("千代田区"))


def _render(content: DocumentContent, document_id: str = DOCUMENT) -> bytes:
    return pdf.render(content, document_id=document_id, request_id=REQUEST, holder_ref=HOLDER,
                      verify_url=f"https://kiosk.example.jp/kiosk/verify/{document_id}", seal_jpeg=_seal(),
                      signature=signing.SignatureSlot("r", "l", NOW), creation="fixed")


def _streams(data: bytes) -> dict[str, bytes]:
    """The document's XObjects and font programs by name (as stored: still encoded)."""
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    page = reader.root["/Pages"]["/Kids"][0]
    xobjects, fonts_used = page["/Resources"]["/XObject"], page["/Resources"]["/Font"]
    found = {name: xobjects[name].encoded_data for name in xobjects}
    found["/Tile"] = xobjects["/FormXob.furniture"]["/Resources"]["/XObject"]["/Tile"].encoded_data
    for name in fonts_used:
        font = fonts_used[name]
        base = str(font["/BaseFont"])
        found[base] = font["/FontDescriptor"]["/FontFile2"].encoded_data
        found[base + "/ToUnicode"] = font["/ToUnicode"].encoded_data
    return found


def test_what_every_certificate_shares_is_the_same_bytes_and_the_rest_is_its_own() -> None:
    alice, bob = _streams(_render(ALICE)), _streams(_render(BOB, "01HYYYYYYYYYYYYYYYYYYYYYYY"))
    assert alice.keys() == bob.keys()
    fixed = ["/FormXob.furniture", "/Tile", "/FormXob.seal", "/AAAAAA+IPAexMincho", "/AAAAAA+IPAexMincho/ToUnicode"]
    for name in fixed:
        assert alice[name] == bob[name], name
    assert alice["/FormXob.seal"] == _seal()  # the JPEG as it is
    assert zlib.decompress(alice["/Tile"]).decode() == antiforgery.copy_void_operators()
    assert antiforgery.latent_operators() in zlib.decompress(alice["/FormXob.furniture"]).decode()
    # the residents' glyphs (names, addresses) are in subsets made for each document
    for name in ["/AAAAAB+IPAexMincho", "/AAAAAA+IPAexGothic"]:
        assert alice[name] != bob[name], name


def test_fixed_subsets_are_made_per_form_not_per_resident() -> None:
    fonts.fixed_subsets.cache_clear()
    for family, given in [("佐藤", "花子"), ("鈴木", "一郎"), ("髙橋", "美咲"), ("渡邊", "翔"), ("伊藤", "蓮")]:
        _render(_record(family, given, f"東京都千代田区{family}町1番地"))
    assert fonts.fixed_subsets.cache_info().misses == 1  # one set of fixed text for the form, whoever asks
    entry = DocumentContent(
        kind=DocumentKind.RESIDENT_RECORD_ENTRY, title="住民票記載事項証明書", municipality_code="131016",
        municipality_name="東京都千代田区", issuer="東京都千代田区長", issued_on=date(2026, 4, 6),
        certification="上記の事項は、住民基本台帳に記載されている事項と相違ないことを証明する。",
        sections=(Section("記載事項", (Field("氏名", "佐藤　花子"),)),))
    _render(entry)
    assert fonts.fixed_subsets.cache_info().misses == 2


def _text(data: bytes) -> str:
    """The page's text without white space (pdftotext breaks lines at the full-width spaces)."""
    require(shutil.which("pdftotext") is not None, "poppler-utils (pdftotext) not installed")
    text = subprocess.run(["pdftotext", "-", "-"], input=data, capture_output=True, check=True).stdout.decode()
    return re.sub(r"\s", "", text)


def test_text_from_fixed_and_per_document_subsets_reads_back() -> None:
    text = _text(_render(BOB))
    for value in ["住民票の写し", "齋藤榮一", "神田鍛冶町3丁目4番5号", "住民票の原本と相違ないことを証明する。",
                  "令和８年４月６日", DOCUMENT, REQUEST]:
        assert value in text, value


def test_a_long_certificate_has_the_furniture_and_the_qr_code_on_every_page() -> None:
    given_names = ["一郎", "二郎", "三郎", "四郎", "五郎", "六郎", "七郎", "八郎", "九郎"]
    members = tuple(Section(f"{i}　山田　{given}", (
        Field("氏名", f"山田　{given}"), Field("生年月日", "平成2年1月8日"), Field("続柄", "子"),
        Field("住所", "東京都千代田区丸の内1丁目1番1号"))) for i, given in enumerate(given_names, 1))
    content = DocumentContent(**{**ALICE.__dict__, "sections": members})
    data = _render(content)
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    pages = [reader.root["/Pages"]["/Kids"][i] for i in range(int(reader.root["/Pages"]["/Count"]))]
    assert len(pages) >= 2
    for page in pages:
        content_ops = page["/Contents"].data
        assert b"/FormXob.furniture Do" in content_ops and b" re\n" in content_ops  # background, QR path
    text = _text(data)
    assert "住民票の写し（続き）" in text and all(f"山田{g}" in text for g in ["一郎", "九郎"])
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    png = subprocess.run(["pdftoppm", "-png", "-r", "150", "-f", "2", "-l", "2", "-"], input=data,
                         capture_output=True, check=True).stdout
    codes = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert [c.text for c in codes] == [f"https://kiosk.example.jp/kiosk/verify/{DOCUMENT}"]


def test_two_threads_rendering_at_once_give_the_documents_one_thread_gives() -> None:
    people = [ALICE, BOB, _record("渡邊", "翔", "東京都千代田区永田町2丁目"),
              _record("髙橋", "美咲", "東京都千代田区麹町4番")]
    ids = [f"01HZZZZZZZZZZZZZZZZZZZZZZ{i}" for i in range(len(people))]
    alone = [_render(c, d) for c, d in zip(people, ids, strict=True)]
    for cold in (False, True):
        if cold:
            fonts.fixed_subsets.cache_clear()  # the fixed subsets are also built by threads racing for them
        jobs = list(zip(people, ids, strict=True)) * 6
        with ThreadPoolExecutor(max_workers=4) as pool:
            together = list(pool.map(lambda job: _render(*job), jobs))
        assert together == alone * 6


@cache
def _signer() -> signing.DocumentSigner:
    authority, authority_key = signing.new_authority(NOW)
    cert, key = signing.new_signing_certificate(authority, authority_key, "東京都千代田区", "131016", NOW)
    return signing.DocumentSigner(key, cert, [cert, authority])


def _full_reader_subject(data: bytes) -> str | None:
    try:
        return str(PdfFileReader(io.BytesIO(data), strict=False).trailer_view["/Info"]["/Subject"])
    except Exception:
        return None


def test_the_signing_certificate_is_embedded_once_even_when_the_chain_lists_it() -> None:
    signed = _signer().sign(_render(ALICE))
    contents = PdfFileReader(io.BytesIO(signed), strict=False).embedded_signatures[0].signed_data
    assert len(contents["certificates"]) == 1
    assert isinstance(contents, cms.SignedData)


def test_read_facts_reads_the_signed_revision_as_pyhankos_full_reader() -> None:
    unsigned = _render(ALICE)
    signed = _signer().sign(unsigned)
    expected = pdf.PdfFacts(REQUEST, DOCUMENT, HOLDER, ALICE.public_digest())
    assert pdf._last_revision_subject(signed) == _full_reader_subject(signed)  # the fast path answers
    assert pdf.read_facts(signed) == expected
    assert pdf.read_facts(unsigned) == expected
    for junk in [b"", b"%PDF-1.7\n", b"not a pdf at all", signed[:-200]]:
        with pytest.raises(ValueError):
            pdf.read_facts(junk)
    # every byte the fast path reads changed in turn (the information dictionary, the cross-reference table and
    # the trailer), and a sample of the rest: whenever the full reader finds a subject, read_facts finds the same
    # one; a changed subject is never taken for the original
    info_at = signed.rindex(b"obj", 0, signed.rindex(b"/Subject"))
    read = [*range(info_at - 8, signed.index(b"endobj", info_at) + 6), *range(signed.rindex(b"xref"), len(signed))]
    positions = sorted({*read, *random.Random(5).sample(range(len(signed)), 400)})
    subject_at = signed.rindex(b"/Subject")
    for pos in positions:
        changed = bytearray(signed)
        changed[pos] ^= 0x01
        data = bytes(changed)
        fast = pdf._last_revision_subject(data)
        full = _full_reader_subject(data)
        if fast is not None and full is not None:
            assert fast == full, pos
        try:
            facts = pdf.read_facts(data)
        except ValueError:
            continue
        if subject_at <= pos < signed.index(b"\n", subject_at):
            assert facts != expected, pos


def test_read_facts_reads_another_documents_facts_appended_after_signing() -> None:
    """An incremental update that swaps in another document's facts is what read_facts reports (so the checks
    compare those), and the signature no longer covers the whole file."""
    signed = _signer().sign(_render(ALICE))
    writer = IncrementalPdfFileWriter(io.BytesIO(signed), strict=False)
    info = writer.trailer["/Info"].get_object()
    other = str(info["/Subject"]).replace(DOCUMENT, "01HXXXXXXXXXXXXXXXXXXXXXXX")
    info[generic.pdf_name("/Subject")] = generic.pdf_string(other)
    writer.update_container(info)
    out = io.BytesIO()
    writer.write(out)
    swapped = out.getvalue()
    assert pdf.read_facts(swapped).document_id == "01HXXXXXXXXXXXXXXXXXXXXXXX"
    assert _full_reader_subject(swapped) == other
    check = signing.validate_pdf(swapped, [_signer().chain[-1].public_bytes(serialization.Encoding.DER)])
    assert check.intact and not check.whole_file and not check.ok


def test_a_signature_container_from_the_template_is_pyhankos_byte_for_byte() -> None:
    """After a certificate's first signature (pyHanko's), the next containers are its template with the digest
    and the signature value replaced; for the same digest that gives the bytes pyHanko gives, and a document
    signed so validates."""
    first = _signer()
    digests = [hashlib.sha256(bytes([n])).digest() for n in range(3)]
    made_first = first.container(digests[0])
    assert first._template is not None
    for digest in digests:
        from_template = first.container(digest)
        again = signing.DocumentSigner(first._key, first.certificate, first.chain)  # no template yet: pyHanko's
        assert again.container(digest) == from_template
    assert made_first == signing.DocumentSigner(first._key, first.certificate, first.chain).container(digests[0])
    for data in (first.sign(_render(ALICE)), first.sign(_render(BOB, "01HYYYYYYYYYYYYYYYYYYYYYYY"))):
        check = signing.validate_pdf(data, [first.chain[-1].public_bytes(serialization.Encoding.DER)])
        assert check.ok, check.problem
