"""The IPAex fonts (Debian's fonts-ipaexfont) that every certificate embeds.

The files are looked up under ``/usr/share/fonts`` (or ``MYNACARD_FONT_DIR``) by name, never shipped with the
package; a missing font is a clear configuration error, not a silent fallback to a font without Japanese.
"""

from __future__ import annotations

import os
import threading
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["FONT_FILES", "FontMissing", "font_path", "register_pdf_fonts"]

FONT_FILES = {"mincho": "ipaexm.ttf", "gothic": "ipaexg.ttf"}
"""IPAex明朝 for the body (official documents are set in Mincho), IPAexゴシック for headings."""
PDF_NAMES = {"mincho": "IPAexMincho", "gothic": "IPAexGothic"}


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
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    for style, pdf_name in PDF_NAMES.items():
        font = TTFont(pdf_name, str(font_path(style)))
        _share_tables(font.face)
        pdfmetrics.registerFont(font)
    return dict(PDF_NAMES)


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
