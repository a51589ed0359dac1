"""The issuance notice postcard (交付通知書) as a PDF: A6 (postcard size), Japanese, set in the IPAex fonts that
:mod:`mynacard.fonts` finds and registers, with a QR code (:mod:`mynacard.qr`) carrying the booking link with the
notice number. The individual number is never on it (it is not even passed in: :class:`NoticePrint`)."""

from __future__ import annotations

import io
from urllib.parse import quote

from reportlab.lib.pagesizes import A6
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
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
    c.drawImage(ImageReader(io.BytesIO(qr.png(url, scale=6))), width - 8 * mm - side, 10 * mm, side, side)
    c.setFont(mincho, 7)
    lines = ["ご予約: 右のQRコード、または", url[:60], url[60:120],
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
