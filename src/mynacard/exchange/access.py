"""Who may act on the network — an agency for itself, the operator (J-LIS) and system jobs, a municipality's
supervisor for its agencies, a resident for themselves — and the local references they name."""

from __future__ import annotations

import re
from typing import Any

from mynacard.errors import Forbidden, InvalidInput
from mynacard.exchange.model import Agency
from mynacard.principal import Principal, Role

__all__ = ["ADMIN", "acting_for", "acting_resident", "administers", "check_local_ref"]


ADMIN = (Role.OPERATOR, Role.SYSTEM)
_LOCAL_REF = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def acting_for(principal: Principal, agency_id: str) -> None:
    """An agency acts only for itself; system jobs (the simulation, the bench) may act for any agency."""
    if principal.role is Role.AGENCY:
        if principal.subject != agency_id:
            raise Forbidden("an agency may act only for itself")
        return
    principal.require(Role.SYSTEM)


def administers(principal: Principal, agency: Agency) -> None:
    """The operator, system jobs, the agency itself, or a supervisor of the agency's municipality."""
    if principal.role is Role.AGENCY:
        if principal.subject != agency.id:
            raise Forbidden("an agency may act only for itself")
        return
    if principal.role is Role.SUPERVISOR:
        if agency.municipality_code != principal.municipality_code:
            raise Forbidden("a supervisor decides only for their own municipality's agencies")
        return
    principal.require(*ADMIN)


def acting_resident(principal: Principal) -> int:
    principal.require(Role.RESIDENT)
    return int(principal.subject)


def check_local_ref(value: Any) -> str:
    if not isinstance(value, str) or not _LOCAL_REF.fullmatch(value):
        raise InvalidInput("a local reference has 1–64 characters A–Z a–z 0–9 . _ : -")
    return value
