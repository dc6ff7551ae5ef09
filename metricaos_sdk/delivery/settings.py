"""Destinations from settings: the tables of a delivery file (``config.load_delivery_file``) made into objects.

Each table has a ``kind`` and the destination's own parameters, by name, as its constructor takes them;
secrets come from the environment (``api_key_env = "OPENMETER_API_KEY"``), resolved by ``config.py``.
A parameter a destination does not take, or a kind we do not know, is a ``ConfigurationError`` saying which.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigurationError
from .destination import Destination

__all__ = ["KINDS", "destinations_from"]

KINDS: dict[str, tuple[str, str]] = {
    "http": ("metricaos_sdk.delivery.http_json", "HTTPJSON"),
    "openmeter": ("metricaos_sdk.delivery.openmeter", "OpenMeter"),
    "stripe": ("metricaos_sdk.delivery.stripe", "StripeMeter"),
    "lago": ("metricaos_sdk.delivery.lago", "Lago"),
    "otel": ("metricaos_sdk.delivery.otel", "OpenTelemetry"),
    "postgres": ("metricaos_sdk.delivery.postgres", "PostgreSQL"),
}
"""``kind`` -> (module, class). Modules of optional extras are imported only when a file names them."""


def destination_class(kind: str) -> type[Any]:
    """The class of a destination kind (importing its module, which may need an extra)."""
    if kind not in KINDS:
        raise ConfigurationError(f"No delivery destination of kind {kind!r}: use one of {', '.join(sorted(KINDS))}.")
    module, name = KINDS[kind]
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def destinations_from(specs: Sequence[Mapping[str, Any]]) -> list[Destination]:
    """Build each spec's destination (``{"kind": ..., **parameters}``)."""
    out = []
    for number, spec in enumerate(specs, 1):
        params = dict(spec)
        kind = params.pop("kind", None)
        if not isinstance(kind, str):
            raise ConfigurationError(f"Destination {number} has no kind: add kind = one of {', '.join(sorted(KINDS))}.")
        cls = destination_class(kind)
        accepted = inspect.signature(cls).parameters
        unknown = sorted(k for k in params if k not in accepted)
        if unknown:
            names = ", ".join(n for n in accepted if n not in ("transport", "self"))
            raise ConfigurationError(f"Destination {number} ({kind}) has no parameter {', '.join(unknown)}: it takes "
                                     f"{names}.")
        try:
            out.append(cls(**params))
        except TypeError as exc:
            raise ConfigurationError(f"Destination {number} ({kind}) is incomplete ({exc}): add what it names.") from None
    return out
