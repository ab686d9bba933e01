"""The finding every analyzer yields, and the walk over a payload's strings. PURE."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

__all__ = ["SEVERITIES", "Finding", "iter_strings"]

SEVERITIES: Final = ("low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing an analyzer found.

    `type` is "<analyzer>.<kind>" (``sql.drop``, ``pii.ssn``, ``secret.aws_access_key``,
    ``template.unresolved``, ``shell.separator``, ``path.traversal``, ``record.empty_ratio``).
    `location` is where: a JSON path (``$.contacts[3].email``), ``payload`` for a non-JSON
    body. `detail` never repeats a sensitive value: PII and secrets are described, masked.
    """

    type: str
    severity: str
    location: str
    detail: str

    @property
    def analyzer(self) -> str:
        return self.type.split(".", 1)[0]

    @property
    def kind(self) -> str:
        return self.type.split(".", 1)[-1]


def iter_strings(root: object, location: str = "$") -> Iterator[tuple[str, str]]:
    """(location, value) for every string value in a decoded JSON value, document order.

    Objects may be dicts or tuples of (key, value) pairs. Iterative: deep nesting cannot
    overflow the stack.
    """
    stack: list[tuple[str, object]] = [(location, root)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, dict | tuple):
            pairs = list(item.items()) if isinstance(item, dict) else list(item)
            for key, child in reversed(pairs):
                stack.append((f"{where}.{key}", child))
        elif isinstance(item, list):
            for index in range(len(item) - 1, -1, -1):
                stack.append((f"{where}[{index}]", item[index]))
