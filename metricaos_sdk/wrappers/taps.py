"""Body taps: byte-stream proxies that read usage on the way through and finish the call exactly once.

A tap replaces ``response.stream`` of a body still to be read. It yields the bytes the SDK would have had
(minus an injected usage-only event and the ``"usage": null`` member the injection adds to every chunk), and
finishes its call when the body ends (``ok``), when the provider ends it with an error event (``error``), when
reading fails (``error``), or when it is closed before its end: by the SDK's own stream reader because the SDK
raised (``error``) or stopped at what it takes for the end (``ok``), or by the caller (``cancelled``). A tap
garbage-collected unfinished was abandoned (``cancelled``); it hands that to the meter's worker thread, since
a finalizer does no work (see ``worker.py``). Its hooks never raise: an observation fault turns observation
off and the bytes keep flowing.

One class serves sync and async: the chunk logic is shared, only ``__iter__``/``__aiter__`` differ. The taps
themselves: ``sse_tap.py`` (server-sent events), ``eventstream.py`` (Bedrock), ``json_body.py`` (a JSON body).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import httpx2

from ..worker import in_finalizer_context
from .call import MeteredCall, failure_status
from .closing import Outcome, sdk_reader_exit

__all__ = ["Tap", "live"]

T = TypeVar("T", bound="Tap")

log = logging.getLogger("metricaos_sdk")

_KEPT_BODY = 256 * 1024  # of a streamed call answered without events (one JSON body): kept to read its usage


class Tap:
    """The logic of a tap; :func:`live` makes one that is a sync or an async byte stream, as its inner one is
    (httpx2 tells them apart by type: a tap of both kinds would pass checks the bare body fails)."""

    __slots__ = ("_armed", "_call", "_decoder", "_ended", "_inner", "_source")

    def __init__(self, inner: Any, call: MeteredCall, decoder: Any | None) -> None:
        self._inner = inner
        self._source: Any = None  # the one iterator over ``inner``
        self._call = call
        self._decoder = decoder
        self._ended = False
        self._armed = False

    def arm(self) -> None:
        """Install as a live stream: :meth:`Meter.close` (at exit) finishes it with what was observed so far if
        it is still open, and so does the worker if it is garbage-collected open (an abandoned stream)."""
        self._armed = True
        call = self._call
        call.tap = weakref.ref(self)
        if not call.open:
            call.meter._track_open(call)
        call.meter._start_worker()

    def _disarm(self) -> None:
        self._ended = True
        self._armed = False

    def __del__(self) -> None:
        # A finalizer: hand the abandoned stream to the worker (which keeps the tap alive until it is done).
        if self._armed:
            self._armed = False
            self._call.meter._defer(self.abandon)

    @property
    def elapsed(self) -> Any:
        """httpx2's ``Response.elapsed`` reads ``response.stream.elapsed`` (set by its bound stream on close) until
        the response was read: the tap stands in that place, so it answers with its inner stream's."""
        return getattr(self._inner, "elapsed", None)

    def abandon(self) -> None:
        """The reader left without ending or closing the body: finish the call as cancelled."""
        self._finish_closed(("cancelled", None))

    # -- shared logic -------------------------------------------------------------------------------
    def _feed(self, chunk: bytes) -> bytes:
        raise NotImplementedError

    def _end(self) -> bytes:
        raise NotImplementedError

    def _finish_ok(self) -> bytes:
        self._disarm()
        try:
            return self._end()
        except Exception:
            self._call.meter._fault("could not read usage at the end of a response")
            self._call.finish(status="ok", problem="usage could not be read")
            return b""

    def _finish_error(self, exc: BaseException) -> None:
        self._disarm()
        self._finish_partial(failure_status(exc), type(exc).__name__)

    def _closing(self) -> Outcome:
        """Why the body is closed now (see :func:`sdk_reader_exit`); asked before anything else runs."""
        return sdk_reader_exit() or ("cancelled", None)

    def _finish_closed(self, outcome: Outcome) -> None:
        if self._ended:
            return
        self._disarm()
        if in_finalizer_context():  # the SDK's reader closed by a garbage collection: no work here
            self._call.meter._defer(lambda: self._finish_partial(*outcome))
            return
        self._finish_partial(*outcome)

    def _finish_partial(self, status: str, error_type: str | None) -> None:
        self._call.finish(status=status, error_type=error_type)

    def consume(self, body: bytes) -> bytes:
        """Observe a body that was read before the SDK's reader got it; returns what the SDK should read.
        The call is finished on return."""
        out = self._feed(body)
        return out + self._finish_ok()

    # -- sync shell ---------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[bytes]:
        # One pass over the body, however often it is iterated (the SDK drains a response after ``[DONE]`` with a
        # second iteration): a network stream goes on where it was, and so does this over a body a mock replays.
        if self._source is None:
            self._source = iter(self._inner)
        try:
            for chunk in self._source:
                out = self._feed(chunk)
                if out:
                    yield out
        except GeneratorExit:
            raise  # the reader stopped early; close() will finish the call
        except BaseException as exc:
            self._finish_error(exc)
            raise
        tail = self._finish_ok()
        if tail:
            yield tail

    def close(self) -> None:
        outcome = self._closing() if not self._ended else None
        try:
            self._inner.close()
        finally:
            if outcome is not None:
                self._finish_closed(outcome)

    # -- async shell --------------------------------------------------------------------------------
    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._source is None:
            self._source = self._inner.__aiter__()
        try:
            async for chunk in self._source:
                out = self._feed(chunk)
                if out:
                    yield out
        except GeneratorExit:
            raise
        except BaseException as exc:
            self._finish_error(exc)
            raise
        tail = self._finish_ok()
        if tail:
            yield tail

    async def aclose(self) -> None:
        outcome = self._closing() if not self._ended else None
        try:
            await self._inner.aclose()
        finally:
            if outcome is not None:
                self._finish_closed(outcome)


_KINDS: dict[tuple[type, bool, bool], type] = {}


def live(cls: type[T], inner: Any, *args: Any, **kwargs: Any) -> T:
    """A ``cls`` tap over the live body ``inner``, armed: a sync byte stream, an async one, or both, as ``inner``."""
    sync, asynchronous = isinstance(inner, httpx2.SyncByteStream), isinstance(inner, httpx2.AsyncByteStream)
    kind = _KINDS.get((cls, sync, asynchronous))
    if kind is None:
        bases = (cls, *([httpx2.SyncByteStream] if sync else []), *([httpx2.AsyncByteStream] if asynchronous else []))
        kind = _KINDS[(cls, sync, asynchronous)] = type(cls.__name__, bases, {"__slots__": ()})
    tap = kind(inner, *args, **kwargs)
    tap.arm()
    return tap  # type: ignore[no-any-return]
