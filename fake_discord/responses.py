"""HTTP response helpers that match what discord.py's HTTP client expects.

discord.py decodes a body as JSON only when ``Content-Type`` is exactly
``application/json`` (aiohttp appends a charset both in ``json_response``
and for ``Response(text=...)``, which would make login fail), and treats a
429 as a rate limit only when a ``Via`` header is present (otherwise it
assumes a Cloudflare ban).  Every response the fake produces goes through
these helpers so those details live in one place.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from aiohttp import web

JSON_HEADERS = {"Content-Type": "application/json"}


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response with the exact content type discord.py requires."""
    all_headers = dict(JSON_HEADERS)
    if headers:
        all_headers.update(headers)
    # ``body=`` bytes, not ``text=``: with ``text`` aiohttp appends "; charset=utf-8".
    return web.Response(body=json.dumps(data).encode("utf-8"), status=status, headers=all_headers)


def no_content() -> web.Response:
    """204, as Discord answers deletes and typing."""
    return web.Response(status=204)


class ApiError(Exception):
    """An error Discord would return, raised from handlers and rendered by the middleware."""

    def __init__(
        self, status: int, code: int, message: str, errors: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def response(self) -> web.Response:
        """Discord's error body: ``{"message", "code"[, "errors"]}``."""
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return json_response(body, status=self.status)


def _form_errors(field: str, code: str, message: str) -> dict[str, Any]:
    """Discord's nested ``errors`` object for one field (``""`` = the body as a whole)."""
    leaf = {"_errors": [{"code": code, "message": message}]}
    if not field:
        return leaf
    errors: dict[str, Any] = {}
    node = errors
    parts = field.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = leaf
    return errors


def form_error(field: str, code: str, message: str, status_code: int = 50035) -> ApiError:
    """A 400 Invalid Form Body error naming the offending field, like Discord's."""
    return ApiError(400, status_code, "Invalid Form Body", _form_errors(field, code, message))


class RuleViolation(ApiError):
    """A request that breaks Discord's published rules (its OpenAPI spec or documented limits).

    Answered like Discord would, and also recorded by the middleware in
    ``FakeDiscord.spec_violations`` so the test fails even if the bot swallows the error.
    """

    def __init__(self, status: int, code: int, message: str, why: str, **kw: Any) -> None:
        super().__init__(status, code, message, **kw)
        self.why = why


def rule_violation(field: str, code: str, why: str) -> RuleViolation:
    """A 400 Invalid Form Body (50035) for ``field`` that is also recorded as a violation."""
    return RuleViolation(
        400,
        50035,
        "Invalid Form Body",
        f"{field or '(body)'}: {why}",
        errors=_form_errors(field, code, why),
    )


def rate_limited_response(
    retry_after: float, *, is_global: bool = False, bucket: str = "fake-bucket"
) -> web.Response:
    """A 429 carrying everything discord.py's retry logic reads (body, X-RateLimit-*, Retry-After,
    Via).
    """
    body = {
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": is_global,
        "code": 0,
    }
    headers = {
        "Retry-After": str(max(1, math.ceil(retry_after))),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        "X-RateLimit-Bucket": bucket,
        "X-RateLimit-Scope": "global" if is_global else "user",
        "Via": "1.1 google",
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    return json_response(body, status=429, headers=headers)
