"""Options and targets of the ``http`` and ``rpc`` executors: parsing and validation only.

No I/O and no httpx: the same functions check a job when it is added (the executors'
``validate`` hooks, in any process) and prepare each request in the worker
(:mod:`.executor`). Everything that needs the worker - ``${NAME}`` values, the
``http_allow`` list, the worker's default body limit - is left to the executor.

Errors are :class:`distsched.model.ValidationError` with the field (``target``,
``options.method``...) and a reason that names the option.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from distsched.model import MAX_RESULT_BYTES, TaskSpec, ValidationError

DEFAULT_BODY_LIMIT = 64 * 1024
RPC_DEFAULT_BODY_LIMIT = 1024 * 1024
#: The largest body_limit: what a task's result can hold (the body is the result's value).
MAX_BODY_LIMIT = MAX_RESULT_BYTES
SCHEMES = ("http", "https")

HTTP_OPTIONS = frozenset(
    {"method", "headers", "query", "params", "json", "body", "success_codes",
     "follow_redirects", "body_limit"}
)
RPC_OPTIONS = frozenset({"method", "params", "headers", "follow_redirects", "body_limit"})

_METHOD_RE = re.compile(r"[A-Za-z]{1,20}")
_CODE_RE = re.compile(r"^([1-5])(xx|\d\d)$", re.IGNORECASE)
#: Headers the client computes from the body it sends: a job setting them could desync the
#: request framing (request smuggling through a proxy) or cut the body.
FRAMING_HEADERS = frozenset({"transfer-encoding", "content-length"})
#: A target made of one ``${NAME}`` reference (resolved by the worker; cannot be checked).
_WHOLE_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}")


@attrs.frozen(kw_only=True)
class HttpOptions:
    """The parsed options of one ``http`` task. ``headers`` are as given (``${NAME}`` not
    resolved); ``body_limit`` None means the worker's default."""

    method: str
    headers: Mapping[str, str]
    query: Mapping[str, Any] | None
    content: bytes | None
    json_body: bool
    success_codes: frozenset[int]
    follow_redirects: bool
    body_limit: int | None


@attrs.frozen(kw_only=True)
class RpcOptions:
    """The parsed options of one ``rpc`` task: the JSON-RPC method and params."""

    method: str
    params: list[Any] | dict[str, Any] | None
    headers: Mapping[str, str]
    follow_redirects: bool
    body_limit: int | None


def _error(field: str, reason: str) -> ValidationError:
    return ValidationError(field, reason)


# -- the target ------------------------------------------------------------------------------
def check_target(target: Any, kind: str) -> None:
    """The target of an ``http`` / ``rpc`` job must be an absolute http(s) URL with a host.

    A target that starts with a ``${NAME}`` reference is resolved on the worker and cannot be
    checked here; a ``${NAME}`` elsewhere (in the userinfo, the host, the path) is fine.
    """
    if not isinstance(target, str) or not target:
        raise _error("target", f"the {kind} executor needs an http(s) URL, not {target!r}")
    if _WHOLE_REF.match(target):
        return
    hint = "" if "://" in target else " (a job without a target uses its name as the target)"
    try:
        parts = urlsplit(target)
    except ValueError as exc:
        raise _error("target", f"the {kind} executor needs an http(s) URL; {target!r} is not one ({exc})") from None
    if parts.scheme.lower() not in SCHEMES or not target.lower().startswith(tuple(f"{s}://" for s in SCHEMES)):
        raise _error("target", f"the {kind} executor needs an http(s) URL such as https://host/path, "
                               f"not {target!r}{hint}")
    if not parts.hostname and "${" not in parts.netloc:
        raise _error("target", f"the {kind} executor needs a URL with a host, not {target!r}")


# -- single options --------------------------------------------------------------------------
def check_known(options: Mapping[str, Any], known: frozenset[str], kind: str) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        raise _error(
            f"options.{unknown[0]}",
            f"{kind} executor: unknown option(s) {', '.join(map(repr, unknown))} (known: {', '.join(sorted(known))})",
        )


def http_method(value: Any, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or not _METHOD_RE.fullmatch(value):
        raise _error("options.method", f"option 'method' must be an HTTP method such as GET or POST, not {value!r}")
    return value.upper()


def flag(options: Mapping[str, Any], name: str, default: bool) -> bool:
    value = options.get(name, default)
    if not isinstance(value, bool):
        raise _error(f"options.{name}", f"option {name!r} must be true or false, not {value!r}")
    return value


def body_limit(value: Any, where: str) -> int:
    """A body limit in bytes (an option or the worker's ``http_body_limit``); ValueError if bad."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where} must be a number of bytes between 0 and {MAX_BODY_LIMIT}, not {value!r}")
    if value > MAX_BODY_LIMIT:
        raise ValueError(
            f"{where} must be a number of bytes between 0 and {MAX_BODY_LIMIT}, not {value!r}: the body is the "
            f"task's result, and a result holds at most {MAX_BODY_LIMIT} bytes (1 MiB) of JSON"
        )
    return value


def option_body_limit(options: Mapping[str, Any]) -> int | None:
    if "body_limit" not in options:
        return None
    try:
        return body_limit(options["body_limit"], "option 'body_limit'")
    except ValueError as exc:
        raise _error("options.body_limit", str(exc)) from None


def success_codes(value: Any) -> frozenset[int]:
    if value is None:
        return frozenset(range(200, 300))
    if isinstance(value, (str, int)):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _error("options.success_codes",
                     f"option 'success_codes' must be a list of status codes or classes like '2xx', not {value!r}")
    codes: set[int] = set()
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599:
            codes.add(item)
            continue
        match = _CODE_RE.match(item.strip()) if isinstance(item, str) else None
        if match is None:
            raise _error("options.success_codes",
                         f"option 'success_codes': {item!r} is not a status code (100-599) or a class like '2xx'")
        if match.group(2).lower() == "xx":
            base = int(match.group(1)) * 100
            codes.update(range(base, base + 100))
        else:
            codes.add(int(item.strip()))
    return frozenset(codes)


def headers(value: Any) -> dict[str, str]:
    """The ``headers`` table as strings, ``${NAME}`` references left for the worker."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _error("options.headers", f"option 'headers' must be a table of name = value, not {type(value).__name__}")
    out: dict[str, str] = {}
    for name, raw in value.items():
        if not isinstance(name, str) or not name:
            raise _error("options.headers", f"option 'headers': {name!r} is not a header name")
        if name.strip().lower() in FRAMING_HEADERS:
            raise _error("options.headers", f"option 'headers': {name!r} may not be set: the executor computes "
                                            f"Content-Length and Transfer-Encoding from the body it sends")
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise _error("options.headers", f"option 'headers': the value of {name!r} must be a string")
        out[name] = str(raw)
    return out


# -- whole specs -----------------------------------------------------------------------------
def parse_http(spec: TaskSpec) -> HttpOptions:
    """The options of an ``http`` task, checked."""
    options = spec.options
    check_known(options, HTTP_OPTIONS, "http")
    has_json, has_body = "json" in options, "body" in options
    if has_json and has_body:
        raise _error("options.json", "options 'json' and 'body' are exclusive: give one request body")
    if has_body and not isinstance(options["body"], str):
        raise _error("options.body", f"option 'body' must be a string, not {type(options['body']).__name__}")
    if "query" in options and "params" in options:
        raise _error("options.query", "options 'query' and 'params' are the same thing: give one")
    query = options.get("query", options.get("params"))
    if query is not None and not (isinstance(query, dict) and all(isinstance(k, str) for k in query)):
        raise _error("options.query", "option 'query' must be a table of name = value")
    for name, value in (query or {}).items():
        # what a query string can carry: text, a number, true/false, or a list of them (the
        # name once per item); a table would go out as Python's text of it ({'b': 1})
        if not all(isinstance(item, (str, int, float)) for item in (value if isinstance(value, list) else [value])):
            raise _error("options.query", f"option 'query': {name!r} must be text, a number, true or false, or a "
                                          f"list of them, not {type(value).__name__}")
    method = http_method(options.get("method"), "POST" if has_json or has_body else "GET")
    codes = success_codes(options.get("success_codes"))
    follow = flag(options, "follow_redirects", False)
    limit = option_body_limit(options)
    given_headers = headers(options.get("headers"))
    content = None
    if has_json:
        try:
            content = json.dumps(options["json"], allow_nan=False, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise _error("options.json", f"option 'json' is not plain JSON: {exc}") from None
    elif has_body:
        content = options["body"].encode("utf-8")
    return HttpOptions(method=method, headers=given_headers, query=query, content=content, json_body=has_json,
                       success_codes=codes, follow_redirects=follow, body_limit=limit)


def parse_rpc(spec: TaskSpec) -> RpcOptions:
    """The options of an ``rpc`` task, checked; params from ``options.params``, ``args`` or
    ``kwargs``."""
    options = spec.options
    check_known(options, RPC_OPTIONS, "rpc")
    method = options.get("method")
    if not isinstance(method, str) or not method:
        raise _error(
            "options.method",
            "rpc executor: options.method is required (the JSON-RPC method name, a non-empty string)"
            if method is None else f"rpc executor: options.method must be a non-empty string, not {method!r}",
        )
    params: list[Any] | dict[str, Any] | None
    if "params" in options:
        params = options["params"]
        if not isinstance(params, (list, dict)):
            raise _error("options.params", f"option 'params' must be a list or a table, not {type(params).__name__}")
    elif spec.args and spec.kwargs:
        raise _error("kwargs", "JSON-RPC params are positional (args) or named (kwargs), not both; "
                               "give one, or set options.params")
    elif spec.kwargs:
        params = dict(spec.kwargs)
    elif spec.args:
        params = list(spec.args)
    else:
        params = None
    follow = flag(options, "follow_redirects", False)
    limit = option_body_limit(options)
    given_headers = headers(options.get("headers"))
    if params is not None:
        try:
            json.dumps(params, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise _error("options.params" if "params" in options else "args",
                         f"JSON-RPC params are not plain JSON: {exc}") from None
    return RpcOptions(method=method, params=params, headers=given_headers, follow_redirects=follow, body_limit=limit)


# -- worker settings -------------------------------------------------------------------------
def check_settings(settings: Mapping[str, Any]) -> None:
    """The worker settings the http/rpc executors read (``http_allow``, ``http_body_limit``,
    ``secrets``), checked when the worker starts: ValidationError naming the setting and the
    bad entry."""
    from .safety import AllowList, secrets_setting

    for name, check in (
        ("http_allow", AllowList.from_setting),
        ("secrets", secrets_setting),
        ("http_body_limit", lambda v: v is None or body_limit(v, "setting http_body_limit")),
    ):
        try:
            check(settings.get(name))
        except ValueError as exc:
            reason = str(exc)  # said once: "http_allow: 'x' is not...", not "http_allow: http_allow: ..."
            for said in (f"{name}: ", f"setting {name} ", f"{name} "):
                if reason.startswith(said):
                    reason = reason[len(said):]
                    break
            raise _error(name, reason) from None  # the engine adds "[worker] " (for every executor)


# -- the executors' validators (run when a job is added or a task submitted) -----------------
def validate_http(spec: TaskSpec) -> None:
    """What an ``http`` job must satisfy before it is stored: an http(s) URL target and
    well-formed options."""
    check_target(spec.target, "http")
    parse_http(spec)


def validate_rpc(spec: TaskSpec) -> None:
    """What an ``rpc`` job must satisfy before it is stored: an http(s) endpoint, a method,
    params that are plain JSON."""
    check_target(spec.target, "rpc")
    parse_rpc(spec)


__all__ = [
    "DEFAULT_BODY_LIMIT", "FRAMING_HEADERS", "HTTP_OPTIONS", "MAX_BODY_LIMIT", "RPC_DEFAULT_BODY_LIMIT", "RPC_OPTIONS", "SCHEMES",
    "HttpOptions", "RpcOptions", "body_limit", "check_known", "check_settings", "check_target", "flag", "headers", "http_method",
    "option_body_limit", "parse_http", "parse_rpc", "success_codes", "validate_http", "validate_rpc",
]
