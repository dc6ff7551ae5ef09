"""Plans, credits, grants, what happens at the limit, feature sub-limits, rate limits and alerts."""

from __future__ import annotations

import pickle
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from metricaos_sdk import (
    ConfigurationError,
    CreditRule,
    Meter,
    MeterConfig,
    Plan,
    QuotaExceeded,
    RateLimit,
    RateLimited,
)
from tests.quota_support import MESSAGES, ChunkedSimulator


@pytest.fixture
def client(meter):
    sim = ChunkedSimulator(reply_words=12)  # each call: 5 prompt + 12 completion tokens
    return meter.wrap(sim.client(max_retries=0))


def ask(meter, client, customer_id="cus_1", feature=None, **kwargs):
    with meter.context(customer_id=customer_id, feature=feature):
        return client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, **kwargs)


def test_hard_plan_refuses_with_a_message_a_customer_understands(meter, client):
    meter.plans.define("starter", credits=30)
    meter.credits.set("*", per_call=10)
    meter.customers.assign("cus_1", "starter")
    for _ in range(3):
        ask(meter, client)
    with pytest.raises(QuotaExceeded) as info:
        ask(meter, client)
    exc = info.value
    assert (exc.customer_id, exc.unit, exc.limit, exc.used, exc.remaining, exc.requested, exc.plan) == (
        "cus_1", "credits", 30, 30, 0, 10, "starter")
    assert str(exc).startswith("Customer cus_1 has used 30 of 30 credits this month on the starter plan; "
                               "this request needs about 10. The allowance resets at ")
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.plan, copy.requested, str(copy)) == ("starter", 10, str(exc))


def test_soft_plan_allows_and_alerts_once_per_threshold(meter, client):
    alerts = []
    meter.plans.on_alert(alerts.append)
    meter.plans.define("soft", credits=30, on_limit="soft", alerts=(0.5, 1.0))
    meter.credits.set("*", per_call=10)
    meter.customers.assign("cus_1", "soft")
    for _ in range(5):
        ask(meter, client)  # never refused
    assert [(a.threshold, a.used) for a in alerts] == [(0.5, 20), (1.0, 30)]
    assert alerts[0].plan == "soft" and alerts[0].mode == "soft" and "50% alert" in alerts[0].message
    summary = meter.usage("cus_1")
    assert (summary.used, summary.overage, summary.remaining) == (50, 20, 0)


def test_soft_alert_fires_when_a_call_is_let_past_the_limit(meter, client):
    alerts = []
    meter.plans.on_alert(alerts.append)
    meter.plans.define("soft", credits=15, on_limit="soft", alerts=(0.9,))
    meter.credits.set("*", per_call=10)
    meter.customers.assign("cus_1", "soft")
    ask(meter, client)
    assert alerts == []
    ask(meter, client)  # 10 + 10 > 15: let through, and the 100 % alert fires before it is sent
    assert [a.threshold for a in alerts] == [1.0, 0.9]


def test_a_raising_alert_callback_never_breaks_the_call(meter, client, sdk_log):
    meter.plans.on_alert(lambda alert: 1 / 0)
    meter.plans.define("soft", credits=10, on_limit="soft")
    meter.credits.set("*", per_call=10)
    meter.customers.assign("cus_1", "soft")
    ask(meter, client)
    ask(meter, client)
    assert meter.faults >= 1


def test_overage_plan_marks_and_prices_the_part_beyond_the_allowance(meter, client):
    meter.plans.define("pro", credits=25, on_limit="overage", overage_price_usd="0.002")
    meter.credits.set("*", per_call=10)
    meter.customers.assign("cus_1", "pro")
    for _ in range(4):
        ask(meter, client)
    events = meter.events(customer_id="cus_1")
    assert [e.overage for e in events] == [None, None, Decimal(5), Decimal(10)]
    assert [e.overage_cost_usd for e in events][2:] == [Decimal("0.010"), Decimal("0.020")]
    summary = meter.usage("cus_1")
    assert (summary.used, summary.overage) == (40, 15)
    assert summary.totals.overage_cost_usd == Decimal("0.030")


def test_throttle_plan_raises_rate_limited_with_retry_after(meter, client):
    meter.plans.define("throttled", requests=2, on_limit="throttle", period="day")
    meter.customers.assign("cus_1", "throttled")
    ask(meter, client)
    ask(meter, client)
    with pytest.raises(RateLimited) as info:
        ask(meter, client)
    exc = info.value
    assert isinstance(exc, QuotaExceeded)  # code that catches QuotaExceeded catches throttling too
    until_reset = (exc.resets_at - datetime.now(timezone.utc)).total_seconds()
    assert 0 < exc.retry_after <= 86_400 and abs(exc.retry_after - until_reset) < 60
    assert pickle.loads(pickle.dumps(exc)).retry_after == exc.retry_after


def in_one_window(seconds, scenario):
    """Run ``scenario(customer_id)``; if it failed and a fixed window boundary passed meanwhile (its calls
    straddled two windows), run it again for a fresh customer."""
    for attempt in range(3):
        window = int(time.time() // seconds)
        try:
            return scenario(f"cus_{attempt}")
        except (AssertionError, pytest.fail.Exception):
            if int(time.time() // seconds) == window or attempt == 2:
                raise


def test_rate_limit_per_window(meter, client):
    meter.plans.define("rated", credits=1_000, rate_limits=[RateLimit(requests=3, per="second")])
    meter.credits.set("*", per_call=1)

    def scenario(customer_id):
        meter.customers.assign(customer_id, "rated")
        for _ in range(3):
            ask(meter, client, customer_id)
        with pytest.raises(RateLimited) as info:
            ask(meter, client, customer_id)
        assert info.value.unit == "requests" and info.value.period == "second" and 0 < info.value.retry_after <= 1
        assert "3 of the 3 requests allowed per second" in str(info.value)
        assert meter.usage(customer_id).used == 3  # the refused call drew nothing

    in_one_window(1, scenario)


def test_token_rate_limit_counts_the_estimate(meter, client):
    meter.plans.define("tpm", credits=1_000, rate_limits=RateLimit(tokens=100, per="minute"))

    def scenario(customer_id):
        meter.customers.assign(customer_id, "tpm")
        ask(meter, client, customer_id, max_tokens=40)
        with pytest.raises(RateLimited) as info:
            ask(meter, client, customer_id, max_tokens=90)  # 17 used + ~96 requested > 100
        assert info.value.unit == "tokens" and info.value.used == 17

    in_one_window(60, scenario)


def test_feature_sub_limit(meter, client):
    meter.plans.define("starter", credits=1_000, features={"summarize_document": {"requests": 2}})
    meter.credits.set("summarize_document", per_call=50)
    meter.credits.set("*", per_call=1)
    meter.customers.assign("cus_1", "starter")
    ask(meter, client, feature="summarize_document")
    ask(meter, client, feature="summarize_document")
    with pytest.raises(QuotaExceeded) as info:
        ask(meter, client, feature="summarize_document")
    assert info.value.feature == "summarize_document" and info.value.unit == "requests"
    assert "for summarize_document" in str(info.value)
    ask(meter, client, feature="chat")  # other features still have the plan's allowance
    summary = meter.usage("cus_1")
    assert summary.used == 101 and summary.credits == 101
    [feature_limit] = [lim for lim in summary.limits if lim.feature]
    assert (feature_limit.used, feature_limit.remaining) == (2, 0)
    assert [e.credit_rule for e in meter.events(customer_id="cus_1")][-2:] == [
        "summarize_document: 50 per call", "*: 1 per call"]


def test_grants_top_up_the_allowance_and_expiring_ones_go_first(meter, client):
    meter.plans.define("starter", credits=20)
    meter.credits.set("*", per_call=10)
    meter.customers.assign("cus_1", "starter")
    soon = datetime.now(timezone.utc) + timedelta(hours=1)
    promo = meter.customers.grant("cus_1", 10, expires_at=soon, kind="promo")
    meter.customers.grant("cus_1", 20, grant_id="pay_123")  # never expires: drawn last
    meter.customers.grant("cus_1", 50, expires_at=datetime.now(timezone.utc) - timedelta(days=1))  # expired
    assert [g.id for g in meter.customers.grants("cus_1")] == [promo.id, "pay_123"]
    ask(meter, client)
    buckets = _buckets(meter)
    used = {b.key: v[0] // 1_000_000 for b, v in zip(buckets, meter.quota_store.balances("cus_1", buckets).values(), strict=True)}
    period_key = next(k for k in used if k.startswith("plan:"))
    # The first 10 credits come from whichever expires first: the promo, unless the month ends within the hour.
    first = f"grant:{promo.id}" if soon < meter.usage("cus_1").period_end else period_key
    assert used[first] == 10 and sum(used.values()) == 10 and used["grant:pay_123"] == 0
    for _ in range(3):
        ask(meter, client)
    summary = meter.usage("cus_1")
    assert (summary.allowance, summary.used, summary.remaining) == (50, 40, 10)
    assert summary.limits[0].granted == 30
    ask(meter, client)
    with pytest.raises(QuotaExceeded) as info:
        ask(meter, client)
    assert info.value.limit == 50 and info.value.used == 50


def _buckets(meter):
    policy = meter._quotas.policy("cus_1")
    now = datetime.now(timezone.utc)
    from metricaos_sdk.quota.periods import period_bounds

    spec = policy.limits[0]
    return policy.buckets(spec, *period_bounds(spec.period, now), now.timestamp())[0]


def test_anchored_billing_period(meter):
    meter.plans.define("monthly", credits=100)
    meter.customers.assign("cus_1", "monthly", anchor=datetime(2024, 1, 31, 15, 0, tzinfo=timezone.utc))
    summary = meter.usage("cus_1", now=datetime(2024, 2, 29, 16, 0, tzinfo=timezone.utc))
    assert (summary.period_start, summary.period_end) == (datetime(2024, 2, 29, 15, tzinfo=timezone.utc),
                                                          datetime(2024, 3, 31, 15, tzinfo=timezone.utc))
    assert summary.plan == "monthly" and summary.limits[0].resets_at == summary.period_end


def test_credit_rules():
    cost = Decimal("0.0006528")
    rule = CreditRule(credits_per_usd=1000, margin="1.5", multiplier=2, quantum="0.01")
    assert rule.credits(input_tokens=0, output_tokens=0, cost_usd=cost) == Decimal("1.96")  # 1.9584 up
    assert CreditRule(credits_per_usd=1000, rounding="down").credits(input_tokens=0, output_tokens=0,
                                                                      cost_usd=cost) == 0
    assert CreditRule(per_token="0.01", per_output_token="0.03").credits(input_tokens=1200, output_tokens=300,
                                                                        cost_usd=None) == 21
    assert rule.credits(input_tokens=1, output_tokens=1, cost_usd=None) is None  # unpriced model
    with pytest.raises(ConfigurationError, match="exactly one"):
        CreditRule(per_call=1, per_token=1)
    with pytest.raises(ConfigurationError, match="float"):
        CreditRule(per_call=1.5)


def test_cost_based_credits_on_events(meter, client):
    meter.credits.set("*", credits_per_usd=10_000, margin=2, quantum="0.1")
    ask(meter, client)  # no plan: every event still carries its credits
    [event] = meter.events()
    assert event.credits == (event.cost_usd * 20_000 / Decimal("0.1")).to_integral_value(rounding="ROUND_CEILING") / 10
    assert event.credit_rule == "*: cost x 2 margin x 1 x 10000/USD, rounded up to 0.1"


def test_settings_are_shared_through_the_store(db_path, client, meter):
    other = Meter(config=MeterConfig(database=str(db_path), quota_refresh_seconds=0))
    assert other.customers.plan_of("cus_1") is None  # cached as "no limits" …
    meter.plans.define("starter", credits=100)
    meter.customers.assign("cus_1", "starter")
    assert other.customers.plan_of("cus_1").name == "starter"  # … and reloaded once the settings moved
    other.close()


def test_plan_validation():
    with pytest.raises(ConfigurationError, match="on_limit"):
        Plan("x", credits=1, on_limit="explode")
    with pytest.raises(ConfigurationError, match="period"):
        Plan("x", credits=1, period="week")
    with pytest.raises(ConfigurationError, match="whole"):
        Plan("x", tokens=Decimal("1.5"))
    with pytest.raises(ConfigurationError, match="requests= and/or tokens="):
        RateLimit()
    assert Plan.from_json(Plan("x", credits=5, features={"f": 2}, rate_limits=[RateLimit(requests=1)]).to_json()) == \
        Plan("x", credits=5, features={"f": {"credits": 2}}, rate_limits=(RateLimit(requests=1),))


def test_a_plan_assigned_mid_period_counts_the_period_so_far(meter, client):
    meter.credits.set("*", per_call=10)
    for _ in range(3):
        ask(meter, client)  # no plan yet: recorded, nothing limits them
    meter.customers.assign("cus_1", Plan("starter", credits=40))
    assert meter.usage("cus_1").used == 30
    ask(meter, client)
    with pytest.raises(QuotaExceeded):
        ask(meter, client)
    meter.customers.assign("cus_1", Plan("bigger", credits=60))  # an upgrade keeps the count, not re-added
    assert meter.usage("cus_1").used == 40


def test_assigning_an_unknown_plan_is_a_clear_error(meter):
    with pytest.raises(ConfigurationError, match="define it first"):
        meter.customers.assign("cus_1", "nope")
