"""Photo checks: type, size, shape, garbage."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from mynacard.cards.photo import check_photo
from mynacard.errors import InvalidInput


def _image(w: int, h: int, fmt: str = "JPEG", mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (w, h), "white").save(buf, fmt)
    return buf.getvalue()


def test_accepts_jpeg_and_png_of_the_right_shape() -> None:
    info = check_photo(_image(490, 630))
    assert (info.media_type, info.width, info.height) == ("image/jpeg", 490, 630)
    assert check_photo(_image(700, 900, "PNG")).media_type == "image/png"
    assert check_photo(_image(490, 630, "JPEG", "L")).width == 490


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "no image"),
    (b"not an image at all", "not a readable"),
    (_image(490, 630, "GIF"), "GIF is not accepted"),
    (_image(300, 386), "too small"),
    (_image(600, 600), "wrong shape"),
    (_image(630, 490), "wrong shape"),
    (_image(490, 630)[:200], "not a readable"),
])
def test_refuses_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        check_photo(data)
