"""The ``http`` and ``rpc`` executors.

``http`` makes one HTTP request (``target`` is the URL); ``rpc`` makes one JSON-RPC 2.0
call over HTTP POST (``target`` is the endpoint). Both share the worker's client (see
:mod:`.client`), resolve ``${NAME}`` references and check the allow-list (see
:mod:`.safety`), stream the response and stop reading at the body limit, and turn every
failure into an :class:`~distsched.model.Outcome` with an ``error_type`` that says whether
another attempt can help:

==================  =========  ==========================================================
error_type          retryable  when
==================  =========  ==========================================================
ConnectionError     yes        connect/read/write errors, protocol errors, proxy errors
Timeout             yes        any httpx timeout, or the whole request exceeded the timeout
HTTPStatus          5xx, 408,  a status outside ``success_codes`` (429/503 carry
                    429        ``retry_after`` from ``Retry-After``)
RPCError            -32603,    the JSON-RPC response is an error object
                    -32000..
                    -32099
MalformedResponse   no         an undecodable body, or a JSON-RPC response that breaks 2.0
Forbidden           no         a scheme other than http(s), or a host outside ``http_allow``
ConfigError         no         bad options, an unset ``${NAME}``, an invalid URL or header
==================  =========  ==========================================================

Resolved secrets never reach the Outcome or the logs: the Outcome is scrubbed as a whole
before it is returned, and a log filter scrubs records emitted while a request runs.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import email.utils
import json
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncGenerator, Mapping
from datetime import timezone
from typing import Any, cast

import attrs
import httpx

from distsched.model import Outcome, Task
from distsched.ports import ExecutorContext

from .client import acquire
from .safety import ACTIVE, AllowList, MissingVariable, Scrubber, install_log_filter, resolve

log = logging.getLogger("distsched.http")

DEFAULT_BODY_LIMIT = 64 * 1024
RPC_DEFAULT_BODY_LIMIT = 1024 * 1024
MAX_BODY_LIMIT = 16 * 1024 * 1024
MAX_REDIRECTS = 10
#: How much of a bad JSON-RPC response goes into ``meta.body_excerpt``.
RPC_EXCERPT = 1024
SCHEMES = ("http", "https")

HTTP_OPTIONS = frozenset(
    {"method", "headers", "query", "params", "json", "body", "success_codes",
     "follow_redirects", "body_limit"}
)
RPC_OPTIONS = frozenset({"method", "params", "headers", "follow_redirects", "body_limit"})

_METHOD_RE = re.compile(r"^[A-Za-z]{1,20}$")
_CODE_RE = re.compile(r"^([1-5])(xx|\d\d)$", re.IGNORECASE)
#: JSON-RPC codes another attempt cannot fix (parse error, invalid request/method/params).
RPC_FINAL_CODES = frozenset({-32700, -32600, -32601, -32602})


class _Refused(Exception):
    """Ends a run early with a ready Outcome."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


def _config_error(message: str) -> _Refused:
    return _Refused(Outcome.failure(message, error_type="ConfigError", retryable=False))


def _forbidden(message: str, **meta: Any) -> _Refused:
    return _Refused(Outcome.failure(message, error_type="Forbidden", retryable=False, **meta))


@attrs.define
class _Request:
    method: str
    url: httpx.URL
    headers: dict[str, str]
    params: dict[str, Any] | None
    content: bytes | None
    follow_redirects: bool
    body_limit: int
    timeout: float
    #: Lower-cased names of headers whose value came from the environment.
    secret_headers: frozenset[str]


@attrs.define
class _Fetched:
    status: int
    reason: str
    headers: httpx.Headers
    body: bytes
    truncated: bool
    latency_ms: float
    redirects: int
    charset: str | None


# -- options ---------------------------------------------------------------------------------
def _check_options(options: Mapping[str, Any], known: frozenset[str], kind: str) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        raise _config_error(
            f"{kind} executor: unknown option(s) {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(sorted(known))})"
        )


def _method(value: Any, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or not _METHOD_RE.match(value):
        raise _config_error(f"option 'method' must be an HTTP method such as GET or POST, not {value!r}")
    return value.upper()


def _bool(options: Mapping[str, Any], name: str, default: bool) -> bool:
    value = options.get(name, default)
    if not isinstance(value, bool):
        raise _config_error(f"option {name!r} must be true or false, not {value!r}")
    return value


def _body_limit(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_BODY_LIMIT:
        raise ValueError(f"{where} must be a number of bytes between 0 and {MAX_BODY_LIMIT}, not {value!r}")
    return value


def _option_limit(options: Mapping[str, Any], default: int) -> int:
    if "body_limit" not in options:
        return default
    try:
        return _body_limit(options["body_limit"], "option 'body_limit'")
    except ValueError as exc:
        raise _config_error(str(exc)) from None


def _success_codes(value: Any) -> frozenset[int]:
    if value is None:
        return frozenset(range(200, 300))
    if isinstance(value, (str, int)):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _config_error(f"option 'success_codes' must be a list of status codes or classes like '2xx', not {value!r}")
    codes: set[int] = set()
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599:
            codes.add(item)
            continue
        match = _CODE_RE.match(item.strip()) if isinstance(item, str) else None
        if match is None:
            raise _config_error(
                f"option 'success_codes': {item!r} is not a status code (100-599) or a class like '2xx'"
            )
        if match.group(2).lower() == "xx":
            base = int(match.group(1)) * 100
            codes.update(range(base, base + 100))
        else:
            codes.add(int(item.strip()))
    return frozenset(codes)


def _headers(value: Any, secrets: set[str]) -> tuple[dict[str, str], frozenset[str]]:
    if value is None:
        return {}, frozenset()
    if not isinstance(value, dict):
        raise _config_error(f"option 'headers' must be a table of name = value, not {type(value).__name__}")
    headers: dict[str, str] = {}
    secret: set[str] = set()
    for name, raw in value.items():
        if not isinstance(name, str) or not name:
            raise _config_error(f"option 'headers': {name!r} is not a header name")
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise _config_error(f"option 'headers': the value of {name!r} must be a string")
        text = str(raw)
        resolved = resolve(text, f"header {name!r}", secrets)
        if resolved != text:
            secret.add(name.lower())
        headers[name] = resolved
    return headers, frozenset(secret)


def _with_idempotency_key(headers: dict[str, str], task: Task) -> dict[str, str]:
    if not any(name.lower() == "idempotency-key" for name in headers):
        headers["Idempotency-Key"] = task.attempt_id
    # Ask for an uncompressed body: the body limit then bounds memory too (a small gzip
    # chunk cannot expand into a huge buffer). A user-set Accept-Encoding wins.
    _set_default(headers, "Accept-Encoding", "identity")
    return headers


def _set_default(headers: dict[str, str], name: str, value: str) -> None:
    if not any(h.lower() == name.lower() for h in headers):
        headers[name] = value


# -- responses -------------------------------------------------------------------------------
def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, round(when.timestamp() - current, 3))


def _decode(body: bytes, truncated: bool, charset: str | None) -> str:
    """Text of (a prefix of) a body; a character cut by the limit is dropped, not mangled."""
    for encoding in (charset, "utf-8"):
        if not encoding:
            continue
        try:
            text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(body, final=not truncated)
        except Exception:  # unknown or non-text codec named by the server
            continue
        if isinstance(text, str):
            return text
    return body.decode("utf-8", errors="replace")


def _is_json(headers: httpx.Headers) -> bool:
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _status_failure(fetched: _Fetched, meta: dict[str, Any]) -> Outcome:
    status = fetched.status
    retryable = status >= 500 or status in (408, 429)
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(fetched.headers.get("retry-after"))
    if 300 <= status < 400 and "location" in fetched.headers:
        meta["location"] = fetched.headers["location"]
    return Outcome.failure(
        f"HTTP {status} {fetched.reason}".strip(),
        error_type="HTTPStatus",
        retryable=retryable,
        retry_after=retry_after,
        **meta,
    )


def _transport_failure(exc: Exception, timeout: float, latency_ms: float) -> Outcome:
    name = type(exc).__name__
    detail = f"{name}: {exc}" if str(exc) else name
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, httpx.TimeoutException)):
        return Outcome.failure(
            f"request timed out after {timeout:g}s ({name})", error_type="Timeout",
            retryable=True, latency_ms=latency_ms,
        )
    if isinstance(exc, (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return Outcome.failure(
            f"invalid request: {detail}", error_type="ConfigError", retryable=False, latency_ms=latency_ms
        )
    if isinstance(exc, httpx.DecodingError):
        return Outcome.failure(
            f"undecodable response body: {detail}", error_type="MalformedResponse",
            retryable=False, latency_ms=latency_ms,
        )
    if isinstance(exc, httpx.TransportError):
        return Outcome.failure(detail, error_type="ConnectionError", retryable=True, latency_ms=latency_ms)
    return Outcome.failure(detail, error_type=name, retryable=True, latency_ms=latency_ms)


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    if a.host != b.host:
        return False
    if a.scheme == b.scheme and a.port == b.port:
        return True
    # http -> https on the same host (default ports) keeps its credentials, as httpx does.
    return a.scheme == "http" and b.scheme == "https" and a.port in (None, 80) and b.port in (None, 443)


async def _read_limited(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the body, and whether there was more (never reads it all)."""
    buffer = bytearray()
    async with contextlib.aclosing(cast("AsyncGenerator[bytes, None]", response.aiter_bytes())) as chunks:
        async for chunk in chunks:
            buffer += chunk[: limit + 1 - len(buffer)]
            if len(buffer) > limit:
                return bytes(buffer[:limit]), True
    return bytes(buffer), False


# -- the executors ---------------------------------------------------------------------------
class _HttpBase:
    kind = "http"
    default_body_limit = DEFAULT_BODY_LIMIT

    def __init__(self, context: ExecutorContext) -> None:
        settings = dict(context.settings or {})
        self.allow = AllowList.from_setting(settings.get("http_allow"))
        limit = settings.get("http_body_limit")
        self.body_limit = (
            self.default_body_limit if limit is None else _body_limit(limit, "setting http_body_limit")
        )
        install_log_filter()
        self._shared = acquire(context)
        self._closed = False

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._shared.release()

    # The run skeleton: prepare (resolve, validate, check), send, build the outcome, scrub.
    async def run(self, task: Task) -> Outcome:
        secrets: set[str] = set()
        token = None
        try:
            try:
                request, extra = self._prepare(task, secrets)
            finally:
                scrubber = Scrubber(secrets)
                token = ACTIVE.set(scrubber)
            outcome = await self._execute(task, request, extra, scrubber)
        except _Refused as refused:
            outcome = refused.outcome
        except MissingVariable as exc:
            outcome = Outcome.failure(str(exc), error_type="ConfigError", retryable=False)
        except Exception as exc:
            log.warning("%s executor: unexpected error in task %s", self.kind, task.id, exc_info=True)
            outcome = Outcome.failure(f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__)
        finally:
            if token is not None:
                ACTIVE.reset(token)
        return scrubber.outcome(outcome)

    def _prepare(self, task: Task, secrets: set[str]) -> tuple[_Request, Any]:
        raise NotImplementedError

    async def _execute(self, task: Task, request: _Request, extra: Any, scrubber: Scrubber) -> Outcome:
        raise NotImplementedError

    # -- shared steps --------------------------------------------------------------------
    def _url(self, target: str, secrets: set[str]) -> httpx.URL:
        resolved = resolve(target, "the target URL", secrets)
        try:
            url = httpx.URL(resolved)
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            raise _config_error(f"the target is not a valid URL: {exc}") from None
        self._check_url(url)
        return url

    def _check_url(self, url: httpx.URL, **meta: Any) -> None:
        hop = "redirect to " if meta else ""
        if url.scheme not in SCHEMES:
            raise _forbidden(f"{hop}scheme {url.scheme or '(none)'!r} refused: only http and https are allowed", **meta)
        if not url.host:
            if meta:
                raise _forbidden(f"{hop}a URL without a host refused", **meta)
            raise _config_error("the target URL has no host")
        if self.allow is not None and not self.allow.allows(url.raw_host.decode("ascii", "replace")):
            raise _forbidden(f"{hop}host {url.host!r} refused: not in this worker's http_allow list", **meta)

    async def _fetch(self, request: _Request) -> _Fetched:
        started = time.perf_counter()
        # The worker's own wait_for(timeout) is the authority; this cap only bounds a request
        # made outside a worker (a server trickling bytes defeats httpx's per-read timeouts).
        # The grace lets the worker's timer, or httpx's, fire first.
        cap = request.timeout + min(1.0, 0.1 * request.timeout)
        try:
            return await asyncio.wait_for(self._send(request, started), cap)
        except _Refused:
            raise
        except (httpx.HTTPError, httpx.InvalidURL, asyncio.TimeoutError, TimeoutError) as exc:
            latency = round((time.perf_counter() - started) * 1000, 1)
            raise _Refused(_transport_failure(exc, request.timeout, latency)) from None

    async def _send(self, req: _Request, started: float) -> _Fetched:
        client = self._shared.client()
        try:
            request = client.build_request(
                req.method, req.url, headers=req.headers, params=req.params,
                content=req.content, timeout=req.timeout,
            )
        except (ValueError, TypeError) as exc:  # e.g. a non-ASCII header value
            raise _config_error(f"invalid request: {type(exc).__name__}: {exc}") from None
        origin = request.url
        redirects = 0
        while True:
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                following = response.next_request
                if req.follow_redirects and following is not None:
                    redirects += 1
                    latency = round((time.perf_counter() - started) * 1000, 1)
                    meta = {"status": response.status_code, "redirects": redirects, "latency_ms": latency}
                    if redirects > MAX_REDIRECTS:
                        raise _Refused(Outcome.failure(
                            f"more than {MAX_REDIRECTS} redirects", error_type="HTTPStatus",
                            retryable=False, **meta,
                        ))
                    self._check_url(following.url, **meta)
                    if not _same_origin(origin, following.url):
                        for name in req.secret_headers:
                            following.headers.pop(name, None)
                    request = following
                    continue
                body, truncated = await _read_limited(response, req.body_limit)
                return _Fetched(
                    status=response.status_code,
                    reason=response.reason_phrase,
                    headers=response.headers,
                    body=body,
                    truncated=truncated,
                    latency_ms=round((time.perf_counter() - started) * 1000, 1),
                    redirects=redirects,
                    charset=response.charset_encoding,
                )
            finally:
                await response.aclose()

    def _meta(self, fetched: _Fetched, scrubber: Scrubber, *, excerpt_limit: int | None = None) -> dict[str, Any]:
        body, truncated = fetched.body, fetched.truncated
        if excerpt_limit is not None and len(body) > excerpt_limit:
            body, truncated = body[:excerpt_limit], True
        excerpt = _decode(body, truncated, fetched.charset)
        if truncated:
            excerpt = scrubber.tail(excerpt)
        meta: dict[str, Any] = {
            "status": fetched.status,
            "latency_ms": fetched.latency_ms,
            "body_excerpt": excerpt,
            "truncated": fetched.truncated or truncated,
        }
        if fetched.redirects:
            meta["redirects"] = fetched.redirects
        return meta

    def _log(self, task: Task, method: str, fetched: _Fetched) -> None:
        log.debug(
            "%s %s %s (task %s) -> %s in %.1f ms%s", self.kind, method, task.spec.target, task.id,
            fetched.status, fetched.latency_ms, " (truncated)" if fetched.truncated else "",
        )


class HttpExecutor(_HttpBase):
    """One HTTP request per task; see the package README for the options."""

    kind = "http"

    def _prepare(self, task: Task, secrets: set[str]) -> tuple[_Request, Any]:
        options = task.spec.options
        _check_options(options, HTTP_OPTIONS, self.kind)
        has_json, has_body = "json" in options, "body" in options
        if has_json and has_body:
            raise _config_error("options 'json' and 'body' are exclusive: give one request body")
        if has_body and not isinstance(options["body"], str):
            raise _config_error(f"option 'body' must be a string, not {type(options['body']).__name__}")
        if "query" in options and "params" in options:
            raise _config_error("options 'query' and 'params' are the same thing: give one")
        query = options.get("query", options.get("params"))
        if query is not None and not (isinstance(query, dict) and all(isinstance(k, str) for k in query)):
            raise _config_error("option 'query' must be a table of name = value")
        method = _method(options.get("method"), "POST" if has_json or has_body else "GET")
        success = _success_codes(options.get("success_codes"))
        follow = _bool(options, "follow_redirects", False)
        limit = _option_limit(options, self.body_limit)
        url = self._url(task.spec.target, secrets)
        headers, secret_headers = _headers(options.get("headers"), secrets)
        content = None
        if has_json:
            try:
                content = json.dumps(options["json"], allow_nan=False, separators=(",", ":")).encode()
            except (TypeError, ValueError) as exc:
                raise _config_error(f"option 'json' is not plain JSON: {exc}") from None
            _set_default(headers, "Content-Type", "application/json")
        elif has_body:
            content = options["body"].encode("utf-8")
        _with_idempotency_key(headers, task)
        request = _Request(
            method=method, url=url, headers=headers, params=query, content=content,
            follow_redirects=follow, body_limit=limit, timeout=float(task.spec.timeout),
            secret_headers=secret_headers,
        )
        return request, success

    async def _execute(self, task: Task, request: _Request, success: Any, scrubber: Scrubber) -> Outcome:
        fetched = await self._fetch(request)
        self._log(task, request.method, fetched)
        meta = self._meta(fetched, scrubber)
        if fetched.status not in success:
            return _status_failure(fetched, meta)
        value: Any = meta["body_excerpt"]
        if not fetched.truncated and _is_json(fetched.headers):
            try:
                value = json.loads(fetched.body)
            except ValueError:
                pass
        return Outcome.success(value, **meta)


class RpcExecutor(_HttpBase):
    """One JSON-RPC 2.0 call (HTTP POST) per task; see the package README for the options."""

    kind = "rpc"
    default_body_limit = RPC_DEFAULT_BODY_LIMIT

    def _prepare(self, task: Task, secrets: set[str]) -> tuple[_Request, Any]:
        options = task.spec.options
        _check_options(options, RPC_OPTIONS, self.kind)
        method = options.get("method")
        if not isinstance(method, str) or not method:
            raise _config_error(
                "rpc executor: options.method is required (the JSON-RPC method name, a non-empty string)"
                if method is None else f"rpc executor: options.method must be a non-empty string, not {method!r}"
            )
        if "params" in options:
            params = options["params"]
            if not isinstance(params, (list, dict)):
                raise _config_error(f"option 'params' must be a list or a table, not {type(params).__name__}")
        elif task.spec.args and task.spec.kwargs:
            raise _config_error(
                "JSON-RPC params are positional (args) or named (kwargs), not both; "
                "give one, or set options.params"
            )
        elif task.spec.kwargs:
            params = dict(task.spec.kwargs)
        elif task.spec.args:
            params = list(task.spec.args)
        else:
            params = None
        follow = _bool(options, "follow_redirects", False)
        limit = _option_limit(options, self.body_limit)
        url = self._url(task.spec.target, secrets)
        headers, secret_headers = _headers(options.get("headers"), secrets)
        rpc_id = uuid.uuid4().hex
        payload: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": rpc_id}
        if params is not None:
            payload["params"] = params
        try:
            content = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise _config_error(f"JSON-RPC params are not plain JSON: {exc}") from None
        _set_default(headers, "Content-Type", "application/json")
        _set_default(headers, "Accept", "application/json")
        _with_idempotency_key(headers, task)
        request = _Request(
            method="POST", url=url, headers=headers, params=None, content=content,
            follow_redirects=follow, body_limit=limit, timeout=float(task.spec.timeout),
            secret_headers=secret_headers,
        )
        return request, rpc_id

    async def _execute(self, task: Task, request: _Request, rpc_id: Any, scrubber: Scrubber) -> Outcome:
        fetched = await self._fetch(request)
        self._log(task, request.method, fetched)
        base = {"status": fetched.status, "latency_ms": fetched.latency_ms, "rpc_id": rpc_id}
        if fetched.redirects:
            base["redirects"] = fetched.redirects

        def malformed(why: str) -> Outcome:
            meta = {**self._meta(fetched, scrubber, excerpt_limit=RPC_EXCERPT), **base}
            return Outcome.failure(
                f"malformed JSON-RPC response: {why}", error_type="MalformedResponse",
                retryable=False, **meta,
            )

        if not 200 <= fetched.status < 300:
            meta = {**self._meta(fetched, scrubber, excerpt_limit=RPC_EXCERPT), **base}
            outcome = _status_failure(fetched, meta)
            error = _rpc_error(_json_or_none(fetched))
            if error is not None:
                code, message = error["code"], error["message"]
                outcome = attrs.evolve(
                    outcome,
                    error=f"{outcome.error}; JSON-RPC error {code}: {message}",
                    meta={**outcome.meta, "code": code, "message": message},
                )
            return outcome
        if fetched.truncated:
            return malformed(f"the response is larger than body_limit ({request.body_limit} bytes)")
        doc = _json_or_none(fetched)
        if doc is None:
            return malformed("the body is not JSON")
        if not isinstance(doc, dict):
            return malformed(f"expected a JSON object, got {type(doc).__name__}")
        if doc.get("jsonrpc") != "2.0":
            return malformed("'jsonrpc' is not \"2.0\"")
        has_result, has_error = "result" in doc, "error" in doc
        if has_result and has_error:
            return malformed("it has both 'result' and 'error'")
        if not has_result and not has_error:
            return malformed("it has neither 'result' nor 'error'")
        if "id" not in doc:
            return malformed("it has no 'id'")
        # A server that could not read the request's id answers an error with id null.
        if doc["id"] != rpc_id and not (has_error and doc["id"] is None):
            return malformed(f"its id {doc['id']!r} is not the request's ({rpc_id})")
        if has_result:
            return Outcome.success(doc["result"], **base)
        error = _rpc_error(doc)
        if error is None:
            return malformed("'error' is not an object with an integer 'code' and a string 'message'")
        code, message = error["code"], error["message"]
        meta = {**base, "code": code, "message": message}
        if "data" in error:
            meta["data"] = error["data"]
        return Outcome.failure(
            f"JSON-RPC error {code}: {message}",
            error_type="RPCError",
            retryable=code not in RPC_FINAL_CODES and (code == -32603 or -32099 <= code <= -32000),
            **meta,
        )


def _json_or_none(fetched: _Fetched) -> Any:
    if fetched.truncated:
        return None
    try:
        return json.loads(fetched.body)
    except ValueError:
        return None


def _rpc_error(doc: Any) -> dict[str, Any] | None:
    """The error object of a JSON-RPC response, if it is a well-formed one."""
    if not isinstance(doc, dict):
        return None
    error = doc.get("error")
    if not isinstance(error, dict):
        return None
    code, message = error.get("code"), error.get("message")
    if isinstance(code, bool) or not isinstance(code, int) or not isinstance(message, str):
        return None
    return error


__all__ = ["HttpExecutor", "RpcExecutor", "parse_retry_after"]
