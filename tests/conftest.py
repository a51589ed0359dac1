"""Shared fixtures: a service context on SQLite and on PostgreSQL, and the CI rule that tests needing
PostgreSQL, Chromium or PC/SC must run there rather than skip.

Every test that takes ``ctx`` runs twice, once per database. PostgreSQL tests use a database created for
this run (one per xdist worker) and dropped at the end, so that runs never see each other's data.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mynacard.bootstrap import build_context
from mynacard.context import Context
from mynacard.migrate import upgrade

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get("MYNACARD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REFERENCE_TABLES = {"municipalities", "alembic_version"}
NOW = datetime(2026, 4, 6, 0, 30, tzinfo=UTC)  # 09:30 JST on a Monday


def require(condition: bool, reason: str) -> None:
    """Skip with a visible reason — or fail in CI, where every kind of test must run."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {reason}: this test must run in CI, not skip", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True, scope="session")
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    home = tmp_path_factory.mktemp("home")
    old = os.environ.get("MYNACARD_HOME")
    os.environ["MYNACARD_HOME"] = str(home)
    yield
    if old is None:
        os.environ.pop("MYNACARD_HOME", None)
    else:
        os.environ["MYNACARD_HOME"] = old


def _pg_reachable() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN_URL} ({type(exc).__name__})"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this run (per xdist worker), dropped afterwards."""
    problem = _pg_reachable()
    require(problem is None, problem or "")
    name = f"mynacard_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    ctx = build_context(database_url=url)
    upgrade(ctx.db)
    ctx.db.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once is much faster)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    ctx = build_context(database_url=f"sqlite:///{path}")
    upgrade(ctx.db)
    ctx.db.dispose()  # the last connection to close checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


def _truncate_all(ctx: Context) -> None:
    # Agency stores are schemas of their own (data, not migrations): they would outlive a TRUNCATE and make
    # the next test's network refuse to create them again.
    from mynacard.exchange.store import drop_all_agency_stores

    with ctx.db.begin() as conn:
        drop_all_agency_stores(conn)
        names = [r[0] for r in conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))
            if r[0] not in REFERENCE_TABLES]
        if names:
            conn.execute(text("TRUNCATE " + ", ".join(f'"{n}"' for n in names) + " RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ctx(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[Context]:
    """A service context on an empty, migrated database (both databases, one test each)."""
    if request.param == "sqlite":
        db = tmp_path / "test.db"
        shutil.copy(sqlite_template, db)
        context = build_context(home=tmp_path, database_url=f"sqlite:///{db}")
    else:
        url = request.getfixturevalue("pg_url")
        context = build_context(home=tmp_path, database_url=url)
        _truncate_all(context)
    yield context
    context.db.dispose()


@pytest.fixture
def sqlite_ctx(tmp_path: Path, sqlite_template: Path) -> Iterator[Context]:
    """SQLite only, for tests about the embedded default itself."""
    db = tmp_path / "test.db"
    shutil.copy(sqlite_template, db)
    context = build_context(home=tmp_path, database_url=f"sqlite:///{db}")
    yield context
    context.db.dispose()


@pytest.fixture
def pg_ctx(tmp_path: Path, pg_url: str) -> Iterator[Context]:
    """PostgreSQL only, for tests about concurrency between workers."""
    context = build_context(home=tmp_path, database_url=pg_url)
    _truncate_all(context)
    yield context
    context.db.dispose()


# --- the real server and the real browser -----------------------------------------------------------------

CHROMIUM = os.environ.get("MYNACARD_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def live_server(ctx: Context) -> Iterator[str]:
    """The web app served by uvicorn on a free port, in a thread of this process; yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    from mynacard.web.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Headless Chromium (Debian's) driven by Playwright."""
    require(Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture
def page(browser: object, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh browser page; ``page.shot(name)`` keeps a screenshot under test-artifacts/."""
    context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    pg = context.new_page()
    ARTIFACTS.mkdir(exist_ok=True)
    test_name = request.node.name.replace("/", "_")

    def shot(name: str) -> Path:
        path = ARTIFACTS / f"{test_name}-{name}.png"
        pg.screenshot(path=str(path), full_page=True)
        return path

    pg.shot = shot  # type: ignore[attr-defined]
    yield pg
    context.close()
