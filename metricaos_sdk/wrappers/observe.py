"""Observing the response of a metered call: the one the SDK goes on to read, after its retries.

A body the SDK already read (every call that is not streamed: httpx2 reads it inside ``send()``, where a body
that breaks off is retried like a dropped connection) is parsed for its usage at once; the hook finishes the
call when ``request()`` returns or raises. A body still to be read (a stream, ``with_streaming_response``) gets a
tap in place of ``response.stream``, which finishes the call when the body ends, is closed or is abandoned.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx2

from ..faults import safe_text
from ..providers.body import read_json_fields
from ..providers.hosts import server_address
from ..providers.openai import reported_cost_header
from .call import MeteredCall
from .decoding import make_decoder
from .eventstream import EventStreamTap
from .json_body import JSONTap
from .sse_tap import SSETap
from .taps import Tap, live

__all__ = ["observe_response"]

log = logging.getLogger("metricaos_sdk")
_EVENTSTREAM = "application/vnd.amazon.eventstream"


def observe_response(call: MeteredCall, response: Any, retries_taken: Any) -> None:
    """Record the attempt that answered and observe its body. Never raises."""
    try:
        call.attempts = call.earlier_attempts + (retries_taken if isinstance(retries_taken, int) else 0) + 1
        status = getattr(response, "status_code", None)
        call.http_status = status
        if call.server_address is None:
            call.server_address = _sent_to(response)
        if not isinstance(response, httpx2.Response) or not 200 <= status < 300 or call.finished or call.tapped:  # type: ignore[operator]
            return  # an error the SDK raises (the hook records it), or a response already observed
        endpoint = call.endpoint
        headers = response.headers
        # A LiteLLM proxy says what it computed the call cost in a header (the body may say it too: that wins).
        call.provider_cost = reported_cost_header(headers.get("x-litellm-response-cost"))
        content_type = headers.get("content-type", "")
        streams = endpoint.stream_state is not None and (call.streamed or content_type.startswith("text/event-stream"))
        read = response.__dict__.get("_content")
        if read is not None:
            if not streams:
                call.observe_body(read_json_fields(read))
                return
            # A stream read before the SDK's reader got it (a mock transport built it read, a middleware read
            # it): the SDK reads it from memory, past any tap, so it is observed whole now and the call finishes
            # with what it holds. Only what the injection added is taken out of what the SDK will read.
            if content_type.startswith(_EVENTSTREAM):
                whole: Tap = EventStreamTap(None, call)
            else:
                whole = SSETap(None, call, None, filtering=call.injected_usage)
            call.tapped = True
            body = whole.consume(read)
            if body is not read:
                response._content = body
            return
        encoding = headers.get("content-encoding")
        try:
            decoder = make_decoder(encoding)
        except LookupError:
            log.warning("metricaos_sdk: cannot decode %s responses; usage will be estimated", safe_text(str(encoding), 60))
            return
        inner = response.stream
        tap: Tap
        if content_type.startswith(_EVENTSTREAM) and endpoint.stream_state is not None:
            tap = live(EventStreamTap, inner, call)  # Bedrock: binary frames, never rewritten
        elif streams:
            filtering = call.injected_usage
            if filtering and decoder is not None:
                # The injected usage event must be cut from the bytes, which cannot be done inside a compressed
                # stream: hand the SDK decoded bytes and say so in the headers.
                del response.headers["content-encoding"]
                response.headers.pop("content-length", None)
            tap = live(SSETap, inner, call, decoder, filtering=filtering)
        else:
            tap = live(JSONTap, inner, call, decoder)
        call.tapped = True
        response.stream = tap  # type: ignore[assignment]  # live() made it the byte stream kind the body was
    except Exception:
        call.meter._fault("could not observe a response; it passes through unmetered")


def _sent_to(response: Any) -> str | None:
    """The host the answered request was sent to, for a client whose base URL was not known before the call
    (``AnthropicGoogleCloud`` derives it on the first request when its project comes from the credentials)."""
    try:
        return server_address(str(response.request.url))
    except Exception:  # a response built without its request
        return None
