"""Domain errors: every refusal has a stable code, a human message, and a kind.

The use cases raise these; they say *what* went wrong, never which HTTP status to send.
Each edge maps kinds to its protocol: ``gate_proxy/api/errors.py::http_status`` for the
control API and the dashboard, and the proxy addons for proxied requests (which answer
an unauthenticated request with 407 on the forward listener and 401 on reverse routes).
"""


class GateError(Exception):
    """A refusal. Subclasses are its kind; ``error`` is the stable machine code."""

    def __init__(self, error: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, object]:
        return {"error": self.error, "message": self.message, **self.extra}


class InvalidInput(GateError):
    """The request is malformed or a value is out of range."""


class Unauthenticated(GateError):
    """No valid key (or session, or token) was presented."""


class NotPermitted(GateError):
    """The caller is known but may not do this (role, scope, inactive agent)."""


class NotFound(GateError):
    """No such thing, or none the caller may see (the two answer alike)."""


class StateConflict(GateError):
    """The thing is not in a state that allows this (already decided, already used)."""


class Expired(GateError):
    """A deadline has passed (review window, execution window, token)."""


class Unavailable(GateError):
    """The gate cannot do this right now (a dependency or a bound failed); nothing ran."""


def invalid(message: str, error: str = "bad_request") -> InvalidInput:
    return InvalidInput(error, message)


def unauthenticated(message: str = "a valid API key is required") -> Unauthenticated:
    return Unauthenticated("unauthorized", message)


def not_permitted(message: str, error: str = "forbidden") -> NotPermitted:
    return NotPermitted(error, message)


def not_found(what: str) -> NotFound:
    return NotFound("not_found", f"{what} not found")


def conflict(message: str, error: str = "conflict", **extra: object) -> StateConflict:
    return StateConflict(error, message, **extra)


def expired(message: str, error: str = "expired") -> Expired:
    return Expired(error, message)
