"""Record copies (副本登録): the current copy of each item an agency may provide, in its own store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from mynacard.context import Context
from mynacard.errors import InvalidInput
from mynacard.exchange.access import acting_for, check_local_ref
from mynacard.exchange.agencies import get_agency
from mynacard.exchange.model import InfoItem, check_record_data
from mynacard.exchange.store import store_for
from mynacard.principal import Principal

__all__ = ["RecordInput", "register_records"]


@dataclass(frozen=True)
class RecordInput:
    """The current copy of one item for one of the agency's persons."""

    local_ref: str
    item: str
    data: dict[str, Any]


def register_records(ctx: Context, principal: Principal, agency_id: str, items: Sequence[RecordInput],
                     now: datetime) -> int:
    """Register or replace copies of items an agency may provide (all or nothing); returns how many."""
    acting_for(principal, agency_id)
    agency = get_agency(ctx, agency_id)
    problems = []
    checked = []
    seen: set[tuple[str, str]] = set()
    for i, r in enumerate(items):
        try:
            ref = check_local_ref(r.local_ref)
            try:
                item = InfoItem(r.item)
            except ValueError:
                raise InvalidInput(f"unknown item {r.item!r}") from None
            if not agency.holds(item):
                raise InvalidInput(f"a {agency.kind.value} agency does not hold {item.value}")
            if (ref, item.value) in seen:
                raise InvalidInput("the same record appears twice in this batch")
            seen.add((ref, item.value))
            checked.append((ref, item, check_record_data(r.data)))
        except (InvalidInput, ValueError) as exc:
            problems.append(f"#{i + 1}: {exc}")
    if problems:
        raise InvalidInput(f"{len(problems)} record(s) refused; nothing was stored", problems)
    if not checked:
        return 0
    store = store_for(agency.id, ctx.db.engine.dialect.name)
    with ctx.transaction() as tx:
        refs = sorted({ref for ref, _, _ in checked})
        known: set[str] = set()
        for i in range(0, len(refs), 5000):
            known.update(tx.conn.execute(select(store.persons.c.local_ref).where(
                store.persons.c.local_ref.in_(refs[i:i + 5000]))).scalars())
        missing = [ref for ref in refs if ref not in known]
        if missing:
            raise InvalidInput("records for persons the agency has not enrolled; nothing was stored",
                               [f"{ref}: not enrolled" for ref in missing[:20]])
        existing: dict[tuple[str, str], int] = {}
        for i in range(0, len(refs), 5000):  # as above: bounded parameter lists, however large the batch
            existing.update(((r.local_ref, r.item), r.version) for r in tx.conn.execute(
                select(store.records.c.local_ref, store.records.c.item, store.records.c.version)
                .where(store.records.c.local_ref.in_(refs[i:i + 5000]))))
        for ref, item, data in checked:
            text = json.dumps(data, ensure_ascii=False, sort_keys=True)
            if (ref, item.value) in existing:
                tx.conn.execute(update(store.records).where(
                    store.records.c.local_ref == ref, store.records.c.item == item.value).values(
                    data=text, version=store.records.c.version + 1, updated_at=now))
            else:
                tx.conn.execute(insert(store.records).values(local_ref=ref, item=item.value, data=text,
                                                             version=1, updated_at=now))
    return len(checked)
