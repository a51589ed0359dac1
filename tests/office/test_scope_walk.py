"""Nobody sees what is not theirs: every route of the whole app (every part's routers, from ``app.routes``) is
called with every method, by every role that has no national scope — a clerk and a supervisor of another
municipality, a resident, a verifier, a kiosk, an agency, and nobody — with path parameters naming the records
of one town's residents (their municipality, card, box, notice, slot, card serial).

Every answer must be a refusal (401/403/404/405/409/422 or a redirect to the login), or, where a route is
public or takes no record, a page that carries none of the residents' data (names, address, card serial,
application ID, notice number). The office's own non-public routes must refuse outright (401/403/404).
Operator, system, contractor and manufacturer are national roles by design (Principal.municipality_scope)
and are not walked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fastapi.testclient import TestClient

from mynacard.accounts import service as accounts
from mynacard.cards import service as cards
from mynacard.context import Context
from mynacard.jpki import service as jpki
from mynacard.office import service
from mynacard.principal import Role
from mynacard.registry import service as registry
from mynacard.web.app import create_app
from tests.conftest import NOW
from tests.helpers import CHIYODA, SAPPORO, SYSTEM
from tests.office.support import EVENING, town_with_notices

PUBLIC_OFFICE = re.compile(
    r"^/(office/m/\{code\}/congestion|api/office/\{code\}/(congestion|slots)|book.*|api/book.*)$")


def _routes(routes: list[Any]) -> Iterator[Any]:
    for r in routes:
        if type(r).__name__ == "_IncludedRouter":
            yield from _routes(r.original_router.routes)
        elif hasattr(r, "methods") and r.methods:
            yield r


def test_another_towns_staff_and_outsiders_get_nothing_on_any_route(sqlite_ctx: Context) -> None:
    ctx = sqlite_ctx
    town = town_with_notices(ctx, 2, code=SAPPORO)
    number = town.notices[0]
    slot = service.open_slots(ctx, SAPPORO, EVENING)[0]
    service.book(ctx, number, town.birth_date(ctx, number), slot.id, EVENING)
    card = cards.get_card(ctx, SYSTEM, service.card_for_notice(ctx, SYSTEM, number).card_id)
    resident = registry.residents_by_id(ctx, SYSTEM, [card.resident_id])[card.resident_id]
    box_id = int(cards.card_history(ctx, SYSTEM, card.id)[[h["to_state"] for h in cards.card_history(
        ctx, SYSTEM, card.id)].index("shipped")]["reason"].split()[1])
    markers = {f"{resident.facts.family_name} {resident.facts.given_name}", resident.facts.address,
               str(card.card_serial), card.application_id}
    values = {"code": SAPPORO, "prefecture_code": "01", "card_id": str(card.id), "box_id": str(box_id),
              "number": number, "serial": str(card.card_serial), "slot_id": str(slot.id), "encoded": "MAA=",
              "kind": "auth", "name": "x", "step": "1"}

    jpki.ensure_authorities(ctx, SYSTEM, NOW)  # an installation in service: `mynacard jpki init` has run
    app = create_app(ctx)
    app.state.ctx.clock = lambda: EVENING
    client = TestClient(app, raise_server_exceptions=False)
    roles: dict[str, dict[str, str]] = {"anonymous": {}}
    for name, role, code in [("chiyoda-clerk", Role.CLERK, CHIYODA), ("chiyoda-supervisor", Role.SUPERVISOR, CHIYODA),
                             ("999999", Role.RESIDENT, None), ("verifier-1", Role.VERIFIER, None),
                             ("kiosk-1", Role.KIOSK, None), ("agency-1", Role.AGENCY, None)]:
        accounts.create_account(ctx, name, role, None, NOW, code)
        roles[name] = {"authorization": "Bearer " + accounts.issue_api_key(ctx, name)}

    problems: list[str] = []
    walked = 0
    for route in _routes(app.routes):
        path = route.path
        url = re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: values.get(m.group(1), "1"), path)
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            for who, headers in roles.items():
                walked += 1
                kwargs: dict[str, Any] = {"headers": {**headers, "accept": "application/json"},
                                          "follow_redirects": False}
                if method in ("POST", "PUT", "PATCH"):
                    kwargs["json"] = {}
                response = client.request(method, url, **kwargs)
                status = response.status_code
                body = response.text
                where = f"{who} {method} {url} → {status}"
                if status >= 500:
                    problems.append(f"{where}: server error")
                    continue
                if status < 400:
                    leaked = [m for m in markers if m in body]
                    if number not in url and number in body:
                        leaked.append("notice number")
                    if leaked:
                        problems.append(f"{where}: shows {leaked}")
                    office = (path.startswith(("/office", "/api/office")) and "{" in path
                              and not PUBLIC_OFFICE.match(path))
                    to_login = status in (302, 303, 307) and response.headers.get("location", "").startswith("/login")
                    if office and not to_login:
                        problems.append(f"{where}: an office route answered another town's data")
    assert walked > 800, walked
    assert not problems, "\n".join(problems)

    # the control: the town's own clerk, with the same substitutions, does see the records
    accounts.create_account(ctx, "sapporo-clerk", Role.CLERK, None, NOW, SAPPORO)
    own = {"authorization": "Bearer " + accounts.issue_api_key(ctx, "sapporo-clerk")}
    day = slot.starts_at.date().isoformat()
    seen = client.get(f"/office/m/{SAPPORO}?day={day}", headers=own)
    assert seen.status_code == 200 and f"{resident.facts.family_name} {resident.facts.given_name}" in seen.text
    assert client.get(f"/api/office/notices/{number}", headers=own).json()["card_id"] == card.id
    assert client.get(f"/api/boxes/{box_id}", headers=own).json()["serials"].count(card.card_serial) == 1
