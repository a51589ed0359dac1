"""``mynacard exchange …`` as an operator runs it, in process, on a fresh SQLite home."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mynacard.cli import app


def test_seed_a_network_then_inspect_verify_and_maintain_it(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"MYNACARD_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "COLUMNS": "200"}
    home = ["--home", str(tmp_path)]

    def run(*args: str, code: int = 0, with_home: bool = True) -> str:
        result = runner.invoke(app, [*args, *(home if with_home else [])], env=env)
        assert result.exit_code == code, (args, result.output)
        return result.output

    run("db", "upgrade")
    assert "no residents" in run("exchange", "seed", "--exchanges", "10", code=1)
    run("seed", "-m", "131016", "-n", "40")
    out = run("exchange", "seed", "-m", "131016", "--exchanges", "60")
    assert "9 agencies" in out and "60 exchanges" in out
    agencies = run("exchange", "agencies")
    assert "131016-tax" in agencies and "nenkin" in agencies and "mynaportal" in agencies
    assert "C-01" in run("exchange", "permissions", with_home=False)
    assert "log whole: 60 entries 1–60" in run("exchange", "verify-log")
    assert "checkpoint(s) signed" in run("exchange", "checkpoint")
    assert "40 links checked, 0 suspended" in run("exchange", "reconcile", "131016-tax")
    assert "review queue" in run("exchange", "reviews")
    assert "0 entries past seven years removed" in run("exchange", "purge-log")
    assert "0 sessions closed, 0 active" in run("portal", "sweep-sessions")
    out = run("exchange", "register", "kenpo-1", "--name", "健康保険組合", "--name-en", "Health insurer",
              "--kind", "health_insurer")
    assert "registered kenpo-1" in out
    bad = run("exchange", "register", "Bad_Id", "--name", "x", "--name-en", "x", "--kind", "pension", code=2)
    assert "InvalidInput" in bad
