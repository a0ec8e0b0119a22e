"""The command line's one error type: a mistake of the user's."""

from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(Exception):
    """A mistake of the user's, reported in one line (exit status 2)."""
