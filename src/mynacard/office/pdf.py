"""The issuance notice postcard (交付通知書) as a PDF: A6 (postcard size), Japanese, set in the IPAex fonts that
:mod:`mynacard.fonts` finds and registers, with a QR code (:mod:`mynacard.qr`) carrying the booking link with the
notice number. The individual number is never on it (it is not even passed in: :class:`NoticePrint`)."""

from __future__ import annotations

import io
import re
from urllib.parse import quote

from reportlab.lib.pagesizes import A6
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from mynacard import qr
from mynacard.fonts import register_pdf_fonts
from mynacard.office.model import format_notice_number
from mynacard.office.service import NoticePrint

__all__ = ["booking_url", "notice_pdf"]


def booking_url(base_url: str, notice_number: str) -> str:
    """The link in the QR code: the booking page with the notice number filled in."""
    return f"{base_url.rstrip('/')}/book?n={quote(notice_number)}"


def notice_pdf(notice: NoticePrint, base_url: str) -> bytes:
    """One A6 page: addressee, notice number, pickup deadline, how to book (QR), what to bring."""
    fonts = register_pdf_fonts()
    gothic, mincho = fonts["gothic"], fonts["mincho"]
    out = io.BytesIO()
    width, height = A6
    c = Canvas(out, pagesize=A6, pageCompression=1)
    c.setTitle(f"交付通知書 {format_notice_number(notice.notice_number)}")
    c.setAuthor(notice.municipality_name)
    c.setSubject(f"mynacard-notice/1 number={notice.notice_number}")
    x = 8 * mm
    y = height - 12 * mm
    c.setFont(gothic, 13)
    title = "個人番号カード交付通知書" + ("(再通知)" if notice.sequence > 1 else "")
    c.drawString(x, y, title)
    y -= 6 * mm
    c.setFont(mincho, 8)
    c.drawString(x, y, f"{notice.municipality_name}長  発行日 {notice.sent_on:%Y年%m月%d日}")
    y -= 9 * mm
    c.setFont(mincho, 9)
    c.drawString(x, y, notice.address[:34])
    if len(notice.address) > 34:
        y -= 4.5 * mm
        c.drawString(x, y, notice.address[34:68])
    y -= 7 * mm
    c.setFont(gothic, 12)
    c.drawString(x, y, f"{notice.name} 様")
    y -= 9 * mm
    c.setFont(mincho, 8)
    c.drawString(x, y, "あなたのマイナンバーカードの準備ができました。")
    y -= 4.5 * mm
    c.drawString(x, y, "予約のうえ、受取期限までに交付窓口へお越しください。")
    y -= 8 * mm
    c.setFont(gothic, 8)
    c.drawString(x, y, "交付通知書番号")
    y -= 5.5 * mm
    c.setFont(gothic, 11)
    c.drawString(x, y, format_notice_number(notice.notice_number))
    y -= 7 * mm
    c.setFont(gothic, 8)
    c.drawString(x, y, "受取期限")
    c.setFont(gothic, 11)
    c.drawString(x + 16 * mm, y, f"{notice.pickup_deadline:%Y年%m月%d日}")
    side = 30 * mm
    url = booking_url(base_url, notice.notice_number)
    _draw_qr(c, url, width - 8 * mm - side, 10 * mm, side)
    c.setFont(mincho, 7)
    room = width - 8 * mm - side - 2 * mm - x  # the text stops short of the QR code and its quiet zone
    lines = ["ご予約: 右のQRコード、または", *_fitted(c, url, mincho, 7, room),
             "予約には交付通知書番号と生年月日が必要です。",
             "持ち物: この通知書、本人確認書類、",
             "通知カード・住基カード(お持ちの方)"]
    ly = 36 * mm
    for line in lines:
        if line:
            c.drawString(x, ly, line)
            ly -= 4 * mm
    c.setFont(mincho, 6)
    c.drawString(x, 6 * mm, "この通知書に個人番号は記載していません。転送不要。")
    c.showPage()
    c.save()
    return out.getvalue()


def _fitted(c: Canvas, text: str, font: str, size: float, room: float) -> list[str]:
    """``text`` cut into lines that each fit ``room`` points (a URL has no spaces to break at)."""
    lines, line = [], ""
    for char in text:
        if line and c.stringWidth(line + char, font, size) > room:
            lines.append(line)
            line = ""
        line += char
    return [*lines, line] if line else lines


_DARK_RUN = re.compile(rb"\x01+")


def _draw_qr(c: Canvas, url: str, x: float, y: float, side: float) -> None:
    """The QR code as vector squares (one rectangle per run of dark modules in a row) with the standard's
    4-module quiet zone, crisp at any printer's resolution (the kiosk's certificate draws its code the same way).
    Nothing else is printed in the quiet zone: the booking link printed beside it once ran into the code, and
    about one notice in a hundred could then not be read from a scan of the whole card."""
    rows = qr.matrix(url)
    n = len(rows)
    cell = side / (n + 8)
    path = c.beginPath()
    for r, row in enumerate(rows):
        top = y + side - (4 + r + 1) * cell
        for run in _DARK_RUN.finditer(row):
            path.rect(x + (4 + run.start()) * cell, top, (run.end() - run.start()) * cell, cell)
    c.saveState()
    c.setFillColorRGB(1, 1, 1)
    c.rect(x, y, side, side, stroke=0, fill=1)
    c.setFillColorRGB(0, 0, 0)
    c.drawPath(path, stroke=0, fill=1)
    c.restoreState()

