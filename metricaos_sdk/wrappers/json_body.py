"""The tap for a body that is one JSON document read as a stream (``with_streaming_response``): kept to its end."""

from __future__ import annotations

from typing import Any

from ..providers.body import read_json_fields
from .call import MeteredCall
from .taps import Tap

__all__ = ["JSONTap"]


class JSONTap(Tap):
    """A complete JSON body read as a stream (``with_streaming_response``): kept until the end, then its
    ``usage`` (and id, model, tier) are read."""

    __slots__ = ("_parts",)

    def __init__(self, inner: Any, call: MeteredCall, decoder: Any | None) -> None:
        super().__init__(inner, call, decoder)
        self._parts: list[bytes] = []

    def _feed(self, chunk: bytes) -> bytes:
        self._parts.append(chunk)
        return chunk

    def _end(self) -> bytes:
        body = b"".join(self._parts)
        self._parts = []
        if self._decoder is not None:
            body = self._decoder.decode(body)
        call = self._call
        call.observe_body(read_json_fields(body))
        call.finish(status="ok", **call.observed)  # type: ignore[arg-type]
        return b""
