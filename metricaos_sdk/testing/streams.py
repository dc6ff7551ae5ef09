"""Bodies that arrive in pieces, as over a network: what the simulated providers stream with.

A body handed to the client already read (``httpx2.Response(200, content=...)``) is a shortcut only mocks take:
the client and anything observing it get everything at once. :class:`LiveStream` is read as the client reads
it, one piece per read, so a caller who stops early has really received only part of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence

import httpx2

__all__ = ["LiveStream", "streamed_response"]

SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"


class LiveStream(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """A response body served one piece per read, to a sync or an async client.

    ``served`` counts the pieces handed over and ``closed`` says whether the client closed the body, so a test
    can see how far a caller read. Each iteration starts from the first piece.
    """

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self.pieces: tuple[bytes, ...] = tuple(pieces)
        self.served = 0
        self.closed = False

    @classmethod
    def of(cls, events: Sequence[bytes], piece_size: int | None = None) -> LiveStream:
        """One piece per event (each a complete SSE event, as a server flushes them), or, with ``piece_size``,
        the same bytes cut every ``piece_size`` bytes wherever that falls."""
        if piece_size is None:
            return cls(events)
        if piece_size < 1:
            raise ValueError(f"piece_size must be at least 1 byte, not {piece_size}")
        data = b"".join(events)
        return cls(data[at:at + piece_size] for at in range(0, len(data), piece_size))

    def __iter__(self) -> Iterator[bytes]:
        for piece in self.pieces:
            self.served += 1
            yield piece

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            self.served += 1
            yield piece

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


class SimulatedResponse(httpx2.Response):
    """A streamed response whose ``content``, asked for before the body is read, reads it (a network response
    raises ``ResponseNotRead``): a handler that wraps a simulator and post-processes its answers can look at
    the bytes. The client never does; it reads the body piece by piece."""

    @property
    def content(self) -> bytes:
        if "_content" not in self.__dict__:
            self.read()
        return super().content


def streamed_response(events: Sequence[bytes], *, piece_size: int | None = None,
                      headers: Mapping[str, str] | None = None) -> httpx2.Response:
    """A 200 ``text/event-stream`` response whose body is ``events`` served as a :class:`LiveStream`."""
    return SimulatedResponse(200, stream=LiveStream.of(events, piece_size),
                             headers={**(headers or {}), "content-type": SSE_CONTENT_TYPE})
