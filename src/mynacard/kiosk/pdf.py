"""The certificate as an A4 PDF in Japanese: embedded IPAex fonts, the copy-void background, the latent image,
the municipality's seal, a QR code to the verification page, and the request's ID in the signed content.

:func:`render` is a pure function of its inputs (no database, no clock): the same content, IDs and images
give the same page. Machine-readable facts for the checks downstream (the kiosk's print check, the centre's
release check) go in the document information dictionary, which the PAdES signature covers:
``/Subject`` is ``mynacard-kiosk/1 request=… document=… holder=… digest=…``.
"""

from __future__ import annotations

import hashlib
import io
import re
import zlib
from dataclasses import dataclass
from functools import cache

from reportlab import rl_config
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfdoc, pdfutils
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from mynacard import qr
from mynacard.fonts import Verbatim, compressed_stream, register_pdf_fonts, start_document
from mynacard.kiosk.antiforgery import COPY_VOID_TILE, LATENT_SIZE, copy_void_operators, latent_operators
from mynacard.kiosk.model import DocumentContent, kanji_digits, wareki
from mynacard.kiosk.signing import SignatureSlot

__all__ = ["LAYOUT", "PdfFacts", "read_facts", "render"]

rl_config.useA85 = 0  # binary streams: ASCII85 only makes the file bigger and slower to write

_W, _H = A4
_MARGIN = 16 * mm
_LABEL_W = 38 * mm
_LINE = 5.6 * mm
_BODY = 10.5
_SMALL = 7.5
_FOOTER_TOP = 44 * mm
_SUBJECT = re.compile(r"^mynacard-kiosk/1 request=([0-9a-f]{32}) document=([0-9A-Z]{26}) "
                      r"holder=([0-9a-f]{32}) digest=([0-9a-f]{64})$")


@dataclass(frozen=True)
class PdfFacts:
    """The machine-readable facts a certificate PDF carries in its signed information dictionary."""

    request_id: str
    document_id: str
    holder_ref: str
    """Keyed digest of the holder's resident record code (never the code itself)."""
    content_digest: str


LAYOUT: dict[str, tuple[float, float]] = {
    "latent_origin_mm": (210 - 16 - LATENT_SIZE, 14.0), "qr_origin_mm": (16.0, 14.0), "qr_size_mm": (24.0, 24.0)}
"""Where the latent image and the QR code sit on every page (for readers and tests)."""


_ONGOING = "（続き）"
_IMPRESSION = "登録印影"
_KIOSK = "コンビニ交付"
_NUMBER = "証明書番号"
_REQUEST = "交付要求ID"
_CHECK = "内容の確認　右記のQRコード、または次のURLで原本の内容を確認できます。"
_DIGEST = "内容要約値（SHA-256）"
_COPY_VOID = "この用紙には偽造防止の地紋があり、複写すると「複写」の文字が現れます。"
_LATENT = "偽造防止検出画像（潜像）"


def _fixed_text(content: DocumentContent) -> dict[str, str]:
    """The body text that every certificate of this municipality, kind and options carries on the day (labels,
    notes, the certifying sentence, the date; not the residents' data): its glyphs are laid out and compressed
    once (:func:`mynacard.fonts.start_document`). A label with a digit holds a resident's date (戸籍の附票)
    and is left out, so that the text stays the same for every resident. The headings (Gothic) have a dozen
    glyphs or so and are subset per document: a fixed subset of their own costs as much to write."""
    labels = "".join(f.label for section in content.sections for f in section.fields
                     if not any(ch.isdigit() for ch in f.label))
    return {"mincho": "".join((content.certification, *content.notes, content.issuer, content.municipality_name,
                               labels, _KIOSK, _NUMBER, _REQUEST, _CHECK, _DIGEST, _COPY_VOID, _LATENT,
                               kanji_digits(wareki(content.issued_on))))}


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    if stringWidth(text, font, size) <= width:  # most values fit on one line: one measurement, not one per prefix
        return [text]
    lines, current = [], ""
    for ch in text:
        if stringWidth(current + ch, font, size) > width and current:
            lines.append(current)
            current = ch
        else:
            current += ch
    lines.append(current)
    return lines


_DARK_RUN = re.compile(rb"\x01+")
"""A run of dark modules in a row of :func:`mynacard.qr.matrix` (bytes of 0 and 1)."""


def _qr_operators(url: str, x: float, y: float, size: float) -> str:
    """PDF operators for the QR code on a white square: one path of rectangles, one per run of dark modules
    in a row, written in module units under one transformation (short integers instead of a number each)."""
    matrix = qr.matrix(url)
    n = len(matrix)
    quiet = 2
    cell = size / (n + 2 * quiet)
    ops = [f"q 1 g {x:.3f} {y:.3f} {size:.3f} {size:.3f} re f 0 g "
           f"{cell:.5f} 0 0 {cell:.5f} {x + quiet * cell:.3f} {y + quiet * cell:.3f} cm"]
    for r, row in enumerate(matrix):
        top = n - 1 - r
        ops.extend(f"{run.start()} {top} {run.end() - run.start()} 1 re" for run in _DARK_RUN.finditer(row))
    ops.append("f Q")
    return "\n".join(ops)


class _FastFlate:
    """A ReportLab stream filter: Flate at zlib's fastest level, for the streams made anew for each document
    (the page's content, the document's own font subsets). Level 6 (ReportLab's) cost about 0.2 ms more per
    certificate for some 600 fewer bytes. What is the same for every document is compressed once, at level 9."""

    pdfname = "FlateDecode"

    def encode(self, data: str | bytes) -> bytes:
        return zlib.compress(data.encode("utf-8") if isinstance(data, str) else data, 1)


_FAST_FLATE = _FastFlate()


_FORM = {"Type": pdfdoc.PDFName("XObject"), "Subtype": pdfdoc.PDFName("Form"), "FormType": 1}


@cache
def _furniture() -> tuple[tuple[dict[str, object], bytes], tuple[dict[str, object], bytes]]:
    """The copy-void background and the latent image, the same on every page of every certificate, as two
    form XObjects (dictionary entries and compressed content) made once per process: one tile of the
    background, and the page's furniture, which repeats the tile over the page and paints the latent image
    in its box."""
    tw, th = COPY_VOID_TILE.tile_w * mm, COPY_VOID_TILE.tile_h * mm
    tile = {**_FORM, "BBox": pdfdoc.PDFArray([0, 0, tw, th]), "Resources": pdfdoc.PDFDictionary({})}
    ops = []
    ty = 0.0
    while ty < _H:
        tx = 0.0
        while tx < _W:
            ops.append(f"q 1 0 0 1 {tx:.4f} {ty:.4f} cm /Tile Do Q")
            tx += tw
        ty += th
    lx, ly = (v * mm for v in LAYOUT["latent_origin_mm"])
    ops.append(f"q 1 0 0 1 {lx:.4f} {ly:.4f} cm\n{latent_operators()}\nQ")
    page = {**_FORM, "BBox": pdfdoc.PDFArray([0, 0, _W, _H]), "Resources": pdfdoc.PDFDictionary(
        {"XObject": pdfdoc.PDFDictionary({"Tile": pdfdoc.PDFObjectReference(pdfdoc.xObjectName("copyvoid"))})})}
    return ((tile, zlib.compress(copy_void_operators().encode("ascii"), 9)),
            (page, zlib.compress("\n".join(ops).encode("ascii"), 9)))


def _jpeg_xobject(jpeg: bytes) -> pdfdoc.PDFStream:
    """An image XObject that embeds the JPEG as it is (DCTDecode). ReportLab's ``drawImage`` would first
    decode the whole picture to fingerprint it, which is most of the cost of placing a seal."""
    width, height, components = pdfutils.readJPEGInfo(io.BytesIO(jpeg))[:3]
    space = {1: "DeviceGray", 3: "DeviceRGB", 4: "DeviceCMYK"}[components]
    entries: dict[str, object] = {
        "Type": pdfdoc.PDFName("XObject"), "Subtype": pdfdoc.PDFName("Image"), "Width": width, "Height": height,
        "ColorSpace": pdfdoc.PDFName(space), "BitsPerComponent": 8, "Filter": pdfdoc.PDFName("DCTDecode")}
    if components == 4:  # Adobe's inverted CMYK JPEGs, as ReportLab does
        entries["Decode"] = pdfdoc.PDFArray([1, 0] * 4)
    return pdfdoc.PDFStream(pdfdoc.PDFDictionary(entries), jpeg, filters=[])


class _Page:
    """Paints one certificate; breaks pages as the sections need."""

    def __init__(self, canvas: Canvas, content: DocumentContent, fonts: dict[str, str], document_id: str,
                 request_id: str, verify_url: str, seal_jpeg: bytes, impression_jpeg: bytes | None) -> None:
        self.c = canvas
        self.content = content
        self.mincho = fonts["mincho"]
        self.gothic = fonts["gothic"]
        self.document_id = document_id
        self.request_id = request_id
        self.verify_url = verify_url
        self.digest = content.public_digest()
        self.page = 0
        self.y = 0.0
        doc = canvas._doc
        tile, furniture = _furniture()
        doc.addForm("copyvoid", compressed_stream(*tile))
        doc.addForm("furniture", compressed_stream(*furniture))
        doc.addForm("seal", _jpeg_xobject(seal_jpeg))
        self.impression = impression_jpeg is not None
        if impression_jpeg is not None:
            doc.addForm("impression", _jpeg_xobject(impression_jpeg))

    # --- page furniture -------------------------------------------------------------------------------

    def start_page(self) -> None:
        if self.page:
            self.c.showPage()
        self.page += 1
        c = self.c
        c.doForm("furniture")  # the background and the latent image
        c.setFillGray(0)
        c.setFont(self.gothic, 19)
        title = self.content.title if self.page == 1 else self.content.title + _ONGOING
        c.drawCentredString(_W / 2, _H - 24 * mm, title)
        c.setFont(self.mincho, 9)
        c.drawRightString(_W - _MARGIN, _H - 13 * mm, f"{self.content.municipality_name}　{_KIOSK}")
        c.drawString(_MARGIN, _H - 13 * mm, f"{_NUMBER}　{self.document_id}")
        self.y = _H - 36 * mm
        self._footer()

    def _footer(self) -> None:
        c = self.c
        qx, qy = (v * mm for v in LAYOUT["qr_origin_mm"])
        size = LAYOUT["qr_size_mm"][0] * mm
        c.addLiteral(_qr_operators(self.verify_url, qx, qy, size))
        lx, ly = (v * mm for v in LAYOUT["latent_origin_mm"])
        c.setFillGray(0)
        c.setFont(self.mincho, _SMALL)
        c.drawCentredString(lx + LATENT_SIZE * mm / 2, ly - 3.2 * mm, _LATENT)
        tx = qx + size + 4 * mm
        lines = [
            f"{_NUMBER}　{self.document_id}",
            f"{_REQUEST}　{self.request_id}",
            _CHECK,
            self.verify_url,
            f"{_DIGEST}　{self.digest[:32]}",
            _COPY_VOID,
        ]
        for i, line in enumerate(lines):
            c.drawString(tx, qy + size - 3 * mm - i * 3.6 * mm, line)
        c.drawCentredString(_W / 2, 7 * mm, f"{self.page}")

    def need(self, height: float) -> None:
        if self.y - height < _FOOTER_TOP:
            self.start_page()

    # --- body -------------------------------------------------------------------------------------------

    def sections(self) -> None:
        c = self.c
        value_w = _W - 2 * _MARGIN - _LABEL_W - 4 * mm
        for section in self.content.sections:
            rows = [(f.label, _wrap(f.shown(reveal=True), self.mincho, _BODY, value_w)) for f in section.fields]
            height = _LINE * (1 + sum(len(v) for _, v in rows)) + 3 * mm
            self.need(min(height, _LINE * 4))
            top = self.y
            c.setFillGray(0.88)
            c.rect(_MARGIN, top - _LINE, _W - 2 * _MARGIN, _LINE, stroke=0, fill=1)
            c.setFillGray(0)
            c.setFont(self.gothic, _BODY)
            c.drawString(_MARGIN + 2 * mm, top - _LINE + 1.6 * mm, section.heading)
            self.y = top - _LINE
            for label, lines in rows:
                self.need(_LINE * len(lines))
                c.setFont(self.mincho, _BODY)
                c.drawString(_MARGIN + 2 * mm, self.y - _LINE + 1.6 * mm, label)
                for line in lines:
                    c.drawString(_MARGIN + _LABEL_W, self.y - _LINE + 1.6 * mm, line)
                    self.y -= _LINE
                c.setLineWidth(0.3)
                c.setStrokeGray(0.55)
                c.line(_MARGIN, self.y, _W - _MARGIN, self.y)
            self.y -= 3 * mm

    def _image(self, name: str, x: float, y: float, size: float) -> None:
        c = self.c
        c.saveState()
        c.setBlendMode("Multiply")  # ink on paper: what is under the seal shows through
        c.translate(x, y)
        c.scale(size, size)
        c.doForm(name)
        c.restoreState()

    def impression_box(self) -> None:
        if not self.impression:
            return
        self.need(40 * mm)
        c = self.c
        c.setFont(self.gothic, _BODY)
        c.drawString(_MARGIN + 2 * mm, self.y - 5 * mm, _IMPRESSION)
        box = 30 * mm
        x = _MARGIN + _LABEL_W
        c.setStrokeGray(0.3)
        c.rect(x, self.y - box - 2 * mm, box, box, stroke=1, fill=0)
        self._image("impression", x + 2 * mm, self.y - box, box - 4 * mm)
        self.y -= box + 6 * mm

    def certification(self) -> None:
        c = self.c
        notes = [line for note in self.content.notes
                 for line in _wrap(note, self.mincho, 8.5, _W - 2 * _MARGIN)]
        self.need(len(notes) * 4.2 * mm + 44 * mm)
        c.setFont(self.mincho, 8.5)
        for line in notes:
            c.drawString(_MARGIN, self.y - 4 * mm, line)
            self.y -= 4.2 * mm
        self.y -= 4 * mm
        c.setFont(self.mincho, 11.5)
        for line in _wrap(self.content.certification, self.mincho, 11.5, _W - 2 * _MARGIN - 8 * mm):
            c.drawString(_MARGIN + 4 * mm, self.y - 6 * mm, line)
            self.y -= 6.5 * mm
        self.y -= 3 * mm
        c.drawString(_MARGIN + 4 * mm, self.y - 6 * mm, kanji_digits(wareki(self.content.issued_on)))
        self.y -= 16 * mm
        c.setFont(self.mincho, 14)
        issuer_w = stringWidth(self.content.issuer, self.mincho, 14)
        x_end = _W - _MARGIN - 30 * mm
        c.drawString(x_end - issuer_w, self.y, self.content.issuer)
        seal = 24 * mm
        self._image("seal", x_end - 4 * mm, self.y - seal / 2 + 2 * mm, seal)
        self.y -= seal / 2 + 4 * mm


class _Info(pdfdoc.PDFInfo):
    """The information dictionary one entry a line, as :func:`_last_revision_subject` reads it."""

    def format(self, document: pdfdoc.PDFDocument) -> bytes:
        when = pdfdoc.PDFDate(ts=document._timeStamp, dateFormatter=self._dateFormatter).format(document)
        entries = [(b"Title", pdfdoc.PDFString(self.title).format(document)),
                   (b"Author", pdfdoc.PDFString(self.author).format(document)),
                   (b"CreationDate", when), (b"ModDate", when),
                   (b"Producer", pdfdoc.PDFString(self.producer).format(document)),
                   (b"Creator", pdfdoc.PDFString(self.creator).format(document)),
                   (b"Subject", pdfdoc.PDFString(self.subject).format(document)),
                   (b"Keywords", pdfdoc.PDFString(self.keywords).format(document)),
                   (b"Trapped", b"/" + self.trapped.encode())]
        return b"<<\n" + b"".join(b"/%s %s\n" % entry for entry in entries) + b">>"


_FIELD = "MunicipalSeal"
"""The signature field's name (署名欄)."""


def _signature_field(canvas: Canvas, signature: SignatureSlot) -> None:
    """An invisible signature field on the first page, its value the :class:`SignatureSlot` with its blanks,
    listed in the document's form with SignaturesExist and AppendOnly set."""
    doc = canvas._doc
    value = doc.Reference(Verbatim(signature.dictionary()), "SignatureValue")
    widget = pdfdoc.PDFDictionary({
        "Type": pdfdoc.PDFName("Annot"), "Subtype": pdfdoc.PDFName("Widget"), "FT": pdfdoc.PDFName("Sig"),
        "T": pdfdoc.PDFString(_FIELD), "V": value, "F": 132, "Rect": pdfdoc.PDFArray([0, 0, 0, 0]),
        "P": doc.thisPageRef()})
    canvas._addAnnotation(widget, "SignatureField")
    doc.Catalog.AcroForm = pdfdoc.PDFDictionary({
        "Fields": pdfdoc.PDFArray([doc.refAnnotation("SignatureField")]), "SigFlags": 3})


def render(content: DocumentContent, *, document_id: str, request_id: str, holder_ref: str, verify_url: str,
           seal_jpeg: bytes, signature: SignatureSlot, impression_jpeg: bytes | None = None,
           creation: str | None = None) -> bytes:
    """The certificate as PDF bytes with a blank signature (:meth:`mynacard.kiosk.signing.DocumentSigner.sign`
    fills it). The seal images are JPEGs on white (:func:`mynacard.kiosk.seal.on_paper_jpeg`), printed with the
    Multiply blend mode."""
    fonts = register_pdf_fonts()
    out = io.BytesIO()
    # streams are compressed by the document's default filter (_FastFlate), not ReportLab's page compression
    canvas = Canvas(out, pagesize=A4, pageCompression=0, invariant=creation is not None,
                    initialFontName=fonts["mincho"], initialFontSize=_BODY)
    doc = canvas._doc
    doc.defaultStreamFilters = [_FAST_FLATE]
    doc.info = _Info()
    # the file identifier is the document's (ReportLab's own comes with a comment in the trailer)
    identifier = hashlib.sha256(document_id.encode()).hexdigest()[:32].encode()
    doc._ID = b"\n[<%s><%s>]\n" % (identifier, identifier)
    start_document(doc, _fixed_text(content))
    canvas.setTitle(content.title)
    canvas.setAuthor(content.issuer)
    canvas.setCreator("mynacard コンビニ交付 証明発行サーバ")
    page = _Page(canvas, content, fonts, document_id, request_id, verify_url, seal_jpeg, impression_jpeg)
    canvas.setSubject(f"mynacard-kiosk/1 request={request_id} document={document_id} holder={holder_ref} "
                      f"digest={page.digest}")
    canvas.setKeywords(f"{content.kind.value} {content.municipality_code}")
    page.start_page()
    _signature_field(canvas, signature)
    page.sections()
    page.impression_box()
    page.certification()
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def read_facts(pdf: bytes) -> PdfFacts:
    """The facts in a certificate's information dictionary (raises ``ValueError`` if it has none).

    These are what the document says, not a proof: the callers trust them together with the PDF's digest (the
    centre's release check, the kiosk's print check) or its signature (the verification page)."""
    subject = _last_revision_subject(pdf)
    if subject is None:
        from pyhanko.pdf_utils.reader import PdfFileReader

        try:
            reader = PdfFileReader(io.BytesIO(pdf), strict=False)
            info = reader.trailer_view["/Info"]
            subject = str(info["/Subject"])
        except Exception as exc:
            raise ValueError(f"not a kiosk certificate PDF ({type(exc).__name__})") from None
    match = _SUBJECT.match(subject)
    if match is None:
        raise ValueError("not a kiosk certificate PDF (no request facts)")
    return PdfFacts(*match.groups())


_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*\Z")
_XREF_SUBSECTION = re.compile(rb"(\d+) (\d+)[ \t]*\r?\n")
_XREF_ENTRY = re.compile(rb"(\d{10}) (\d{5}) ([fn])(?: \r| \n|\r\n)")
_TRAILER = re.compile(rb"trailer\s*<<(.*?)>>\s*startxref", re.S)
_INFO_REF = re.compile(rb"/Info\s+(\d+)\s+(\d+)\s+R\b")
_OBJECT = re.compile(rb"(\d+)\s+(\d+)\s+obj\s*<<")
_SUBJECT_KEY = re.compile(rb"\n/Subject[ \t\r\n]*(?=\()")


def _last_revision_subject(pdf: bytes) -> str | None:
    """The ``/Subject`` of the information dictionary, read from the last revision only. pyHanko's reader reads
    every cross-reference section and the whole dictionary, which was most of the cost of a check.

    Only for the layout in which :func:`render` writes a certificate (and pyHanko an incremental update): a
    classic cross-reference table, a trailer without strings or comments, the dictionary in that revision, one
    key a line and every delimiter in a string escaped; the string itself is read by pyHanko. Anything else
    gives ``None``, and the file is read in full."""
    from pyhanko.pdf_utils.generic import read_string_from_stream

    end = _STARTXREF.search(pdf, max(0, len(pdf) - 64))
    if end is None or not pdf.startswith(b"xref", int(end[1])):
        return None
    pos = int(end[1]) + 4
    while pdf[pos:pos + 1] in (b" ", b"\r", b"\n"):
        pos += 1
    offsets: dict[int, tuple[int, int]] = {}
    while (subsection := _XREF_SUBSECTION.match(pdf, pos)) is not None:
        first, count = int(subsection[1]), int(subsection[2])
        pos = subsection.end()
        for number in range(first, first + count):
            entry = _XREF_ENTRY.match(pdf, pos)
            if entry is None:
                return None
            if entry[3] == b"n":
                offsets[number] = (int(entry[1]), int(entry[2]))
            pos = entry.end()
    trailer = _TRAILER.match(pdf, pos)
    if trailer is None or any(mark in trailer[1] for mark in (b"(", b"%", b"/Encrypt", b"/XRefStm")):
        return None
    refs = _INFO_REF.findall(trailer[1])
    if len(refs) != 1:
        return None
    number, generation = int(refs[0][0]), int(refs[0][1])
    start, found_generation = offsets.get(number, (0, -1))
    obj = _OBJECT.match(pdf, start)
    if found_generation != generation or obj is None or (int(obj[1]), int(obj[2])) != (number, generation):
        return None
    close = pdf.find(b">>", obj.end())
    body = pdf[obj.end() - 2:close]
    keys = list(_SUBJECT_KEY.finditer(body))
    if close < 0 or b"<<" in body[2:] or len(keys) != 1:
        return None
    stream = io.BytesIO(pdf)
    stream.seek(obj.end() - 2 + keys[0].end())
    try:
        subject = read_string_from_stream(stream)
    except Exception:
        return None
    return subject if isinstance(subject, str) and stream.tell() <= close else None
