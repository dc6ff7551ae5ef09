"""Why a body is being closed: by the provider SDK's own stream reader (and then why it stopped), or by the caller.

Both SDKs read a stream in a ``__stream__`` generator that closes its response in a ``finally``: when the SDK
raises on an event, when it stops at ``[DONE]``, and when the generator is itself closed or collected. So a
tap's ``close()`` looks for that frame among its callers; the exception it is propagating says why.
"""

from __future__ import annotations

import sys
from types import FrameType

from .call import failure_status

__all__ = ["Outcome", "sdk_reader_exit", "sdk_reader_running"]

Outcome = tuple[str, "str | None"]
"""``(status, error_type)`` of a call whose body is closed."""

_SDK_MODULES = ("openai.", "anthropic.")
_READER = "__stream__"


def sdk_reader_exit() -> Outcome | None:
    """When a body is being closed by the provider SDK's own stream reader — its ``__stream__`` generator, which
    closes the response in a ``finally`` — why it stopped: ``("ok", None)`` at what it took for the end,
    ``("error", type)`` when it raised (an event it could not parse, an error event), ``("cancelled", None)``
    when it was itself closed or collected. None when something else closes the body (the caller)."""
    if not _reader_among(sys._getframe(3), 12):  # past this function, the tap's _closing and close
        return None
    exc = sys.exc_info()[1]
    if exc is None:
        return "ok", None
    if isinstance(exc, GeneratorExit):
        return "cancelled", None
    return failure_status(exc), type(exc).__name__


def sdk_reader_running() -> bool:
    """Whether the provider SDK's own stream reader is what is reading the body now (rather than the caller,
    through ``with_streaming_response``): asked at the end of a body, from a tap's ``__iter__``."""
    return _reader_among(sys._getframe(2), 16)


def _reader_among(frame: FrameType | None, depth: int) -> bool:
    for _ in range(depth):
        if frame is None:
            return False
        if frame.f_code.co_name == _READER and frame.f_globals.get("__name__", "").startswith(_SDK_MODULES):
            return True
        frame = frame.f_back
    return False
