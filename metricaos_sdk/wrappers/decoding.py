"""Content-encoding for the tap: the transport sees bytes before httpx2 decodes them.

Only a copy is decoded, for reading usage; what the SDK receives stays as the server sent it (except when
an injected usage chunk must be cut out of a compressed stream: see ``SSETap``).
"""

from __future__ import annotations

import zlib
from typing import Any

__all__ = ["make_decoder"]


class _Zlib:
    __slots__ = ("_obj",)

    def __init__(self, wbits: int) -> None:
        self._obj = zlib.decompressobj(wbits)

    def decode(self, data: bytes) -> bytes:
        return self._obj.decompress(data)


class _HttpxDecoder:
    """br and zstd through httpx2's own decoders (present when the optional libraries are)."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def decode(self, data: bytes) -> bytes:
        return b"".join(self._obj.decode(data))


def make_decoder(content_encoding: str | None) -> Any | None:
    """A decoder with ``decode(bytes) -> bytes`` for the response's encoding; None for identity.

    Raises ``LookupError`` for an encoding we cannot read (the tap then estimates usage instead).
    """
    if not content_encoding:
        return None
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding == "gzip":
        return _Zlib(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return _Zlib(zlib.MAX_WBITS)
    try:
        from httpx2._decoders import SUPPORTED_DECODERS  # private, hence guarded

        return _HttpxDecoder(SUPPORTED_DECODERS[encoding]())
    except Exception as exc:
        raise LookupError(encoding) from exc
