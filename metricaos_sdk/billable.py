"""Billable rules in one place: which events count towards the bill and the quotas, and which rule decided.

Every event (LLM call, action, custom usage, outcome) is recorded; ``billable`` says whether it counts. A
:class:`BillableRules` object holds every rule of the meter (``Meter(billable=...)``)::

    BillableRules(
        environments=("production", "staging"),   # others (test, internal, admin, demo …): not billable
        failed=False,                             # calls that ended in an error or were cancelled
        retries=True,                             # calls the provider SDK retried (attempts > 1)
        cached=False,                             # cached responses (tag cache=hit, or the whole input cached)
        plans={"free_trial": False},              # customers on these plans (still drawn from their allowance)
        event_types={"moderation": False, "embedding": False},
        features={"health_check": False},
        background=False,                         # events tagged background=true
        tool_steps=False,                         # events tagged step=tool or step=agent
        tags={"billing": {"internal": False}},    # any tag key → value → billable
    )

An event is billable unless a rule says it is not; the first rule that says so is recorded on the event as
``billable_rule`` (``"environment test"``, ``"plan free_trial"``, ``"status error"`` …). Rules are checked in
this order: environment, event type, feature, the tag rules (background, tool steps, ``cache=hit``, then
``tags=``), then for LLM calls status, retries and cached input, and last the customer's plan. A rule set to
True that matched is recorded on billable events (``"feature summarize: billable"`` reads
``"feature summarize"``); an event no rule matched has ``billable_rule=None``. ``failed=None`` (the default) keeps the built-in rule: a failed call is
billable only when the provider consumed tokens for it (a stream that broke off mid-way), never an error
response. Rules decided before a call (environment, feature, event type, tags) also decide whether it
reserves quota; a non-billable event draws nothing from quotas — except under a ``plans`` rule: a free trial is
not billed, but its plan still limits it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError

__all__ = ["PLAN_RULE", "BillableRules", "Decision"]

PLAN_RULE = "plan "
"""The prefix of a plan rule's name: those events are not billable but still drawn from the plan's allowance."""

Decision = tuple[bool, str | None]
"""``(billable, the rule that decided or None)``."""

_BILLABLE: Decision = (True, None)


def _bools(name: str, value: object) -> dict[str, bool]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, bool) for k, v in value.items()):
        raise ConfigurationError(f"BillableRules {name}= maps names to True (billable) or False (not billable), "
                                 f"like {{'moderation': False}}; got {value!r}.")
    return dict(value)


def _flag(name: str, value: object) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ConfigurationError(f"BillableRules {name}= is True (billable), False (not billable) or None (the "
                                 f"default rule); got {value!r}.")
    return value


@dataclass(frozen=True)
class BillableRules:
    """Which events are billable, per environment, status, retry, cache, plan, event type, feature and tag."""

    environments: Iterable[str] = ("production",)
    """Billable environments; events with no environment count as production. Others are not billable."""
    failed: bool | None = None
    """Calls that ended in ``error`` or ``cancelled``: None — billable when tokens were consumed (the default)."""
    retries: bool = True
    """Calls the provider SDK retried (``attempts > 1``)."""
    cached: bool = True
    """Cached responses: events tagged ``cache=hit``, or calls whose whole input was read from the prompt cache."""
    plans: Mapping[str, bool] = field(default_factory=dict)
    """Customers on these plans (``{"free_trial": False}``): not billed, still limited by the plan."""
    event_types: Mapping[str, bool] = field(default_factory=dict)
    """By event type: ``moderation``, ``embedding``, ``chat_completion``, ``action``, ``usage``, ``outcome`` …"""
    features: Mapping[str, bool] = field(default_factory=dict)
    background: bool = True
    """Events tagged ``background=true`` (batch jobs, pre-computation nobody asked for)."""
    tool_steps: bool = True
    """Events tagged ``step=tool`` or ``step=agent`` (the steps of an agent, when billed by its action)."""
    tags: Mapping[str, Mapping[str, bool]] = field(default_factory=dict)
    """``{tag key: {tag value: billable}}``."""

    def __post_init__(self) -> None:
        given: Any = self.environments
        try:
            envs: tuple[Any, ...] = (given,) if isinstance(given, str) else tuple(given)
        except TypeError:
            envs = (given,)
        if not all(isinstance(e, str) and e for e in envs):
            raise ConfigurationError(f"BillableRules environments= lists the billable environments by name, like "
                                     f"('production', 'staging'); got {self.environments!r}.")
        object.__setattr__(self, "environments", frozenset(envs))
        for name in ("failed",):
            _flag(name, getattr(self, name))
        for name in ("retries", "cached", "background", "tool_steps"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(f"BillableRules {name}= is True (billable) or False (not billable); "
                                         f"got {getattr(self, name)!r}.")
        for name in ("plans", "event_types", "features"):
            object.__setattr__(self, name, _bools(name, getattr(self, name)))
        tags = self.tags
        if not isinstance(tags, Mapping):
            raise ConfigurationError(f"BillableRules tags= maps a tag key to {{value: billable}}, like "
                                     f"{{'step': {{'tool': False}}}}; got {tags!r}.")
        object.__setattr__(self, "tags", {k: _bools(f"tags[{k!r}]", v) for k, v in tags.items()})
        # What a call needs checked before it is sent and after, so a meter with the defaults pays one set lookup.
        object.__setattr__(self, "_tagged", bool(self.tags) or not self.background or not self.tool_steps
                           or not self.cached)

    # -- decisions ----------------------------------------------------------------------------------
    def before(self, *, environment: str | None, feature: str | None, event_type: str | None,
               tags: Mapping[str, str]) -> Decision:
        """What the rules known before a call or record (environment, event type, feature, tags) decide."""
        if environment is not None and environment not in self.environments:
            return False, f"environment {environment}"
        matched: str | None = None
        if event_type is not None and self.event_types:
            found = self.event_types.get(event_type)
            if found is not None:
                if not found:
                    return False, f"event_type {event_type}"
                matched = f"event_type {event_type}"
        if feature is not None and self.features:
            found = self.features.get(feature)
            if found is not None:
                if not found:
                    return False, f"feature {feature}"
                matched = matched or f"feature {feature}"
        if tags and self._tagged:  # type: ignore[attr-defined]
            if not self.background and tags.get("background") == "true":
                return False, "tag background=true"
            step = tags.get("step")
            if not self.tool_steps and step in ("tool", "agent"):
                return False, f"tag step={step}"
            if not self.cached and tags.get("cache") == "hit":
                return False, "tag cache=hit"
            for key, values in self.tags.items():
                value = tags.get(key)
                if value is not None and value in values:
                    if not values[value]:
                        return False, f"tag {key}={value}"
                    matched = matched or f"tag {key}={value}"
        return (True, matched) if matched is not None else _BILLABLE

    def after_call(self, before: Decision, *, status: str, answered: bool, attempts: int, input_tokens: int,
                   cached_input_tokens: int) -> Decision:
        """The decision for a finished LLM call, given ``before``'s (a False there stands). ``answered``: the
        built-in rule's verdict — the provider answered, and the call either succeeded or consumed tokens."""
        if not before[0]:
            return before
        if status != "ok":
            if self.failed is None:
                if not answered:
                    return False, None  # the built-in rule: an error the provider did not bill
            elif not self.failed:
                return False, f"status {status}"
            else:
                before = (True, before[1] or "failed calls billable")
        elif not answered:
            return False, None
        if attempts > 1 and not self.retries:
            return False, "retried"
        if not self.cached and input_tokens and cached_input_tokens >= input_tokens:
            return False, "cached input"
        return before

    def plan(self, before: Decision, plan: str | None) -> Decision:
        """``before`` overruled by a plan rule for the customer's ``plan``."""
        if plan is None or not before[0] or not self.plans:
            return before
        found = self.plans.get(plan)
        return before if found is None else (found, f"{PLAN_RULE}{plan}" if not found else before[1] or f"{PLAN_RULE}{plan}")

    @property
    def by_plan(self) -> bool:
        return bool(self.plans)

    def describe(self) -> dict[str, Any]:
        """The rules as plain data (for docs, logs and the dashboard)."""
        return {"environments": sorted(self.environments), "failed": self.failed,
                "retries": self.retries, "cached": self.cached, "plans": dict(self.plans),
                "event_types": dict(self.event_types), "features": dict(self.features),
                "background": self.background, "tool_steps": self.tool_steps,
                "tags": {k: dict(v) for k, v in self.tags.items()}}
