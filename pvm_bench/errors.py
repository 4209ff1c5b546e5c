"""The user-facing error base class.

Anything raised as a :class:`UserError` is bad input or an unavailable resource: the CLI
prints its message as one ``error:`` line and exits with status 2. Messages name the thing
and the fix.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a missing resource, reported to the user as one line."""
