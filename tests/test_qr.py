"""QR codes for printed documents (mynacard.qr)."""

from __future__ import annotations

import io

import numpy as np
import zxingcpp
from PIL import Image

from mynacard import qr

DOCUMENT = "01HZZZZZZZZZZZZZZZZZZZZZZZ"


def test_a_verification_link_is_split_into_modes_so_its_symbol_stays_small() -> None:
    # 64 characters: two bytes too many for version 4 (33 modules) at level M in byte mode alone, which fits
    # once the upper-case document ID goes in alphanumeric mode
    url = f"https://kiosk.example.jp/kiosk/verify/{DOCUMENT}"
    assert len(url) == 64
    rows = qr.matrix(url)
    assert len(rows) == 33 and all(len(row) == 33 and set(row) <= {0, 1} for row in rows)
    finder = bytes([1] * 7)
    assert rows[0][:7] == rows[0][-7:] == rows[-1][:7] == finder  # the three finder patterns
    assert rows[0][7] == rows[7][0] == 0  # their separators


def test_the_png_reads_back_as_the_text_with_a_four_module_quiet_zone() -> None:
    for text in [f"https://kiosk.example.jp/kiosk/verify/{DOCUMENT}", "HTTPS://KIOSK.JP/V/1", "http://a/b",
                 "http://testserver/book?n=1234-5678-9012%2A"]:
        image = Image.open(io.BytesIO(qr.png(text, scale=4)))
        assert [c.text for c in zxingcpp.read_barcodes(image)] == [text]
        pixels = np.asarray(image.convert("L"))
        assert pixels.shape[0] == (len(qr.matrix(text)) + 8) * 4
        assert pixels[:16].min() == 255 and pixels[:, :16].min() == 255  # 4 modules of white around
        assert pixels[16:44, 16:44].min() == 0  # then the finder pattern
