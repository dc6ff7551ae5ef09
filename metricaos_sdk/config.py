"""Settings of a Meter. The only module that reads ``os.environ`` (each variable listed in docs/configuration.md)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["MeterConfig"]


def _default_tiktoken_cache(environ: Mapping[str, str]) -> str:
    # The same lookup tiktoken does, so we can tell whether an encoding is on disk without touching the network.
    return environ.get("TIKTOKEN_CACHE_DIR") or environ.get("DATA_GYM_CACHE_DIR") or os.path.join(
        tempfile.gettempdir(), "data-gym-cache"
    )


@dataclass(frozen=True)
class MeterConfig:
    """Explicit settings; :meth:`from_env` fills the unset ones from the environment."""

    database: str = "metricaos.db"
    """SQLite file of the default sink and quota store (``METRICAOS_DB``)."""
    environment: str | None = None
    """Default ``environment`` attribution of every event (``METRICAOS_ENVIRONMENT``)."""
    enabled: bool = True
    """``False`` (``METRICAOS_DISABLED=1``) makes ``wrap`` return the client untouched."""
    tiktoken_cache_dir: str = field(default_factory=lambda: _default_tiktoken_cache({}))
    """Where tiktoken's encodings are looked for; an encoding missing there is never downloaded by the SDK:
    the estimate falls back to a character heuristic and says so on the event."""
    durable: bool = False
    """``True`` commits with ``synchronous=FULL`` (survives power loss, costs an fsync per call)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> MeterConfig:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {
            "database": env.get("METRICAOS_DB", "metricaos.db"),
            "environment": env.get("METRICAOS_ENVIRONMENT") or None,
            "enabled": env.get("METRICAOS_DISABLED", "").strip().lower() not in {"1", "true", "yes"},
            "tiktoken_cache_dir": _default_tiktoken_cache(env),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
