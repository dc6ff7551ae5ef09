"""The hooks: ``request()`` and ``_process_response()`` of the provider SDK's client classes, patched once per class.

Every resource method of both SDKs (``create``, ``parse``, ``stream``, ``with_raw_response``,
``with_streaming_response``, ``beta`` …) funnels into ``client.request(cast_to, options, ...)`` once per
logical call, with the SDK's retries inside it; the one response the SDK goes on to read — after its retries,
never a token-exchange or other side request — passes through ``client._process_response(...)``. So
``request`` is where quotas are checked (before anything is sent), the stream usage request is added and the
:class:`MeteredCall` is published, and ``_process_response`` is where its body is observed.

The hooks are installed on the classes, not the instances, and find a client's meter in a weak registry:
a metered client's ``vars()`` are its own, its HTTP client and transports are never touched (they may be
the caller's, shared with other code), and ``copy()`` / ``with_options()`` keep their signatures.
Clients that were never wrapped pass straight through, at the cost of one dictionary lookup.
"""

from __future__ import annotations

import functools
import weakref
from typing import TYPE_CHECKING, Any

from .call import attempts_of, current_call
from .clients import ClientKind
from .observe import observe_response

if TYPE_CHECKING:
    from ..meter import Meter

__all__ = ["instrument", "meter_of"]

_METERED: weakref.WeakKeyDictionary[Any, tuple[Meter, ClientKind]] = weakref.WeakKeyDictionary()
_HOOK = "__metricaos_hook__"
_RETRY = object()


def meter_of(client: Any) -> Meter | None:
    """The meter that meters ``client``, or None."""
    entry = _METERED.get(client)
    return entry[0] if entry is not None else None


def instrument(client: Any, meter: Meter, kind: ClientKind) -> None:
    """Meter ``client`` with ``meter`` (re-wrapping with another meter replaces the first)."""
    _install(type(client), kind.is_async)
    _METERED[client] = (meter, kind)


def _definer(cls: type, name: str) -> type | None:
    return next((c for c in cls.__mro__ if name in c.__dict__), None)


def _install(cls: type, is_async: bool) -> None:
    """Patch, once, the classes in ``cls``'s MRO that define ``request``, ``_process_response`` and ``copy``."""
    for name, make in (("request", _async_request if is_async else _sync_request),
                       ("_process_response", _async_process if is_async else _sync_process),
                       ("copy", _copy)):
        owner = _definer(cls, name)
        if owner is None:
            continue
        original = owner.__dict__[name]
        if getattr(original, _HOOK, False):
            continue
        hook = functools.wraps(original)(make(original))
        setattr(hook, _HOOK, True)
        setattr(owner, name, hook)
        if name == "copy" and owner.__dict__.get("with_options") is original:  # ``with_options = copy``
            owner.with_options = hook  # type: ignore[attr-defined]


def _copy(original: Any) -> Any:
    def copy(self: Any, *args: Any, **kwargs: Any) -> Any:
        new = original(self, *args, **kwargs)
        entry = _METERED.get(self)
        if entry is not None:
            entry[0].wrap(new)
        return new

    return copy


def _sync_process(original: Any) -> Any:
    def _process_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = current_call.get()
        if call is not None:
            observe_response(call, kwargs.get("response"), kwargs.get("retries_taken", 0))
        return original(self, *args, **kwargs)

    return _process_response


def _async_process(original: Any) -> Any:
    async def _process_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = current_call.get()
        if call is not None:
            observe_response(call, kwargs.get("response"), kwargs.get("retries_taken", 0))
        return await original(self, *args, **kwargs)

    return _process_response


# An OpenAI-compatible server that refuses the stream_options we added gets the call once more, exactly as the
# caller sent it (one logical call, one event); the meter remembers its base URL.


def _sync_request(original: Any) -> Any:
    def request(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        entry = _METERED.get(self)
        if entry is None:
            return original(self, cast_to, options, *args, **kwargs)
        meter, kind = entry
        started = meter._begin_call(kind, options, self)
        if started is None:
            return original(self, cast_to, options, *args, **kwargs)
        call, sent = started
        token = current_call.set(call)
        try:
            try:
                result = original(self, cast_to, sent, *args, **kwargs)
            except Exception as exc:
                if not (call.injected_usage and meter._usage_request_refused(call, exc, self)):
                    raise
                call.earlier_attempts = attempts_of(exc)
                result = _RETRY
            if result is _RETRY:  # outside the except block: the caller's traceback never shows our 400
                result = original(self, cast_to, options, *args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            current_call.reset(token)
        call.returned()
        return result

    return request


def _async_request(original: Any) -> Any:
    async def request(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        entry = _METERED.get(self)
        if entry is None:
            return await original(self, cast_to, options, *args, **kwargs)
        meter, kind = entry
        started = meter._begin_call(kind, options, self)
        if started is None:
            return await original(self, cast_to, options, *args, **kwargs)
        call, sent = started
        token = current_call.set(call)
        try:
            try:
                result = await original(self, cast_to, sent, *args, **kwargs)
            except Exception as exc:
                if not (call.injected_usage and meter._usage_request_refused(call, exc, self)):
                    raise
                call.earlier_attempts = attempts_of(exc)
                result = _RETRY
            if result is _RETRY:
                result = await original(self, cast_to, options, *args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            current_call.reset(token)
        call.returned()
        return result

    return request
