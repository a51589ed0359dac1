"""A server process warms itself before its first customer (mynacard.kiosk.warm)."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from mynacard import fonts
from mynacard.context import Context
from mynacard.kiosk import api, pdf, warm
from mynacard.web.app import create_app


def test_the_app_runs_each_parts_warm_up_before_it_answers(sqlite_ctx: Context,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(api, "warm_up", lambda: calls.append("kiosk"))
    app = create_app(sqlite_ctx)
    assert calls == []
    with TestClient(app) as client:
        assert calls == ["kiosk"]
        assert client.get("/healthz").status_code == 200
    assert calls == ["kiosk"]


def test_warming_up_builds_the_shared_parts_in_a_fresh_process() -> None:
    script = ("from mynacard import fonts\nfrom mynacard.kiosk import pdf, warm\n"
              "before = pdf._furniture.cache_info().currsize, fonts.register_pdf_fonts.cache_info().currsize\n"
              "assert warm.warm_up() is True\n"
              "print(before, (pdf._furniture.cache_info().currsize, fonts.register_pdf_fonts.cache_info().currsize))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["(0,", "0)", "(1,", "1)"]


def test_without_the_fonts_the_app_still_starts_and_says_why(monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    def missing(*args: object, **kwargs: object) -> bytes:
        raise fonts.FontMissing("font ipaexm.ttf not found: install fonts-ipaexfont")

    monkeypatch.setattr(pdf, "render", missing)
    with caplog.at_level(logging.WARNING, logger="mynacard.kiosk.warm"):
        assert warm.warm_up.__wrapped__() is False
    assert "install fonts-ipaexfont" in caplog.text
