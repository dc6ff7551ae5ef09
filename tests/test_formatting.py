"""The one rule for numbers people read (metricaos_sdk/formatting.py), pinned value by value."""

from __future__ import annotations

from decimal import Decimal

import pytest

from metricaos_sdk.formatting import cost, count, plural, quantity, usd, usd_per_call


@pytest.mark.parametrize(("amount", "text"), [
    ("0", "$0.00"),
    ("0.0000001", "<$0.01"),          # a positive amount never reads as free
    ("0.0099999", "<$0.01"),
    ("0.01", "$0.01"),
    ("1.005", "$1.01"),               # half up
    ("1.0049999", "$1.00"),
    ("2.675", "$2.68"),               # exact Decimal: a binary float would say 2.67
    ("12.345", "$12.35"),             # half-even would say 12.34
    ("1234567.891", "$1,234,567.89"),
    ("1E+3", "$1,000.00"),
    ("-1.505", "-$1.51"),
    ("-0.004", "-<$0.01"),
])
def test_totals_are_dollars_and_cents(amount, text):
    assert usd(Decimal(amount)) == text


def test_totals_take_ints():
    assert usd(5) == "$5.00" and usd(1_000_000) == "$1,000,000.00"


@pytest.mark.parametrize(("amount", "text"), [
    ("0", "$0.00"),
    ("0.0016987", "$0.001699"),       # 4 significant digits, half up
    ("0.0000667", "$0.0000667"),
    ("0.00099995", "$0.001"),
    ("0.0088", "$0.0088"),
    ("0.5", "$0.50"),                 # never fewer decimals than cents
    ("6.1725", "$6.173"),
    ("12.3456", "$12.35"),
    ("1234.567", "$1,234.57"),        # never fewer than cents either
    ("-0.0012345", "-$0.001235"),
])
def test_per_call_amounts_keep_significant_digits(amount, text):
    assert usd_per_call(Decimal(amount)) == text


def test_counts_and_quantities():
    assert (count(0), count(999), count(1000), count(1_234_567)) == ("0", "999", "1,000", "1,234,567")
    assert quantity(Decimal("1234.50")) == "1,234.5"
    assert quantity(Decimal("5E+1")) == "50" and quantity(Decimal("0.000001")) == "0.000001"
    assert quantity(2_000) == "2,000"
    assert (plural(0, "call"), plural(1, "call"), plural(1500, "call")) == ("0 calls", "1 call", "1,500 calls")


def test_unpriced_calls_are_never_a_zero_cost():
    assert cost(Decimal("1.234"), 0, 10) == "cost $1.23"
    assert cost(Decimal("1.234"), 4, 10) == "cost $1.23 + 4 unpriced calls"
    assert cost(Decimal("1.234"), 1, 10) == "cost $1.23 + 1 unpriced call"
    assert cost(Decimal(0), 4, 4) == "cost unknown (4 unpriced calls)"
    assert cost(Decimal(0), 0, 0) == "cost $0.00"
