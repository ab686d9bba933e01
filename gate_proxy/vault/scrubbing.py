"""Keeping an injected credential out of what the upstream sends back (docs/vault.md).

Scrubbing is a byte search, and a secret inside compressed bytes is invisible to it. The
proxy therefore asks the upstream for ``Accept-Encoding: identity``; an upstream that
compresses anyway has its body decoded before it is scrubbed — gzip and deflate through
zlib, br through ``brotli`` and zstd through ``zstandard`` (both are mitmproxy
dependencies) — and a content coding the gate cannot undo (unknown, or several stacked) is
refused by the caller rather than passed on.

Pure: no mitmproxy import and no I/O, so every piece is testable on its own.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import zstandard

from gate_proxy.vault.manager import scrub

try:  # mitmproxy depends on Brotli; without it, br is simply not decodable (and refused)
    import brotli
except ImportError:  # pragma: no cover - depends on the installation
    brotli = None

__all__ = [
    "DECODABLE_CODINGS",
    "BodyDecodeError",
    "BodyDecoder",
    "StreamScrubber",
    "UnsupportedEncoding",
    "check_transfer_coding",
    "content_coding",
    "decode_body",
    "scrub_fields",
    "without_fields",
]

HeaderFields = tuple[tuple[bytes, bytes], ...]

_ALIASES = {"x-gzip": "gzip"}  # RFC 9110 §8.4.1.3: x-gzip is gzip
DECODABLE_CODINGS: frozenset[str] = frozenset(
    {"gzip", "deflate", "zstd"} | ({"br"} if brotli is not None else set())
)
_STEP = 64 * 1024  # decoded bytes produced per step: the limit is checked this often
_GZIP_OR_ZLIB = 32 + zlib.MAX_WBITS  # zlib detects either header by itself
_RAW_DEFLATE = -zlib.MAX_WBITS


class UnsupportedEncoding(ValueError):
    """The response's Content-Encoding is one the gate cannot undo."""


class BodyDecodeError(ValueError):
    """The body is not valid for its coding, or decodes to more than allowed."""


def content_coding(values: Iterable[bytes | str]) -> str | None:
    """The one content coding to undo, from every Content-Encoding field value, or ``None``
    for an identity body. Raises :class:`UnsupportedEncoding` for an unknown coding, for
    several stacked codings (``gzip, br``), and for br without the brotli package."""
    codings: list[str] = []
    for value in values:
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        for token in text.split(","):
            coding = token.strip().lower()
            if coding and coding != "identity":
                codings.append(_ALIASES.get(coding, coding))
    if not codings:
        return None
    if len(codings) > 1:
        raise UnsupportedEncoding(f"stacked content codings ({', '.join(codings)})")
    (coding,) = codings
    if coding not in DECODABLE_CODINGS:
        raise UnsupportedEncoding(f"content coding {coding!r} cannot be decoded")
    return coding


def check_transfer_coding(values: Iterable[bytes | str]) -> None:
    """Refuse (:class:`UnsupportedEncoding`) a Transfer-Encoding other than chunked.

    mitmproxy undoes only the chunked framing and passes ``gzip``/``deflate``/``compress``
    transfer codings on as they are, compressed bytes the scrubber cannot read. The gate
    sends no ``TE``, so a server may not use them (RFC 9112 §6.1) in the first place.
    """
    for value in values:
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        for token in text.split(","):
            coding = token.strip().lower()
            if coding and coding not in ("chunked", "identity"):
                raise UnsupportedEncoding(f"transfer coding {coding!r} cannot be decoded")


# --------------------------------------------------------------------------- decoders


Emit = Callable[[bytes], None]


class _Backend(Protocol):
    def decode(self, data: bytes, emit: Emit) -> None: ...
    def flush(self, emit: Emit) -> None: ...


class _Zlib:
    """gzip (with several members, RFC 1952 §2.2) and deflate (zlib-wrapped as RFC 9110
    says, or raw as some servers send it: the first two bytes tell)."""

    def __init__(self, coding: str) -> None:
        self._gzip = coding == "gzip"
        self._head = b""
        self._inflater = zlib.decompressobj(_GZIP_OR_ZLIB) if self._gzip else None

    def decode(self, data: bytes, emit: Emit) -> None:
        if self._inflater is None:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            self._inflater = zlib.decompressobj(
                _GZIP_OR_ZLIB if _has_zlib_or_gzip_header(data) else _RAW_DEFLATE
            )
        while data:
            inflater = self._inflater
            if inflater.eof:
                if not self._gzip or not data.strip(b"\0"):
                    return  # bytes after the end (or gzip's NUL padding): dropped, never sent
                inflater = self._inflater = zlib.decompressobj(_GZIP_OR_ZLIB)  # next member
            emit(inflater.decompress(data, _STEP))
            data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail

    def flush(self, emit: Emit) -> None:
        if self._inflater is None:
            if self._head:
                raise BodyDecodeError("deflate body shorter than its header")
            return
        emit(self._inflater.flush())


def _has_zlib_or_gzip_header(data: bytes) -> bool:
    if data[:2] == b"\x1f\x8b":
        return True
    cmf, flg = data[0], data[1]
    return cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0


class _Brotli:
    def __init__(self) -> None:
        assert brotli is not None
        self._decompressor = brotli.Decompressor()
        # Brotli >= 1.2 can bound its output per call; older versions decode all at once.
        self._bounded = hasattr(self._decompressor, "can_accept_more_data")

    def decode(self, data: bytes, emit: Emit) -> None:
        decompressor = self._decompressor
        if decompressor.is_finished():
            return  # bytes after the end: dropped, never sent
        if not self._bounded:
            emit(decompressor.process(data))
            return
        out = decompressor.process(data, output_buffer_limit=_STEP)
        # With a limit, output can remain after the input is taken in: drain it with empty
        # input until a call gives nothing more (or the stream has ended).
        while out:
            emit(out)
            if decompressor.is_finished():
                return
            out = decompressor.process(b"", output_buffer_limit=_STEP)
        if not decompressor.can_accept_more_data():  # not expected; refuse rather than loop
            raise BodyDecodeError("br decoder stalled")

    def flush(self, emit: Emit) -> None:
        pass  # brotli returns all it can as soon as it can


class _Zstd:
    """zstandard's decompressobj returns all the output of one input at once (a few bytes
    of RLE blocks can expand to megabytes); its stream_writer hands the output to a sink
    ``_STEP`` bytes at a time, so the limit applies while decoding, not after."""

    def __init__(self) -> None:
        self._emit: Emit | None = None
        # RFC 9659 §3: a window over 8 MiB need not be decoded (and would cost that memory).
        self._writer = zstandard.ZstdDecompressor(max_window_size=8 << 20).stream_writer(
            self, write_size=_STEP, write_return_read=True
        )

    def write(self, data: bytes) -> int:  # the sink side of the stream_writer
        assert self._emit is not None
        self._emit(bytes(data))
        return len(data)

    def decode(self, data: bytes, emit: Emit) -> None:
        self._emit = emit
        try:
            self._writer.write(data)
        finally:
            self._emit = None

    def flush(self, emit: Emit) -> None:
        pass  # the writer passes on each block as soon as it is decoded


_DECODE_ERRORS: tuple[type[Exception], ...] = (zlib.error, zstandard.ZstdError) + (
    (brotli.error,) if brotli is not None else ()
)


class BodyDecoder:
    """Incremental decoder for one content coding: ``feed`` each piece, then ``finish``.

    ``max_output`` bounds the decoded size (a decompression bomb from a hostile upstream
    must not exhaust the gate's memory); ``None`` means no bound. Raises
    :class:`BodyDecodeError` for invalid data or a decoded size over the bound. A body cut
    short is not an error: what could be decoded is returned (nothing undecoded is).
    """

    def __init__(self, coding: str, *, max_output: int | None = None) -> None:
        if coding not in DECODABLE_CODINGS:
            raise UnsupportedEncoding(f"content coding {coding!r} cannot be decoded")
        self.coding = coding
        self.max_output = max_output
        self.decoded = 0
        self._backend: _Backend = (
            _Brotli() if coding == "br" else _Zstd() if coding == "zstd" else _Zlib(coding)
        )

    def feed(self, data: bytes) -> bytes:
        return self._collect(lambda emit: self._backend.decode(data, emit))

    def finish(self) -> bytes:
        return self._collect(self._backend.flush)

    def _collect(self, run: Callable[[Emit], None]) -> bytes:
        parts: list[bytes] = []

        def emit(part: bytes) -> None:
            self.decoded += len(part)
            if self.max_output is not None and self.decoded > self.max_output:
                raise BodyDecodeError(
                    f"{self.coding} body decodes to more than {self.max_output} bytes"
                )
            parts.append(part)

        try:
            run(emit)
        except _DECODE_ERRORS as exc:
            raise BodyDecodeError(f"invalid {self.coding} body ({type(exc).__name__})") from None
        return b"".join(parts)


def decode_body(data: bytes, coding: str, *, max_output: int | None = None) -> bytes:
    """Decode a whole body at once (see :class:`BodyDecoder`)."""
    decoder = BodyDecoder(coding, max_output=max_output)
    return decoder.feed(data) + decoder.finish()


# --------------------------------------------------------------------------- streams


class StreamScrubber:
    """Decodes (optionally) and scrubs a streamed body chunk by chunk; mitmproxy's
    ``response.stream`` callable. It is called with each chunk and with ``b""`` at the end,
    and returns the chunks to pass on.

    It holds back the last ``len(longest secret) - 1`` decoded bytes, so a secret split
    across two chunks is still found. It never returns an empty chunk: mitmproxy would send
    it as the zero-length chunk that ends an HTTP/1.1 chunked body. If decoding fails, the
    rest of the stream is dropped and ``on_error`` is called once (the caller aborts the
    exchange): nothing undecoded ever goes on.
    """

    def __init__(
        self,
        secrets: Sequence[bytes],
        decoder: BodyDecoder | None = None,
        on_error: Callable[[BodyDecodeError], None] | None = None,
    ) -> None:
        self.secrets = tuple(secrets)
        self.decoder = decoder
        self.on_error = on_error
        self.keep = max((len(s) for s in self.secrets), default=1) - 1
        # A secret without a line break cannot span one: everything up to the last line
        # break can go on at once, so line-framed streams (server-sent events) are not
        # held back until the next chunk.
        self.line_safe = not any(b"\n" in s or b"\r" in s for s in self.secrets)
        self.pending = b""
        self.failed = False

    def __call__(self, chunk: bytes) -> list[bytes]:
        if self.failed:
            return []
        end = not chunk
        try:
            data = self._decode(chunk, end)
        except BodyDecodeError as exc:
            self.failed, self.pending = True, b""
            if self.on_error is not None:
                self.on_error(exc)
            return []
        data = scrub(self.pending + data, self.secrets)
        if end:
            self.pending = b""
            return [data] if data else []
        cut = len(data) - self.keep
        if self.line_safe:
            cut = max(cut, data.rfind(b"\n") + 1, data.rfind(b"\r") + 1)
        if cut <= 0:
            self.pending = data
            return []
        self.pending = data[cut:]
        return [data[:cut]]

    def _decode(self, chunk: bytes, end: bool) -> bytes:
        if self.decoder is None:
            return chunk
        return self.decoder.finish() if end else self.decoder.feed(chunk)


# --------------------------------------------------------------------------- headers


def scrub_fields(fields: HeaderFields, secrets: Sequence[bytes]) -> HeaderFields:
    """Header (or trailer) fields with every secret replaced in the values; a field whose
    *name* contains a secret is dropped (a redacted name would not be a valid token).
    Linear in the number of fields."""
    cleaned: list[tuple[bytes, bytes]] = []
    for name, value in fields:
        if scrub(name, secrets) != name:
            continue
        cleaned.append((name, scrub(value, secrets)))
    return tuple(cleaned)


def without_fields(fields: HeaderFields, names: Iterable[bytes]) -> HeaderFields:
    """``fields`` minus every field whose name (case-insensitive) is in ``names``."""
    drop = {name.lower() for name in names}
    return tuple(field for field in fields if field[0].lower() not in drop)
