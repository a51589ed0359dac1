"""``mynacard office``: a notice postcard from the command line; a setup run refused during opening hours."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mynacard.cli import app
from mynacard.context import Context
from mynacard.office.service import is_off_peak
from tests.helpers import CHIYODA
from tests.office.support import town_with_notices


def test_notice_pdf_and_setup_from_the_command_line(sqlite_ctx: Context, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    town = town_with_notices(sqlite_ctx, 1)
    monkeypatch.setenv("MYNACARD_DATABASE_URL", sqlite_ctx.settings.database_url)
    out = tmp_path / "notice.pdf"
    result = CliRunner().invoke(app, ["office", "notice-pdf", town.notices[0], "--out", str(out),
                                      "-m", CHIYODA, "--home", str(sqlite_ctx.settings.home)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"%PDF")
    other = CliRunner().invoke(app, ["office", "notice-pdf", town.notices[0], "--out", str(out), "-m", "011002",
                                     "--home", str(sqlite_ctx.settings.home)])
    assert other.exit_code == 2 and "NotFound" in other.output
    setup = CliRunner().invoke(app, ["office", "setup", "-m", CHIYODA, "--home", str(sqlite_ctx.settings.home)])
    if is_off_peak(datetime.now(UTC)):
        assert setup.exit_code == 0 and "set up: 0" in setup.output  # everything was set up already
    else:
        assert setup.exit_code == 2 and "off peak" in setup.output
