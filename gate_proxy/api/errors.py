"""Domain errors as HTTP answers: the one place a kind of refusal becomes a status code."""

from gate_proxy.errors import (
    Expired,
    GateError,
    InvalidInput,
    NotFound,
    NotPermitted,
    StateConflict,
    Unauthenticated,
    Unavailable,
)

_STATUS: dict[type[GateError], int] = {
    InvalidInput: 400,
    Unauthenticated: 401,
    NotPermitted: 403,
    NotFound: 404,
    StateConflict: 409,
    Expired: 410,
    Unavailable: 503,
}


class HttpError(GateError):
    """An answer only an HTTP edge gives (415, a CSRF refusal): the status is the point."""

    def __init__(self, status: int, error: str, message: str, **extra: object) -> None:
        super().__init__(error, message, **extra)
        self.status = status


def http_status(exc: GateError) -> int:
    if isinstance(exc, HttpError):
        return exc.status
    for kind in type(exc).__mro__:
        status = _STATUS.get(kind)  # type: ignore[arg-type]
        if status is not None:
            return status
    return 500
