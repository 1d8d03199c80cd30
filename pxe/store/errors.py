"""Typed inventory errors; the HTTP layer maps each class to one status code."""

from __future__ import annotations


class StoreError(Exception):
    """Base class: the message is one sentence an operator can act on."""

    status = 500


class InvalidInputError(StoreError):
    """The request is malformed (a bad MAC, an unknown field, a missing value)."""

    status = 400


class NotFoundError(StoreError):
    status = 404

    def __init__(self, kind: str, ref: object) -> None:
        super().__init__(f"no {kind} {ref!r}")
        self.kind = kind
        self.ref = ref


class ConflictError(StoreError):
    """The request clashes with what exists (a duplicate name or MAC, a forbidden transition)."""

    status = 409
