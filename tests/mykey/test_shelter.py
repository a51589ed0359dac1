"""Shelter check-in: the offline client's queue, syncing without duplicates or loss, PIN or no PIN by the
municipality's setting, and the disaster view."""

from __future__ import annotations

import socket
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mynacard.accounts import service as accounts
from mynacard.context import Context
from mynacard.errors import NotFound
from mynacard.mykey import shelter
from mynacard.mykey.shelter import SyncReceipt, Touch
from mynacard.mykey.shelter_client import HttpUplink, NetworkDown, ShelterClient
from mynacard.mykey.tables import shelter_touches
from mynacard.principal import Principal, Role
from tests.conftest import NOW
from tests.jpki.support import CHIYODA, SAPPORO, Town
from tests.mykey.support import PINS, ChipCard, chip_card, household

STAFF = Principal(Role.CLERK, "bousai", CHIYODA)


def _closed_port_url() -> str:
    """A URL where nothing listens: the network is cut."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _family(town: Town) -> list[ChipCard]:
    ids = household(town.ctx, [("一郎", "イチロウ", date(1975, 4, 1), "世帯主"),
                               ("花子", "ハナコ", date(1978, 6, 1), "妻"),
                               ("次郎", "ジロウ", date(2008, 9, 1), "子")])
    return [chip_card(town, resident_id=rid) for rid in ids]


def _device(ctx: Context) -> str:
    accounts.create_account(ctx, "shelter-01", Role.CLERK, None, NOW, CHIYODA)
    return accounts.issue_api_key(ctx, "shelter-01")


def _stored(ctx: Context) -> int:
    with ctx.db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(shelter_touches)).scalar_one())


class LostAnswer:
    """The request reaches the municipality but the answer is lost on the way back."""

    def __init__(self, inner: HttpUplink) -> None:
        self.inner = inner

    def send(self, shelter_code: str, touches: list[Touch]) -> SyncReceipt:
        self.inner.send(shelter_code, touches)
        raise NetworkDown("connection reset while reading the answer")


def test_network_cut_then_restored_syncs_without_duplicates_or_loss(town: Town, live_server: str,
                                                                    tmp_path: Path) -> None:
    ctx = town.ctx
    father, mother, son = _family(town)
    key = _device(ctx)
    shelter.register_shelter(ctx, STAFF, "kanda-es", "神田小学校", CHIYODA, 300)
    client = ShelterClient(tmp_path / "queue.db", "kanda-es", HttpUplink(_closed_port_url(), key, timeout=2))

    first = client.touch(father.client, NOW, pin=PINS.auth)
    second = client.touch(mother.client, NOW + timedelta(minutes=1), pin=PINS.auth)
    report = client.sync()
    assert report.network_down and report.sent == 0 and report.pending == 2
    assert _stored(ctx) == 0

    client.uplink = LostAnswer(HttpUplink(live_server, key))  # back, but the first answer is lost
    assert client.sync().network_down
    assert client.queued() == [first, second] and _stored(ctx) == 2

    third = client.touch(father.client, NOW + timedelta(hours=2), direction="out", pin=PINS.auth)
    client.uplink = HttpUplink(live_server, key)
    report = client.sync()
    assert (report.accepted, report.duplicates, report.pending, report.network_down) == (1, 2, 0, False)
    again = client.sync()
    assert (again.sent, again.pending) == (0, 0)
    assert sorted(client.queued("synced")) == sorted([first, second, third])
    with ctx.db.connect() as conn:
        stored = set(conn.execute(select(shelter_touches.c.touch_id)).scalars())
    assert stored == {first, second, third}

    view = shelter.disaster_view(ctx, STAFF, CHIYODA)
    assert [(s.code, s.present) for s in view.shelters] == [("kanda-es", 1)]
    assert [p.resident_id for p in view.present["kanda-es"]] == [mother.resident_id]
    (found, absent), = view.missing
    assert found.resident_id == mother.resident_id
    assert sorted(p.resident_id for p in absent) == sorted([father.resident_id, son.resident_id])


def test_pin_or_no_pin_by_the_municipalitys_setting(town: Town, tmp_path: Path) -> None:
    ctx = town.ctx
    card = chip_card(town)
    shelter.register_shelter(ctx, STAFF, "kanda-es", "神田小学校", CHIYODA, 300)
    assert shelter.shelter(ctx, "kanda-es").pin_required  # the default: with the PIN

    class Local:
        def send(self, code: str, touches: list[Touch]) -> SyncReceipt:
            return shelter.receive_touches(ctx, STAFF, code, touches, NOW)

    unsigned = ShelterClient(tmp_path / "a.db", "kanda-es", Local(), pin_required=False)
    refused = unsigned.touch(card.client, NOW)
    assert unsigned.sync().refused == 1
    assert "PIN" in unsigned.refused()[refused] and _stored(ctx) == 0  # kept locally with the reason

    shelter.set_pin_required(ctx, STAFF, CHIYODA, False)
    assert not shelter.shelter(ctx, "kanda-es").pin_required
    quick = ShelterClient(tmp_path / "b.db", "kanda-es", Local(), pin_required=False)
    quick.touch(card.client, NOW)
    assert quick.sync().accepted == 1

    # a signature over another touch (or shelter) is refused: it binds the touch
    signed = ShelterClient(tmp_path / "c.db", "kanda-es", Local(), pin_required=True)
    touch_id = signed.touch(card.client, NOW, pin=PINS.auth)
    with signed._db() as db:  # tamper with the queued touch's time
        db.execute("UPDATE touches SET touched_at = ? WHERE touch_id = ?",
                   ((NOW + timedelta(hours=1)).isoformat(), touch_id))
    shelter.set_pin_required(ctx, STAFF, CHIYODA, True)
    assert signed.sync().refused == 1
    assert "signature" in signed.refused()[touch_id]


def test_scoped_to_the_municipality(town: Town) -> None:
    ctx = town.ctx
    shelter.register_shelter(ctx, STAFF, "kanda-es", "神田小学校", CHIYODA, 300)
    other = Principal(Role.CLERK, "bousai", SAPPORO)
    with pytest.raises(NotFound):
        shelter.disaster_view(ctx, other, CHIYODA)
    with pytest.raises(NotFound):
        shelter.receive_touches(ctx, other, "kanda-es", [], NOW)
    assert shelter.disaster_view(ctx, other, SAPPORO).shelters == []


def test_cli_sync_and_ledger_check(town: Town, live_server: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mynacard.cli import app

    ctx = town.ctx
    card = chip_card(town)
    key = _device(ctx)
    shelter.register_shelter(ctx, STAFF, "kanda-es", "神田小学校", CHIYODA, 300)
    queue = tmp_path / "queue.db"
    touch_id = ShelterClient(queue, "kanda-es", HttpUplink(_closed_port_url(), key, timeout=2)).touch(
        card.client, NOW, pin=PINS.auth)
    runner = CliRunner()
    args = ["mykey", "shelter-sync", "--queue", str(queue), "--shelter", "kanda-es", "--api-key", key]
    down = runner.invoke(app, [*args, "--url", _closed_port_url()])
    assert down.exit_code == 2 and "stay queued" in down.output
    up = runner.invoke(app, [*args, "--url", live_server])
    assert up.exit_code == 0 and "1 new" in up.output
    again = runner.invoke(app, [*args, "--url", live_server])
    assert again.exit_code == 0 and "sent 0" in again.output
    with ctx.db.connect() as conn:
        assert list(conn.execute(select(shelter_touches.c.touch_id)).scalars()) == [touch_id]


def test_touch_api_refuses_bad_input_and_strangers(town: Town, live_server: str) -> None:
    import httpx

    ctx = town.ctx
    key = _device(ctx)
    shelter.register_shelter(ctx, STAFF, "kanda-es", "神田小学校", CHIYODA, 300)
    url = f"{live_server}/api/mykey/shelters/kanda-es/touches"
    auth = {"Authorization": f"Bearer {key}"}
    assert httpx.post(url, json={"touches": []}).status_code == 401
    assert httpx.post(url, content=b"not json", headers=auth).status_code == 422
    bad = httpx.post(url, json={"touches": [{"touch_id": "x", "certificate": "%%%"}]}, headers=auth)
    assert bad.status_code == 422 and "not a touch" in bad.json()["detail"]
    assert httpx.post(url, json={"touches": []}, headers=auth).json() == {"accepted": [], "duplicates": [],
                                                                            "refused": {}}
    accounts.create_account(ctx, "sapporo-shelter", Role.CLERK, None, NOW, SAPPORO)
    other = {"Authorization": f"Bearer {accounts.issue_api_key(ctx, 'sapporo-shelter')}"}
    assert httpx.post(url, json={"touches": []}, headers=other).status_code == 404
    assert _stored(ctx) == 0
