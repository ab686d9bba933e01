"""Field paths into a payload: ``contacts[*].email``, ``items[0].sku``, ``data.amount``.

Shared by the analyzers (which fields to check), record checks and budget values. PURE.

Grammar: keys separated by dots; ``[*]`` is every element of a list, ``[N]`` one element.
A numeric key after a dot indexes a list too (``contacts.0.email``, as in field_checks).
Objects may be dicts or the duplicate-preserving tuples of (key, value) pairs that
``terms.decode_json`` produces; every value of a duplicated key is selected, and the
selection says so (a value that upstream parsers may read differently is ambiguous).

Form bodies (``a=1&b=2``, Stripe's encoding) are read as one flat object: a path is then a
single top-level key.
"""

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "WILDCARD",
    "FieldPath",
    "Selection",
    "form_pairs",
    "parse_field_path",
    "select",
    "select_values",
]


class _Wildcard:
    __slots__ = ()

    def __repr__(self) -> str:
        return "[*]"


WILDCARD: Final = _Wildcard()
Segment = str | int | _Wildcard


@dataclass(frozen=True, slots=True)
class FieldPath:
    text: str
    segments: tuple[Segment, ...]

    @property
    def has_wildcard(self) -> bool:
        return any(segment is WILDCARD for segment in self.segments)


def parse_field_path(text: str) -> FieldPath:
    """Parse a field path; ValueError with a short reason for a malformed one."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("must not be empty")
    if text != text.strip():
        raise ValueError(f"{text!r} has leading or trailing whitespace")
    segments: list[Segment] = []
    position, length = 0, len(text)
    while position < length:
        char = text[position]
        if char == "[":
            end = text.find("]", position)
            if end < 0:
                raise ValueError(f"{text!r}: unclosed '['")
            inner = text[position + 1 : end]
            if inner == "*":
                segments.append(WILDCARD)
            elif inner.isascii() and inner.isdigit() and len(inner) <= 9:
                segments.append(int(inner))
            else:
                raise ValueError(f"{text!r}: use [*] or [N] inside brackets, got [{inner}]")
            position = end + 1
            continue
        if char == "]":
            raise ValueError(f"{text!r}: unexpected ']' at position {position}")
        if char == ".":
            if not segments:
                raise ValueError(f"{text!r} must start with a key")
            position += 1
        elif segments:
            raise ValueError(f"{text!r}: expected '.' or '[' at position {position}")
        end = _key_end(text, position)
        if end == position:
            raise ValueError(f"{text!r} has an empty path segment")
        segments.append(text[position:end])
        position = end
    return FieldPath(text, tuple(segments))


def _key_end(text: str, start: int) -> int:
    for index in range(start, len(text)):
        if text[index] in ".[]":
            return index
    return len(text)


@dataclass(slots=True)
class Selection:
    """What a path selected: (location, value) pairs, plus what made it uncertain."""

    matches: list[tuple[str, object]] = field(default_factory=list)
    duplicate_key: str | None = None  # a key on the path appeared twice in one object
    lists: int = 0  # how many lists a wildcard expanded (0: the wildcard found no list)
    truncated: bool = False  # stopped at `limit` values: the selection is incomplete


def select(root: object, path: FieldPath, limit: int | None = None) -> Selection:
    """Every value at `path` in a decoded payload (objects as dicts or pair tuples).

    With `limit`, at most that many values are kept at any step; past it the selection is
    `truncated` (a caller that must see every value fails closed on it).
    """
    return _select(root, path.segments, limit, located=True)


def select_values(
    root: object, segments: tuple[Segment, ...], limit: int | None = None
) -> Selection:
    """`select` for callers that need the values only (record checks, budget values): the
    same values, duplicates, list count and truncation, with every location "" (building
    ``$.contacts[7].email`` for each value costs more than the lookup itself)."""
    return _select(root, segments, limit, located=False)


def _select(
    root: object, segments: tuple[Segment, ...], limit: int | None, located: bool
) -> Selection:
    selection = Selection()
    frontier: list[tuple[str, object]] = [("$" if located else "", root)]
    for segment in segments:
        following: list[tuple[str, object]] = []
        wildcard = segment is WILDCARD
        index_segment = isinstance(segment, int)
        # A numeric key after a dot indexes a list too (ASCII digits only).
        digits = isinstance(segment, str) and segment.isascii() and segment.isdigit()
        for location, value in frontier:
            if limit is not None and len(following) > limit:
                selection.truncated = True
                break
            if wildcard:
                if isinstance(value, list):
                    selection.lists += 1
                    if limit is not None and len(following) + len(value) > limit:
                        value = value[: limit + 1 - len(following)]
                        selection.truncated = True
                    if located:
                        following.extend((f"{location}[{i}]", item) for i, item in enumerate(value))
                    else:
                        following.extend([("", item) for item in value])
                continue
            if index_segment or (digits and isinstance(value, list)):
                index = int(segment)  # type: ignore[arg-type]
                if isinstance(value, list) and index < len(value):
                    where = f"{location}[{index}]" if located else ""
                    following.append((where, value[index]))
                continue
            if isinstance(value, tuple):  # an object as (key, value) pairs
                found = [pair[1] for pair in value if pair[0] == segment]
            elif isinstance(value, dict):
                found = [value[segment]] if segment in value else []
            else:
                continue
            if len(found) > 1:
                selection.duplicate_key = segment  # type: ignore[assignment]
            where = f"{location}.{segment}" if located else ""
            following.extend([(where, item) for item in found])
        frontier = following
    if limit is not None and len(frontier) > limit:
        selection.truncated = True
        del frontier[limit:]
    selection.matches = frontier
    return selection


_FORM = re.compile(r"[\w.\-~%+\[\]]+=[^&=]*(?:&[\w.\-~%+\[\]]+=[^&=]*)*&?")


def form_pairs(payload: str) -> tuple[tuple[str, str], ...] | None:
    """A form-encoded body (``a=1&b=2``) as (key, value) pairs; None if it is not one."""
    text = payload.strip()
    if not text or len(text) > 1_000_000 or not _FORM.fullmatch(text):
        return None
    return tuple(urllib.parse.parse_qsl(text, keep_blank_values=True))
