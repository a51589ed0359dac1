"""Who may act at a municipality's office: the municipal roles, the supervising ones, and the scope check every
use case of the office starts with."""

from __future__ import annotations

from mynacard.errors import NotFound
from mynacard.principal import Principal, Role

__all__ = ["MUNICIPAL", "SUPERVISING", "scope"]

MUNICIPAL = (Role.CLERK, Role.SUPERVISOR, Role.OPERATOR, Role.SYSTEM)
"""Roles that work at (or for) a municipality's windows."""
SUPERVISING = (Role.SUPERVISOR, Role.OPERATOR, Role.SYSTEM)
"""Roles that set the windows up (sites, shifts, slots) and destroy uncollected cards."""


def scope(principal: Principal, municipality_code: str) -> None:
    """A municipal role that may see ``municipality_code``; NotFound for any other (never says it exists)."""
    principal.require(*MUNICIPAL)
    if not principal.can_see_municipality(municipality_code):
        raise NotFound("no such municipality office")
