"""``metricaos deliver`` and ``metricaos deliveries``, and destinations from a delivery file."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from metricaos_sdk import ConfigurationError, Meter
from metricaos_sdk.cli import cli
from metricaos_sdk.config import load_delivery_file
from metricaos_sdk.delivery import HTTPJSON
from metricaos_sdk.delivery.settings import destinations_from
from metricaos_sdk.testing import SimulatedOpenAI
from tests.receiver import Answer, running

ASK = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}


def record(db_path, n: int) -> None:
    meter = Meter(db_path)
    client = meter.wrap(SimulatedOpenAI(reply_words=2).client())
    for _ in range(n):
        client.chat.completions.create(**ASK)
    meter.close()


def test_deliver_once_from_a_file_with_the_token_in_the_environment(db_path, tmp_path, monkeypatch):
    record(db_path, 7)
    with running() as receiver:
        config = tmp_path / "delivery.toml"
        config.write_text(f'[[destination]]\nkind = "http"\nurl = "{receiver.url}"\ntoken_env = "INGEST_TOKEN"\n')
        monkeypatch.setenv("INGEST_TOKEN", "tok-from-env")
        result = CliRunner().invoke(cli, ["deliver", "--db", str(db_path), "--config", str(config), "--once"])
        assert result.exit_code == 0, result.output
        assert receiver.unique() == 7 and receiver.requests[0].headers["authorization"] == "Bearer tok-from-env"
        assert "http: 0 queued, 7 delivered" in result.output
    status = CliRunner().invoke(cli, ["deliveries", "status", "--db", str(db_path), "--json"])
    [row] = json.loads(status.output)
    assert (row["destination"], row["queued"], row["delivered"]) == ("http", 0, 7)


def test_parked_events_are_sent_again_by_retry(db_path, tmp_path):
    record(db_path, 3)
    with running() as receiver:
        receiver.script = [Answer(400, body=b'{"error": "no"}')] * 5  # every event refused, one by one
        config = tmp_path / "delivery.toml"
        config.write_text(f'[[destination]]\nkind = "http"\nurl = "{receiver.url}"\n')
        CliRunner().invoke(cli, ["deliver", "--db", str(db_path), "--config", str(config), "--once"])
        status = CliRunner().invoke(cli, ["deliveries", "status", "--db", str(db_path)])
        assert "3 failed (parked)" in status.output and "last error: 400" in status.output
        retry = CliRunner().invoke(cli, ["deliveries", "retry", "--db", str(db_path), "--json"])
        assert json.loads(retry.output) == {"retrying": 3}
        result = CliRunner().invoke(cli, ["deliver", "--db", str(db_path), "--config", str(config), "--once"])
        assert result.exit_code == 0, result.output
        assert receiver.unique() == 3


@pytest.mark.parametrize(("text", "says"), [
    ("", "names no destination"),
    ("[[destination]]\nkind = 'carrier-pigeon'\n", "No delivery destination of kind 'carrier-pigeon'"),
    ("[[destination]]\nkind = 'http'\nurl = 'http://x'\ncolour = 'red'\n", "has no parameter colour"),
    ("[[destination]]\nkind = 'http'\n", "is incomplete"),
    ("[[destination]]\nkind = 'http'\nurl = 'http://x'\ntoken_env = 'NOT_SET_ANYWHERE'\n", "'NOT_SET_ANYWHERE', which is not set"),
    ("[[destination\n", "not valid TOML"),
])
def test_a_bad_delivery_file_says_what_is_wrong(tmp_path, text, says):
    config = tmp_path / "delivery.toml"
    config.write_text(text)
    with pytest.raises(ConfigurationError, match=says):
        destinations_from(load_delivery_file(config, environ={}))


def test_the_cli_turns_a_bad_file_into_one_line(db_path, tmp_path):
    record(db_path, 1)
    config = tmp_path / "delivery.toml"
    config.write_text("[[destination]]\nkind = 'http'\n")
    result = CliRunner().invoke(cli, ["deliver", "--db", str(db_path), "--config", str(config), "--once"])
    assert result.exit_code == 1 and result.output.startswith("Error: Destination 1 (http) is incomplete")
    missing = CliRunner().invoke(cli, ["deliveries", "status", "--db", str(db_path.parent / "none.db")])
    assert missing.exit_code == 1 and "No metrics database" in missing.output


def test_a_meter_takes_its_destinations_from_the_configured_file(db_path, tmp_path):
    from metricaos_sdk import MeterConfig

    with running() as receiver:
        config = tmp_path / "delivery.toml"
        config.write_text(f'[[destination]]\nkind = "http"\nname = "central"\nurl = "{receiver.url}"\n')
        meter = Meter(config=MeterConfig(database=str(db_path), delivery_config=str(config)))
        assert [type(d) for d in meter.delivery.destinations] == [HTTPJSON]
        client = meter.wrap(SimulatedOpenAI().client())
        client.chat.completions.create(**ASK)
        assert meter.flush(timeout=30) and receiver.unique() == 1
        meter.close()
