"""URL normalisation used for registry matching, display and request fingerprints.

Pure: stdlib only, no I/O.

``normalize_path`` turns a raw request-target path into the one form the registry matches
on, so that the spellings an agent (or an attacker) could use for the same resource all
hit the same rule:

1. ``#fragment`` and ``?query`` are split off (the query is kept verbatim, in order).
2. Percent-escapes of *unreserved* characters (``ALPHA DIGIT - . _ ~``) are decoded
   (``%72`` -> ``r``, ``%2e`` -> ``.``); every other escape keeps its byte but gets
   upper-case hex (``%2f`` -> ``%2F``). Nothing is ever decoded twice (``%252e`` stays).
3. Characters that may not appear raw in a path (space, ``"``, ``<``, ``\\``, non-ASCII, ...)
   are percent-encoded as UTF-8, so raw and encoded spellings compare equal.
4. ``;params`` are cut off every segment (Tomcat-style matrix parameters, also used for
   ``..;/`` tricks). They are returned separately and kept in ``path_with_params``.
5. Empty segments (``//``) are collapsed and dot segments (``.`` / ``..``) are removed as
   in RFC 3986 section 5.2.4 - *after* steps 2 and 4, so ``%2e%2e`` and ``..;x`` count.

An encoded slash ``%2F`` (and ``%5C``) stays encoded: it is *not* a segment separator, so
``/v1%2Frefunds`` is one segment and does not match a ``/v1/refunds`` rule. Some upstream
servers decode it; see ``NormalizedPath.has_encoded_separator`` and docs/destinations.md.

That one form is what *allow* rules match and what is forwarded. Upstreams differ in what
else they fold (IIS and Windows file systems ignore case and trailing dots, Tomcat strips
``;params``, some decode ``%2F`` or ``\\`` into separators, some apply Unicode case
folding or NFKC), so two more things serve *block* rules:

* :func:`path_variants` lists every form a known kind of upstream may route the path as,
  folded (case, Unicode compatibility, accents) so one comparison covers them all;
* ``NormalizedPath.refusal`` names spellings no variant can describe safely (a dot segment
  hidden behind ``%2F``/``%5C``/spaces, double percent-encoding, control characters,
  invalid or overlong UTF-8): the registry refuses such paths outright.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote, unquote_to_bytes

__all__ = [
    "DEFAULT_PORTS",
    "NormalizedPath",
    "normalize_host",
    "normalize_path",
    "normalize_url",
    "path_variants",
    "rule_variant",
    "split_host_port",
]

DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443, "ws": 80, "wss": 443}

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Characters allowed raw in a path: unreserved, sub-delims, ":" "@" "/" and "%" (escapes).
_PATH_ALLOWED = _UNRESERVED | frozenset("!$&'()*+,;=:@/%")
_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_NEEDS_ENCODING_RE = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]")
# A path that is already normal: "/" + segments that are non-empty, do not start with "."
# and contain no "%" or ";". Such a path is returned unchanged without further work.
_FAST_PATH_RE = re.compile(r"(?:/[A-Za-z0-9\-_~!$&'()*+,=:@][A-Za-z0-9\-._~!$&'()*+,=:@]*)*/?")
_HOST_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?")
_IPV4_PART_RE = re.compile(r"0[xX][0-9A-Fa-f]*|[0-9]+")


@dataclass(frozen=True, slots=True)
class NormalizedPath:
    """The result of :func:`normalize_path`.

    ``path`` is what the registry matches on (no params, no query). ``path_with_params``
    is the same path with each surviving segment's ``;params`` re-attached: it is the
    form to forward upstream and to fingerprint, so what was matched is what is sent.
    """

    path: str
    params: tuple[str, ...] = ()
    query: str = ""
    path_with_params: str = ""
    fragment: str = ""
    #: Why upstreams could disagree about which resource this path names, or None. The
    #: registry refuses such a path (``invalid_path``) instead of guessing.
    refusal: str | None = None

    @property
    def target(self) -> str:
        """``path_with_params`` plus ``?query`` when there is one (an origin-form target)."""
        return f"{self.path_with_params}?{self.query}" if self.query else self.path_with_params

    @property
    def has_encoded_separator(self) -> bool:
        """True when the path holds ``%2F`` or ``%5C``, which some servers treat as ``/``."""
        return "%2F" in self.path or "%5C" in self.path


def _fix_escape(m: re.Match[str]) -> str:
    char = chr(int(m.group(1), 16))
    return char if char in _UNRESERVED else "%" + m.group(1).upper()


def _encode_char(m: re.Match[str]) -> str:
    char = m.group(0)
    try:
        raw = char.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = char.encode("utf-8", "surrogatepass")
    return "".join(f"%{byte:02X}" for byte in raw)


def normalize_path(raw_path: str) -> NormalizedPath:
    """Normalise a raw request path (origin-form, may carry ``?query``/``#fragment``)."""
    if raw_path.startswith("/") and _FAST_PATH_RE.fullmatch(raw_path):
        return NormalizedPath(raw_path, (), "", raw_path, "")

    rest, _, fragment = raw_path.partition("#")
    path, _, query = rest.partition("?")
    if "%" in path:
        path = _ESCAPE_RE.sub(_fix_escape, path)
    if _NEEDS_ENCODING_RE.search(path):
        path = _NEEDS_ENCODING_RE.sub(_encode_char, path)

    segments = path.split("/")
    if segments and segments[0] == "":
        # Absolute path: the first element is the empty string before the leading "/".
        segments = segments[1:]
    last = len(segments) - 1
    out: list[tuple[str, str | None]] = []
    for i, segment in enumerate(segments):
        name, sep, seg_params = segment.partition(";")
        if name == ".":
            if i == last:
                out.append(("", None))
            continue
        if name == "..":
            if out:
                out.pop()
            if i == last:
                out.append(("", None))
            continue
        if name == "" and i != last:
            continue  # collapse "//" runs (and empty ";params"-only segments)
        out.append((name, seg_params if sep else None))
    if not out:
        out.append(("", None))

    norm = "/" + "/".join(name for name, _ in out)
    with_params = "/" + "/".join(name if p is None else f"{name};{p}" for name, p in out)
    params = tuple(p for _, p in out if p is not None)
    return NormalizedPath(norm, params, query, with_params, fragment, _refusal(norm))


# --------------------------------------------------------------------------- ambiguous paths
#
# Written here rather than taken from a library: URL parsers (urllib, yarl, rfc3986,
# WHATWG implementations) each give *their* reading of a path; what is needed is the union
# of the readings of many different servers, which none of them offers.

_DOUBLE_ESCAPE_RE = re.compile(r"%25[0-9A-Fa-f]{2}")
# Folds no Unicode normalisation performs but a case-insensitive compare does: Java's
# equalsIgnoreCase and .NET's ToUpperInvariant map dotless i to "I".
_EXTRA_FOLDS = {0x0131: "i"}
_DROPPED_CATEGORIES = frozenset({"Mn", "Me", "Cf"})  # accents, enclosing marks, invisibles
_QUERY_START_RE = re.compile(r"[?#]")
# A normalised path no upstream reads differently except for ASCII case: no escapes, no
# "+" (decoded as a space by some), no segment ending in "." (Windows drops trailing dots).
_PLAIN_PATH_RE = re.compile(r"(?:/(?:[^%+/]*[^%+/.])?)*")


def _refusal(path: str) -> str | None:
    """Why ``path`` (a normalised path, no params) is ambiguous between servers, or None."""
    if "%" in path:
        if _DOUBLE_ESCAPE_RE.search(path):
            return "double percent-encoding (%25 followed by an escape)"
        try:
            text = unquote_to_bytes(path).decode("utf-8")
        except UnicodeDecodeError:
            return "percent-escapes that are not valid UTF-8 (overlong or malformed)"
        if any(unicodedata.category(c) == "Cc" for c in text):
            return "control character (such as %00) in the path"
    # The finest reading: every separator split, nothing cut or trimmed. A dot segment
    # that survived normalisation hides behind an escape, a ';', a '+' or trailing spaces;
    # an upstream that resolves it after decoding would climb out of the matched path.
    finest = _read(_decode(path, True), slash=True, backslash=True, cut_query=False, trim=False)
    if any(s.startswith(".") and not s.rstrip(". ") for s in finest):
        return "dot segment hidden by %2F, %5C, a backslash, ';', '+' or trailing spaces"
    return None


def _fold(text: str, fold_case: bool) -> str:
    """Unicode compatibility forms (fullwidth, ligatures), accents and invisibles folded;
    with ``fold_case`` also case (including the Turkish dotted and dotless i)."""
    if text.isascii():
        return text.lower() if fold_case else text
    text = unicodedata.normalize("NFKD", text)
    if fold_case:
        text = unicodedata.normalize("NFKD", text.casefold().translate(_EXTRA_FOLDS))
    return "".join(c for c in text if unicodedata.category(c) not in _DROPPED_CATEGORIES)


def _decode(path: str, fold_case: bool) -> list[str]:
    """The segments of ``path`` (split on ``/`` only), percent-decoded and folded."""
    return [_fold(unquote(raw, errors="replace"), fold_case) for raw in path.split("/")]


def _read(
    decoded: list[str],
    *,
    slash: bool,
    backslash: bool,
    plus_is_space: bool = True,
    cut_params: bool = True,
    cut_query: bool = True,
    trim: bool = True,
) -> list[str]:
    """The segments one kind of upstream reads from ``decoded`` (see :func:`_decode`).

    ``slash``/``backslash``: a decoded ``/`` / ``\\`` separates segments (else a ``/``
    inside a segment is written ``%2F``). ``plus_is_space``: ``+`` is a space (Java's
    URLDecoder). ``cut_params``: ``;params`` are cut after decoding (Spring and others).
    ``cut_query``: the path ends at a decoded ``?`` or ``#``. ``trim``: trailing dots and
    spaces are dropped (Windows, IIS). Empty segments are left out.
    """
    out: list[str] = []
    for text in decoded:
        if plus_is_space:
            text = text.replace("+", " ")
        pieces = text.split("/") if slash else [text.replace("/", "%2F")]
        if backslash:
            pieces = [part for piece in pieces for part in piece.split("\\")]
        for piece in pieces:
            head = _QUERY_START_RE.split(piece, maxsplit=1) if cut_query else [piece]
            segment = head[0].partition(";")[0] if cut_params else head[0]
            if trim:
                segment = segment.rstrip(". ")
            if segment:
                out.append(segment)
            if len(head) > 1:
                return out
    return out


@functools.lru_cache(maxsize=4096)
def path_variants(path: str, fold_case: bool = True) -> tuple[str, ...]:
    """Every form some upstream may route ``path`` (a ``normalize_path().path``) as.

    For block rules: a block must hold whichever of these forms the upstream uses. Each
    combination is produced of: ``%2F`` decoded into a separator or not; ``%5C`` (and a
    raw backslash) decoded into a separator or not; exact (decoded and folded only) or
    loose (also ``;params`` cut after decoding, trailing dots/spaces dropped, ``+`` as
    space, cut at a decoded ``?``/``#``). Every form is Unicode-folded (NFKD, accents and
    invisible characters dropped) and, with ``fold_case``, case-folded. Forms have no
    trailing slash. Call it only on paths whose ``refusal`` is None.
    """
    if _PLAIN_PATH_RE.fullmatch(path):
        plain = path.rstrip("/") or "/"
        return (plain.lower() if fold_case else plain,)
    decoded = _decode(path, fold_case)
    # Readings that split on a separator the path does not contain add nothing.
    slashes = (False, True) if any("/" in t for t in decoded) else (False,)
    backslashes = (False, True) if any("\\" in t for t in decoded) else (False,)
    forms: set[str] = set()
    for slash in slashes:
        for backslash in backslashes:
            exact = _read(
                decoded,
                slash=slash,
                backslash=backslash,
                plus_is_space=False,
                cut_params=False,
                cut_query=False,
                trim=False,
            )
            loose = _read(decoded, slash=slash, backslash=backslash)
            forms.update(("/" + "/".join(exact), "/" + "/".join(loose)))
    return tuple(sorted(forms))


def rule_variant(path: str, fold_case: bool = True) -> str:
    """The one form a block rule's path (a ``normalize_path().path``) is compared in.

    The finest reading: every separator split, folded, trailing dots and spaces dropped,
    so a rule catches each :func:`path_variants` form that names the same resource. ``+``
    stays a ``+`` (a rule ``/c++`` must not turn into ``/c``). ``*`` is kept for globs.
    """
    decoded = _decode(path, fold_case)
    return "/" + "/".join(_read(decoded, slash=True, backslash=True, plus_is_space=False))


def _canonical_ipv4(host: str) -> str | None:
    """WHATWG/inet_aton IPv4 forms (``127.1``, ``0x7f.0.0.1``, ``2130706433``) -> dotted quad.

    Returns None when ``host`` is not all-numeric; raises ValueError when it is numeric but
    not a valid address (a resolver would reject or misread it, so refuse it).
    """
    parts = host.split(".")
    if not all(_IPV4_PART_RE.fullmatch(p) for p in parts):
        return None
    if len(parts) > 4:
        raise ValueError(f"invalid IPv4 address: {host!r}")
    numbers: list[int] = []
    for part in parts:
        if part[:2].lower() == "0x":
            numbers.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if any(c in "89" for c in part):
                raise ValueError(f"invalid octal IPv4 part in {host!r}")
            numbers.append(int(part, 8))
        else:
            numbers.append(int(part))
    *head, tail = numbers
    if any(n > 255 for n in head) or tail >= 256 ** (5 - len(numbers)):
        raise ValueError(f"invalid IPv4 address: {host!r}")
    value = tail
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return str(ipaddress.IPv4Address(value))


@functools.lru_cache(maxsize=4096)
def normalize_host(host: str) -> str:
    """Canonical host: lower-case, one trailing dot stripped, IDNA ASCII, canonical IPs.

    IPv6 literals are returned without brackets in compressed form. Raises ValueError for
    anything that is not a plausible host name (empty labels, ``/``, ``@``, spaces...).
    """
    h = host.strip()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if ":" in h:
        try:
            return ipaddress.IPv6Address(h).compressed
        except ValueError:
            raise ValueError(f"invalid host: {host!r}") from None
    h = h.lower()
    if h.endswith("."):
        h = h[:-1]
    if not h:
        raise ValueError("empty host")
    if not h.isascii():
        try:
            h = h.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"invalid international host {host!r}: {exc}") from None
    ipv4 = _canonical_ipv4(h)
    if ipv4 is not None:
        return ipv4
    labels = h.split(".")
    if len(h) > 253 or not all(len(lb) <= 63 and _HOST_LABEL_RE.fullmatch(lb) for lb in labels):
        raise ValueError(f"invalid host: {host!r}")
    return h


def split_host_port(value: str) -> tuple[str, int | None]:
    """Split ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``; the port is validated."""
    value = value.strip()
    port_text: str | None = None
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            raise ValueError(f"unclosed '[' in {value!r}")
        host, tail = value[: end + 1], value[end + 1 :]
        if tail:
            if not tail.startswith(":"):
                raise ValueError(f"unexpected text after ']' in {value!r}")
            port_text = tail[1:]
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:
        host = value  # a bare IPv6 literal has several ":"; a plain name has none
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"invalid port {port_text!r} in {value!r}")
    return host, int(port_text)


def normalize_url(scheme: str, host: str, port: int | None, raw_path: str) -> str:
    """Canonical URL string for display and fingerprints.

    Lower-case scheme and host (IDNA ASCII, IPv6 in brackets), the scheme's default port
    dropped, the normalised path with its ``;params``, and the query verbatim (original
    order). A fragment, which clients should never send, is kept when present so that it
    cannot be smuggled past a fingerprint.
    """
    scheme = scheme.lower()
    h = normalize_host(host)
    host_part = f"[{h}]" if ":" in h else h
    port_part = "" if port is None or DEFAULT_PORTS.get(scheme) == port else f":{port}"
    np = normalize_path(raw_path)
    url = f"{scheme}://{host_part}{port_part}{np.target}"
    return f"{url}#{np.fragment}" if np.fragment else url
