"""`metricaos demo`: an offline run of a simulated app through the real client and meter."""

from __future__ import annotations

import json

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
    acme = report["customers"][0]
    assert acme["customer_id"] == "cus_acme" and acme["totals"]["requests"] == 18
