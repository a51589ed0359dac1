"""The face photo of an application (申請用顔写真): checks and the content-addressed photo store.

Rules (reference/operations-and-incidents.md §1.2): 4.5 cm high × 3.5 cm wide; online uploads 480–6000 px in
each dimension, JPEG (we also take PNG from photo booths and scanners), colour or monochrome. Pillow reads
only the header here, so the check is cheap; a photo that cannot be parsed is refused.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from mynacard.errors import InvalidInput

__all__ = ["ASPECT", "MAX_BYTES", "MAX_SIDE", "MIN_SIDE", "PhotoInfo", "PhotoStore", "check_photo"]

MIN_SIDE = 480
MAX_SIDE = 6000
MAX_BYTES = 20 * 1024 * 1024
ASPECT = 4.5 / 3.5
"""Height over width of the printed photo."""
ASPECT_TOLERANCE = 0.04
_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}
_MODES = {"RGB", "L", "RGBA", "P", "LA", "CMYK", "YCbCr"}


@dataclass(frozen=True)
class PhotoInfo:
    """What the check learned about an accepted photo."""

    sha256: str
    media_type: str
    width: int
    height: int


def check_photo(data: bytes) -> PhotoInfo:
    """Accept a JPEG or PNG face photo of the right size and shape, or raise :class:`InvalidInput`."""
    if not isinstance(data, bytes | bytearray) or not data:
        raise InvalidInput("photo: no image was sent")
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"photo: larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (width, height), mode = img.format, img.size, img.mode
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise InvalidInput("photo: not a readable JPEG or PNG image") from None
    if fmt not in _FORMATS:
        raise InvalidInput(f"photo: {fmt or 'unknown'} is not accepted; send JPEG or PNG")
    if mode not in _MODES:
        raise InvalidInput(f"photo: colour mode {mode} is not accepted")
    if min(width, height) < MIN_SIDE:
        raise InvalidInput(f"photo: too small ({width}×{height} px); each side needs at least {MIN_SIDE} px")
    if max(width, height) > MAX_SIDE:
        raise InvalidInput(f"photo: too large ({width}×{height} px); at most {MAX_SIDE} px per side")
    ratio = height / width
    if abs(ratio - ASPECT) / ASPECT > ASPECT_TOLERANCE:
        raise InvalidInput(
            f"photo: wrong shape ({width}×{height} px, height/width {ratio:.2f}); "
            f"it must be 4.5 cm high by 3.5 cm wide (height/width {ASPECT:.2f})")
    return PhotoInfo(hashlib.sha256(data).hexdigest(), _FORMATS[fmt], width, height)


class PhotoStore:
    """Photos on disk under their SHA-256, so the same bytes are stored once and never overwritten."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, info: PhotoInfo, data: bytes) -> None:
        target = self.path(info.sha256)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)

    def get(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()
