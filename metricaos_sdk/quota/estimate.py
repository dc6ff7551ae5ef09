"""What a call is expected to consume, per quota unit, before it is sent: the amount a reservation holds.

Tokens: the request's input counted with tiktoken (characters where no encoding is on disk) plus its
``max_tokens`` (or the configured default for output). Cost: those tokens priced by the rate table. Credits:
the feature's credit rule over the same numbers. Each is computed only if a limit asks for its unit.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from ..providers.estimate import estimate_input_tokens
from ..usage import Usage
from .amounts import to_usage

if TYPE_CHECKING:
    from ..wrappers.call import MeteredCall
    from .engine import QuotaEngine

__all__ = ["CallEstimate"]

_MAX_TOKENS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


class CallEstimate:
    """A call's expected consumption per unit, in store units, computed only for the units asked."""

    def __init__(self, engine: QuotaEngine, call: MeteredCall) -> None:
        self.engine, self.call = engine, call
        self._tokens: tuple[int, int] | None = None
        self._cost: Decimal | None = None

    def tokens(self) -> tuple[int, int]:
        if self._tokens is None:
            body = self.call.body or {}
            out = next((v for k in _MAX_TOKENS if isinstance(v := body.get(k), int) and not isinstance(v, bool)), None)
            if out is None:
                out = 0 if self.call.endpoint.event_type == "embedding" else self.engine.config.quota_output_tokens
            inp, _ = estimate_input_tokens(self.call.requested_model, body, self.engine.config.tiktoken_cache_dir)
            self._tokens = (inp, out)
        return self._tokens

    def cost(self) -> Decimal:
        if self._cost is None:
            inp, out = self.tokens()
            quote = self.engine.rates.price(self.call.provider, self.call.requested_model or "",
                                            Usage(input_tokens=inp, output_tokens=out))
            self._cost = quote.cost_usd or Decimal(0)  # unpriced: cost limits can only count it once it is known
        return self._cost

    def amount(self, unit: str) -> int:
        if unit == "requests":
            return 1
        if unit == "tokens":
            return sum(self.tokens())
        if unit == "cost_usd":
            return to_usage(unit, self.cost())
        action = self.call.action
        if action is not None and action.charging is not None:
            return 0  # the action holds the credits for all of its calls
        found = self.engine.credits.get(self.call.attribution.feature)
        if found is None or not found[0].prices_calls:
            return 0
        rule = found[0]
        if rule.per_call is not None:  # exact, and needs no tokenizer
            return self.engine.per_call_units(rule)
        inp, out = self.tokens()
        credits = rule.credits(input_tokens=inp, output_tokens=out,
                               cost_usd=self.cost() if rule.credits_per_usd is not None else None)
        return to_usage(unit, credits or 0)
