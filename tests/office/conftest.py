"""The real server for the office's browser tests, with the clock at the test's evening."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from mynacard.context import Context
from tests.office.support import EVENING


@pytest.fixture
def office_server(ctx: Context) -> Iterator[str]:
    """Like ``live_server``, but the app's clock reads the test's evening (slots are the day after)."""
    import uvicorn

    from mynacard.web.app import create_app

    app = create_app(ctx)
    app.state.ctx.clock = lambda: EVENING
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
