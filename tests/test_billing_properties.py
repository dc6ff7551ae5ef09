"""Properties over random histories, plans and adjustments: the stages narrow, adjustments move only the invoiced
stage, and an invoice is exact, repeatable and the sum of its lines — checked against a plain loop over the events."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from metricaos_sdk.billing import Billing, Charge, PricePlan
from tests.billing_support import NOV, event, store

METERS = ("events", "requests", "actions", "input_tokens", "output_tokens", "tokens", "credits", "cost_usd")
money = st.decimals(min_value=0, max_value=100, places=3).map(str)
amount = st.integers(min_value=0, max_value=500)


@st.composite
def one_event(draw):
    kind = draw(st.sampled_from(["chat_completion", "chat_completion", "action", "outcome"]))
    extra = {}
    if kind == "outcome":
        extra = {"unit": "resolved_ticket", "quantity": draw(st.integers(1, 3))}
    elif kind == "action":
        extra = {"action_name": draw(st.sampled_from(["summarize", "workflow"]))}
    return event(id=str(draw(st.uuids())), customer=draw(st.sampled_from(["cus_a", "cus_a", "cus_b", None])), event_type=kind,
                 feature=draw(st.sampled_from(["docs", "support", None])), billable=draw(st.booleans()),
                 credits=draw(st.one_of(st.none(), st.decimals(min_value=0, max_value=90, places=2).map(str))),
                 cost=draw(st.one_of(st.none(), st.decimals(min_value=0, max_value=1, places=7).map(str))),
                 tokens=(draw(st.integers(0, 900)), draw(st.integers(0, 300))),
                 at=NOV + timedelta(minutes=draw(st.integers(-600, 60 * 24 * 31))), **extra)


@st.composite
def plans(draw):
    charges = []
    for meter in draw(st.lists(st.sampled_from(["credits", "tokens", "requests", "resolved_ticket", "actions"]),
                               min_size=0, max_size=3, unique=True)):
        limit = draw(st.one_of(st.none(), amount))
        if draw(st.booleans()):
            charges.append(Charge(meter, included=draw(amount), unit_price=draw(money), limit=limit))
        else:
            charges.append(Charge(meter, included=draw(amount), block_price=draw(money),
                                  block_size=draw(st.integers(1, 300)), limit=limit))
    return PricePlan("p", base_price=draw(money), charges=charges)


def _usage(stage):
    return {**{m: getattr(stage, m) for m in METERS}, **stage.units}


@given(events=st.lists(one_event(), max_size=40, unique_by=lambda e: e.id), plan=plans(), data=st.data())
def test_stages_narrow_and_adjustments_move_only_the_invoiced_stage(events, plan, data):
    with tempfile.TemporaryDirectory() as tmp:
        billing = Billing(Path(tmp) / "metricaos.db")
        store(billing.database, events)
        before = billing.invoice("cus_a", "2026-11", plan=plan)
        mine = [e for e in events if e.customer_id == "cus_a"]
        excluded = data.draw(st.lists(st.sampled_from(mine), unique_by=lambda e: e.id) if mine else st.just([]))
        if excluded:
            billing.ledger.exclude("cus_a", [e.id for e in excluded], reason="property", by="test", key="x")
        billing.ledger.grant("cus_a", data.draw(st.integers(1, 400)), reason="property", by="test", key="g",
                             applies_at=NOV + timedelta(days=1))
        billing.ledger.credit_note("cus_a", data.draw(money), reason="property", by="test", key="c",
                                   applies_at=NOV + timedelta(days=1))
        after = billing.invoice("cus_a", "2026-11", plan=plan)
        assert after == billing.invoice("cus_a", "2026-11", plan=plan)
        billing.close()

    for inv in (before, after):
        assert inv.total == sum((line.amount for line in inv.lines), Decimal(0))
        assert sum((b.revenue for b in inv.by_feature.values()), Decimal(0)) == inv.total
        s = inv.stages
        raw, metered, billable, invoiced = (_usage(x) for x in (s.raw, s.metered, s.billable, s.invoiced))
        for meter in set(raw) | set(metered) | set(billable) | set(invoiced):
            assert invoiced.get(meter, 0) <= billable.get(meter, 0) <= metered.get(meter, 0) <= raw.get(meter, 0), meter
    assert (before.stages.raw, before.stages.metered, before.stages.billable) == (
        after.stages.raw, after.stages.metered, after.stages.billable)

    # The invoiced credits, by a plain loop over the events (November, cus_a, billable, not excluded).
    gone = {e.id for e in excluded}
    in_period = [e for e in mine if NOV <= e.timestamp < NOV.replace(month=12)]
    assert after.stages.metered.events == len(in_period)
    uncapped = sum((e.credits or Decimal(0) for e in in_period if e.billable and e.id not in gone), Decimal(0))
    limits = [Decimal(c.limit) for c in plan.charges if c.meter == "credits" and c.limit is not None]
    assert after.stages.invoiced.credits == min([uncapped, *limits])
    assert after.stages.billable.credits == sum((e.credits or Decimal(0) for e in in_period if e.billable), Decimal(0))
