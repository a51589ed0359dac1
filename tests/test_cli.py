"""The command line: the demo's setup, status and the simulation, as a user runs them; and every command
refusing bad input with a clear message and exit code 2, without a traceback and without writing anything."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, inspect, select, table
from typer.testing import CliRunner

from mynacard.cli import app


def test_demo_without_serving_then_status_and_simulate(tmp_path: Path) -> None:
    env = {**os.environ, "MYNACARD_HOME": str(tmp_path / "home")}
    env.pop("MYNACARD_DATABASE_URL", None)
    cli = [sys.executable, "-m", "mynacard.cli"]
    demo = subprocess.run([*cli, "demo", "--home", str(tmp_path / "demo"), "--no-serve", "--residents", "300",
                           "--days", "10"], env=env, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr
    assert (tmp_path / "demo" / "mynacard.db").exists()
    _demo_cards_see_their_exchange_records(tmp_path / "demo", demo.stdout)
    status = subprocess.run([*cli, "status", "--home", str(tmp_path / "demo")], env={
        **env, "MYNACARD_DATABASE_URL": f"sqlite:///{tmp_path / 'demo' / 'mynacard.db'}"},
        capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert "ledger whole" in status.stdout and "131016" in status.stdout


def _demo_cards_see_their_exchange_records(home: Path, stdout: str) -> None:
    """The demo seeds the exchange network and makes chip cards whose holders have records in Mynaportal."""
    import re
    from datetime import UTC, datetime

    from mynacard.bootstrap import build_context
    from mynacard.exchange import service as ex
    from mynacard.principal import Principal, Role

    serials = re.findall(r"demo card (K\d{12})", stdout)
    assert serials, stdout
    ctx = build_context(home=home, database_url=f"sqlite:///{home / 'mynacard.db'}")
    for serial in serials:
        assert (home / "chips" / f"{serial}.card").exists()
        _, total = ex.records_about(ctx, Principal(Role.RESIDENT, str(int(serial[1:11]))), datetime.now(UTC))
        assert total > 0, serial
    ctx.db.dispose()


# --- bad input: refused with a clear message, exit 2, nothing written ------------------------------------------

HUGE = "99999999999999999999999"
TARGETS_CSV = "municipality_code,application_month,target_month\n131016,2026-01,done\n"

BAD = [
    # (arguments, a fragment of the message that says what is wrong)
    (["seed", "-m", "999999", "-n", "5"], "unknown municipality '999999'"),
    (["seed", "-m", "131016", "-m", "999999", "-n", "5"], "unknown municipality '999999'"),  # none seeded
    (["seed", "-n", "-5"], "--residents"),
    (["seed", "-n", "0"], "--residents"),
    (["seed", "-n", "abc"], "--residents"),
    (["seed", "-n", HUGE], "--residents"),
    (["simulate", "--days", "-3"], "--days"),
    (["simulate", "--days", "0"], "--days"),
    (["simulate", "--days", HUGE], "--days"),
    (["simulate", "--start", "2026-02-30"], "--start"),
    (["simulate", "--start", "garbage"], "--start"),
    (["serve", "--port", "99999"], "--port"),
    (["serve", "--port", "0"], "--port"),
    (["demo", "--no-serve", "--days", "-3"], "--days"),
    (["demo", "--no-serve", "--residents", "-5"], "--residents"),
    (["demo", "--no-serve", "--chip-cards", "-1"], "--chip-cards"),
    (["demo", "--no-serve", "--port", "70000"], "--port"),
    (["window", "check", HUGE], "card_id"),
    (["window", "check", "0"], "card_id"),
    (["window", "check", "abc"], "card_id"),
    (["window", "check", "999999"], "no such card"),
    (["window", "recover", "--older-than", "-5"], "--older-than"),
    (["window", "recover", "--older-than", HUGE], "--older-than"),
    (["kiosk", "closure", "2026-02-30", "--reason", "maintenance"], "day is out of range"),
    (["kiosk", "closure", "2026-05-01", "--reason", "maintenance", "--document", "nope"], "nope"),
    (["plans", "import", "{targets}", "--as-of", "2026-13-01"], "--as-of"),
    (["plans", "import", "{broken}"], "unknown header"),
    (["plans", "export", "--as-of", "2026-02-30"], "--as-of"),
    (["plans", "report", "--as-of", "soon"], "--as-of"),
    (["plans", "report", "--prefecture", "99"], "no prefecture '99'"),
    (["plans", "draft", "-m", "999999", "--target", "2026-10"], "no municipality '999999'"),
    (["plans", "draft", "-m", "131016", "--target", "2026-10", "--now", "garbage"], "--now"),
    (["plans", "draft", "-m", "131016", "--target", "2026-10", "--terminals", "-1", "--save"], "terminals"),
    (["plans", "forecast", "-m", "131016", "--temporary-days", "-5"], "temporary window"),
    (["plans", "refresh", "--now", "2026-02-30T10:00"], "--now"),
    (["plans", "settings", "--cms-capacity", "-5"], "capacity"),
    (["office", "check", "-m", "999999"], "unknown municipality '999999'"),
    (["office", "notices", "-m", "abc"], "unknown municipality 'abc'"),
    (["office", "destroy", "-m", "999999"], "unknown municipality '999999'"),
    (["office", "notice-pdf", "123", "--out", "{tmp}/notice.pdf", "-m", "131016"], "17 characters"),
    (["office", "notice-pdf", "12345678901234567", "--out", "{tmp}/no/such/dir/notice.pdf", "-m", "999999"],
     "unknown municipality"),
    (["exchange", "seed", "-m", "999999"], "unknown municipality '999999'"),
    (["exchange", "seed", "--exchanges", "-5"], "--exchanges"),
    (["exchange", "seed", "--residents", "0"], "--residents"),
    (["exchange", "agencies", "--kind", "nope"], "unknown agency kind 'nope'"),
    (["exchange", "reviews", "--agency", "nope"], "no agency 'nope'"),
    (["exchange", "reconcile", "nope"], "no agency 'nope'"),
    (["jpki", "show", "f" * 80], "out of range"),
    (["card", "serve-vpcd", "{tmp}/none.card", "--port", "99999999"], "--port"),
    (["accounts", "key", "revoke", "nobody", HUGE], "key_id"),
]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A migrated home with a seeded town, the environment that points every command at it, and files to
    import."""
    root = tmp_path_factory.mktemp("cli-home")
    env = {"MYNACARD_HOME": str(root), "MYNACARD_DATABASE_URL": f"sqlite:///{root / 'mynacard.db'}",
           "COLUMNS": "200"}
    runner = CliRunner()
    for args in (["db", "upgrade"], ["seed", "-m", "131016", "-n", "20"]):
        done = runner.invoke(app, args, env=env)
        assert done.exit_code == 0, done.output
    (root / "targets.csv").write_text(TARGETS_CSV, encoding="utf-8")
    (root / "broken.csv").write_text("not,a,plan\n1,2,3\n", encoding="utf-8")
    yield root, env


def _written(root: Path, url: str) -> tuple[dict[str, int], set[str]]:
    """Rows in every table, and every file under the home (the database's journal files aside)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            counts = {name: conn.execute(select(func.count()).select_from(table(name))).scalar_one()
                      for name in inspect(conn).get_table_names()}
    finally:
        engine.dispose()
    files = {str(p.relative_to(root)) for p in root.rglob("*")
             if not p.name.endswith(("-wal", "-shm", "-journal"))}
    return counts, files


@pytest.mark.parametrize(("args", "says"), BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_bad_input_is_refused_with_a_message_and_exit_2_writing_nothing(
        home: tuple[Path, dict[str, str]], args: list[str], says: str) -> None:
    root, env = home
    args = [a.format(tmp=root, targets=root / "targets.csv", broken=root / "broken.csv") for a in args]
    before = _written(root, env["MYNACARD_DATABASE_URL"])
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2, (args, result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert says in " ".join(result.output.replace("│", " ").split()), result.output
    assert _written(root, env["MYNACARD_DATABASE_URL"]) == before, "a refused command wrote something"


def test_a_refusal_is_one_line_on_standard_error(home: tuple[Path, dict[str, str]]) -> None:
    _, env = home
    result = CliRunner().invoke(app, ["seed", "-m", "999999"], env=env)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == "mynacard: NotFound: unknown municipality '999999'\n"


def test_a_bug_still_shows_its_traceback(home: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """The refusals are the project's errors and values that do not parse: anything else stays a bug."""
    _, env = home

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr("mynacard.cards.service.check_ledger", broken)
    result = CliRunner().invoke(app, ["status"], env=env)
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)


def test_status_keeps_the_ledger_check_for_the_first_page(home: tuple[Path, dict[str, str]]) -> None:
    from mynacard.bootstrap import build_context
    from mynacard.cards import service as cards

    root, env = home
    result = CliRunner().invoke(app, ["status"], env=env)
    assert result.exit_code == 0 and "ledger whole" in result.output, result.output
    ctx = build_context(home=root, database_url=env["MYNACARD_DATABASE_URL"])
    check = cards.last_ledger_check(ctx)
    ctx.db.dispose()
    assert check is not None and check.ok and check.actor == "mynacard-status"
