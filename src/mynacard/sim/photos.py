"""Synthetic face photos for applications: valid JPEGs of the right shape, a few distinct ones."""

from __future__ import annotations

import io
from functools import cache

from PIL import Image, ImageDraw

__all__ = ["face_photo"]


@cache
def face_photo(variant: int, width: int = 490, height: int = 630) -> bytes:
    """A 4.5×3.5 portrait JPEG: plain background, a face-like oval; ``variant`` changes the colours."""
    hue = (variant * 47) % 255
    img = Image.new("RGB", (width, height), (230, 235 - hue % 20, 240))
    draw = ImageDraw.Draw(img)
    draw.ellipse((width * 0.25, height * 0.18, width * 0.75, height * 0.62), fill=(235, 200 - hue % 40, 170))
    draw.rectangle((width * 0.15, height * 0.66, width * 0.85, height), fill=(40 + hue % 60, 50, 90))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=70)
    return buf.getvalue()
