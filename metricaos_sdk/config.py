"""Settings of a Meter. The only module that reads ``os.environ`` (each variable listed in docs/configuration.md)."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["MeterConfig", "load_delivery_file"]


def _default_tiktoken_cache(environ: Mapping[str, str]) -> str:
    # The same lookup tiktoken does, so we can tell whether an encoding is on disk without touching the network.
    return environ.get("TIKTOKEN_CACHE_DIR") or environ.get("DATA_GYM_CACHE_DIR") or os.path.join(
        tempfile.gettempdir(), "data-gym-cache"
    )


def _seconds(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise ConfigurationError(f"{name}={text!r} is not a number of seconds: set it to a positive number, e.g. 0.05.")
    return value


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
    quota_url: str | None = None
    """Where quotas live (``METRICAOS_QUOTA_URL``): ``redis://host:port/db`` shares them between hosts;
    unset, they live in the SQLite file (or in memory when the sink is not SQLite)."""
    quota_fail_open: bool = True
    """When the quota store fails: ``True`` allows the call (and logs the fault), ``False`` refuses it with
    ``QuotaUnavailable`` (``METRICAOS_QUOTA_FAIL_OPEN=0``)."""
    quota_timeout: float = 0.05
    """How long a call waits on the quota store (a SQLite lock another process holds, a Redis round trip) before
    ``quota_fail_open`` decides (``METRICAOS_QUOTA_TIMEOUT``, seconds). After a failure calls skip the store for a
    back-off, then try it again; work off the call path (settings, reports, late settlements) waits longer."""
    quota_lease_seconds: float = 900.0
    """How long a reservation is held if its call never settles (its process died)."""
    quota_output_tokens: int = 256
    """Output tokens reserved for a call whose request sets no ``max_tokens``-like limit."""
    quota_refresh_seconds: float = 1.0
    """How often a process checks the quota store for plan and customer changes made elsewhere."""
    delivery_config: str | None = None
    """A TOML file of delivery destinations (``METRICAOS_DELIVERY_CONFIG``) used when ``Meter(deliver_to=)`` is not
    given; see :func:`load_delivery_file`."""
    delivery_timeout: float = 5.0
    """How long ``flush()``, ``close()`` and exit wait for events to reach the delivery destinations; what is
    left stays in the outbox for the next process or ``metricaos deliver``."""
    deliver_on_sigterm: bool = True
    """With destinations, a SIGTERM that nothing else handles exits in order (``SystemExit(143)``), so the
    meter's ``close()`` delivers for up to ``delivery_timeout`` seconds before the process ends."""
    billable_environments: tuple[str, ...] = ("production",)
    """Environments whose calls are billable and drawn from quotas; calls with no environment count as
    production. Others (test, internal, demo …) are recorded with ``billable=False``."""
    provider_hosts: Mapping[str, str] = field(default_factory=dict)
    """Server host -> provider, for OpenAI-compatible base URLs the SDK cannot name itself:
    ``{"gpu-box:8000": "vllm", "llm.internal": "litellm", "api.example.com": "deepseek"}``. A key is
    ``host:port`` or a host (which also covers its subdomains); the provider decides the event's ``provider``
    and the prices (``ollama``/``vllm`` are self-hosted: cost 0 unless the rate file gives a rate). Asked
    before the hosts the SDK knows (see docs/providers.md)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> MeterConfig:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {
            "database": env.get("METRICAOS_DB", "metricaos.db"),
            "environment": env.get("METRICAOS_ENVIRONMENT") or None,
            "enabled": env.get("METRICAOS_DISABLED", "").strip().lower() not in {"1", "true", "yes"},
            "tiktoken_cache_dir": _default_tiktoken_cache(env),
            "quota_url": env.get("METRICAOS_QUOTA_URL") or None,
            "quota_fail_open": env.get("METRICAOS_QUOTA_FAIL_OPEN", "").strip().lower() not in {"0", "false", "no"},
            "delivery_config": env.get("METRICAOS_DELIVERY_CONFIG") or None,
        }
        timeout = env.get("METRICAOS_QUOTA_TIMEOUT", "").strip()
        if timeout:
            values["quota_timeout"] = _seconds("METRICAOS_QUOTA_TIMEOUT", timeout)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def load_delivery_file(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The destinations of a delivery file: a TOML list of ``[[destination]]`` tables, each with a ``kind``
    (``http``, ``openmeter``, ``stripe``, ``lago``, ``otel``, ``postgres``) and that destination's parameters.

    A secret is never written in the file: ``<name>_env = "VARIABLE"`` takes parameter ``<name>`` from that
    environment variable (``api_key_env = "OPENMETER_API_KEY"``), read here, the one place that reads the
    environment."""
    env = os.environ if environ is None else environ
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"Cannot read the delivery file {path} ({exc.strerror or exc}): check the path.") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"The delivery file {path} is not valid TOML ({exc}): fix the line it names.") from None
    tables = document.get("destination")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise ConfigurationError(f"The delivery file {path} names no destination: add a [[destination]] table with "
                                 "a kind (http, openmeter, stripe, lago, otel, postgres) and its parameters.")
    out = []
    for number, table in enumerate(tables, 1):
        spec: dict[str, Any] = {}
        for key, value in table.items():
            if key.endswith("_env"):
                name = key[: -len("_env")]
                if not isinstance(value, str) or value not in env:
                    raise ConfigurationError(f"Destination {number} of {path} takes {name} from the environment "
                                             f"variable {value!r}, which is not set: set it, or drop {key}.")
                spec[name] = env[value]
            else:
                spec[key] = value
        out.append(spec)
    return out
