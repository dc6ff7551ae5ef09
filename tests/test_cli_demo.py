"""`metricaos demo`: an offline run of a simulated app through the real client and meter."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from metricaos_sdk import Meter
from metricaos_sdk.cli import cli


def test_demo_prints_a_usage_report(tmp_path):
    db = tmp_path / "demo.db"
    result = CliRunner().invoke(cli, ["demo", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "cus_acme" in result.output and "by feature ai_ticket_summary" in result.output
    assert "QuotaExceeded: Customer cus_globex" in result.output
    events = Meter(db).events()
    assert {e.feature for e in events} == {"ai_support_reply", "ai_ticket_summary", "ai_reply_draft"}
    assert all(e.usage_status == "reported" and e.cost_usd is not None for e in events)
    assert any(e.streamed for e in events)


def test_demo_json():
    result = CliRunner().invoke(cli, ["demo", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["refused"] and len(report["customers"]) == 3
    assert all(message.startswith("Customer cus_globex has used ") for message in report["refused"])
    acme = report["customers"][0]
    assert acme["customer_id"] == "cus_acme" and acme["totals"]["requests"] == 18


def test_demo_text_reads_per_customer_with_a_grand_total():
    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    blocks = result.output.strip().split("\n\n")
    header = re.fullmatch(r"Metered (\d+) LLM calls into a temporary SQLite file\.", blocks[0])
    assert header is not None
    assert [b.split(" — ")[0] for b in blocks[1:4]] == ["cus_acme", "cus_globex", "cus_initech"]
    acme, globex, initech = blocks[1:4]
    # Each refusal stands under its customer's report, after the total.
    assert "refused" not in acme and "refused" not in initech
    assert re.search(r"\n  total: \d+ calls, .*\n  refused — QuotaExceeded: Customer cus_globex has used \d+ of 400 "
                     r"tokens this month; this request needs about \d+, more than the \d+ left", globex)
    for block in (acme, globex, initech):
        lines = block.splitlines()
        assert re.fullmatch(r"  limit tokens: used [\d,]+ of [\d,]+, [\d,]+ left, resets \d{4}-\d\d-\d\d 00:00 UTC, "
                            r"projected [\d,]+ by then( \(over the limit\))?", lines[1])
        assert all(re.fullmatch(r"  by (feature|model) [\w.-]+: \d+ calls?, [\d,]+ tokens, cost (<\$0\.01|\$\d+\.\d\d)"
                                r"( \(\$0\.\d+ a call\))?", line) for line in lines[2:8])
        assert re.fullmatch(r"  total: \d+ calls?, [\d,]+ tokens \([\d,]+ in, [\d,]+ out\), cost (<\$0\.01|\$\d+\.\d\d)",
                            lines[8])
    assert re.search(r"tokens: used \d+ of 20,000", acme)  # thousands separators
    # The grand total is the sum of the customers' totals (their numbers depend on the tokenizer on disk).
    pattern = r"\n  total: (\d+) calls?, ([\d,]+) tokens \(([\d,]+) in, ([\d,]+) out\)"
    totals = [[int(n.replace(",", "")) for n in re.findall(pattern, block)[0]] for block in blocks[1:4]]
    calls, tokens, inputs, outputs = (sum(column) for column in zip(*totals, strict=True))
    assert calls == int(header[1])
    assert blocks[4] == (f"All 3 customers: {calls} calls, {tokens:,} tokens ({inputs:,} in, {outputs:,} out), "
                         "cost <$0.01; 1 call refused before sending.")


def test_demo_with_a_database_path_that_cannot_be_used(tmp_path):
    (tmp_path / "notes.txt").write_text("a file, not a directory")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(bytes(range(256)) * 16)
    for path, message in [
        (tmp_path / "notes.txt" / "demo.db", f"{tmp_path / 'notes.txt'} is a file, not a directory"),
        (garbage, f"{garbage} is not a SQLite database (or it is damaged)"),
    ]:
        result = CliRunner().invoke(cli, ["demo", "--db", str(path)])
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)  # a ClickException, not a traceback
        assert "Traceback" not in result.output
        [line] = result.output.splitlines()  # one sentence on one line
        assert line.startswith("Error: ") and message in line
