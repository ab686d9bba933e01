"""One shape for every configuration error: `file:line: field: message`."""

import re
from typing import Any


class LocatedError(ValueError):
    """A bad policy, registry or vault file, named by file, line (1-based) and field."""

    def __init__(self, file: str, line: int | None, field: str | None, message: str) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        location = self.file
        if self.line is not None:
            location = f"{location}:{self.line}" if location else f"line {self.line}"
        return ": ".join(part for part in (location, self.field, self.message) if part)

    def __str__(self) -> str:
        return self._render()

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.file, self.line, self.field, self.message))


FieldPath = tuple[str | int, ...]
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def format_field(path: FieldPath) -> str:
    """``("api.stripe.com", "paths", "/v1/refunds", 0, "policy")`` ->
    ``api.stripe.com.paths["/v1/refunds"][0].policy``."""
    if not path:
        return "(document)"
    out = str(path[0])
    for part in path[1:]:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.fullmatch(part):
            out += f".{part}"
        else:
            out += f'["{part}"]'
    return out
