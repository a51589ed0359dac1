"""The command line: the demo's setup, status and the simulation, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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
