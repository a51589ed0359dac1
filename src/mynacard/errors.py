"""Errors a caller can act on. Their messages are safe to show to the person who made the request.

The web layer maps them to HTTP statuses in one place: InvalidInput → 422, NotFound → 404,
Forbidden → 403, Conflict → 409.
"""

from __future__ import annotations

__all__ = ["Conflict", "DomainError", "Forbidden", "InvalidInput", "NotFound"]


class DomainError(Exception):
    """Base of the errors below."""


class InvalidInput(DomainError, ValueError):
    """The request is malformed or breaks a rule; nothing was changed."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class NotFound(DomainError, LookupError):
    """No such thing — or not one the caller may see (the two are deliberately indistinguishable)."""


class Forbidden(DomainError, PermissionError):
    """The caller's role may not do this."""


class Conflict(DomainError):
    """The request clashes with the current state (an illegal transition, a duplicate, a taken slot)."""
