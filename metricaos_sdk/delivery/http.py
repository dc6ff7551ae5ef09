"""Sending a batch over HTTP and reading the receiver's answer, for every HTTP destination.

One ``httpx2.Client`` per destination (connection reuse, bounded timeouts: a stalled receiver is a timeout, a
retry, never a hung thread). The answer is classified the same way everywhere: 2xx delivered; 408, 425, 429
and 5xx (and connection errors, timeouts) retried, ``Retry-After`` honoured; any other 4xx rejected with the
receiver's message — bounded, on one line, credentials cut — unless the destination recognises it as a
duplicate rejection, which is a delivery. 401 and 403 are retried too: a refused credential is never an
event's fault.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx2

from ..faults import safe_text
from .destination import Result

__all__ = ["HTTPSender", "classify", "retry_after"]

# Worth retrying: a timeout, too early, too many — and a refused credential (401, 403), which is never an event's
# fault: parking every event would need a manual retry once the key is fixed; retried, delivery resumes by itself
# (and the retry horizon parks them if it never is).
_RETRIED = frozenset({401, 403, 408, 425, 429})


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds, or an HTTP date), or ``retry-after-ms``."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (now if now is not None else time.time()), 0.0)


def _message(response: httpx2.Response, secrets: tuple[str, ...]) -> str:
    text = response.text
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return safe_text(f"{response.status_code} {text}", 500)


def classify(response: httpx2.Response, *, duplicate: Callable[[httpx2.Response], bool] | None = None,
             secrets: tuple[str, ...] = ()) -> Result:
    """The :class:`Result` a response means (see the module docstring)."""
    status = response.status_code
    if 200 <= status < 300:
        return Result.ok()
    if duplicate is not None and duplicate(response):
        return Result.ok()
    message = _message(response, secrets)
    if status in _RETRIED or status >= 500:
        return Result.again(message, retry_after(response.headers))
    return Result.refuse(message)


class HTTPSender:
    """POSTs bodies for one destination, with its headers and bounded timeouts."""

    def __init__(self, *, headers: Mapping[str, str] | None = None, timeout: float = 30.0, connect_timeout: float = 5.0,
                 transport: httpx2.BaseTransport | None = None) -> None:
        self._client = httpx2.Client(headers=dict(headers or {}), transport=transport,
                                     timeout=httpx2.Timeout(timeout, connect=connect_timeout))

    def post(self, url: str, body: bytes, *, content_type: str = "application/json",
             headers: Mapping[str, str] | None = None) -> httpx2.Response | Result:
        """The receiver's response, or a retry :class:`Result` when none arrived (connection error, timeout)."""
        try:
            return self._client.post(url, content=body, headers={"content-type": content_type, **(headers or {})})
        except httpx2.TransportError as exc:
            return Result.again(f"{type(exc).__name__}: no answer from the receiver")

    def get(self, url: str, **kwargs: Any) -> httpx2.Response | Result:
        try:
            return self._client.get(url, **kwargs)
        except httpx2.TransportError as exc:
            return Result.again(f"{type(exc).__name__}: no answer from the receiver")

    def close(self) -> None:
        self._client.close()
