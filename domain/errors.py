"""Errors the domain raises; api/ maps each kind to one HTTP status in one place."""

from __future__ import annotations


class DomainError(Exception):
    """A command was refused by a rule; the message is written for the person who sent it, and
    `fields` (when given) points at the fields to fix."""

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


class InvalidFieldsError(DomainError):
    """One or more fields break a rule."""

    def __init__(self, fields: dict[str, str]) -> None:
        message = "; ".join(f"{name}: {problem}" for name, problem in fields.items())
        super().__init__(message, fields)


class InvalidItemsError(DomainError):
    """A batch was refused as a whole; `items` maps each failing item's index to its
    problems, so a client can fix them all in one go."""

    def __init__(self, items: dict[str, dict[str, str]]) -> None:
        super().__init__(f"{len(items)} item(s) of the batch are invalid; nothing was stored")
        self.items = items


class NotFoundError(DomainError):
    """Nothing with that id exists (or existed at the asked time)."""


class GoneError(DomainError):
    """It existed but has been deleted; its history stays readable."""


class AccountClosedError(GoneError):
    """The actor's own account was deleted while the request was under way (the request was
    signed in before): told as a request from an erased account is, 401."""


class ForbiddenError(DomainError):
    """The actor is known but may not do this (only an event's owner changes it)."""


class ConflictError(DomainError):
    """The command clashes with the current state (already started, name taken)."""


class VersionMismatchError(DomainError):
    """The client's If-Match names a version that is no longer the latest."""
