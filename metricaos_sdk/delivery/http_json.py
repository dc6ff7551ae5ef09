"""The generic HTTP destination: our own versioned event schema, batched, to any URL.

Each request is ``{"schema": "metricaos.usage_events/1", "events": [UsageEvent JSON, …]}`` (the fields of
``UsageEvent``, money as decimal strings, times in RFC 3339), with an ``Idempotency-Key`` header derived from
the batch's event ids (the same batch sent again carries the same key). The receiver must deduplicate on each
event's ``id``: the outbox delivers at least once. A 2xx is a delivery; 408/429/5xx and no answer are retried;
another 4xx is a refusal (the batch is split to find the bad events).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import httpx2
from pydantic_core import to_json

from ..events import UsageEvent
from .destination import Result
from .http import HTTPSender, classify

__all__ = ["HTTPJSON", "encode_events"]

SCHEMA = "metricaos.usage_events/1"


def encode_events(events: Sequence[UsageEvent]) -> bytes:
    """The request body for ``events`` (pure: the same events give the same bytes). The fields go straight to
    pydantic-core's serializer, which writes them as ``model_dump(mode="json")`` would (a test pins it), in half
    the time."""
    return to_json({"schema": SCHEMA, "events": [e.__dict__ for e in events]})


def batch_key(events: Sequence[UsageEvent]) -> str:
    """A deterministic idempotency key for a batch: a hash of its event ids, in order."""
    return hashlib.sha256("\n".join(e.id for e in events).encode()).hexdigest()[:48]


class HTTPJSON:
    """POST batches of events to ``url`` with a bearer ``token`` (never logged)."""

    def __init__(self, url: str, *, token: str | None = None, name: str = "http", max_batch: int = 500,
                 headers: Mapping[str, str] | None = None, timeout: float = 30.0,
                 transport: httpx2.BaseTransport | None = None) -> None:
        self.name = name
        self.url = url
        self.max_batch = max_batch
        self._secrets = (token,) if token else ()
        auth = {"authorization": f"Bearer {token}"} if token else {}
        self._sender = HTTPSender(headers={**auth, **(headers or {})}, timeout=timeout, transport=transport)

    def accepts(self, event: UsageEvent) -> str | None:
        return None

    def deliver(self, events: Sequence[UsageEvent]) -> Result:
        answer = self._sender.post(self.url, encode_events(events), headers={"idempotency-key": batch_key(events)})
        if isinstance(answer, Result):
            return answer
        return classify(answer, secrets=self._secrets)

    def close(self) -> None:
        self._sender.close()

    def __repr__(self) -> str:  # never the token
        return f"HTTPJSON({self.url!r}, name={self.name!r})"

