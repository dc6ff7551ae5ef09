"""Attribution: who a call is made for, carried by a ContextVar.

One ``Attribution`` object is a context manager, an async context manager and a decorator (for ``def``
and ``async def``). Nested uses merge, inner values winning; ``tags`` merge key by key. Because the
state lives in a :class:`contextvars.ContextVar`, every thread and every asyncio task sees only what was
set in its own context: a new thread starts empty, a new task starts with a copy of its creator's.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

__all__ = ["Attribution", "AttributionScope", "current_attribution"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who a call is made for. Every field is optional; ``tags`` are free-form string pairs."""

    customer_id: str | None = None
    user_id: str | None = None
    workspace_id: str | None = None
    feature: str | None = None
    environment: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def merged(self, inner: Attribution) -> Attribution:
        """This attribution overlaid with ``inner``'s set fields (inner wins; tags merge)."""
        return Attribution(
            customer_id=inner.customer_id if inner.customer_id is not None else self.customer_id,
            user_id=inner.user_id if inner.user_id is not None else self.user_id,
            workspace_id=inner.workspace_id if inner.workspace_id is not None else self.workspace_id,
            feature=inner.feature if inner.feature is not None else self.feature,
            environment=inner.environment if inner.environment is not None else self.environment,
            tags={**self.tags, **inner.tags} if inner.tags else self.tags,
        )


_EMPTY = Attribution()
_current: contextvars.ContextVar[Attribution] = contextvars.ContextVar("metricaos_attribution", default=_EMPTY)


def current_attribution() -> Attribution:
    """The attribution in force in this thread or task (empty outside any scope)."""
    return _current.get()


class AttributionScope:
    """Applies an :class:`Attribution` for the duration of a ``with`` block or a decorated call.

    Re-entrant and safe to share: each entry keeps its own reset token, so one scope object can decorate
    a function that runs in many threads or tasks at once.
    """

    __slots__ = ("_attribution", "_tokens")

    def __init__(self, attribution: Attribution) -> None:
        self._attribution = attribution
        # A tuple, replaced on each entry: a child task copies the context and must not share a mutable stack.
        self._tokens: contextvars.ContextVar[tuple[contextvars.Token[Attribution], ...]] = contextvars.ContextVar(
            "metricaos_scope_tokens", default=()
        )

    @property
    def attribution(self) -> Attribution:
        return self._attribution

    def with_tags(self, **tags: str) -> AttributionScope:
        """A copy of this scope with more tags."""
        return AttributionScope(replace(self._attribution, tags={**self._attribution.tags, **tags}))

    def __enter__(self) -> Attribution:
        merged = _current.get().merged(self._attribution)
        self._tokens.set((*self._tokens.get(), _current.set(merged)))
        return merged

    def __exit__(self, *exc: object) -> None:
        # reset(token), never set(None): restores exactly what the enclosing scope had.
        *rest, token = self._tokens.get()
        self._tokens.set(tuple(rest))
        _current.reset(token)

    async def __aenter__(self) -> Attribution:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    def __call__(self, func: F) -> F:
        attribution = self._attribution
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                token = _current.set(_current.get().merged(attribution))
                try:
                    return await func(*args, **kwargs)
                finally:
                    _current.reset(token)

            return async_wrapper  # type: ignore[return-value]

        if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):
            raise TypeError(
                "meter.track() cannot decorate a generator function: wrap the code that makes the LLM call "
                "in `with meter.context(...)` instead."
            )

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = _current.set(_current.get().merged(attribution))
            try:
                return func(*args, **kwargs)
            finally:
                _current.reset(token)

        return wrapper  # type: ignore[return-value]
