"""Visible anti-forgery patterns printed on every kiosk certificate (operations-and-incidents.md §3.5).

* **Copy-void background (けん制文字・地紋)**: the page is covered with a light dot screen. Inside the shape
  of the word 「複写」 the dots are twice as large and twice as far apart, so the average tone is the same
  and the eye sees an even tint; a photocopier drops dots below its resolution and keeps the large ones,
  so 「複写」 appears on the copy.
* **Latent image (潜像)**: a square of fine lines, horizontal inside the hidden character 「証」 and vertical
  around it, at the same pitch and width. The eye sees an even grey; a line-screen viewer (or an
  orientation filter) shows the character. (The printed kiosk paper uses special inks for this; a PDF can
  only carry the geometry.)

Both are drawn as vector operators computed once per process (they do not depend on the document) and
placed in PDF form XObjects, so each certificate costs only a few operators to paint them. The masks are
public (:func:`copy_void_mask`, :func:`latent_mask`) so that tests can check the effect on a rendering.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from PIL import Image, ImageDraw, ImageFont

from mynacard.fonts import font_path

__all__ = [
    "COPY_VOID_TILE",
    "LATENT_SIZE",
    "PatternSpec",
    "copy_void_mask",
    "copy_void_operators",
    "latent_mask",
    "latent_operators",
]

_PT_PER_MM = 72 / 25.4


@dataclass(frozen=True)
class PatternSpec:
    """Geometry of the copy-void screen, in millimetres."""

    tile_w: float = 72.0
    tile_h: float = 36.0
    fine_pitch: float = 0.6
    """Background dots: small and dense (they fall below a copier's resolution) …"""
    fine_dot: float = 0.2
    coarse_pitch: float = 1.2
    """… word dots: twice the size at twice the pitch, the same tone to the eye, kept by a copier."""
    coarse_dot: float = 0.4
    grey: float = 0.55
    """Ink level of the dots (0 black … 1 white)."""
    word: str = "複写"


COPY_VOID_TILE = PatternSpec()
LATENT_SIZE = 22.0
"""Side of the latent-image square in millimetres."""
_LATENT_PITCH = 0.5
_LATENT_LINE = 0.25
_LATENT_CELL = 0.25
_LATENT_CHAR = "証"


def _glyph_mask(text: str, width_px: int, height_px: int, fill: float) -> Image.Image:
    """A bilevel mask of ``text`` centred in the box (Gothic, as large as ``fill`` of the height)."""
    mask = Image.new("L", (width_px, height_px), 0)
    draw = ImageDraw.Draw(mask)
    size = int(height_px * fill)
    font = ImageFont.truetype(str(font_path("gothic")), size)
    while draw.textlength(text, font=font) > width_px * 0.92 and size > 4:
        size -= 2
        font = ImageFont.truetype(str(font_path("gothic")), size)
    draw.text((width_px / 2, height_px / 2), text, font=font, fill=255, anchor="mm")
    return mask.point(lambda v: 255 if v >= 128 else 0)


@cache
def copy_void_mask(spec: PatternSpec = COPY_VOID_TILE) -> tuple[tuple[bool, ...], ...]:
    """Which coarse cells of one tile belong to the hidden word (rows from the top)."""
    cols = round(spec.tile_w / spec.coarse_pitch)
    rows = round(spec.tile_h / spec.coarse_pitch)
    mask = _glyph_mask(spec.word, cols * 8, rows * 8, 0.86)
    small = mask.resize((cols, rows), Image.Resampling.BOX)
    return tuple(tuple(small.getpixel((c, r)) >= 128 for c in range(cols)) for r in range(rows))  # type: ignore[operator]


def _fmt(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _runs_of(flags: tuple[bool, ...] | list[bool], value: bool) -> list[tuple[int, int]]:
    return _runs([f is value for f in flags])


@cache
def copy_void_operators(spec: PatternSpec = COPY_VOID_TILE) -> str:
    """PDF content operators painting one tile (origin bottom-left, units in points).

    Each row of dots is one dashed line (butt caps, line width = dot size, dash = dot then gap), broken
    where the word begins or ends; a dashed subpath restarts its pattern at its start, which sits on the
    grid, so every dot lands exactly where the screen wants it. Some 250 operators paint thousands of dots.
    """
    mask = copy_void_mask(spec)
    rows = len(mask)
    k = _PT_PER_MM
    coarse = spec.coarse_pitch
    ratio = round(coarse / spec.fine_pitch)
    fine = coarse / ratio
    ops = [f"{_fmt(spec.grey)} G 0 J"]
    # fine dots: ``ratio`` dot rows per coarse row, over the cells outside the word
    ops.append(f"{_fmt(spec.fine_dot * k)} w [{_fmt(spec.fine_dot * k)} {_fmt((fine - spec.fine_dot) * k)}] 0 d")
    off = (fine - spec.fine_dot) / 2
    for r in range(rows):
        runs = _runs_of(mask[r], False)
        for j in range(ratio):
            y = spec.tile_h - (r + 1) * coarse + j * fine + off + spec.fine_dot / 2
            for a, b in runs:
                ops.append(f"{_fmt((a * coarse + off) * k)} {_fmt(y * k)} m {_fmt(b * coarse * k)} {_fmt(y * k)} l")
    ops.append("S")
    ops.append(f"{_fmt(spec.coarse_dot * k)} w [{_fmt(spec.coarse_dot * k)} "
               f"{_fmt((coarse - spec.coarse_dot) * k)}] 0 d")
    off = (coarse - spec.coarse_dot) / 2
    for r in range(rows):
        y = spec.tile_h - (r + 1) * coarse + off + spec.coarse_dot / 2
        for a, b in _runs_of(mask[r], True):
            ops.append(f"{_fmt((a * coarse + off) * k)} {_fmt(y * k)} m {_fmt(b * coarse * k)} {_fmt(y * k)} l")
    ops.append("S [] 0 d")
    return "\n".join(ops)


@cache
def latent_mask() -> tuple[tuple[bool, ...], ...]:
    """Cells (0.25 mm, rows from the top) of the latent square that belong to the hidden character."""
    n = round(LATENT_SIZE / _LATENT_CELL)
    mask = _glyph_mask(_LATENT_CHAR, n * 4, n * 4, 0.8).resize((n, n), Image.Resampling.BOX)
    return tuple(tuple(mask.getpixel((c, r)) >= 128 for c in range(n)) for r in range(n))  # type: ignore[operator]


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    out, start = [], None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            out.append((start, i))
            start = None
    return out


@cache
def latent_operators() -> str:
    """PDF operators for the latent square (origin bottom-left, points): vertical lines outside the hidden
    character, horizontal lines inside, both at the same pitch, width and ink."""
    mask = latent_mask()
    n = len(mask)
    k = _PT_PER_MM
    cell = _LATENT_CELL
    per_pitch = round(_LATENT_PITCH / cell)
    line_cells = round(_LATENT_LINE / cell)
    ops = ["0.35 g"]
    # vertical lines where the mask is off: columns whose index mod pitch < line width
    for c in range(n):
        if c % per_pitch >= line_cells:
            continue
        column = [not mask[r][c] for r in range(n)]
        for a, b in _runs(column):
            x, y = c * cell, LATENT_SIZE - b * cell
            ops.append(f"{_fmt(x * k)} {_fmt(y * k)} {_fmt(cell * k)} {_fmt((b - a) * cell * k)} re")
    for r in range(n):
        if r % per_pitch >= line_cells:
            continue
        row = [mask[r][c] for c in range(n)]
        for a, b in _runs(row):
            x, y = a * cell, LATENT_SIZE - (r + 1) * cell
            ops.append(f"{_fmt(x * k)} {_fmt(y * k)} {_fmt((b - a) * cell * k)} {_fmt(cell * k)} re")
    ops.append("f")
    return "\n".join(ops)
