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
    status = subprocess.run([*cli, "status", "--home", str(tmp_path / "demo")], env={
        **env, "MYNACARD_DATABASE_URL": f"sqlite:///{tmp_path / 'demo' / 'mynacard.db'}"},
        capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert "ledger whole" in status.stdout and "131016" in status.stdout
