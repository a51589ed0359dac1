"""The booking QR code on the issuance notice (交付通知書) reads from a scan of the whole postcard: nothing is
printed in its quiet zone. These numbers' long booking links once ran into the code and could not be read."""

from __future__ import annotations

import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from mynacard.office.pdf import booking_url, notice_pdf
from mynacard.office.views import NoticePrint
from tests.conftest import require

ONCE_UNREADABLE = ["KJGNXWN8BDMJV1Q6*", "HG3XWH3HMFSCGNZA*", "EYA2SP8HCWAH3VGR=", "DK8BQW4WFNPY7P4F=",
                   "8BVKGKWN2Y8YBRAF$"]


@pytest.mark.parametrize("number", ONCE_UNREADABLE)
def test_the_booking_code_reads_from_a_scan_of_the_whole_postcard(number: str, tmp_path: Path) -> None:
    require(shutil.which("pdftoppm") is not None, "poppler-utils (pdftoppm) not installed")
    notice = NoticePrint(number, 1, "131016", "千代田区", "山田 太郎", "東京都千代田区千代田1-1",
                         date(2027, 3, 1), date(2026, 12, 1))
    (tmp_path / "n.pdf").write_bytes(notice_pdf(notice, "http://testserver"))
    for dpi in (200, 300):
        subprocess.run(["pdftoppm", "-r", str(dpi), "-png", "-singlefile", str(tmp_path / "n.pdf"),
                        str(tmp_path / "page")], check=True)
        codes = zxingcpp.read_barcodes(Image.open(tmp_path / "page.png"))
        assert [c.text for c in codes] == [booking_url("http://testserver", number)], dpi
