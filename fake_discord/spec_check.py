"""Every request checked against Discord's published OpenAPI description (``spec/openapi.json``).

The fake's own handlers only know what this project's authors thought Discord
checks; the spec is Discord's word.  Each request is matched to one of the
spec's path templates (a route it lacks does not exist), its query parameters
are checked against their declared schemas and its JSON body (or the
``payload_json`` part of a multipart body) against the operation's request
schema.  The document and every validator are built once per process.

One deliberate deviation: the spec types snowflakes as decimal strings, but
Discord accepts integers in requests (and discord.py sends some), so the
snowflake schema is widened to accept both.
"""

from __future__ import annotations

import functools
import json
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH: Final = Path(__file__).with_name("spec") / "openapi.json"
_URI: Final = "urn:discord-openapi"
_METHODS: Final = ("get", "put", "post", "patch", "delete")


@dataclass(frozen=True)
class Violation:
    """Why a request breaks the spec: the dotted field path ("" for the whole body) and text."""

    field: str
    message: str


@dataclass(frozen=True)
class _Route:
    template: str
    regex: re.Pattern[str]
    params: int  # fewer placeholders = more specific (``/users/@me`` before ``/users/{id}``)


@functools.cache
def _document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    schemas = doc["components"]["schemas"]
    # Discord takes integer snowflakes in requests although the spec says strings.
    schemas["SnowflakeType"] = {
        "anyOf": [schemas["SnowflakeType"], {"type": "integer", "minimum": 0}]
    }
    return doc


@functools.cache
def _registry() -> Registry[Any]:
    resource = Resource.from_contents(_document(), default_specification=DRAFT202012)
    return Registry().with_resource(_URI, resource)


@functools.cache
def _routes() -> tuple[_Route, ...]:
    routes = []
    for template in _document()["paths"]:
        parts = re.split(r"(\{[^}]+\})", template)
        pattern = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
        routes.append(_Route(template, re.compile(f"^{pattern}$"), template.count("{")))
    return tuple(sorted(routes, key=lambda r: r.params))


def match_route(method: str, path: str) -> str | None:
    """The spec's path template for ``method path`` (``path`` relative to ``/api/v10``)."""
    verb = method.lower()
    for route in _routes():
        if route.regex.match(path) and verb in _document()["paths"][route.template]:
            return route.template
    return None


def _pointer(*parts: str) -> str:
    escaped = (p.replace("~", "~0").replace("/", "~1") for p in parts)
    return _URI + "#/" + "/".join(urllib.parse.quote(p, safe="~@") for p in escaped)


@functools.cache
def _validator(pointer: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": pointer}, registry=_registry())


@functools.cache
def _query_params(template: str, method: str) -> dict[str, tuple[str, dict[str, Any]]]:
    item = _document()["paths"][template]
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for where, params in (
        ("", item.get("parameters", [])),
        (method, item[method].get("parameters", [])),
    ):
        for i, param in enumerate(params):
            if param.get("in") == "query":
                base = ("paths", template) + ((method,) if where else ()) + ("parameters", str(i))
                found[param["name"]] = (_pointer(*base, "schema"), param["schema"])
    return found


def _schema_type(schema: dict[str, Any]) -> set[str]:
    """The JSON types a (possibly ``$ref``-ed) parameter schema allows."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _schema_type(_document()["components"]["schemas"][name])
    kinds = schema.get("type")
    if isinstance(kinds, str):
        return {kinds}
    if isinstance(kinds, list):
        return set(kinds)
    found: set[str] = set()
    for sub in schema.get("anyOf", []) + schema.get("oneOf", []):
        found |= _schema_type(sub)
    return found


def _coerce(raw: str, kinds: set[str]) -> Any:
    """A query string value as the JSON value Discord parses it into."""
    if "boolean" in kinds and raw.lower() in ("true", "false", "1", "0"):
        return raw.lower() in ("true", "1")
    if kinds & {"integer", "number"}:
        try:
            return int(raw)
        except ValueError:
            try:
                return float(raw)
            except ValueError:
                return raw
    return raw


def _field(error: ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path)


def _explain(error: ValidationError) -> Violation:
    """The most telling part of ``error``: inside an ``anyOf`` (one schema per option type,
    say), the error that got furthest into the body is the one about the field that is wrong.
    """
    while error.context:
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        # A branch failing a ``const``/``enum`` is for another kind of object (its ``type``).
        fitting = [
            errs
            for errs in branches.values()
            if not any(e.validator in ("const", "enum") for e in errs)
        ] or list(branches.values())
        error = max((e for errs in fitting for e in errs), key=lambda e: len(e.absolute_path))
    message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
    return Violation(_field(error), message)


def check_query(template: str, method: str, query: dict[str, str]) -> Violation | None:
    """The first query parameter the operation does not declare or whose value it refuses."""
    declared = _query_params(template, method.lower())
    for name, raw in query.items():
        if name not in declared:
            return Violation(name, f"query parameter {name!r} is not in the spec")
        pointer, schema = declared[name]
        error = best_match(_validator(pointer).iter_errors(_coerce(raw, _schema_type(schema))))
        if error is not None:
            return Violation(name, f"query {name}={raw!r}: {_explain(error).message}")
    return None


@functools.cache
def _body_rule(template: str, method: str) -> tuple[str, bool] | None:
    """Pointer to the operation's JSON request schema and whether a body is required."""
    body = _document()["paths"][template][method].get("requestBody")
    if body is None:
        return None
    # multipart bodies carry the JSON part as ``payload_json``: same schema as a JSON body.
    content = "application/json"
    pointer = _pointer("paths", template, method, "requestBody", "content", content, "schema")
    return pointer, bool(body.get("required"))


def check_body(template: str, method: str, body: Any) -> Violation | None:
    """Why ``body`` (``None``: no body) does not fit the operation's request schema."""
    rule = _body_rule(template, method.lower())
    if rule is None:
        if body not in (None, {}):
            return Violation("", "this route takes no request body")
        return None
    pointer, required = rule
    if body is None and not required:
        return None
    error = best_match(_validator(pointer).iter_errors(body))
    return None if error is None else _explain(error)


def check_response(template: str, method: str, body: Any, status: str = "200") -> Violation | None:
    """Why ``body`` does not fit the operation's documented response (the fake's own check)."""
    pointer = _pointer(
        "paths",
        template,
        method.lower(),
        "responses",
        status,
        "content",
        "application/json",
        "schema",
    )
    error = best_match(_validator(pointer).iter_errors(body))
    return None if error is None else _explain(error)


def warm() -> None:
    """Load the document and route table now (the first request would otherwise pay for it)."""
    _routes()
    _registry()
