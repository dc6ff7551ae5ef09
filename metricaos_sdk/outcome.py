"""CallOutcome: what one metered call observed — the only thing that crosses from the wrappers to the meter.

The wrappers fill it from the response (a body read, a stream ended, cut or abandoned, an error the SDK raised);
:func:`metricaos_sdk.event_builder.build_event` turns it, with the call's attribution and the meter's rates and
rules, into the one event. One object instead of eleven parameters passed down three layers: it is what a
finalizer hands to the background thread, and what a later version can journal as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .usage import Usage

__all__ = ["CallOutcome"]


class CallOutcome:
    """How a call ended and what its response said. Built once per call, by ``MeteredCall.finish``."""

    __slots__ = ("content_chunks", "duration_ms", "error_type", "model", "output_estimate", "partial", "problem",
                 "response_id", "service_tier", "status", "usage")

    def __init__(self, status: str, usage: Usage | None = None, problem: str | None = None, model: str | None = None,
                 response_id: str | None = None, service_tier: str | None = None, content_chunks: int | None = None,
                 error_type: str | None = None, output_estimate: tuple[int, str] | None = None,
                 partial: Usage | None = None, duration_ms: float = 0.0) -> None:
        self.status = status
        """``ok``, ``error`` or ``cancelled``."""
        self.usage = usage
        """The usage the provider reported; None when it reported none (estimated, or nothing was answered)."""
        self.problem = problem
        """Why the usage is missing or was refused (never response text)."""
        self.model = model
        """The model the response names."""
        self.response_id = response_id
        self.service_tier = service_tier
        self.content_chunks = content_chunks
        """Content events a stream delivered (the output estimate of last resort)."""
        self.error_type = error_type
        """The type name of the exception the call ended with."""
        self.output_estimate = output_estimate
        """``(tokens, method)`` counted over the text a stream delivered, when its usage never arrived."""
        self.partial = partial
        """Counts that arrived although ``usage`` did not (Anthropic's ``message_start`` of a cut stream)."""
        self.duration_ms = duration_ms

    def __repr__(self) -> str:
        return (f"CallOutcome(status={self.status!r}, usage={self.usage!r}, problem={self.problem!r}, "
                f"model={self.model!r}, duration_ms={self.duration_ms!r})")
