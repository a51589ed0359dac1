"""QR codes (QRコード) for printed documents: the certificate's verification link, the issuance notice's
booking link.

zxing-cpp's writer (libzint inside) makes them: it splits the text into the modes that encode it shortest (a
URL's upper-case document ID goes in alphanumeric mode, the rest in byte mode) and chooses the mask pattern by
the standard's penalty rules, in about 0.1 ms; segno, pure Python, took 0.9 ms with the mask fixed, the largest
single cost of rendering a certificate. Error correction level M (15 %) throughout.
"""

from __future__ import annotations

import io

import numpy as np
import zxingcpp
from PIL import Image

__all__ = ["matrix", "png"]


def _symbol(text: str) -> zxingcpp.Barcode:
    return zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level="M")


def matrix(text: str) -> list[bytes]:
    """The symbol's modules without the quiet zone, top row first: one byte per module, 1 for dark."""
    modules = np.asarray(_symbol(text).to_image(scale=1, add_quiet_zones=False)) == 0
    return [row.tobytes() for row in modules.astype(np.uint8)]


def png(text: str, scale: int) -> bytes:
    """The symbol as a black-and-white PNG, ``scale`` pixels a module, with the standard's 4-module quiet zone."""
    out = io.BytesIO()
    Image.fromarray(np.asarray(_symbol(text).to_image(scale=scale, add_quiet_zones=True))).save(out, format="PNG")
    return out.getvalue()
