"""Parsing journal lines keeps nothing alive: the SQLite writer parses one line per event, and each line
carries strings seen once (the event id, the timestamp, the response id)."""

from __future__ import annotations

import sys
from datetime import datetime, timezone

from metricaos_sdk import UsageEvent
from metricaos_sdk.storage.rows import EVENT_COLUMNS, event_to_line, line_to_row


def test_line_to_row_leaves_its_strings_out_of_pydantic_cores_string_cache() -> None:
    # pydantic-core's from_json caches every string of up to 64 bytes it parses, process-wide (16,384 of
    # them): each event's unique id would stay referenced there after its row is gone, ~1.3 MB in all.
    event = UsageEvent(timestamp=datetime.now(timezone.utc), event_type="chat_completion", provider="openai",
                       endpoint="/chat/completions", model="gpt-4.1-mini", request_id="chatcmpl-unique-to-this-test")
    row = line_to_row(event_to_line(event))
    only_in_a_list = ["".join(["x", event.id])]  # a string referenced by one list, as row[...] should be
    for column in ("id", "request_id"):
        value = row[EVENT_COLUMNS.index(column)]
        assert value == getattr(event, column)
        assert sys.getrefcount(value) == sys.getrefcount(only_in_a_list[0]), column
