"""Anthropic counting rules, on the pure extractors: cache buckets folded in, TTL split, thinking, server
tools, compaction iterations, cumulative stream totals, impossible usage."""

from __future__ import annotations

import pytest

from metricaos_sdk import Usage
from metricaos_sdk.providers.anthropic import MessageStreamState, message_usage
from metricaos_sdk.providers.base import InvalidUsage
from tests.fake_anthropic import CACHE_WRITE, CACHED, INPUT, OUTPUT, THINKING, USAGE, stream_events


def test_cache_reads_and_writes_are_folded_into_inclusive_input():
    usage = message_usage(USAGE)
    assert usage == Usage(input_tokens=INPUT, output_tokens=OUTPUT, cached_input_tokens=CACHED,
                          cache_write_tokens=CACHE_WRITE, cache_write_5m_tokens=1000, cache_write_1h_tokens=500,
                          reasoning_tokens=THINKING, web_search_requests=2)
    assert usage.uncached_input_tokens == 42  # what Anthropic itself calls input_tokens


def test_minimal_usage_and_missing_usage():
    assert message_usage({"input_tokens": 10, "output_tokens": 3}) == Usage(input_tokens=10, output_tokens=3)
    assert message_usage(None) is None
    # Older payloads: cache writes without the TTL split are priced at the 5-minute rate.
    usage = message_usage({"input_tokens": 1, "cache_creation_input_tokens": 50, "cache_read_input_tokens": None,
                           "output_tokens": 2})
    assert (usage.input_tokens, usage.cache_write_tokens, usage.cache_write_5m_tokens) == (51, 50, 0)


def test_compaction_iterations_are_added_other_iterations_are_not():
    usage = {
        "input_tokens": 100, "output_tokens": 50, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0,
        "iterations": [
            {"type": "compaction", "input_tokens": 2000, "output_tokens": 300, "cache_read_input_tokens": 500,
             "cache_creation_input_tokens": 0},
            # message iterations are already inside the top-level counts
            {"type": "message", "input_tokens": 100, "output_tokens": 50, "cache_read_input_tokens": 0,
             "cache_creation_input_tokens": 0},
        ],
    }
    assert message_usage(usage) == Usage(input_tokens=2600, output_tokens=350, cached_input_tokens=500)


@pytest.mark.parametrize("bad", [
    {"input_tokens": -1, "output_tokens": 3},
    {"input_tokens": "12", "output_tokens": 3},
    {"input_tokens": 1.5, "output_tokens": 3},
    {"input_tokens": True, "output_tokens": 3},
    {"input_tokens": 1, "output_tokens": 3, "cache_creation_input_tokens": 10,
     "cache_creation": {"ephemeral_5m_input_tokens": 8, "ephemeral_1h_input_tokens": 8}},
    {"input_tokens": 1, "output_tokens": 3, "output_tokens_details": {"thinking_tokens": 4}},
    {"input_tokens": 1, "output_tokens": 3, "server_tool_use": "two"},
    {"input_tokens": 1, "output_tokens": 3, "iterations": {"type": "compaction"}},
    "a string",
])
def test_impossible_usage_is_rejected_with_what_was_received(bad):
    with pytest.raises(InvalidUsage) as info:
        message_usage(bad)
    assert str(info.value)


def feed(state, events):
    for i, event in enumerate(events):
        state.on_event(event["type"], event, first=i == 0)
    return state


def test_stream_takes_input_from_message_start_and_output_from_the_last_delta():
    events = stream_events(delta_usage={"output_tokens": 7, "server_tool_use": {"web_search_requests": 2}})
    # two more cumulative deltas: the last one wins, nothing is summed
    events[-1:-1] = [{"type": "message_delta", "delta": {}, "usage": {"output_tokens": 200}},
                     {"type": "message_delta", "delta": {}, "usage": {"output_tokens": OUTPUT,
                                                                      "output_tokens_details": {"thinking_tokens": 120}}}]
    state = feed(MessageStreamState(False), events)
    assert state.done and state.error_type is None and state.problem is None
    assert state.usage == Usage(input_tokens=INPUT, output_tokens=OUTPUT, cached_input_tokens=CACHED,
                                cache_write_tokens=CACHE_WRITE, cache_write_5m_tokens=1000,
                                cache_write_1h_tokens=500, reasoning_tokens=THINKING, web_search_requests=2)
    assert (state.model, state.response_id, state.service_tier) == ("claude-sonnet-4-6", "msg_01XYZ", "standard")


def test_a_delta_with_new_input_counts_replaces_message_start():
    # A server tool loop grows the prompt: message_delta then carries the cumulative input and cache counts.
    events = stream_events(delta_usage={"input_tokens": 900, "cache_read_input_tokens": 12000,
                                        "cache_creation_input_tokens": None, "output_tokens": 500,
                                        "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 1}})
    usage = feed(MessageStreamState(False), events).usage
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens) == (900 + 12000 + 1500, 12000, 1500)
    assert (usage.output_tokens, usage.web_search_requests) == (500, 3)


def test_stream_cut_before_any_delta_keeps_only_the_input_side():
    state = feed(MessageStreamState(False), stream_events()[:4])
    assert state.usage is None and not state.done
    # message_start's output_tokens (1) is a placeholder, not a count
    assert state.partial == Usage(input_tokens=INPUT, output_tokens=0, cached_input_tokens=CACHED,
                                  cache_write_tokens=CACHE_WRITE, cache_write_5m_tokens=1000, cache_write_1h_tokens=500)


def test_error_event_ends_the_stream_as_an_error():
    events = [*stream_events()[:4], {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]
    state = feed(MessageStreamState(False), events)
    assert state.done and state.error_type == "overloaded_error" and state.usage is None


def test_impossible_stream_usage_is_a_problem_not_an_exception():
    events = stream_events({"input_tokens": "many", "output_tokens": 3}, delta_usage={"output_tokens": 3})
    state = feed(MessageStreamState(False), events)
    assert state.usage is None and "input_tokens=<text of 4 characters>" in state.problem
