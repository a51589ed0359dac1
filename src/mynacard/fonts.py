"""The IPAex fonts (Debian's fonts-ipaexfont) that every printed document embeds (the kiosk's certificates, the
office's notices).

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
import re
import threading
import zlib
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from pathlib import Path
from typing import Any

from reportlab.lib.rl_accel import fp_str
from reportlab.pdfbase import pdfdoc, pdfmetrics
from reportlab.pdfbase.ttfonts import FF_NONSYMBOLIC, FF_SYMBOLIC, SUBSETN, TTFont, makeToUnicodeCMap

__all__ = [
    "FONT_FILES",
    "FixedSubsets",
    "FontMissing",
    "Verbatim",
    "compressed_stream",
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
    characters (codes and subsets), and each subset's font dictionary (formatted but for the document's
    references), ToUnicode map and font program (both compressed)."""

    assignments: dict[int, int]
    """Character → code (subset × 256 + index)."""
    subsets: tuple[tuple[int, ...], ...]
    fonts: tuple[_Template, ...]
    to_unicode: tuple[bytes, ...]
    programs: tuple[tuple[bytes, int], ...]
    """The TrueType subset, compressed, and its length before compression (``/Length1``)."""


_NO_FIXED = FixedSubsets({}, (), (), (), ())


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
    dictionaries, to_unicode, programs = [], [], []
    for n, subset in enumerate(subsets):
        dictionaries.append(_Template({**font.font_entries(n, subset), "Name": _SLOT, "ToUnicode": _SLOT,
                                       "FontDescriptor": _SLOT}))
        to_unicode.append(zlib.compress(makeToUnicodeCMap(font.base_name(n), subset).encode(), 9))
        program = font.face.makeSubset(subset)
        programs.append((zlib.compress(program, 9), len(program)))
    return FixedSubsets(dict(state.assignments), subsets, tuple(dictionaries), tuple(to_unicode), tuple(programs))


class _Formatted(pdfdoc.PDFObject):
    """A PDF value formatted beforehand, written as it is."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def format(self, document: Any) -> bytes:
        return self.data


_SLOT: Any = object()
"""A value in a :class:`_Template` that each document fills in."""


class _Template:
    """A PDF dictionary formatted once by ReportLab, with slots for what differs between documents (references
    to the document's own objects, a name). ReportLab spends microseconds on every entry and number: the font
    dictionaries and descriptors took some 0.3 ms of a certificate's 4. The slots are marked with NUL bytes,
    which formatted names, numbers and strings never contain."""

    def __init__(self, entries: dict[str, Any]) -> None:
        slots = [key for key, value in entries.items() if value is _SLOT]
        marked = {key: _Formatted(b"\0%d\0" % slots.index(key)) if value is _SLOT else value
                  for key, value in entries.items()}
        parts = re.split(rb"\0(\d+)\0", pdfdoc.PDFDictionary(marked).format(pdfdoc.DummyDoc()))
        self.pieces = parts[0::2]
        self.slots = [slots[int(i)] for i in parts[1::2]]

    def fill(self, **values: Any) -> _Filled:
        return _Filled(self, values)


class _Filled(pdfdoc.PDFObject):
    """A :class:`_Template` with one document's values."""

    __RefOnly__ = 1  # an object of its own, as ReportLab writes font dictionaries and descriptors

    def __init__(self, template: _Template, values: dict[str, Any]) -> None:
        self.template = template
        self.values = values

    def format(self, document: Any) -> bytes:
        pieces = self.template.pieces
        out = [pieces[0]]
        for slot, piece in zip(self.template.slots, pieces[1:], strict=True):
            out += (pdfdoc.format(self.values[slot], document), piece)
        return b"".join(out)


def compressed_stream(entries: dict[str, Any], data: bytes) -> pdfdoc.PDFStream:
    """A stream object for bytes that are already Flate-encoded: with ``/Filter`` in its dictionary ReportLab
    writes the content as it is. A new object for each document (ReportLab registers objects by identity); the
    bytes are shared."""
    return pdfdoc.PDFStream(pdfdoc.PDFDictionary({**entries, "Filter": pdfdoc.PDFName("FlateDecode")}), data,
                            filters=[])


class Verbatim(pdfdoc.PDFObject):
    """A PDF object written exactly as given: bytes formatted once by the caller (a signature dictionary with
    its blanks, an array of numbers)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def format(self, document: Any) -> bytes:
        return self.data


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

    def font_entries(self, n: int, subset: tuple[int, ...] | list[int]) -> dict[str, Any]:
        """The dictionary of subset ``n`` as ReportLab's ``TTFont.addObjects`` writes it, but for its name in the
        document and its references."""
        return {"Type": "/Font", "Subtype": "/TrueType", "BaseFont": pdfdoc.PDFName(self.base_name(n)),
                "FirstChar": 0, "LastChar": len(subset) - 1,
                # one call of ReportLab's C formatter: PDFArray calls pdfdoc.format for each width (0.58 against
                # 0.06 ms for 200 of them)
                "Widths": Verbatim(b"[%s]" % fp_str(*(self.face.getCharWidth(c) for c in subset)).encode())}

    @cached_property
    def _descriptor(self) -> _Template:
        face = self.face  # the entries of ReportLab's TTFontFace.addSubsetObjects
        return _Template({
            "Type": "/FontDescriptor", "Ascent": face.ascent, "CapHeight": face.capHeight, "Descent": face.descent,
            "Flags": (face.flags & ~FF_NONSYMBOLIC) | FF_SYMBOLIC, "FontBBox": pdfdoc.PDFArray(face.bbox),
            "FontName": _SLOT, "ItalicAngle": face.italicAngle, "StemV": face.stemV, "FontFile2": _SLOT,
            "MissingWidth": face.defaultWidth})

    def addObjects(self, doc: Any) -> None:
        """ReportLab's ``TTFont.addObjects``: a font dictionary, ToUnicode map, descriptor and program for each
        subset; the fixed subsets' parts come from :class:`FixedSubsets`, and the dictionaries are templates."""
        state = self.state.get(doc)
        if state is None:
            super().addObjects(doc)
            return
        fixed: FixedSubsets = getattr(state, "fixed", _NO_FIXED)
        state.frozen = 1
        for n, subset in enumerate(state.subsets):
            internal = self.getSubsetInternalName(n, doc)[1:]
            base = self.base_name(n)
            is_fixed = n < len(fixed.subsets)
            if is_fixed:
                cmap = compressed_stream({}, fixed.to_unicode[n])
                data, length = fixed.programs[n]
                program = compressed_stream({"Length1": length}, data)
            else:
                cmap = pdfdoc.PDFStream(content=makeToUnicodeCMap(base, subset))
                data = self.face.makeSubset(subset)
                program = pdfdoc.PDFStream(pdfdoc.PDFDictionary({"Length1": len(data)}), data)
                if doc.compression:
                    cmap.filters = program.filters = [pdfdoc.PDFZCompress]
            program_ref = doc.Reference(program, f"fontFile:{self.face.filename}({base})")
            descriptor = self._descriptor.fill(FontName=pdfdoc.PDFName(base), FontFile2=program_ref)
            refs = {"Name": pdfdoc.PDFName(internal), "ToUnicode": doc.Reference(cmap, "toUnicodeCMap:" + base),
                    "FontDescriptor": doc.Reference(descriptor, "fontDescriptor:" + base)}
            if is_fixed:
                font: pdfdoc.PDFObject = fixed.fonts[n].fill(**refs)
            else:
                font = pdfdoc.PDFDictionary({**self.font_entries(n, subset), **refs})
            doc.idToObject["BasicFonts"].dict[internal] = doc.Reference(font, internal)
        del self.state[doc]


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
