"""Domain errors: each maps to one status on each surface, in one place (transport.problems)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input: what, where (a path such as `policy.permission[0].action`), and the value."""

    message: str
    path: str | None = None
    invalid_value: Any = None


class ConnectorError(Exception):
    """Base of every error the node reports to a caller."""

    type = "Error"
    # The step of a multi-step call (a passport lookup) that failed, named in the problem's `step` member.
    step: str | None = None

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or [Problem(message)]


class InvalidInput(ConnectorError):
    """The input is malformed or violates a rule; nothing was changed."""

    type = "ValidationFailure"


class Unprocessable(ConnectorError):
    """The request is understood but cannot be carried out as asked (an export that could not be complete)."""

    type = "Unprocessable"


class NotFound(ConnectorError):
    """The object asked for does not exist."""

    type = "ObjectNotFound"


class Conflict(ConnectorError):
    """The request conflicts with what is stored (duplicate id, object still referenced)."""

    type = "ObjectConflict"


class AlreadyExists(Conflict):
    """A process the peer opened is stored already (the same opening message, handled by another replica)."""


class Refused(ConnectorError):
    """A partner refused what this node asked for (a negotiation terminated, a transfer refused, no offer)."""

    type = "Forbidden"


class Unauthorized(ConnectorError):
    """The caller did not prove who it is."""

    type = "Unauthorized"


class PeerError(ConnectorError):
    """A peer answered with an error or could not be reached."""

    type = "BadGateway"


class PeerTimeout(PeerError):
    """A peer did not answer in time."""

    type = "GatewayTimeout"


class DatabaseUnavailable(ConnectorError):
    """The node's database cannot be used (unreachable, missing, silent, corrupt); the message names it and why."""

    type = "ServiceUnavailable"

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


@dataclass(frozen=True, slots=True)
class ProblemList:
    """Collects problems while validating, so a caller sees all of them at once."""

    items: list[Problem] = field(default_factory=list)

    def add(self, message: str, path: str | None = None, invalid_value: Any = None) -> None:
        """Record one problem."""
        self.items.append(Problem(message, path, invalid_value))

    def raise_if_any(self, summary: str) -> None:
        """Raise InvalidInput carrying every recorded problem, if there is one."""
        if self.items:
            first = self.items[0]
            where = f" at {first.path}" if first.path else ""
            more = f" (and {len(self.items) - 1} more)" if len(self.items) > 1 else ""
            raise InvalidInput(f"{summary}: {first.message}{where}{more}", list(self.items))
