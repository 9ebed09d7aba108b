"""Every error derivcheck raises on purpose, in one small hierarchy.

::

    VerifierError                     base; ``str(error)`` is a one-line message for users
    ├── InputError                    the request itself is wrong (HTTP 422, CLI exit 2)
    │   ├── ExpressionError           the expression string, with ``position`` (0-based column)
    │   │   ├── ForbiddenSyntaxError  a construct outside the whitelist (attribute, lambda, ...)
    │   │   ├── UnknownFunctionError  a call of a name that is not a supported function
    │   │   ├── ArityError            a supported function called with the wrong argument count
    │   │   └── LimitError            a size limit: characters, nodes, depth, literals, exponents,
    │   │                             variables (``limit`` names it)
    │   ├── PointError                a point: missing or unknown variable, non-numeric or
    │   │                             non-finite value, too many points
    │   └── OptionError               any other option: dtype, device, domain, tolerance, samples
    └── ServiceError                  the service around the core
        ├── NotFoundError             a job or report that does not exist (or is not yours)
        ├── UnavailableError          a database or broker that cannot be reached
        ├── UnauthorizedError         no API key where one is required, or an unknown or
        │                             revoked one (HTTP 401)
        ├── RateLimitedError          a key sent more requests than its rate allows, or more
        │                             at once than its share (HTTP 429; ``retry_after_s``)
        ├── BusyError                 no capacity for the request now, whoever sent it: no
        │                             parser process was free in time (HTTP 503;
        │                             ``retry_after_s``)
        └── RequestRejectedError      a request refused before anything was done (``problems``:
            │                         each field or parameter that is wrong, with its location;
            │                         HTTP 422): a bad cursor, say
            └── JobRejectedError      a job request refused before storing

Checks that were accepted but could not run (a symbolic step past its time budget, say) are
not exceptions: they end as a report with verdict ``error`` and a reason.
"""

from __future__ import annotations

from typing import Any


class VerifierError(Exception):
    """Base of every error derivcheck raises on purpose; it pickles whole (its attributes
    too), so an error raised in a child process arrives as it was raised."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(kind: type[VerifierError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = kind.__new__(kind)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class InputError(VerifierError):
    """The request is wrong; nothing was run."""


class ExpressionError(InputError):
    """The expression string is refused; ``position`` is the 0-based column, if known."""

    def __init__(self, reason: str, *, position: int | None = None, token: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.position = position
        self.token = token

    def __str__(self) -> str:
        where = f" at position {self.position}" if self.position is not None else ""
        return f"{self.reason}{where}"


class ForbiddenSyntaxError(ExpressionError):
    """A syntax construct outside the whitelist."""


class UnknownFunctionError(ExpressionError):
    """A call of a name that is not a supported function."""


class ArityError(ExpressionError):
    """A supported function called with the wrong number of arguments."""


class LimitError(ExpressionError):
    """A size limit was exceeded; ``limit`` is the name of the constant."""

    def __init__(self, reason: str, *, limit: str, position: int | None = None):
        super().__init__(reason, position=position)
        self.limit = limit


class PointError(InputError):
    """A point is missing a variable, names an unknown one, or has a bad value."""


class OptionError(InputError):
    """An option (dtype, device, domain, tolerance, samples, ...) is invalid; ``option`` names
    it where one option is at fault."""

    def __init__(self, reason: str, *, option: str | None = None):
        super().__init__(reason)
        self.option = option


class ServiceError(VerifierError):
    """A failure of the service around the core."""


class NotFoundError(ServiceError):
    """A job or report that does not exist, or belongs to somebody else."""


class UnavailableError(ServiceError):
    """A database or broker that cannot be reached."""


class UnauthorizedError(ServiceError):
    """A request without a valid API key where keys are required."""


class RateLimitedError(ServiceError):
    """Too many requests for one key; ``retry_after_s`` says when the next one is allowed."""

    def __init__(self, retry_after_s: int, reason: str = "rate limit exceeded"):
        self.retry_after_s = retry_after_s
        super().__init__(f"{reason}; retry after {retry_after_s} s")


class BusyError(ServiceError):
    """The service has no capacity for a valid request now; ``retry_after_s`` says when to
    try again. Nothing was stored."""

    def __init__(self, reason: str, retry_after_s: int):
        self.retry_after_s = retry_after_s
        super().__init__(f"{reason}; retry after {retry_after_s} s")


class RequestRejectedError(ServiceError):
    """A request refused before anything was done; ``problems`` names each wrong field."""

    def __init__(self, problems: list[dict[str, Any]]):
        self.problems = problems
        first = problems[0] if problems else {"loc": [], "msg": "invalid job"}
        where = ".".join(str(part) for part in first["loc"])
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{where}: {first['msg']}{more}")


class JobRejectedError(RequestRejectedError):
    """A job request refused before anything was stored."""
