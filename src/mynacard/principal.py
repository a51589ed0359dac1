"""Who is calling: role and scope. Every service that reads or changes data takes a :class:`Principal`.

Scoping is the rule "nobody sees what is not theirs": a clerk or supervisor sees only their municipality, a
resident only themselves, the national operator (J-LIS) everything it operates, and the contractors only the
stage they run. Services call :meth:`Principal.require` and :meth:`Principal.municipality_scope` instead of
checking roles by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mynacard.errors import Forbidden

__all__ = ["Forbidden", "Principal", "Role"]


class Role(StrEnum):
    """Roles of the system (利用者の種別)."""

    RESIDENT = "resident"
    """住民 — sees only their own records."""
    CLERK = "clerk"
    """市区町村職員 — works the window of one municipality."""
    SUPERVISOR = "supervisor"
    """市区町村の責任者 — a clerk who may also approve reviews and change plans of one municipality."""
    OPERATOR = "operator"
    """J-LIS — the national operator (card management system, CA, issuance centre)."""
    CONTRACTOR = "contractor"
    """申請受付事業者 — the application-acceptance contractor."""
    MANUFACTURER = "manufacturer"
    """カード発行事業者 — the card manufacturer."""
    VERIFIER = "verifier"
    """署名検証者・利用者証明検証者 — a registered verifier."""
    KIOSK = "kiosk"
    """マルチコピー機 — a convenience-store kiosk."""
    AGENCY = "agency"
    """行政機関 — an agency on the information provision network."""
    SYSTEM = "system"
    """Batch jobs and the simulation acting for the operator."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    role: Role
    subject: str
    """Login name, verifier ID, kiosk ID or (for residents) an opaque resident handle."""
    municipality_code: str | None = None
    """The one municipality a clerk or supervisor works for; None for national roles."""

    def __post_init__(self) -> None:
        if self.role in (Role.CLERK, Role.SUPERVISOR) and not self.municipality_code:
            raise ValueError("a municipal role needs a municipality code")

    def require(self, *roles: Role) -> None:
        """Raise :class:`Forbidden` unless the caller has one of ``roles``."""
        if self.role not in roles:
            raise Forbidden(f"role {self.role.value} may not do this")

    def municipality_scope(self) -> str | None:
        """The municipality every query must be limited to, or None for national roles."""
        if self.role in (Role.CLERK, Role.SUPERVISOR):
            return self.municipality_code
        if self.role in (Role.OPERATOR, Role.SYSTEM, Role.CONTRACTOR, Role.MANUFACTURER):
            return None
        raise Forbidden(f"role {self.role.value} has no municipal scope")

    def can_see_municipality(self, code: str) -> bool:
        try:
            scope = self.municipality_scope()
        except Forbidden:
            return False
        return scope is None or scope == code

    @classmethod
    def system(cls, name: str = "system") -> Principal:
        return cls(Role.SYSTEM, name)
