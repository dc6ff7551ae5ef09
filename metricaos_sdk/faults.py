"""How the SDK reports its own faults without leaking what passes through it.

A metering fault is logged and counted, never raised into the caller's call. The log record must not carry a
prompt, a completion or an API key — yet a fault is often raised while a provider exception is being handled,
and a traceback would print that exception too (``During handling of the above exception …``), whose message
can echo the request, the key or the error body. So a fault record holds: a sentence of ours saying what
failed, the type of our exception (and its message only for types whose messages are ours or the operating
system's, never values from a response), and the frames it was raised through — never an exception chain,
never local values.

    log_fault(log, "could not record a call")   # inside ``except``: describes the exception being handled
"""

from __future__ import annotations

import logging
import re
import sqlite3
import sys
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone

from .errors import MetricaOSError

__all__ = ["Fault", "describe", "log_fault", "safe_text", "safe_url"]

_MESSAGE_LIMIT = 300
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Exceptions whose messages say what failed in our terms or the system's (a path, "database is locked",
# "Connection refused"), not what a request or response held.
_SAFE_TYPES: tuple[type[BaseException], ...] = (OSError, sqlite3.Error, MetricaOSError, MemoryError, RecursionError)
_SAFE_MODULES = ("redis.",)


@dataclass(frozen=True, slots=True)
class Fault:
    """The last fault a component logged: what failed, the exception's description, and when."""

    what: str
    error: str
    at: datetime


def safe_text(text: str, limit: int = _MESSAGE_LIMIT) -> str:
    """``text`` on one line, without control characters, at most ``limit`` characters."""
    text = _CONTROL.sub(" ", text.replace("\n", " ").replace("\r", " "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_url(url: str) -> str:
    """``url`` without credentials or query (``https://user:key@host/v1?api-key=…`` → ``https://host/v1``)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    host, slash, path = rest.partition("/")
    host = host.rpartition("@")[2]
    path = path.split("?", 1)[0].split("#", 1)[0]
    return safe_text(f"{scheme}{sep}{host}{slash}{path}")


def describe(exc: BaseException | None) -> str:
    """``TypeName`` or ``TypeName: message`` for exceptions whose messages are safe to log (see module doc)."""
    if exc is None:
        return "no exception"
    name = type(exc).__qualname__
    if isinstance(exc, _SAFE_TYPES) or type(exc).__module__.startswith(_SAFE_MODULES):
        message = safe_text(str(exc))
        return f"{name}: {message}" if message else name
    return name


def log_fault(logger: logging.Logger, what: str, exc: BaseException | None = None, *,
              level: int = logging.ERROR) -> Fault:
    """Log ``what`` failed, with our exception described and its frames (no chain, no messages of other
    exceptions, no locals). ``exc`` defaults to the exception being handled. Returns what was logged."""
    if exc is None:
        exc = sys.exc_info()[1]
    if exc is None:  # a fault we found, not an exception we caught
        logger.log(level, "metricaos_sdk: %s", what)
        return Fault(what, "", datetime.now(timezone.utc))
    description = describe(exc)
    frames = ""
    if exc is not None and exc.__traceback__ is not None:
        frames = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
    if frames:
        logger.log(level, "metricaos_sdk: %s (%s)\n%s", what, description, frames.rstrip("\n"))
    else:
        logger.log(level, "metricaos_sdk: %s (%s)", what, description)
    return Fault(what, description, datetime.now(timezone.utc))
