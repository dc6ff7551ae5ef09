"""The method-level hook: wraps the provider client's ``request()`` on the instance.

Every resource method of both SDKs (``create``, ``parse``, ``stream``, ``with_raw_response``,
``with_streaming_response``, ``beta`` …) funnels into ``client.request(cast_to, options, ...)`` once per
logical call, with the SDK's retries inside it. That makes it the place to check quotas (before anything
is sent), add the stream usage request, and publish the :class:`MeteredCall` the transport tap reads.
The instance keeps its class, so ``isinstance``, type hints and IDE help are untouched; ``copy()`` and
``with_options()`` are wrapped so copies stay metered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .call import current_call
from .clients import ClientKind

if TYPE_CHECKING:
    from ..meter import Meter

__all__ = ["instrument"]

_ORIGINALS = "_metricaos_originals"
_RETRY = object()


def instrument(client: Any, meter: Meter, kind: ClientKind) -> None:
    """Install the hook on ``client`` (re-installing replaces a previous meter's)."""
    originals = client.__dict__.get(_ORIGINALS)
    if originals is None:
        originals = {"request": client.request, "copy": client.copy}
        client.__dict__[_ORIGINALS] = originals
    request = originals["request"]
    original_copy = originals["copy"]
    begin = meter._begin_call
    # An OpenAI-compatible server that refuses the stream_options we added gets the call once more, exactly
    # as the caller sent it (one logical call, one event); the meter remembers its base URL.
    usage_request_refused = meter._usage_request_refused

    if kind.is_async:

        async def metered_request(cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
            started = begin(kind, options, client)
            if started is None:
                return await request(cast_to, options, *args, **kwargs)
            call, sent = started
            token = current_call.set(call)
            call.in_request = True
            try:
                try:
                    result = await request(cast_to, sent, *args, **kwargs)
                except Exception as exc:
                    if not (call.injected_usage and usage_request_refused(call, exc, client)):
                        raise
                    result = _RETRY
                if result is _RETRY:  # outside the except block: the caller's traceback never shows our 400
                    result = await request(cast_to, options, *args, **kwargs)
            except BaseException as exc:
                call.fail(exc)
                raise
            finally:
                call.in_request = False
                current_call.reset(token)
            call.returned()
            return result

    else:

        def metered_request(cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            started = begin(kind, options, client)
            if started is None:
                return request(cast_to, options, *args, **kwargs)
            call, sent = started
            token = current_call.set(call)
            call.in_request = True
            try:
                try:
                    result = request(cast_to, sent, *args, **kwargs)
                except Exception as exc:
                    if not (call.injected_usage and usage_request_refused(call, exc, client)):
                        raise
                    result = _RETRY
                if result is _RETRY:  # outside the except block: the caller's traceback never shows our 400
                    result = request(cast_to, options, *args, **kwargs)
            except BaseException as exc:
                call.fail(exc)
                raise
            finally:
                call.in_request = False
                current_call.reset(token)
            call.returned()
            return result

    def metered_copy(*args: Any, **kwargs: Any) -> Any:
        return meter.wrap(original_copy(*args, **kwargs))

    metered_copy.__doc__ = original_copy.__doc__
    client.request = metered_request
    client.copy = metered_copy
    client.with_options = metered_copy
    client.__dict__["_metricaos_meter"] = meter
