"""Acceptance: plans for all 1,741 municipalities that encode the deck's situation on 2016-06-17, imported
from CSV with `mynacard plans import`, give exactly the deck's p.10 table and figures in
`mynacard plans report --csv` — on SQLite and on PostgreSQL.

The CSV rows are data built per municipality (see ``deck2016.py``); the report adds them up knowing nothing
of the deck. The expected table below is typed from the deck.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mynacard.cli import app
from mynacard.context import Context
from tests.plans import deck2016

DECK_CSV = """\
target\\applied,2015-10,2015-11,2015-12,2016-01,2016-02,2016-03,2016-04,2016-05 and later
done,1737,1723,1649,1487,1368,1215,990,240
2016-06,3,17,69,173,223,265,384,853
2016-07,0,0,16,53,95,166,218,401
2016-08,1,1,7,22,41,61,93,171
2016-09,0,0,0,5,10,24,37,48
2016-10,0,0,0,1,3,8,17,16
2016-11,0,0,0,0,1,2,2,12
total,1741,1741,1741,1741,1741,1741,1741,1741
"""
"""The deck's table (columns: application months; rows: target months)."""

DECK_FIGURES = """\
month,cleared_cumulative,cleared_share,notices_sent_cumulative,applications_cumulative,ratio
2016-05,240,,7358866,10431793,70.5%
2016-06,1093,62.8%,9240660,11492040,80.4%
2016-07,1494,85.8%,10565390,11881986,88.9%
2016-08,1665,95.6%,11602625,12272124,94.5%
2016-09,1713,98.4%,12317775,12660937,97.3%
2016-10,1729,99.3%,12881189,13050621,98.7%
2016-11,1741,100.0%,13370140,13370140,100.0%
"""
"""The deck's right-hand block (May has no share in the deck)."""


@pytest.fixture(scope="module")
def deck_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("deck")
    targets, monthly = deck2016.build()
    (folder / "targets.csv").write_bytes(targets)
    (folder / "monthly.csv").write_bytes(monthly)
    return [folder / "targets.csv", folder / "monthly.csv"]


def _cli(ctx: Context, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.setenv("MYNACARD_DATABASE_URL", ctx.settings.database_url)
    result = CliRunner().invoke(app, ["plans", *args, "--home", str(ctx.settings.home)])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_deck_table_from_csv(ctx: Context, deck_files: list[Path],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    rows = sum(len(f.read_text().splitlines()) - 1 for f in deck_files)
    assert rows == 1741 * 8 + 1741 * 7
    out = _cli(ctx, monkeypatch, "import", *map(str, deck_files), "--as-of", "2016-06-17")
    assert "1,741 municipalities" in out
    report = list(csv.reader(io.StringIO(_cli(ctx, monkeypatch, "report", "--csv", "--as-of", "2016-06-17"))))
    table = [r[:9] for r in report]
    assert table == list(csv.reader(io.StringIO(DECK_CSV)))
    figures = [r[9:] for r in report[:-1]]
    expected = list(csv.reader(io.StringIO(DECK_FIGURES)))
    assert figures[0] == expected[0]
    for got, want in zip(figures[1:], expected[1:], strict=True):
        assert got[:2] + got[3:] == want[:2] + want[3:]
        assert want[2] == "" or got[2] == want[2]
    # May's share, which the deck leaves blank, is what it must be: 240 / 1,741.
    assert figures[1][2] == "13.8%"
    # Importing the same files again changes nothing.
    again = _cli(ctx, monkeypatch, "import", *map(str, deck_files), "--as-of", "2016-06-17")
    assert "already imported" in again
    # The human-readable report lists the 76 municipalities that finish in September or later.
    text = _cli(ctx, monkeypatch, "report", "--as-of", "2016-06-17")
    assert "76 municipalities finish after 2016-08" in text
