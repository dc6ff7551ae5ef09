"""The few OpenAPI 3.0 schema checks the encoders' tests need, so no JSON-schema package is a test dependency.

``problems(value, schema, components)`` lists every way ``value`` breaks ``schema`` (empty: it conforms), with the
path to each. It implements what vendors' event schemas use: ``type`` (with ``nullable``), ``required``,
``properties``, ``additionalProperties`` (false, or a schema), ``items``, ``enum``, ``minLength``/``maxLength``,
``pattern``, ``minimum``/``maximum``, ``allOf``, ``$ref`` to ``#/components/schemas/<name>``, and the formats
``date-time`` (RFC 3339), ``uri`` and ``uri-reference`` (RFC 3986). A keyword it does not know is an error, so a
schema that grew a constraint is never passed unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {"object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
                                       "integer": (int,), "number": (int, float)}
_ANNOTATIONS = {"description", "example", "examples", "title", "default", "readOnly", "writeOnly", "deprecated",
                "x-go-type", "x-go-type-import", "nullable", "$comment"}
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_URI_CHARS = re.compile(r"([A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


def _format(value: str, fmt: str) -> str | None:
    if fmt == "date-time":
        if not _DATE_TIME.fullmatch(value):
            return "is not an RFC 3339 date-time"
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return "is not a valid date-time"
        return None
    if fmt in ("uri", "uri-reference"):
        if not _URI_CHARS.fullmatch(value):
            return f"is not an RFC 3986 {fmt}"
        if fmt == "uri" and not _SCHEME.match(value):
            return "is not an absolute URI"
        return None
    raise AssertionError(f"format {fmt!r} is not implemented by tests/openapi_schema.py")


def problems(value: Any, schema: Mapping[str, Any], components: Mapping[str, Any], path: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema`` (``components``: the named schemas ``$ref`` can point at)."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        return problems(value, components[name], components, path)
    out: list[str] = []
    if value is None:
        return [] if schema.get("nullable") else [f"{path}: is null"]
    for key, rule in schema.items():
        if key in _ANNOTATIONS:
            continue
        if key == "type":
            wanted = _TYPES[rule]
            if not isinstance(value, wanted) or (isinstance(value, bool) and rule != "boolean"):
                return [f"{path}: is {type(value).__name__}, not {rule}"]
        elif key == "allOf":
            for part in rule:
                out += problems(value, part, components, path)
        elif key == "required":
            out += [f"{path}: {name!r} is required" for name in rule if isinstance(value, dict) and name not in value]
        elif key == "properties":
            for name, sub in rule.items():
                if isinstance(value, dict) and name in value:
                    out += problems(value[name], sub, components, f"{path}.{name}")
        elif key == "additionalProperties":
            if isinstance(value, dict):
                extra = [k for k in value if k not in schema.get("properties", {})]
                if rule is False:
                    out += [f"{path}: {k!r} is not allowed" for k in extra]
                elif isinstance(rule, dict) and rule:
                    for k in extra:
                        out += problems(value[k], rule, components, f"{path}.{k}")
        elif key == "items":
            for i, item in enumerate(value if isinstance(value, list) else ()):
                out += problems(item, rule, components, f"{path}[{i}]")
        elif key == "enum":
            if value not in rule:
                out.append(f"{path}: {value!r} is not one of {rule}")
        elif key in ("minLength", "maxLength"):
            if isinstance(value, str) and (len(value) < rule if key == "minLength" else len(value) > rule):
                out.append(f"{path}: length {len(value)} breaks {key} {rule}")
        elif key == "pattern":
            if isinstance(value, str) and not re.search(rule, value):
                out.append(f"{path}: {value!r} does not match {rule}")
        elif key in ("minimum", "maximum"):
            if isinstance(value, (int, float)) and (value < rule if key == "minimum" else value > rule):
                out.append(f"{path}: {value} breaks {key} {rule}")
        elif key == "format":
            if isinstance(value, str) and (problem := _format(value, rule)) is not None:
                out.append(f"{path}: {value!r} {problem}")
        else:
            raise AssertionError(f"schema keyword {key!r} is not implemented by tests/openapi_schema.py")
    return out
