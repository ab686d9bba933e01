"""The finding every analyzer yields, and the walk over a payload's strings. PURE."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

__all__ = ["SEVERITIES", "Finding", "JsonPath", "iter_strings", "walk_strings"]

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


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A location in a JSON value, built only when shown (``str()``).

    Building ``$.a[0].b...`` strings for every value would cost O(depth) per value: a
    payload nested 900 deep with 60,000 strings would allocate gigabytes.
    """

    parent: "JsonPath | None"
    key: str | int  # the root's name ("$"), an object key, or a list index

    def __str__(self) -> str:
        steps: list[str] = []
        node: JsonPath | None = self
        while node is not None:
            key = node.key
            if node.parent is None:
                steps.append(str(key))
            else:
                steps.append(f"[{key}]" if isinstance(key, int) else f".{key}")
            node = node.parent
        return "".join(reversed(steps))


def _children(item: object) -> Iterator[tuple[str | int, object]] | None:
    if isinstance(item, dict):
        return iter(item.items())
    if isinstance(item, tuple):
        return iter(item)
    if isinstance(item, list):
        return enumerate(item)
    return None


def walk_strings(
    root: object, location: str = "$"
) -> Iterator[tuple[JsonPath | None, str | int, str]]:
    """(parent, key, value) for every string value in a decoded JSON value, document order;
    ``JsonPath(parent, key)`` is its location (a string root: parent None, key "$").

    Objects may be dicts or tuples of (key, value) pairs. Iterative and lazy: deep nesting
    cannot overflow the stack, a consumer that stops early stops the walk, and a location
    costs nothing until it is spelled out.
    """
    if isinstance(root, str):
        yield None, location, root
        return
    top = JsonPath(None, location)
    children = _children(root)
    if children is None:
        return
    stack: list[tuple[JsonPath, Iterator[tuple[str | int, object]]]] = [(top, children)]
    while stack:
        parent, pending = stack[-1]
        for key, child in pending:
            if isinstance(child, str):
                yield parent, key, child
                continue
            grandchildren = _children(child)
            if grandchildren is not None:
                stack.append((JsonPath(parent, key), grandchildren))
                break
        else:
            stack.pop()


def iter_strings(root: object, location: str = "$") -> Iterator[tuple[str, str]]:
    """`walk_strings` with each location spelled out."""
    for parent, key, value in walk_strings(root, location):
        yield str(JsonPath(parent, key)), value
