"""The IPAex fonts (Debian's fonts-ipaexfont) that every certificate embeds.

The files are looked up under ``/usr/share/fonts`` (or ``MYNACARD_FONT_DIR``) by name, never shipped with the
package; a missing font is a clear configuration error, not a silent fallback to a font without Japanese.

Each certificate embeds subsets of the fonts, as ReportLab makes them: simple TrueType fonts of up to 256
glyphs. Most glyphs of a certificate belong to its fixed text (labels, notes, the certifying sentence, the
municipality's name), the same for every certificate of a municipality and kind; :func:`start_document` puts
them in subsets of their own, built and compressed once (:func:`fixed_subsets`), and only the rest (names,
addresses, numbers) goes into subsets made for the document.
"""

from __future__ import annotations

import os
import threading
import zlib
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from reportlab.pdfbase import pdfdoc, pdfmetrics
from reportlab.pdfbase.ttfonts import FF_NONSYMBOLIC, FF_SYMBOLIC, SUBSETN, TTFont, makeToUnicodeCMap

__all__ = [
    "FONT_FILES",
    "FixedSubsets",
    "FontMissing",
    "fixed_subsets",
    "font_path",
    "register_pdf_fonts",
    "start_document",
]

FONT_FILES = {"mincho": "ipaexm.ttf", "gothic": "ipaexg.ttf"}
"""IPAex明朝 for the body (official documents are set in Mincho), IPAexゴシック for headings."""
PDF_NAMES = {"mincho": "IPAexMincho", "gothic": "IPAexGothic"}
_ASCII_FIRST = {"mincho": True, "gothic": False}
"""Whether ReportLab puts all of ASCII in a document's first subset of the font (its default, so that the text
in the page's content reads as ASCII). The body uses most of ASCII (IDs, the URL, digests); the headings
hardly any, and the 95 glyphs would be some 13 kB of every certificate."""


class FontMissing(RuntimeError):
    """The IPAex fonts are not installed (Debian: ``apt-get install fonts-ipaexfont``)."""


@cache
def font_path(style: str) -> Path:
    name = FONT_FILES[style]
    roots = [Path(os.environ["MYNACARD_FONT_DIR"])] if os.environ.get("MYNACARD_FONT_DIR") else []
    roots.append(Path("/usr/share/fonts"))
    for root in roots:
        if root.is_dir():
            found = sorted(root.rglob(name))
            if found:
                return found[0]
    raise FontMissing(f"font {name} not found under {', '.join(map(str, roots))}: install fonts-ipaexfont")


@cache
def register_pdf_fonts() -> dict[str, str]:
    """Register both fonts with ReportLab (once per process); returns style → PDF font name."""
    for style, pdf_name in PDF_NAMES.items():
        font = _Font(pdf_name, str(font_path(style)), asciiReadable=_ASCII_FIRST[style])
        _share_tables(font.face)
        pdfmetrics.registerFont(font)
    return dict(PDF_NAMES)


def start_document(doc: Any, fixed_text: dict[str, str]) -> None:
    """Give a ReportLab document (``canvas._doc``) the fixed subsets of each font style for its fixed text,
    before anything is drawn; glyphs drawn later that are not among them go into the document's own subsets."""
    names = register_pdf_fonts()
    for style, text in fixed_text.items():
        font = pdfmetrics.getFont(names[style])
        assert isinstance(font, _Font)
        font.start(doc, fixed_subsets(names[style], frozenset(map(ord, text))))


@dataclass(frozen=True)
class FixedSubsets:
    """The first subsets of a font in a document, for a set of characters: ReportLab's own layout of those
    characters (codes and subsets), and each subset's widths (formatted), ToUnicode map and font program
    (both compressed)."""

    assignments: dict[int, int]
    """Character → code (subset × 256 + index)."""
    subsets: tuple[tuple[int, ...], ...]
    widths: tuple[bytes, ...]
    to_unicode: tuple[bytes, ...]
    programs: tuple[tuple[bytes, int], ...]
    """The TrueType subset, compressed, and its length before compression (``/Length1``)."""


class _LayoutKey:
    """A stand-in document for laying out characters (ReportLab keeps font state per document, weakly)."""


@lru_cache(maxsize=256)
def fixed_subsets(font_name: str, chars: frozenset[int]) -> FixedSubsets:
    """The subsets for ``chars`` in ``font_name``, made once per set (a municipality's kind of certificate has one
    set of fixed text, so a few dozen sets serve a town). Thread-safe: at worst two threads build the same."""
    font = pdfmetrics.getFont(font_name)
    assert isinstance(font, _Font)
    key = _LayoutKey()
    font.splitString("".join(map(chr, sorted(chars))), key)  # ReportLab's own assignment of codes
    state = font.state.pop(key)
    subsets = tuple(tuple(s) for s in state.subsets)
    widths, to_unicode, programs = [], [], []
    for n, subset in enumerate(subsets):
        widths.append(pdfdoc.PDFArray([font.face.getCharWidth(c) for c in subset]).format(None))
        to_unicode.append(zlib.compress(makeToUnicodeCMap(font.base_name(n), subset).encode(), 9))
        program = font.face.makeSubset(subset)
        programs.append((zlib.compress(program, 9), len(program)))
    return FixedSubsets(dict(state.assignments), subsets, tuple(widths), tuple(to_unicode), tuple(programs))


class _Formatted(pdfdoc.PDFObject):
    """A PDF value formatted beforehand, written as it is."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def format(self, document: Any) -> bytes:
        return self.data


def _compressed(entries: dict[str, Any], data: bytes) -> pdfdoc.PDFStream:
    return pdfdoc.PDFStream(pdfdoc.PDFDictionary({**entries, "Filter": pdfdoc.PDFName("FlateDecode")}), data,
                            filters=[])


class _Font(TTFont):
    """ReportLab's TrueType font, whose first subsets in a document can be fixed ones (:class:`FixedSubsets`)."""

    def base_name(self, n: int) -> str:
        """The PDF name of subset ``n`` (``AAAAAA+IPAexMincho``), as ReportLab names it."""
        return str(b"".join((SUBSETN(n), b"+", self.face.name, self.face.subfontNameX)).decode("pdfdoc"))

    def start(self, doc: Any, fixed: FixedSubsets) -> None:
        if doc in self.state:
            raise RuntimeError(f"{self.fontName} is already in use in this document")
        state = TTFont.State(self._asciiReadable, self)
        state.assignments = dict(fixed.assignments)
        state.subsets = [list(s) for s in fixed.subsets]
        state.nextCode = 256 * len(fixed.subsets)  # new characters start a subset of the document's own
        state.fixed = fixed
        self.state[doc] = state

    def addObjects(self, doc: Any) -> None:
        """ReportLab's ``TTFont.addObjects`` (one font, ToUnicode map, descriptor and program per subset), with
        the fixed subsets' parts written from :class:`FixedSubsets`."""
        state = self.state.get(doc)
        fixed: FixedSubsets | None = getattr(state, "fixed", None)
        if state is None or fixed is None:
            super().addObjects(doc)
            return
        state.frozen = 1
        for n, subset in enumerate(state.subsets):
            internal = self.getSubsetInternalName(n, doc)[1:]
            base = self.base_name(n)
            font = pdfdoc.PDFTrueTypeFont()
            font.Name = internal
            font.BaseFont = base
            font.FirstChar = 0
            font.LastChar = len(subset) - 1
            if n < len(fixed.subsets):
                font.Widths = _Formatted(fixed.widths[n])
                cmap = _compressed({}, fixed.to_unicode[n])
                program, length = fixed.programs[n]
                descriptor = self._descriptor(doc, base, _compressed({"Length1": length}, program))
            else:
                font.Widths = pdfdoc.PDFArray([self.face.getCharWidth(c) for c in subset])
                cmap = pdfdoc.PDFStream(content=makeToUnicodeCMap(base, subset))
                if doc.compression:
                    cmap.filters = [pdfdoc.PDFZCompress]
                descriptor = self.face.addSubsetObjects(doc, base, subset)
            font.ToUnicode = doc.Reference(cmap, "toUnicodeCMap:" + base)
            font.FontDescriptor = descriptor
            doc.Reference(font, internal)
            doc.idToObject["BasicFonts"].dict[internal] = font
        del self.state[doc]

    def _descriptor(self, doc: Any, base: str, program: pdfdoc.PDFStream) -> Any:
        face = self.face  # the entries of ReportLab's TTFontFace.addSubsetObjects
        return doc.Reference(pdfdoc.PDFDictionary({
            "Type": "/FontDescriptor", "Ascent": face.ascent, "CapHeight": face.capHeight, "Descent": face.descent,
            "Flags": (face.flags & ~FF_NONSYMBOLIC) | FF_SYMBOLIC, "FontBBox": pdfdoc.PDFArray(face.bbox),
            "FontName": pdfdoc.PDFName(base), "ItalicAngle": face.italicAngle, "StemV": face.stemV,
            "FontFile2": doc.Reference(program, f"fontFile:{face.filename}({base})"),
            "MissingWidth": face.defaultWidth}), "fontDescriptor:" + base)


def _share_tables(face: Any) -> None:
    """Make embedding a font subset cheaper and safe across threads.

    ReportLab's ``makeSubset`` (run for every document) copies each table it needs out of the whole font file
    — the ``glyf`` table of an IPAex font is several megabytes — which was a third of the time to render a
    certificate. The tables never change, so each is copied once and the same immutable bytes handed out
    again. ``makeSubset`` also moves the font file's shared read position; a lock keeps two documents
    rendered at once in one process (``MYNACARD_KIOSK_RENDER_SLOTS``) from interleaving there."""
    read_table = face.get_table
    make_subset = face.makeSubset
    tables: dict[str, bytes] = {}
    lock = threading.Lock()

    def get_table(tag: str) -> bytes:
        found = tables.get(tag)
        if found is None:
            found = tables[tag] = read_table(tag)
        return found

    def locked_subset(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return make_subset(*args, **kwargs)

    face.get_table = get_table
    face.makeSubset = locked_subset
