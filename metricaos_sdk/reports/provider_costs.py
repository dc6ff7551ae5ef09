"""The provider's own cost exports, read into exact dollars per UTC day and model (for ``metricaos reconcile``).

Three exports, told apart by their content (:func:`parse_costs`): the OpenAI Costs API's pages
(``GET /v1/organization/costs``, amounts in dollars; one page, a JSON list of pages, or JSON lines), the OpenAI
console's cost CSV (the same fields, one row per result, any column order), and the Anthropic Admin API's cost
report (``GET /v1/organizations/cost_report``, amounts as decimal strings in cents). Each becomes
:class:`ProviderCost` lines of exact ``Decimal`` dollars; a file that is none of them, or has a bad field, is a
:class:`~metricaos_sdk.ConfigurationError` naming the file and the field or line.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import ConfigurationError

__all__ = ["Progress", "ProviderCost", "ProviderCosts", "model_key", "openai_line_item_model", "parse_costs"]

Progress = Callable[[float], None]
"""Called with the share of the work done, from 0 to 1."""

_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")
_DAY = timedelta(days=1)
_MICRO = Decimal("0.000001")


def model_key(name: str | None) -> str | None:
    """The name rows are matched on: lower case, without a trailing snapshot date (``-2024-08-06`` or
    ``-20250514``). ``None`` stays ``None`` (no model)."""
    if name is None or not name.strip():
        return None
    return _SNAPSHOT.sub("", name.strip().lower())


def openai_line_item_model(line_item: str) -> str | None:
    """The model an OpenAI cost ``line_item`` is for: ``"gpt-4o-2024-08-06, input"`` → ``gpt-4o-2024-08-06``,
    ``"priority | gpt-5, output, long context"`` → ``gpt-5``, ``"gpt-audio-mini audio, input"`` →
    ``gpt-audio-mini``; ``None`` for a charge with no model (``"web search tool calls"``, ``"Vector storage"``)."""
    segment = line_item.rsplit("|", 1)[-1]
    head, comma, _ = segment.partition(",")
    words = head.split()
    return words[0] if comma and words else None


# -- the provider's side ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderCost:
    """One line of a provider's cost export, in exact USD."""

    day: date
    """The UTC day of its bucket."""
    model: str | None
    """The model it is for; ``None``: a day total (``total``) or a charge with no model."""
    amount: Decimal
    detail: str = ""
    """The line item or description, as the export wrote it."""
    total: bool = False
    """A day total over every model (the export was not grouped by line item or description)."""


@dataclass(frozen=True)
class ProviderCosts:
    """A parsed export: its lines and the UTC days its buckets cover (empty buckets included)."""

    provider: str
    """``openai`` or ``anthropic``: the ``events.provider`` it is compared with by default."""
    format: str
    """``openai-costs-json``, ``openai-costs-csv`` or ``anthropic-cost-report``."""
    lines: tuple[ProviderCost, ...]
    days: frozenset[date]

    @property
    def start(self) -> datetime | None:
        """Midnight UTC of the first day covered."""
        return datetime.combine(min(self.days), datetime.min.time(), timezone.utc) if self.days else None

    @property
    def end(self) -> datetime | None:
        """Midnight UTC after the last day covered (exclusive)."""
        return datetime.combine(max(self.days), datetime.min.time(), timezone.utc) + _DAY if self.days else None


def _fail(message: str) -> ConfigurationError:
    return ConfigurationError(message)


def _moment(value: Any, name: str, where: str) -> datetime:
    """A bucket time: unix seconds (number or digits) or ISO 8601 / RFC 3339 text, as aware UTC."""
    try:
        if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
            return datetime.fromtimestamp(int(value), timezone.utc)
        text = str(value).strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return datetime.fromtimestamp(int(Decimal(text)), timezone.utc)
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError, OSError, InvalidOperation):
        raise _fail(f"{name}: {where} is {value!r}, not a time: expected unix seconds or an ISO 8601 time "
                    f"such as 2026-11-01T00:00:00Z.") from None


def _days(start: datetime, end: datetime | None, name: str, where: str) -> Iterator[date]:
    """The UTC days a bucket covers (one for the daily buckets both APIs return)."""
    if end is None or end <= start + _DAY:
        yield start.date()
        return
    raise _fail(f"{name}: {where} spans {end - start}, more than one day: export with daily buckets "
                f"(bucket_width=1d).")


def _money(value: Any, name: str, where: str, *, cents: bool = False) -> Decimal:
    try:
        if isinstance(value, bool) or value is None:
            raise InvalidOperation
        amount = Decimal(value) if isinstance(value, (int, Decimal)) else Decimal(str(value).strip())
        if not amount.is_finite():
            raise InvalidOperation
    except InvalidOperation:
        raise _fail(f"{name}: {where} is {value!r}, not an amount: expected a number"
                    f"{' of cents as a decimal string' if cents else ''}.") from None
    return amount.scaleb(-2) if cents else amount


def _usd(currency: Any, name: str, where: str) -> None:
    if currency is not None and str(currency).strip().lower() not in ("usd", ""):
        raise _fail(f"{name}: {where} is {currency!r}: only USD exports can be compared with costs metered in USD.")


def _openai_bucket(bucket: dict[str, Any], name: str, at: str) -> tuple[list[ProviderCost], list[date]]:
    start = _moment(bucket.get("start_time"), name, f"{at}.start_time")
    end = _moment(bucket["end_time"], name, f"{at}.end_time") if bucket.get("end_time") is not None else None
    days = list(_days(start, end, name, at))
    results = bucket.get("results", bucket.get("result", []))
    if not isinstance(results, list):
        raise _fail(f"{name}: {at}.results is not a list: save the API's response unchanged.")
    lines = []
    for j, result in enumerate(results):
        where = f"{at}.results[{j}]"
        amount = result.get("amount") if isinstance(result, dict) else None
        if not isinstance(amount, dict):
            raise _fail(f"{name}: {where} has no amount object ({{\"value\": …, \"currency\": \"usd\"}}): "
                        f"save the API's response unchanged.")
        _usd(amount.get("currency"), name, f"{where}.amount.currency")
        if amount.get("value") is None:
            continue
        value = _money(amount.get("value"), name, f"{where}.amount.value")
        item = result.get("line_item")
        model = openai_line_item_model(item) if item else None
        lines.append(ProviderCost(days[0], model, value, item or "", total=not item))
    return lines, days


def _anthropic_bucket(bucket: dict[str, Any], name: str, at: str) -> tuple[list[ProviderCost], list[date]]:
    start = _moment(bucket.get("starting_at"), name, f"{at}.starting_at")
    end = _moment(bucket["ending_at"], name, f"{at}.ending_at") if bucket.get("ending_at") is not None else None
    days = list(_days(start, end, name, at))
    results = bucket.get("results", [])
    if not isinstance(results, list):
        raise _fail(f"{name}: {at}.results is not a list: save the API's response unchanged.")
    lines = []
    for j, result in enumerate(results):
        where = f"{at}.results[{j}]"
        if not isinstance(result, dict) or "amount" not in result:
            raise _fail(f"{name}: {where} has no amount: save the API's response unchanged.")
        _usd(result.get("currency"), name, f"{where}.currency")
        value = _money(result["amount"], name, f"{where}.amount", cents=True)
        model, kind = result.get("model"), result.get("cost_type")
        detail = result.get("description") or " ".join(str(x) for x in (kind, result.get("token_type")) if x)
        lines.append(ProviderCost(days[0], model or None, value, detail, total=not model and not kind))
    return lines, days


def _pages(text: str, name: str) -> Iterator[tuple[str, Any]]:
    """(where, page) for one JSON document (a page, or a list of pages) or JSON lines (a page per line)."""
    try:
        doc = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise _fail(f"{name} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): save "
                        f"the API's response unchanged, one page per line or all pages in one JSON list.") from None
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    yield f"line {number}", json.loads(line, parse_float=Decimal)
                except json.JSONDecodeError as err:
                    raise _fail(f"{name}: line {number} is not valid JSON ({err.msg} at column {err.colno}): "
                                f"save one page object per line (JSON lines), or one JSON document.") from None
        return
    if isinstance(doc, list):
        for i, page in enumerate(doc):
            yield f"[{i}]", page
    else:
        yield "", doc


def _parse_json(text: str, name: str, progress: Progress | None) -> ProviderCosts:
    lines: list[ProviderCost] = []
    days: set[date] = set()
    provider = None
    pages = list(_pages(text, name))
    for n, (where, page) in enumerate(pages, 1):
        label, prefix = where or "the document", f"{where} " if where.startswith("line") else f"{where}." * bool(where)
        if isinstance(page, dict) and ("error" in page or page.get("type") == "error"):
            error = page.get("error")
            message = error.get("message") if isinstance(error, dict) else error
            raise _fail(f"{name}: {label} is an API error response ({message}), not a cost report: fix the "
                        f"request (an admin key, a valid time range) and save the response again.")
        buckets = page.get("data") if isinstance(page, dict) else None
        if not isinstance(buckets, list):
            raise _fail(f"{name}: {label} has no \"data\" list of buckets: expected an OpenAI costs page (GET "
                        f"/v1/organization/costs) or an Anthropic cost report (GET /v1/organizations/cost_report).")
        for i, bucket in enumerate(buckets):
            at = f"{prefix}data[{i}]"
            kind = None
            if isinstance(bucket, dict):
                kind = "openai" if "start_time" in bucket else "anthropic" if "starting_at" in bucket else None
            if kind is None:
                raise _fail(f"{name}: {at} has neither start_time (OpenAI) nor starting_at (Anthropic): expected "
                            f"a cost report's daily buckets.")
            if provider is not None and kind != provider:
                raise _fail(f"{name}: {at} is an {kind} bucket in an {provider} export: reconcile one provider's "
                            f"export at a time.")
            provider = kind
            found, covered = (_openai_bucket if kind == "openai" else _anthropic_bucket)(bucket, name, at)
            lines += found
            days.update(covered)
        if progress:
            progress(n / len(pages))
    if provider is None:
        raise _fail(f"{name} has no buckets: export a time range that has days in it.")
    fmt = "openai-costs-json" if provider == "openai" else "anthropic-cost-report"
    return ProviderCosts(provider, fmt, tuple(lines), frozenset(days))


def _parse_csv(text: str, name: str, progress: Progress | None) -> ProviderCosts:
    header = text.splitlines()[0]
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if "\t" in header and "," not in header else ",")
    reader.fieldnames = [f.strip().lower() for f in reader.fieldnames or []]
    if "start_time" not in reader.fieldnames:
        raise _fail(f"{name}: line 1 has amount_value but no start_time column: export the cost CSV again "
                    f"with its start_time column.")
    lines: list[ProviderCost] = []
    days: set[date] = set()
    size = text.count("\n") + 1
    for row in reader:
        at = f"line {reader.line_num}"
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        start = _moment(row.get("start_time"), name, f"{at} start_time")
        end = _moment(row["end_time"], name, f"{at} end_time") if (row.get("end_time") or "").strip() else None
        covered = list(_days(start, end, name, at))
        days.update(covered)
        if not (row.get("amount_value") or "").strip():
            continue  # a day with nothing billed
        _usd(row.get("amount_currency"), name, f"{at} amount_currency")
        value = _money(row["amount_value"], name, f"{at} amount_value")
        item = (row.get("line_item") or "").strip()
        lines.append(ProviderCost(covered[0], openai_line_item_model(item) if item else None, value, item,
                                  total=not item))
        if progress:
            progress(min(reader.line_num / size, 1.0))
    return ProviderCosts("openai", "openai-costs-csv", tuple(lines), frozenset(days))


def parse_costs(text: str, name: str = "the cost export", *, progress: Progress | None = None) -> ProviderCosts:
    """Parse a provider's cost export, detecting its format from its content (never its file name).

    Raises :class:`~metricaos_sdk.ConfigurationError` with one sentence naming ``name``, the line or field and
    the fix when the text is none of the formats or holds a value that cannot be read.
    """
    body = text.lstrip("\ufeff")
    stripped = body.strip()
    if not stripped:
        raise _fail(f"{name} is empty: save the provider's cost export into it (see docs/reconciliation.md).")
    if stripped[0] in "{[":
        costs = _parse_json(stripped, name, progress)
    else:
        header = stripped.splitlines()[0].lower()
        if "amount_value" not in header:
            hint = (" (a usage export, with tokens but no amounts?)" if "start_time" in header else "")
            # Line 1 is not quoted: a file passed by mistake (an .env, a key file) must not reach the terminal or a log.
            raise _fail(f"{name} is not a cost export we can read: its first line is "
                        f"neither JSON nor a CSV header with start_time and amount_value{hint}; save the OpenAI "
                        f"or Anthropic cost report as described in docs/reconciliation.md.")
        costs = _parse_csv(stripped, name, progress)
    if progress:
        progress(1.0)
    return costs
