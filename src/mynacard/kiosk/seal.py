"""Seal images, generated at run time: the municipality's official seal (公印, square, e.g. 千代田区長之印) and
a resident's registered seal impression (印影, round, the family name).

They are pictures of seals, not security features: the signature on the PDF is what proves the document.
Both are deterministic for their text so that one municipality's seal looks the same on every certificate.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mynacard.fonts import font_path

__all__ = ["municipal_seal_png", "official_seal_text", "on_paper_jpeg", "resident_seal_png"]

_RED = (200, 30, 40)
_SIZE = 360


def official_seal_text(municipality_name: str) -> str:
    """The text of a mayor's seal: 千代田区 → 千代田区長之印, 札幌市 → 札幌市長之印."""
    return f"{municipality_name}長之印"


def _ink(img: Image.Image, seed: str) -> Image.Image:
    """Uneven ink: a few pale specks, as a real impression has (deterministic for ``seed``)."""
    rng = random.Random(hashlib.sha256(seed.encode()).digest())
    alpha = img.getchannel("A")
    specks = Image.new("L", img.size, 255)
    draw = ImageDraw.Draw(specks)
    for _ in range(140):
        x, y, r = rng.randrange(img.width), rng.randrange(img.height), rng.uniform(1.0, 3.5)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=rng.randrange(40, 160))
    alpha = Image.composite(alpha, Image.new("L", img.size, 0), specks.filter(ImageFilter.GaussianBlur(0.8)))
    img.putalpha(alpha.filter(ImageFilter.GaussianBlur(0.6)))
    return img


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def on_paper_jpeg(png: bytes) -> bytes:
    """The seal flattened onto white as a JPEG: a PDF embeds JPEG bytes as they are (no re-encoding per
    certificate), and printed with the Multiply blend mode the white disappears as ink on paper would."""
    img = Image.open(io.BytesIO(png)).convert("RGBA")
    flat = Image.new("RGB", img.size, (255, 255, 255))
    flat.paste(img, mask=img.getchannel("A"))
    out = io.BytesIO()
    flat.save(out, "JPEG", quality=90)
    return out.getvalue()


@lru_cache(maxsize=64)
def municipal_seal_png(municipality_name: str) -> bytes:
    """A square red seal with the mayor's seal text in columns read right to left."""
    text = official_seal_text(municipality_name)
    rows = math.ceil(math.sqrt(len(text)))
    cols = math.ceil(len(text) / rows)
    img = Image.new("RGBA", (_SIZE, _SIZE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    border = 16
    draw.rectangle((border // 2, border // 2, _SIZE - border // 2, _SIZE - border // 2), outline=(*_RED, 255),
                   width=border)
    inner = _SIZE - 3 * border
    cell_w, cell_h = inner / cols, inner / rows
    font = ImageFont.truetype(str(font_path("mincho")), int(min(cell_w, cell_h) * 0.92))
    for i, ch in enumerate(text):
        col, row = divmod(i, rows)
        x = _SIZE - 1.5 * border - (col + 0.5) * cell_w
        y = 1.5 * border + (row + 0.5) * cell_h
        draw.text((x, y), ch, font=font, fill=(*_RED, 255), anchor="mm")
    return _png(_ink(img, text))


@lru_cache(maxsize=512)
def resident_seal_png(family_name: str) -> bytes:
    """A round seal impression with the family name written top to bottom (a 三文判: the same name gives the
    same impression)."""
    size = 240
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.ellipse((6, 6, size - 6, size - 6), outline=(*_RED, 255), width=10)
    name = family_name[:4]
    step = (size - 60) / max(len(name), 1)
    font = ImageFont.truetype(str(font_path("mincho")), int(min(step * 0.95, size * 0.5)))
    for i, ch in enumerate(name):
        draw.text((size / 2, 30 + (i + 0.5) * step), ch, font=font, fill=(*_RED, 255), anchor="mm")
    return _png(_ink(img, "resident:" + family_name))
