"""Kill a running simulation with SIGKILL at a random point, start it again, and find the ledger whole."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mynacard.bootstrap import build_context
from mynacard.cards import service as cards
from mynacard.cards.tables import card_events, print_batches

CLI = [sys.executable, "-m", "mynacard.cli"]


def _run(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([*CLI, *args], env=env, check=True, capture_output=True, timeout=600)


def _events(url: str, home: Path) -> int:
    ctx = build_context(home=home, database_url=url)
    try:
        with ctx.db.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(card_events)).scalar_one())
    finally:
        ctx.db.dispose()


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_sigkill_mid_simulation_leaves_the_ledger_whole(database: str, tmp_path: Path,
                                                        request: pytest.FixtureRequest) -> None:
    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'sim.db'}"
    else:
        request.getfixturevalue("pg_ctx")  # an emptied, migrated PostgreSQL database
        url = request.getfixturevalue("pg_url")
    env = {**os.environ, "MYNACARD_HOME": str(tmp_path), "MYNACARD_DATABASE_URL": url}
    _run(["db", "upgrade"], env)
    _run(["seed", "-m", "131016", "-m", "011002", "-n", "1500"], env)
    rng = random.Random()
    kills = 0
    for _ in range(3):
        proc = subprocess.Popen([*CLI, "simulate", "--days", "40", "--start", "2026-01-05"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        baseline = _events(url, tmp_path)
        deadline = time.monotonic() + 120
        while _events(url, tmp_path) == baseline and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))  # a random point while it works
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    assert kills >= 1, "the simulation finished before it could be killed"
    _run(["simulate", "--days", "10"], env)  # resumes after the last activity

    ctx = build_context(home=tmp_path, database_url=url)
    report = cards.verify_ledger(ctx)
    assert report.ok, report
    assert report.cards > 100 and sum(report.state_counts.values()) == report.cards
    with ctx.db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(print_batches)).scalar_one() > 0
    assert report.state_counts.get("received", 0) > 0  # the pipeline got all the way to the town halls
    ctx.db.dispose()
