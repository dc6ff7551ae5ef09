"""The top-level fields of a JSON response body that metering needs: ``usage``, ``model``, ``id``, ``service_tier``.

Pure: bytes in, a dict out. A body that is not a JSON object (a text, srt or vtt transcription) gives ``{}``,
its usage then estimated; a large one (embeddings) is scanned for its ``usage`` object only, since parsing all
of it costs milliseconds.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic_core import from_json

__all__ = ["read_json_fields"]

_SMALL_BODY = 256 * 1024


def read_json_fields(body: bytes) -> dict[str, Any]:
    """The top-level fields we need from a JSON body ({} for one that is not a JSON object: a text, srt or vtt
    transcription, whose usage is estimated). A large body (embeddings) is scanned for its ``usage`` object
    only, since parsing all of it costs milliseconds."""
    if len(body) <= _SMALL_BODY:
        if body.lstrip()[:1] != b"{":
            return {}
        try:
            data = from_json(body, cache_strings="keys")  # a third of json.loads' time; values are seen once
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    fields: dict[str, Any] = {}
    at = body.rfind(b'"usage"')
    if at >= 0:
        brace = body.find(b"{", at)
        if brace >= 0:
            try:
                fields["usage"], _ = json.JSONDecoder().raw_decode(body[brace:].decode("utf-8", "replace"))
            except ValueError:
                pass
    for key in ("model", "id", "service_tier"):
        match = re.search(rb'"%s"\s*:\s*"([^"\\]{1,200})"' % key.encode(), body[-2048:]) or re.search(
            rb'"%s"\s*:\s*"([^"\\]{1,200})"' % key.encode(), body[:2048]
        )
        if match:
            fields[key] = match.group(1).decode("utf-8", "replace")
    return fields
