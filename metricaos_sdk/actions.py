"""Actions: a unit of product work, billed once however many LLM calls, retries and tool steps it makes.

``meter.action("summarize_document", credits=50)`` returns an :class:`ActionScope`: a context manager, an async
context manager and a decorator (``def`` and ``async def``), like ``meter.context()``. Each entry is one
:class:`ActionRun`:

* it **starts** by reserving its credits against the customer's plan through the quota engine, atomically with
  every other call and action of the customer (``QuotaExceeded`` before anything inside runs when they do not fit);
* every LLM call, custom usage and inner action made inside carries its id (``action_id``) and charges no credits
  of its own: the outermost action with a price charges for all of them (inner actions are recorded with their
  ``parent_action_id``, not charged);
* it **ends** with one event (``event_type="action"``) holding the sum of its calls' ``cost_usd``, the credits it
  charged, its status and how many calls it made, and settles its reservation at those credits. On failure (an
  exception out of the block, or ``run.fail()``) ``on_failure`` decides: ``"free"`` charges nothing, ``"at_cost"``
  charges what its calls would have cost under their own credit rules, ``"charge"`` charges the full price.

The running action lives in a :class:`contextvars.ContextVar`, so it follows the code as attribution does: an
asyncio task started inside sees it, a new thread does not unless started in a copy of the context
(``contextvars.copy_context().run``). An action of a process that dies holds its reservation until the lease
(``MeterConfig.quota_lease_seconds``, or ``lease_seconds=``) ends, then nothing.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal, Protocol, TypeVar

from .context import Attribution, _current
from .events import new_event_id
from .quota.credits import CreditRule

__all__ = ["ActionRun", "ActionScope", "ActionSpec", "OnFailure", "current_action"]

F = TypeVar("F", bound=Callable[..., Any])
OnFailure = Literal["free", "at_cost", "charge"]
ON_FAILURE: tuple[str, ...] = ("free", "at_cost", "charge")

_action: contextvars.ContextVar[ActionRun | None] = contextvars.ContextVar("metricaos_action", default=None)


def current_action() -> ActionRun | None:
    """The innermost action running in this thread or task (None outside any)."""
    return _action.get()


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """What ``meter.action(...)`` was given, checked: the same for every run of a scope."""

    name: str
    credits: Decimal | None
    """A fixed price in credits (None: ``rule``, or the meter's credit rule for the action's feature)."""
    rule: CreditRule | None
    on_failure: OnFailure
    attribution: Attribution
    reserve: Decimal | None
    """Credits to hold while a rule priced on its calls' cost or tokens runs (the charge is known at its end)."""
    lease_seconds: float | None


class ActionRun:
    """One running action: what ``with meter.action(...) as run`` gives. ``run.id`` is the ``action_id`` of
    everything inside and the id of the action's own event; ``run.fail()`` marks it failed without raising."""

    __slots__ = ("_calls", "_credits", "_t0", "attribution", "billable", "billable_rule", "charging", "credit_rule", "failure",
                 "id", "parent", "price", "reserved", "spec", "started_at")

    def __init__(self, spec: ActionSpec, parent: ActionRun | None) -> None:
        self.id = new_event_id()
        self.spec = spec
        self.parent = parent
        self.started_at = datetime.now(timezone.utc)
        self._t0 = time.perf_counter()
        self.attribution = spec.attribution
        """The attribution in force inside the action (set when it starts)."""
        self.charging: ActionRun | None = parent.charging if parent is not None else None
        """The action that charges for this one's work: the outermost one with a price (None: nothing charges)."""
        self.price: CreditRule | Decimal | None = None
        self.credit_rule: str | None = None
        self.billable = True
        self.billable_rule: str | None = None
        self.reserved = Decimal(0)
        """Credits held for the action while it runs."""
        self.failure: str | None = None
        # (cost_usd, input tokens, output tokens) per call made inside, nested actions' included, and the credits
        # the calls' own rules would have charged (on the charging action): appended from any thread
        # (list.append is atomic), so nothing here takes a lock.
        self._calls: list[tuple[Decimal | None, int, int]] = []
        self._credits: list[Decimal] = []

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def calls(self) -> int:
        """LLM calls finished inside the action so far."""
        return len(self._calls)

    @property
    def cost_usd(self) -> Decimal | None:
        """The sum of its calls' cost so far (None when one of them has no price)."""
        total = Decimal(0)
        for cost, *_ in self._calls:
            if cost is None:
                return None
            total += cost
        return total

    def fail(self, reason: str = "failed") -> None:
        """Mark the action failed (``on_failure`` decides what it costs) although no exception leaves it.
        ``reason`` is recorded as the event's ``error_type``: a short code, never a message with user data."""
        self.failure = str(reason)[:100] or "failed"

    def note_call(self, cost_usd: Decimal | None, input_tokens: int, output_tokens: int) -> None:
        """Count a finished call in this action and every action enclosing it."""
        entry = (cost_usd, input_tokens, output_tokens)
        run: ActionRun | None = self
        while run is not None:
            run._calls.append(entry)
            run = run.parent

    def note_credits(self, credits: Decimal | None) -> None:
        """What a call inside would have been charged under its own credit rule (``on_failure="at_cost"``)."""
        if credits is not None and self.charging is not None:
            self.charging._credits.append(credits)

    def totals(self) -> tuple[Decimal | None, Decimal, int, int]:
        """(cost, credits its calls would have charged, input tokens, output tokens) of the calls so far."""
        calls = list(self._calls)
        return (self.cost_usd, sum(list(self._credits), Decimal(0)), sum(c[1] for c in calls),
                sum(c[2] for c in calls))

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self._t0) * 1000

    def __repr__(self) -> str:
        return f"<ActionRun {self.spec.name} {self.id}>"


class ActionHost(Protocol):
    """What an action needs of the meter: start it (reserve; may raise QuotaExceeded) and end it (never raises)."""

    def _start_action(self, run: ActionRun) -> None: ...

    def _end_action(self, run: ActionRun, exc: BaseException | None) -> None: ...


class ActionScope:
    """``meter.action(...)``: a ``with`` / ``async with`` block or a decorator; each entry is one :class:`ActionRun`.
    Re-entrant and safe to share between threads and tasks (each entry keeps its own reset tokens)."""

    __slots__ = ("_host", "_tokens", "spec")

    def __init__(self, host: ActionHost, spec: ActionSpec) -> None:
        self._host = host
        self.spec = spec
        self._tokens: contextvars.ContextVar[tuple[tuple[ActionRun, Any, Any], ...]] = contextvars.ContextVar(
            "metricaos_action_tokens", default=())

    def _enter(self) -> tuple[ActionRun, Any, Any]:
        run = ActionRun(self.spec, _action.get())
        self._host._start_action(run)  # QuotaExceeded / QuotaUnavailable leave here: nothing inside has run
        return run, _current.set(run.attribution), _action.set(run)

    def _exit(self, entry: tuple[ActionRun, Any, Any], exc: BaseException | None) -> None:
        run, attribution_token, action_token = entry
        try:
            _action.reset(action_token)
            _current.reset(attribution_token)
        finally:
            self._host._end_action(run, exc)

    def __enter__(self) -> ActionRun:
        entry = self._enter()
        self._tokens.set((*self._tokens.get(), entry))
        return entry[0]

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        *rest, entry = self._tokens.get()
        self._tokens.set(tuple(rest))
        self._exit(entry, exc)

    async def __aenter__(self) -> ActionRun:
        return self.__enter__()

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):
            raise TypeError("meter.action() cannot decorate a generator function: run the work in "
                            "`with meter.action(...)` inside it instead.")
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                entry = self._enter()
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    self._exit(entry, exc)
                    raise
                self._exit(entry, None)
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            entry = self._enter()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                self._exit(entry, exc)
                raise
            self._exit(entry, None)
            return result

        return wrapper  # type: ignore[return-value]
