"""The usage summary: its numbers (totals, breakdowns, properties), its JSON and its text, pinned."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from metricaos_sdk import LimitStatus, Totals, UsageEvent
from metricaos_sdk.reports import combine, summarize, totals_text

UTC = timezone.utc
START, END = datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)


def event(**fields: object) -> UsageEvent:
    values: dict[str, object] = {"timestamp": datetime(2026, 12, 10, 9, 30, tzinfo=UTC), "event_type": "chat_completion",
                                 "provider": "openai", "endpoint": "/chat/completions", "customer_id": "cus_acme",
                                 "user_id": "agent_1", "environment": "production"}
    values.update(fields)
    return UsageEvent(**values)


EVENTS = [
    event(feature="ai_support_reply", model="gpt-4.1-mini", input_tokens=1_200_000, cached_input_tokens=200_000,
          output_tokens=300_000, total_tokens=1_500_000, cost_usd=Decimal("12.340"), credits=Decimal("1234.5"),
          overage_cost_usd=Decimal("0.30")),
    event(feature="ai_support_reply", model="gpt-4.1-mini", input_tokens=1_000, output_tokens=500, total_tokens=1_500,
          cost_usd=Decimal("0.005"), credits=Decimal("0.5"), user_id="agent_2"),
    event(feature="ai_ticket_summary", model="o4-mini", input_tokens=800, output_tokens=2_000, reasoning_tokens=1_500,
          total_tokens=2_800, cost_usd=Decimal("0.0088"), credits=Decimal(9),
          timestamp=datetime(2026, 12, 11, tzinfo=UTC)),
    event(feature="ai_ticket_summary", model="acme-ft-1", input_tokens=500, output_tokens=100, total_tokens=600),
    event(feature="ai_ticket_summary", model="acme-ft-1", input_tokens=400, output_tokens=100, total_tokens=500),
    # Not billable (a test environment's call): in no total.
    event(feature="ai_support_reply", model="gpt-4.1-mini", input_tokens=9_999, output_tokens=1, total_tokens=10_000,
          cost_usd=Decimal(5), billable=False, environment="test"),
]
LIMITS = [
    LimitStatus(unit="credits", period="month", limit=2500, used=Decimal("1244"), remaining=Decimal("1245.5"),
                reserved=Decimal("10.5"), resets_at=END, period_start=START, projected=4010, granted=500),
    LimitStatus(unit="tokens", period="month", limit=3000, used=3900, remaining=0, overage=900, resets_at=END,
                period_start=START, projected=12_090, feature="ai_ticket_summary", mode="soft"),
    LimitStatus(unit="cost_usd", period="month", limit=Decimal(50), used=Decimal("12.3538"),
                remaining=Decimal("37.6462"), resets_at=END, period_start=START, projected=Decimal("38.297"),
                source="own"),
]


def summary(limits: list[LimitStatus] = LIMITS, plan: str | None = "growth"):
    return summarize("cus_acme", "month", (START, END), EVENTS, limits, plan=plan)


def test_totals_count_every_token_bucket_and_leave_unpriced_calls_out_of_the_cost():
    t = summary().totals
    assert t == Totals(requests=5, input_tokens=1_202_700, output_tokens=302_700, cached_input_tokens=200_000,
                       reasoning_tokens=1_500, total_tokens=1_505_400, cost_usd=Decimal("12.3538"), unpriced_requests=2,
                       credits=Decimal("1244.0"), overage_cost_usd=Decimal("0.30"))


def test_breakdowns():
    s = summary()
    assert list(s.by_feature) == ["ai_support_reply", "ai_ticket_summary"]
    assert s.by_feature["ai_ticket_summary"] == Totals(
        requests=3, input_tokens=1_700, output_tokens=2_200, reasoning_tokens=1_500, total_tokens=3_900,
        cost_usd=Decimal("0.0088"), unpriced_requests=2, credits=Decimal(9))
    assert {name: (t.requests, t.unpriced_requests, t.cost_usd) for name, t in s.by_model.items()} == {
        "gpt-4.1-mini": (2, 0, Decimal("12.345")), "o4-mini": (1, 0, Decimal("0.0088")), "acme-ft-1": (2, 2, Decimal(0))}
    assert {day: t.requests for day, t in s.by_day.items()} == {"2026-12-10": 4, "2026-12-11": 1}
    assert {user: t.requests for user, t in s.by_user.items()} == {"agent_1": 4, "agent_2": 1}
    assert s.by_model["gpt-4.1-mini"].cached_input_tokens == 200_000


def test_properties_are_the_first_limits():
    s = summary()
    assert (s.plan, s.limit, s.allowance, s.used, s.reserved, s.remaining, s.overage, s.projected) == (
        "growth", 2500, 2500, Decimal(1244), Decimal("10.5"), Decimal("1245.5"), 0, 4010)
    assert (s.cost_usd, s.credits) == (Decimal("12.3538"), Decimal("1244.0"))


def test_properties_without_limits():
    s = summary(limits=[], plan=None)
    assert s.used == 1_505_400  # the billable tokens, when no limit says what "used" counts
    assert (s.limit, s.allowance, s.reserved, s.remaining, s.overage, s.projected) == (None, None, 0, None, 0, None)


def test_the_json_is_unchanged():
    data = summary().model_dump(mode="json")
    assert list(data) == ["customer_id", "period", "period_start", "period_end", "limits", "totals", "by_feature",
                          "by_model", "by_day", "by_user", "plan"]
    assert data["totals"] == {"requests": 5, "input_tokens": 1_202_700, "output_tokens": 302_700,
                              "cached_input_tokens": 200_000, "reasoning_tokens": 1_500, "total_tokens": 1_505_400,
                              "cost_usd": "12.3538", "unpriced_requests": 2, "credits": "1244.0",
                              "overage_cost_usd": "0.30"}
    assert data["limits"][2]["projected"] == "38.297" and data["limits"][0]["granted"] == 500


def test_the_text_of_a_realistic_summary():
    assert str(summary()) == "\n".join([
        "cus_acme on growth — month 2026-12-01 to 2027-01-01",
        "  limit credits: used 1,244 of 2,500 (incl. 500 granted), 10.5 held, 1,245.5 left, resets 2027-01-01 00:00 UTC,"
        " projected 4,010 by then (over the limit)",
        "  limit tokens (ai_ticket_summary, soft): used 3,900 of 3,000, 900 over, 0 left, resets 2027-01-01 00:00 UTC,"
        " projected 12,090 by then (over the limit)",
        "  limit cost_usd: used $12.35 of $50.00, $37.65 left, resets 2027-01-01 00:00 UTC, projected $38.30 by then",
        "  by feature ai_support_reply: 2 calls, 1,501,500 tokens, cost $12.35, overage $0.30, 1,235 credits",
        "  by feature ai_ticket_summary: 3 calls, 3,900 tokens, cost <$0.01 + 2 unpriced calls, 9 credits",
        # 12.345 rounds half up to $12.35 (half-even would say $12.34); 12.345 / 2 = 6.1725 to 4 digits, half up.
        "  by model gpt-4.1-mini: 2 calls, 1,501,500 tokens, cost $12.35 ($6.173 a call), overage $0.30, 1,235 credits",
        "  by model o4-mini: 1 call, 2,800 tokens, cost <$0.01 ($0.0088 a call), 9 credits",
        "  by model acme-ft-1: 2 calls, 1,100 tokens, cost unknown (2 unpriced calls)",
        "  total: 5 calls, 1,505,400 tokens (1,202,700 in incl. 200,000 cached, 302,700 out incl. 1,500 reasoning),"
        " cost $12.35 + 2 unpriced calls, overage $0.30, 1,244 credits",
    ])


def test_the_text_without_limits_or_plan():
    s = summarize("cus_new", "month", (START, END), EVENTS[1:2], [])
    assert str(s) == "\n".join([
        "cus_new — month 2026-12-01 to 2027-01-01",
        "  by feature ai_support_reply: 1 call, 1,500 tokens, cost <$0.01, 0.5 credits",
        "  by model gpt-4.1-mini: 1 call, 1,500 tokens, cost <$0.01 ($0.005 a call), 0.5 credits",
        "  total: 1 call, 1,500 tokens (1,000 in, 500 out), cost <$0.01, 0.5 credits",
    ])


def test_the_text_of_an_empty_period():
    assert str(summarize("cus_idle", "day", (START, START.replace(day=2)), [], [])) == (
        "cus_idle — day 2026-12-01 to 2026-12-02\n  total: 0 calls, 0 tokens (0 in, 0 out), cost $0.00")


def test_a_grand_total_sums_exactly():
    s = summary()
    grand = combine([s.totals, s.by_feature["ai_ticket_summary"]])
    assert (grand.requests, grand.unpriced_requests, grand.total_tokens, grand.cost_usd, grand.credits) == (
        8, 4, 1_509_300, Decimal("12.3626"), Decimal("1253.0"))
    assert combine([]) == Totals()
    assert totals_text(grand, split=False) == "8 calls, 1,509,300 tokens, cost $12.36 + 4 unpriced calls, overage $0.30, 1,253 credits"
