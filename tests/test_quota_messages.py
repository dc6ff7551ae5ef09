"""QuotaExceeded's message: the plain case as it was; a request refused by its reservation says so and how
to make it fit; RateLimited's messages unchanged; pickling keeps every field."""

from __future__ import annotations

import pickle
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from metricaos_sdk import Meter, QuotaExceeded, RateLimited
from metricaos_sdk.errors import _rebuild_quota_exceeded
from metricaos_sdk.testing import SimulatedOpenAI

RESETS = datetime(2027, 1, 1, tzinfo=timezone.utc)
END = " The allowance resets at 2027-01-01T00:00:00+00:00."


def refusal(**numbers: object) -> QuotaExceeded:
    return QuotaExceeded(customer_id="cus_1", period="month", resets_at=RESETS, **numbers)


def test_the_plain_case_is_unchanged():
    # Settled usage has reached the limit: what the message always said.
    assert str(refusal(unit="credits", limit=2000, used=2000, requested=50, plan="starter")) == (
        "Customer cus_1 has used 2,000 of 2,000 credits this month on the starter plan; this request needs about 50." + END)
    assert str(refusal(unit="tokens", limit=2000, used=2500, reserved=10, requested=300, feature="export")) == (
        "Customer cus_1 has used 2,500 of 2,000 tokens for export this month, and calls in progress hold 10 more; "
        "this request needs about 300." + END)
    assert str(refusal(unit="tokens", limit=10, used=12)) == "Customer cus_1 has used 12 of 10 tokens this month." + END


def test_money_follows_the_formatting_rule():
    assert str(refusal(unit="cost_usd", limit=Decimal(5), used=Decimal("5.0004"), requested=Decimal("0.0012345"))) == (
        "Customer cus_1 has used $5.00 of $5.00 this month; this request needs about $0.001235." + END)


@pytest.mark.parametrize(("numbers", "why"), [
    # Its output reservation does not fit in what is left: the largest max_tokens that fits.
    ({"unit": "tokens", "limit": 400, "used": 166, "requested": 277, "requested_output_tokens": 256},
     "this request needs about 277, more than the 234 left, because it reserves about 256 tokens for its output: "
     "pass max_tokens of 213 or less."),
    ({"unit": "tokens", "limit": 20_000, "used": 16_000, "reserved": 2_000, "requested": 4_100,
      "requested_output_tokens": 4_000},
     "this request needs about 4,100, more than the 2,000 left, because it reserves about 4,000 tokens for its output: "
     "pass max_tokens of 1,900 or less, or retry when the calls in progress finish."),
    # The engine did not say how much is output.
    ({"unit": "tokens", "limit": 400, "used": 166, "requested": 277},
     "this request needs about 277, more than the 234 left, because it reserves room for its whole output (its "
     "max_tokens, or the meter's default when it sets none): pass a smaller max_tokens."),
    # Its input alone does not fit.
    ({"unit": "tokens", "limit": 400, "used": 166, "requested": 556, "requested_output_tokens": 256},
     "this request needs about 556, more than the 234 left, even without the 256 tokens it reserves for its output: "
     "shorten the request."),
    # Calls in flight hold everything that is left.
    ({"unit": "tokens", "limit": 400, "used": 300, "reserved": 100, "requested": 277, "requested_output_tokens": 256},
     "this request needs about 277, and calls in progress hold the rest: retry when they finish."),
    ({"unit": "requests", "limit": 3, "used": 2, "reserved": 1, "requested": 1},
     "this request needs about 1, and calls in progress hold the rest: retry when they finish."),
    # Other units: the output reservation drives the estimate too, but not one to one.
    ({"unit": "cost_usd", "limit": Decimal(5), "used": Decimal("4.9996"), "requested": Decimal("0.0012345"),
      "requested_output_tokens": 256},
     "this request needs about $0.001235, more than the $0.0004 left, because it reserves room for about 256 output "
     "tokens: pass a smaller max_tokens."),
    # An exact estimate (a per-call credit price): nothing to narrow.
    ({"unit": "credits", "limit": 30, "used": 25, "requested": 10, "requested_output_tokens": 0},
     "this request needs about 10, more than the 5 left."),
])
def test_a_request_refused_by_its_reservation_says_so_and_how_to_fit(numbers, why):
    exc = refusal(**numbers)
    assert exc.used < exc.limit  # settled usage alone is under the limit
    assert str(exc).startswith("Customer cus_1 has used ") and str(exc).endswith("; " + why + END)
    assert str(pickle.loads(pickle.dumps(exc))) == str(exc)


def test_the_whole_sentence_of_a_held_back_request():
    assert str(refusal(unit="tokens", limit=400, used=166, requested=277, requested_output_tokens=256, plan="free",
                       feature="ai_support_reply")) == (
        "Customer cus_1 has used 166 of 400 tokens for ai_support_reply this month on the free plan; this request "
        "needs about 277, more than the 234 left, because it reserves about 256 tokens for its output: pass max_tokens "
        "of 213 or less." + END)


def test_rate_limited_messages_are_unchanged():
    minute = RateLimited(retry_after=2.5, customer_id="cus_1", unit="tokens", limit=1000, used=700, reserved=100,
                         requested=277, requested_output_tokens=256, period="minute", resets_at=RESETS)
    assert str(minute) == ("Customer cus_1 has used 800 of the 1,000 tokens allowed per minute; this request needs "
                           "about 277. Retry in 3 s.")
    throttled = RateLimited(retry_after=1.0, customer_id="cus_1", unit="tokens", limit=400, used=166, requested=277,
                            requested_output_tokens=256, period="month", resets_at=RESETS)
    assert str(throttled) == ("Customer cus_1 has used 166 of 400 tokens this month; this request needs about 277. "
                              "The allowance resets at 2027-01-01T00:00:00+00:00; retry in 1 s.")


def test_pickling_keeps_the_new_field_and_reads_old_pickles():
    exc = refusal(unit="tokens", limit=400, used=166, requested=277, requested_output_tokens=256)
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.requested_output_tokens, str(copy)) == (256, str(exc))
    limited = RateLimited(retry_after=3, customer_id="c", unit="tokens", limit=4, used=1, requested=5,
                          requested_output_tokens=4, period="minute", resets_at=RESETS)
    assert pickle.loads(pickle.dumps(limited)).requested_output_tokens == 4
    old_state = {k: v for k, v in exc.__dict__.items() if k != "requested_output_tokens"}  # pickled before the field
    assert _rebuild_quota_exceeded(old_state).requested_output_tokens is None


def test_a_meter_refusing_a_request_by_its_reservation(tmp_path):
    # The demo's case: a small allowance, used partly, and a request without max_tokens whose default output
    # reservation does not fit in what is left.
    with Meter(tmp_path / "metricaos.db") as meter:
        client = meter.wrap(SimulatedOpenAI().client())
        meter.set_quota("cus_small", tokens=400)
        with meter.context(customer_id="cus_small"):
            with pytest.raises(QuotaExceeded) as info:
                for _ in range(10):
                    client.chat.completions.create(model="gpt-4.1-mini",
                                                   messages=[{"role": "user", "content": "Where is my order?"}])
    exc = info.value
    assert 0 < exc.used < exc.limit == 400 and exc.requested > exc.remaining
    assert f"more than the {exc.remaining} left" in str(exc) and "max_tokens" in str(exc)
