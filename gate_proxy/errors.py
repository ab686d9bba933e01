"""Errors that become HTTP answers. Every one has a stable code and a human message."""


class GateError(Exception):
    def __init__(self, status: int, error: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, object]:
        return {"error": self.error, "message": self.message, **self.extra}


def bad_request(message: str, error: str = "bad_request") -> GateError:
    return GateError(400, error, message)


def unauthorized(message: str = "a valid API key is required") -> GateError:
    return GateError(401, "unauthorized", message)


def forbidden(message: str, error: str = "forbidden") -> GateError:
    return GateError(403, error, message)


def not_found(what: str) -> GateError:
    return GateError(404, "not_found", f"{what} not found")


def conflict(message: str, error: str = "conflict", **extra: object) -> GateError:
    return GateError(409, error, message, **extra)


def gone(message: str, error: str = "expired") -> GateError:
    return GateError(410, error, message)
