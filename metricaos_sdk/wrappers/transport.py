"""The transport tap: an httpx2 transport that wraps the client's own and observes metered attempts.

It is installed on the provider client's HTTP client (and its mounted transports), so it sees every HTTP
attempt of every resource — raw and streaming responses, ``beta`` resources, SDK helpers — exactly as sent
and received. It meters nothing by itself: an attempt is observed only when a :class:`MeteredCall` is
current (set by the method-level hook); requests of other clients sharing the HTTP client pass untouched.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx2

from .call import MeteredCall, current_call
from .decoding import make_decoder
from .eventstream import EventStreamTap
from .taps import JSONTap, SSETap

__all__ = ["AsyncMeteringTransport", "MeteringTransport", "install_transport"]

log = logging.getLogger("metricaos_sdk")
_EVENTSTREAM = "application/vnd.amazon.eventstream"


def _tap_response(call: MeteredCall, response: httpx2.Response) -> httpx2.Response:
    """Count the attempt; on a 2xx, replace the body stream with a tap. Never raises."""
    try:
        call.attempts += 1
        call.http_status = response.status_code
        if not 200 <= response.status_code < 300 or call.finished:
            return response  # the SDK will retry or raise; the hook records the outcome
        headers = response.headers
        content_type = headers.get("content-type", "")
        # A response built with its body already read (mock transports) is observed at once, from the
        # decoded body httpx2 stores; otherwise the tap decodes a copy of what passes.
        preloaded = response.__dict__.get("_content")
        decoder = None
        if preloaded is None:
            encoding = headers.get("content-encoding")
            try:
                decoder = make_decoder(encoding)
            except LookupError:
                log.warning("metricaos_sdk: cannot decode %s responses; usage will be estimated", encoding)
                return response
        tap: JSONTap | SSETap
        if content_type.startswith(_EVENTSTREAM) and call.endpoint.stream_state is not None:
            tap = EventStreamTap(response.stream, call)  # Bedrock: binary frames, never rewritten
        elif call.endpoint.stream_state is not None and (call.streamed or content_type.startswith("text/event-stream")):
            # The SDK reads a streamed call's body as SSE whatever its content-type (proxies relabel it)
            filtering = call.injected_usage
            if filtering and decoder is not None:
                # The injected usage event must be cut from the bytes, which cannot be done inside a
                # compressed stream: hand the SDK decoded bytes and say so in the headers.
                del response.headers["content-encoding"]
                response.headers.pop("content-length", None)
            tap = SSETap(response.stream, call, decoder, filtering=filtering)
        else:
            tap = JSONTap(response.stream, call, decoder)
        call.tapped = True
        if preloaded is None:
            tap.arm()
            response.stream = tap
        else:
            body = tap.consume(preloaded)
            if body is not preloaded:
                response._content = body
                response.stream = httpx2.ByteStream(body)
    except Exception:
        log.exception("metricaos_sdk: could not observe a response; it passes through unmetered")
    return response


def _note_failure(call: MeteredCall) -> None:
    call.attempts += 1
    call.http_status = None


class MeteringTransport(httpx2.BaseTransport):
    """Wraps a sync transport; observes attempts of the current metered call."""

    def __init__(self, inner: httpx2.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        call = current_call.get()
        if call is None:
            return self.inner.handle_request(request)
        try:
            response = self.inner.handle_request(request)
        except BaseException:
            _note_failure(call)
            raise
        return _tap_response(call, response)

    def close(self) -> None:
        self.inner.close()


class AsyncMeteringTransport(httpx2.AsyncBaseTransport):
    """Wraps an async transport; observes attempts of the current metered call."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        call = current_call.get()
        if call is None:
            return await self.inner.handle_async_request(request)
        try:
            response = await self.inner.handle_async_request(request)
        except BaseException:
            _note_failure(call)
            raise
        return _tap_response(call, response)

    async def aclose(self) -> None:
        await self.inner.aclose()


def install_transport(http_client: Any) -> bool:
    """Wrap ``http_client``'s transport and mounted transports in place (idempotent).

    Returns False when the client is not an httpx2 client (e.g. a legacy ``httpx.Client`` handed to
    openai 3.x): metering that client would mean a second HTTP stack, so it is left alone.
    """
    if isinstance(http_client, httpx2.Client):
        wrapper: type = MeteringTransport
    elif isinstance(http_client, httpx2.AsyncClient):
        wrapper = AsyncMeteringTransport
    else:
        return False
    transport = http_client._transport
    if not isinstance(transport, wrapper):
        http_client._transport = wrapper(transport)
    for pattern, mounted in list(http_client._mounts.items()):
        if mounted is not None and not isinstance(mounted, wrapper):
            http_client._mounts[pattern] = wrapper(mounted)
    return True
