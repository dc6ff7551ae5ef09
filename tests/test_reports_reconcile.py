"""``metricaos reconcile``: provider cost exports (OpenAI Costs API JSON, console CSV, Anthropic cost report) parsed
exactly, compared with events in real SQLite files (and PostgreSQL when one is configured) by UTC day and model,
each difference explained; the CLI through CliRunner, bad files as one sentence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from metricaos_sdk import ConfigurationError, UsageEvent
from metricaos_sdk.cli import cli
from metricaos_sdk.formatting import usd
from metricaos_sdk.reports.reconcile import (
    ReconcileRow,
    Reconciliation,
    Tolerance,
    model_key,
    openai_line_item_model,
    parse_costs,
    parse_tolerance,
    reconcile,
)
from metricaos_sdk.reports.source import SQLiteSource, open_source
from metricaos_sdk.storage.database import Database
from metricaos_sdk.testing.sample import sample_events, write_sample
from tests.billing_support import event, store

DATA = Path(__file__).parent / "data" / "provider_costs"
OPENAI_PAGES = DATA / "openai_costs_line_items.json"
OPENAI_JSONL = DATA / "openai_costs_line_items.jsonl"
OPENAI_TOTALS = DATA / "openai_costs_day_totals.json"
OPENAI_CSV = DATA / "openai_costs.csv"
ANTHROPIC = DATA / "anthropic_cost_report.json"
NOV = datetime(2026, 11, 1, tzinfo=timezone.utc)


def day(n: int, hour: int = 12) -> datetime:
    return NOV.replace(day=n, hour=hour)


def openai_events() -> list[UsageEvent]:
    """What the meter recorded against the OpenAI export fixture (see each comment for the explanation it pins)."""
    mini, big = "gpt-4.1-mini", "gpt-4.1"
    return [
        # 11-02 gpt-4.1-mini: 1.22, exactly the export's three line items (one event carries the dated name)
        event(at=day(2, 9), model=mini, cost="0.5", tokens=(1000, 200)),
        event(at=day(2, 10), model="gpt-4.1-mini-2025-04-14", cost="0.4", tokens=(800, 100)),
        event(at=day(2, 11), model=mini, cost="0.32", tokens=(700, 90)),
        # 11-02 gpt-4.1: 4.00 priced (20,000 tokens) + 5,000 unpriced tokens: about $1.00 at that rate; export 5.50
        event(at=day(2, 9), model=big, cost="2", tokens=(8000, 2000)),
        event(at=day(2, 10), model=big, cost="2", tokens=(8000, 2000)),
        event(at=day(2, 11), model=big, cost=None, tokens=(3000, 1000), price_status="unpriced"),
        event(at=day(2, 12), model=big, cost=None, tokens=(800, 200), price_status="unpriced"),
        # 11-03 gpt-4.1-mini: 1.60, 0.20 of it on estimated usage, 0.40 with no customer; export 2.10
        event(at=day(3, 8), model=mini, cost="1.0", tokens=(2000, 400)),
        event(at=day(3, 9), model=mini, cost="0.2", tokens=(400, 80), usage_status="estimated", streamed=True),
        event(at=day(3, 10), model=mini, customer=None, cost="0.4", tokens=(900, 100)),
        # 11-04 gpt-4.1-mini: 0.30 the export does not bill at all
        event(at=day(4, 23), model=mini, cost="0.3", tokens=(600, 80)),
        # 11-05: after the export's last day; staging, not billable, still a call the provider bills
        event(at=day(5, 1), model=mini, cost="0.07", tokens=(100, 10), billable=False, environment="staging"),
        # another provider's call and an action: never part of an OpenAI reconciliation
        event(at=day(2, 9), provider="anthropic", model="claude-haiku-4-5", cost="9", tokens=(10, 10)),
        event(at=day(2, 9), event_type="action", credits=5, cost="3", action_name="answer"),
    ]


def anthropic_events() -> list[UsageEvent]:
    return [
        # 11-02 sonnet: 6.12845 in two calls, exact to the sub-cent (export: 150.00 + 450.5 + 12.345 cents)
        event(at=day(2, 9), provider="anthropic", model="claude-sonnet-4-20250514", cost="3.06", tokens=(1000, 100)),
        event(at=day(2, 10), provider="anthropic", model="claude-sonnet-4-20250514", cost="3.06845", tokens=(900, 90)),
        # 11-02 haiku (requested alias): 1.005 against 1.00 billed: within $0.01
        event(at=day(2, 11), provider="anthropic", model="claude-haiku-4-5", cost="1.005", tokens=(500, 50)),
        # 11-03 sonnet: 4.60 against 4.00 billed: our price table is above the bill
        event(at=day(3, 9), provider="anthropic", model="claude-sonnet-4-20250514", cost="4.60", tokens=(2000, 200)),
    ]


def write_db(path: Path, events: list[UsageEvent]) -> Path:
    database = Database(path)
    store(database, events)
    database.close()
    return path


@pytest.fixture
def openai_db(tmp_path: Path) -> Path:
    return write_db(tmp_path / "openai.db", openai_events())


@pytest.fixture
def anthropic_db(tmp_path: Path) -> Path:
    return write_db(tmp_path / "anthropic.db", anthropic_events())


def run(db: Path | str, export: Path, **options: Any) -> Reconciliation:
    source = open_source(db, **{k: options.pop(k) for k in ("schema",) if k in options})
    try:
        return reconcile(source, parse_costs(export.read_text(), export.name), **options)
    finally:
        source.close()


def row(result: Reconciliation, on: int, model: str | None) -> ReconcileRow:
    found = [r for r in result.rows if r.day.day == on and r.model == model]
    assert len(found) == 1, [(r.day, r.model) for r in result.rows]
    return found[0]


def explained(r: ReconcileRow) -> dict[str, Decimal]:
    return {e.kind: e.explains for e in r.explanations}


def sizes(r: ReconcileRow) -> dict[str, Decimal | None]:
    return {e.kind: e.amount for e in r.explanations}


def exported_amounts(path: Path) -> dict[tuple[int, str | None], Decimal]:
    """The OpenAI fixture summed per (day of month, model key) here, independently of the parser."""
    out: dict[tuple[int, str | None], Decimal] = {}
    for page in json.loads(path.read_text(), parse_float=Decimal):
        for bucket in page["data"]:
            on = datetime.fromtimestamp(bucket["start_time"], timezone.utc).day
            for result in bucket["results"]:
                item = result["line_item"]
                key = model_key(item.split(",")[0]) if "," in item else None
                out[(on, key)] = out.get((on, key), Decimal(0)) + result["amount"]["value"]
    return out


# -- parsing -----------------------------------------------------------------------------------------------------


def test_openai_pages_jsonl_and_console_csv_parse_to_the_same_exact_lines():
    parsed = [parse_costs(p.read_text(), p.name) for p in (OPENAI_PAGES, OPENAI_JSONL, OPENAI_CSV)]
    assert [c.provider for c in parsed] == ["openai"] * 3
    assert [c.format for c in parsed] == ["openai-costs-json", "openai-costs-json", "openai-costs-csv"]
    as_set = [sorted((ln.day, ln.model or "", ln.amount, ln.detail) for ln in c.lines) for c in parsed]
    assert as_set[0] == as_set[1] == as_set[2]
    for line in parsed[0].lines:
        assert isinstance(line.amount, Decimal)
    # 0.4016000000000000 and 0.7984 stay exact: no float ever came near them
    assert sum(ln.amount for ln in parsed[0].lines if ln.day.day == 2 and ln.model and "mini" in ln.model) == \
        Decimal("1.22")
    # the empty bucket (11-04) still counts as a covered day, in every format
    assert {d.day for c in parsed for d in c.days} == {2, 3, 4}
    assert parsed[0].start == day(2, 0) and parsed[0].end == day(5, 0)


def test_console_csv_reads_iso_times_any_column_order_and_tabs(tmp_path: Path):
    rows = OPENAI_CSV.read_text().splitlines()
    header = rows[0].split(",")
    iso = [header.index("start_time_iso"), header.index("end_time_iso")]
    lines = []
    import csv
    import io

    for record in csv.reader(io.StringIO("\n".join(rows[1:]))):
        record[header.index("start_time")], record[header.index("end_time")] = record[iso[0]], record[iso[1]]
        lines.append("\t".join(reversed(record)))
    tsv = tmp_path / "costs.tsv"
    tsv.write_text("\t".join(reversed(header)) + "\n" + "\n".join(lines) + "\n")
    assert sorted(parse_costs(tsv.read_text()).lines, key=repr) == \
        sorted(parse_costs(OPENAI_CSV.read_text()).lines, key=repr)


def test_anthropic_cents_strings_become_exact_dollars():
    costs = parse_costs(ANTHROPIC.read_text(), ANTHROPIC.name)
    assert (costs.provider, costs.format) == ("anthropic", "anthropic-cost-report")
    raw = json.loads(ANTHROPIC.read_text())
    cents = [Decimal(r["amount"]) for b in raw["data"] for r in b["results"]]
    assert sorted(ln.amount for ln in costs.lines) == sorted(c / 100 for c in cents)
    sonnet = [ln for ln in costs.lines if ln.day.day == 2 and ln.model == "claude-sonnet-4-20250514"]
    assert sum(ln.amount for ln in sonnet) == Decimal("6.12845")
    search = [ln for ln in costs.lines if ln.model is None]
    assert [(ln.amount, ln.detail, ln.total) for ln in search] == [(Decimal("0.10"), "Web Search Usage", False)]


def test_anthropic_pages_as_a_list_or_json_lines(tmp_path: Path):
    page = json.loads(ANTHROPIC.read_text())
    first, second = dict(page, data=page["data"][:1], has_more=True), dict(page, data=page["data"][1:])
    as_list = tmp_path / "list.json"
    as_list.write_text(json.dumps([first, second]))
    as_lines = tmp_path / "pages.jsonl"
    as_lines.write_text(json.dumps(first) + "\n\n" + json.dumps(second) + "\n")
    whole = parse_costs(ANTHROPIC.read_text())
    assert parse_costs(as_list.read_text()) == whole == parse_costs(as_lines.read_text())


def test_model_names_and_line_items():
    assert model_key("gpt-4o-2024-08-06") == model_key("gpt-4o") == "gpt-4o"
    assert model_key("claude-sonnet-4-20250514") == "claude-sonnet-4"
    assert model_key("gpt-4.1-mini") == "gpt-4.1-mini" != model_key("gpt-4.1")
    assert model_key("o1-2024-12-17") == "o1" and model_key("  ") is None
    assert openai_line_item_model("gpt-4o-2024-08-06, input") == "gpt-4o-2024-08-06"
    assert openai_line_item_model("gpt-4.1-mini, cached input") == "gpt-4.1-mini"
    assert openai_line_item_model("priority | gpt-5, output, long context") == "gpt-5"
    assert openai_line_item_model("gpt-audio-mini-2025-12-15 audio, input") == "gpt-audio-mini-2025-12-15"
    assert openai_line_item_model("web search tool calls") is None
    assert openai_line_item_model("Vector storage") is None


BAD = [
    ("notes.txt", "Dear finance team,\nhere is the bill.\n", "its first line"),
    (".env", "OPENAI_API_KEY=sk-proj-SECRETSECRET\n", "its first line"),
    ("usage.csv", "start_time,end_time,model,input_tokens\n1793577600,1793664000,gpt-4o,100\n", "amount_value"),
    ("broken.json", '{"object": "page", "data": [\n', "not valid JSON"),
    ("pages.jsonl", '{"object": "page", "data": []}\n{"object": "page", "data": [}\n', "line 2"),
    ("amount.json", '{"object":"page","data":[{"object":"bucket","start_time":1793577600,"end_time":1793664000,'
                    '"results":[{"amount":{"value":"a lot","currency":"usd"},"line_item":null}]}]}',
     "data[0].results[0].amount.value"),
    ("euro.json", '{"data":[{"starting_at":"2026-11-02T00:00:00Z","ending_at":"2026-11-03T00:00:00Z",'
                  '"results":[{"currency":"EUR","amount":"10"}]}]}', "data[0].results[0].currency"),
    ("error.json", '{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}',
     "API error response"),
    ("weekly.json", '{"object":"page","data":[{"object":"bucket","start_time":1793577600,"end_time":1794182400,'
                    '"results":[]}]}', "more than one day"),
    ("when.csv", "start_time,amount_value,line_item\nyesterday,1.0,x\n", "line 2 start_time"),
    ("empty.json", "  \n", "is empty"),
    ("other.json", '{"items": []}', '"data"'),
]


@pytest.mark.parametrize(("name", "text", "where"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_file_is_one_sentence_naming_the_file_and_the_place(tmp_path: Path, name: str, text: str, where: str):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigurationError) as info:
        parse_costs(text, str(path))
    message = str(info.value)
    assert str(path) in message and where in message
    assert "\n" not in message and message.endswith(".") and message.count(". ") == 0
    assert "SECRET" not in message  # a file passed by mistake is never quoted back
    result = CliRunner().invoke(cli, ["reconcile", str(path), "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == f"Error: {message}"


def test_tolerance_parsing():
    assert parse_tolerance("0.01,1%") == Tolerance() == Tolerance(Decimal("0.01"), Decimal("0.01"))
    assert parse_tolerance("$0.05") == Tolerance(Decimal("0.05"), Decimal(0))
    assert parse_tolerance("2%") == Tolerance(Decimal(0), Decimal("0.02"))
    assert Tolerance().allows(Decimal("-0.01"), Decimal("0.5")) and not Tolerance().allows(Decimal("0.011"), 1)
    assert Tolerance().allows(Decimal("0.9"), Decimal(100)) and not Tolerance().allows(Decimal("1.01"), 100)
    for bad in ("cheap", "-1", "0.01,x%"):
        with pytest.raises(ConfigurationError, match="--tolerance"):
            parse_tolerance(bad)


# -- the comparison --------------------------------------------------------------------------------------------


def test_openai_rows_amounts_and_differences_by_day_and_model(openai_db: Path):
    result = run(openai_db, OPENAI_PAGES)
    exported = exported_amounts(OPENAI_PAGES)
    metered: dict[tuple[int, str | None], Decimal] = {}
    for e in openai_events():
        if e.provider == "openai" and e.event_type != "action" and e.cost_usd is not None and e.timestamp.day <= 4:
            k = (e.timestamp.day, model_key(e.model))
            metered[k] = metered.get(k, Decimal(0)) + e.cost_usd
    keys = set(exported) | set(metered)
    assert [(r.day.day, r.model) for r in result.rows] == sorted(keys, key=lambda k: (k[0], k[1] is None, k[1] or ""))
    for r in result.rows:
        k = (r.day.day, r.model)
        assert r.provider_amount == exported.get(k, Decimal(0))
        assert r.our_amount == metered.get(k, Decimal(0))
        assert r.difference == exported.get(k, Decimal(0)) - metered.get(k, Decimal(0))
        assert sum(e.explains for e in r.explanations) == r.difference  # the explanations add up, exactly
    assert result.provider_total == sum(exported.values()) and result.our_total == sum(metered.values())
    assert row(result, 2, "gpt-4.1-mini").status == "matches"
    assert row(result, 2, "gpt-4.1-mini").names == ("gpt-4.1-mini", "gpt-4.1-mini-2025-04-14")
    assert not result.matches


def test_unpriced_calls_are_sized_at_the_rows_priced_rate(openai_db: Path):
    r = row(run(openai_db, OPENAI_PAGES), 2, "gpt-4.1")
    assert r.status == "provider_higher" and r.difference == Decimal("1.5")
    unpriced = next(e for e in r.explanations if e.kind == "unpriced_calls")
    assert (unpriced.calls, unpriced.tokens) == (2, 5000)
    assert unpriced.amount == Decimal("1.000000")  # 5,000 tokens at $4.00 / 20,000 tokens
    assert explained(r) == {"unpriced_calls": Decimal("1"), "outside_meter": Decimal("0.5")}


def test_unpriced_calls_alone_take_the_shortfall_when_there_is_no_rate(tmp_path: Path):
    db = write_db(tmp_path / "m.db", [event(at=day(3, 9), model="gpt-4o", cost=None, tokens=(900, 100))])
    r = row(run(db, OPENAI_PAGES), 3, "gpt-4o")
    assert r.status == "provider_higher" and sizes(r)["unpriced_calls"] is None
    assert explained(r) == {"unpriced_calls": Decimal("0.75")}


def test_estimated_usage_explains_up_to_its_metered_cost(openai_db: Path):
    r = row(run(openai_db, OPENAI_PAGES), 3, "gpt-4.1-mini")
    assert r.difference == Decimal("0.5")
    assert explained(r) == {"estimated_usage": Decimal("0.2"), "unattributed_calls": Decimal(0),
                            "outside_meter": Decimal("0.3")}
    estimated = next(e for e in r.explanations if e.kind == "estimated_usage")
    assert (estimated.calls, estimated.amount) == (1, Decimal("0.2"))


def test_calls_without_a_customer_are_shown_with_their_cost(openai_db: Path):
    r = row(run(openai_db, OPENAI_PAGES), 3, "gpt-4.1-mini")
    anonymous = next(e for e in r.explanations if e.kind == "unattributed_calls")
    assert (anonymous.calls, anonymous.amount, anonymous.explains) == (1, Decimal("0.4"), Decimal(0))


def test_a_model_only_the_provider_billed_was_called_outside_the_meter(openai_db: Path):
    r = row(run(openai_db, OPENAI_PAGES), 3, "gpt-4o")
    assert (r.status, r.calls, r.our_amount) == ("provider_only", 0, Decimal(0))
    assert explained(r) == {"outside_meter": Decimal("0.75")} and r.names == ("gpt-4o-2024-08-06",)


def test_charges_without_a_model_are_their_own_row(openai_db: Path):
    r = row(run(openai_db, OPENAI_PAGES), 2, None)
    assert (r.scope, r.label, r.names) == ("no model", "(no model)", ("web search tool calls",))
    assert explained(r) == {"no_model_charges": Decimal("0.25")}


def test_a_day_the_export_bills_nothing_for_is_our_price_above_the_bill(openai_db: Path):
    r = row(run(openai_db, OPENAI_PAGES), 4, "gpt-4.1-mini")
    assert (r.status, r.provider_amount) == ("ours_only", Decimal(0))
    assert explained(r) == {"price_above_bill": Decimal("-0.3")}


def test_our_price_table_above_the_bill_and_the_tolerance(anthropic_db: Path):
    result = run(anthropic_db, ANTHROPIC)
    assert row(result, 2, "claude-sonnet-4").status == "matches"
    assert row(result, 2, "claude-sonnet-4").difference == 0  # 6.12845 both sides, to the last digit
    haiku = row(result, 2, "claude-haiku-4-5")
    assert (haiku.status, haiku.difference) == ("matches", Decimal("-0.005"))
    assert explained(haiku) == {"within_tolerance": Decimal("-0.005")}
    over = row(result, 3, "claude-sonnet-4")
    assert (over.status, over.difference) == ("ours_higher", Decimal("-0.6"))
    assert explained(over) == {"price_above_bill": Decimal("-0.6")}
    assert explained(row(result, 2, None)) == {"no_model_charges": Decimal("0.1")}
    strict = run(anthropic_db, ANTHROPIC, tolerance=parse_tolerance("0"))
    assert row(strict, 2, "claude-haiku-4-5").status == "ours_higher"
    assert explained(row(strict, 2, "claude-haiku-4-5")) == {"price_above_bill": Decimal("-0.005")}
    loose = run(anthropic_db, ANTHROPIC, tolerance=parse_tolerance("20%"))
    assert row(loose, 3, "claude-sonnet-4").status == "matches"


def test_days_outside_the_export_are_left_out_unless_asked_for(openai_db: Path):
    assert {r.day.day for r in run(openai_db, OPENAI_PAGES).rows} == {2, 3, 4}
    wide = run(openai_db, OPENAI_PAGES, until=day(6, 0))
    late = row(wide, 5, "gpt-4.1-mini")
    assert (late.status, late.provider_amount, late.our_amount) == ("not_in_export", None, Decimal("0.07"))
    assert late.explanations == () and wide.our_total == run(openai_db, OPENAI_PAGES).our_total
    narrow = run(openai_db, OPENAI_PAGES, since=day(3, 0), until=day(4, 0))
    assert {r.day.day for r in narrow.rows} == {3}


def test_day_totals_compare_every_model_of_the_day(openai_db: Path):
    result = run(openai_db, OPENAI_TOTALS)
    assert [(r.day.day, r.scope, r.label) for r in result.rows] == [(d, "day", "(all models)") for d in (2, 3, 4)]
    exported = exported_amounts(OPENAI_PAGES)
    for r in result.rows:
        assert r.provider_amount == sum((v for (d, _), v in exported.items() if d == r.day.day), Decimal(0))
    assert row(result, 2, None).our_amount == Decimal("5.22")
    assert "unpriced_calls" in explained(row(result, 2, None))


def test_the_provider_option_picks_the_events(openai_db: Path):
    result = run(openai_db, ANTHROPIC, provider="openai")
    assert result.provider == "openai" and row(result, 2, "gpt-4.1-mini").provider_amount == Decimal(0)


def test_a_month_of_sample_events_matches_its_own_export_except_what_we_added(tmp_path: Path):
    db = write_sample(tmp_path / "sample.db", 3000, days=10)
    sums: dict[tuple[int, str], Decimal] = {}
    for e in sample_events(3000, days=10):
        if e.provider == "openai" and e.event_type != "action" and e.cost_usd is not None:
            sums[(e.timestamp.day, e.model or "")] = sums.get((e.timestamp.day, e.model or ""), Decimal(0)) + e.cost_usd
    start = int(NOV.timestamp())
    buckets = []
    for n in range(10):
        on = (NOV + timedelta(days=n)).day
        results = [{"object": "organization.costs.result", "line_item": f"{model}-2025-04-14, input",
                    "amount": {"value": str(amount + (Decimal("1.5") if (n, model) == (4, "gpt-4.1") else 0)),
                               "currency": "usd"}, "project_id": None}
                   for (d, model), amount in sorted(sums.items()) if d == on]
        buckets.append({"object": "bucket", "start_time": start + n * 86400, "end_time": start + (n + 1) * 86400,
                        "results": results})
    export = tmp_path / "export.jsonl"
    export.write_text("\n".join(json.dumps({"object": "page", "data": buckets[i:i + 3]}) for i in range(0, 10, 3)))
    result = run(db, export)
    assert len(result.rows) == 20
    assert [(r.day.day, r.model) for r in result.rows if r.status != "matches"] == [(5, "gpt-4.1")]
    added = explained(row(result, 5, "gpt-4.1"))
    assert sum(added.values()) == Decimal("1.5") and added["outside_meter"] > 0
    assert set(added) <= {"outside_meter", "estimated_usage", "unattributed_calls"}  # estimates: up to their cost
    assert any("estimated_usage" in explained(r) for r in result.rows)  # the sample's abandoned streams


def test_json_has_exact_strings_and_no_floats(openai_db: Path):
    data = run(openai_db, OPENAI_PAGES).as_json()

    def walk(value: Any) -> Iterator[Any]:
        yield value
        if isinstance(value, dict):
            for v in value.values():
                yield from walk(v)
        elif isinstance(value, list):
            for v in value:
                yield from walk(v)

    assert not any(isinstance(v, float) for v in walk(data))
    assert json.loads(json.dumps(data)) == data
    assert Decimal(data["provider_total"]) == sum(exported_amounts(OPENAI_PAGES).values())


# -- the command -----------------------------------------------------------------------------------------------


def test_cli_json_is_the_reports_json(openai_db: Path):
    result = CliRunner().invoke(cli, ["reconcile", str(OPENAI_CSV), "--db", str(openai_db), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)  # nothing else on stdout: no progress bar, no label
    source = SQLiteSource(openai_db)
    try:
        expected = reconcile(source, parse_costs(OPENAI_CSV.read_text())).as_json()
    finally:
        source.close()
    assert data == expected and data["format"] == "openai-costs-csv"


def test_cli_text_shows_rows_and_explanations(anthropic_db: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("METRICAOS_DB", str(anthropic_db))
    result = CliRunner().invoke(cli, ["reconcile", str(ANTHROPIC), "--tolerance", "0"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("anthropic_cost_report.json (anthropic-cost-report) against anthropic calls in")
    over = next(ln for ln in lines if ln.startswith("2026-11-03") and "claude-sonnet-4" in ln)
    assert over.split()[2:] == ["$4.00", "$4.60", "-$0.60", "ours", "higher"]
    assert "our price table above the provider's bill: -$0.60" in result.output
    assert "charges without a model" in result.output and "Reconciling" not in result.output
    totals = run(anthropic_db, ANTHROPIC)
    assert lines[-1].split() == ["total", usd(totals.provider_total), usd(totals.our_total),
                                 usd(totals.provider_total - totals.our_total), "differs"]


def test_cli_since_until_and_bad_options(openai_db: Path):
    runner = CliRunner()
    ok = runner.invoke(cli, ["reconcile", str(OPENAI_PAGES), "--db", str(openai_db), "--json",
                             "--since", "2026-11-03", "--until", "2026-11-04T00:00:00Z"])
    assert ok.exit_code == 0 and {r["day"] for r in json.loads(ok.output)["rows"]} == {"2026-11-03"}
    for args, text in ((["--since", "soon"], "--since 'soon' is not a date"),
                       (["--tolerance", "cheap"], "--tolerance 'cheap'"),
                       (["--since", "2026-11-04", "--until", "2026-11-03"], "is not after since")):
        bad = runner.invoke(cli, ["reconcile", str(OPENAI_PAGES), "--db", str(openai_db), *args])
        assert bad.exit_code == 1 and text in bad.output and "Traceback" not in bad.output
    missing = runner.invoke(cli, ["reconcile", str(OPENAI_PAGES), "--db", str(openai_db.parent / "nope.db")])
    assert missing.exit_code == 1 and "No metrics database" in missing.output


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_the_progress_bar_draws_on_a_terminal_only(openai_db: Path):
    import pty

    script = "from metricaos_sdk.cli import cli; cli()"
    args = [sys.executable, "-c", script, "reconcile", str(OPENAI_PAGES), "--db", str(openai_db), "--json"]
    main, secondary = pty.openpty()
    done = subprocess.run(args, stdout=subprocess.PIPE, stderr=secondary, timeout=60, check=False)
    os.close(secondary)
    drawn = os.read(main, 65536).decode()
    os.close(main)
    assert done.returncode == 0 and "Reconciling openai_costs_line_items.json" in drawn and "100%" in drawn
    assert json.loads(done.stdout)["format"] == "openai-costs-json"  # stdout stays clean JSON
    piped = subprocess.run(args, capture_output=True, timeout=60, check=False, text=True)
    assert piped.returncode == 0 and piped.stderr == "" and json.loads(piped.stdout)


# -- PostgreSQL ------------------------------------------------------------------------------------------------


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get("METRICAOS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("METRICAOS_TEST_POSTGRES_URL is unset: no PostgreSQL to reconcile against")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[test]')")
    return url


@pytest.fixture
def schema(postgres_url: str) -> Iterator[str]:
    from tests import postgres_support

    yield from postgres_support.own_schema(postgres_url)


def test_postgres_gives_the_same_rows_as_sqlite(postgres_url: str, schema: str, openai_db: Path, tmp_path: Path):
    from metricaos_sdk.delivery.postgres import PostgreSQL

    destination = PostgreSQL(postgres_url, schema=schema)
    events = openai_events() + [event(at=day(3, 9), model="gpt-4.1-mini", cost="123.456789012345", tokens=(1, 1))]
    outcome = destination.deliver(events)
    assert outcome.outcome == "delivered", outcome.reason
    destination.close()
    sqlite = run(write_db(tmp_path / "same.db", events), OPENAI_PAGES).as_json()
    postgres = run(postgres_url, OPENAI_PAGES, schema=schema).as_json()
    assert postgres == sqlite
    assert row(run(postgres_url, OPENAI_PAGES, schema=schema), 3, "gpt-4.1-mini").our_amount == \
        Decimal("1.6") + Decimal("123.456789012345")
    assert run(openai_db, OPENAI_PAGES).as_json() != sqlite  # the $100+ cost counted, exactly, on both
