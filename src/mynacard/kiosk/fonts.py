"""The IPAex fonts (Debian's fonts-ipaexfont) that every certificate embeds.

The files are looked up under ``/usr/share/fonts`` (or ``MYNACARD_FONT_DIR``) by name, never shipped with the
package; a missing font is a clear configuration error, not a silent fallback to a font without Japanese.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

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
        pdfmetrics.registerFont(TTFont(pdf_name, str(font_path(style))))
    return dict(PDF_NAMES)
