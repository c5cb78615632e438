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
Forbidden           no         a scheme other than http(s), a host outside ``http_allow``, or a
                               link-local / cloud metadata address ``http_allow`` does not name
ConfigError         no         bad options, an unset or unlisted ``${NAME}``, an invalid URL or
                               header
==================  =========  ==========================================================

Option parsing and validation live in :mod:`.options` (pure, shared with the ``validate``
hooks that check a job when it is added); this module makes the calls.

Resolved secrets never reach the Outcome or the logs: the Outcome is scrubbed as a whole
before it is returned, and a log filter scrubs records emitted while a request runs.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import contextlib
import email.utils
import json
import logging
import math
import time
import uuid
import zlib
from collections.abc import AsyncGenerator, Mapping
from datetime import timezone
from typing import Any, cast
from urllib.parse import unquote, unquote_plus

import attrs
import httpx

from distsched.model import MAX_RESULT_BYTES, Outcome, Task, ValidationError, json_problem
from distsched.ports import ExecutorContext

from .client import acquire
from .options import (
    DEFAULT_BODY_LIMIT,
    RPC_DEFAULT_BODY_LIMIT,
    SCHEMES,
    body_limit,
    parse_http,
    parse_rpc,
)
from .safety import (
    ACTIVE,
    ENV_REF,
    AddressRefused,
    AllowList,
    Scrubber,
    VariableError,
    check_address,
    install_log_filter,
    parse_ip,
    resolve,
    secrets_setting,
)

log = logging.getLogger("distsched.http")

MAX_REDIRECTS = 10
#: How much of a bad JSON-RPC response goes into ``meta.body_excerpt``.
RPC_EXCERPT = 1024
#: Largest JSON-RPC error ``data`` kept in meta (bytes of JSON), and ``message``.
RPC_DATA_BYTES = 64 * 1024
RPC_MESSAGE_BYTES = 8 * 1024
#: How much of an ``http`` response goes into ``meta.body_excerpt`` (the value holds the
#: body; meta is capped at a quarter of a result, so it must stay an excerpt).
EXCERPT_LIMIT = 4096

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
    #: Why the body could not be decoded (an unsupported or corrupt Content-Encoding); the
    #: status still counts (a 503 stays retryable), a success status becomes MalformedResponse.
    body_error: str | None = None


# -- requests ------------------------------------------------------------------------------
def _resolved_headers(given: Mapping[str, str], secrets: set[str],
                      allowed: frozenset[str]) -> tuple[dict[str, str], frozenset[str]]:
    """The headers with ``${NAME}`` resolved, and the (lower-cased) names that held one."""
    out: dict[str, str] = {}
    secret: set[str] = set()
    for name, text in given.items():
        resolved = resolve(text, f"header {name!r}", secrets, allowed)
        if resolved != text:
            secret.add(name.lower())
        out[name] = resolved
    return out, frozenset(secret)


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
            # A codec named by the server (unicode_escape...) can make lone surrogates,
            # which no result can hold.
            return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")
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


def _where(exc: Exception, url: httpx.URL | None) -> str:
    """``HOST:PORT`` of the request that failed (of the hop, after a redirect): never its
    path, query or credentials (a secret in the host is scrubbed with the outcome)."""
    try:
        url = exc.request.url  # type: ignore[attr-defined]  # httpx.RequestError: the request sent
    except (AttributeError, RuntimeError):
        pass
    if url is None or not url.host:
        return ""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{host}:{url.port or {'https': 443}.get(url.scheme, 80)}"


def _transport_failure(exc: Exception, timeout: float, latency_ms: float, url: httpx.URL | None = None) -> Outcome:
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
        # the error_type names the kind, the message the target and httpx's own exception
        # ("ConnectionError: ConnectError: All connection attempts failed" named neither host)
        where = _where(exc, url)
        if isinstance(exc, httpx.ConnectError):
            what = f"cannot connect to {where}" if where else "cannot connect"
        else:
            what = where or "connection"
        text = f"{what}: {exc} ({name})" if str(exc) else f"{what}: {name}"
        return Outcome.failure(text, error_type="ConnectionError", retryable=True, latency_ms=latency_ms)
    return Outcome.failure(detail, error_type=name, retryable=True, latency_ms=latency_ms)


def _check_userinfo(target: str, allowed: frozenset[str]) -> None:
    """Refuse a ``${NAME}`` in the URL's user name or password whose value holds ``/``,
    ``?``, ``#`` or ``@``: it would move the end of the userinfo, and so the host the request
    goes to (``svc:p@ss#x@api`` is host ``ss`` for httpx), sending part of the secret there.
    The value is not quoted."""
    start = target.find("://")
    if start < 0:  # the scheme itself comes from a variable: the URL is the value
        return
    rest = target[start + 3:]
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    authority = rest[: min(ends)] if ends else rest
    userinfo = authority.rpartition("@")[0]
    names = sorted(set(ENV_REF.findall(userinfo)))
    if not names:
        return
    expanded = resolve(userinfo, "the target URL", set(), allowed)
    if any(c in expanded for c in "/?#@"):
        refs = ", ".join(f"${{{name}}}" for name in names)
        raise _config_error(
            f"the target URL's user name or password holds {refs}, and a value there holds '/', '?', '#' or "
            f"'@', which would change the host the request is sent to; percent-encode them in the variable's "
            f"value (%2F, %3F, %23, %40)"
        )


def _secret_pieces(url: httpx.URL, secrets: set[str]) -> set[str]:
    """The URL's host, user name and password where they are a piece of a secret (a value
    such as ``api.example.com/v1`` put where the host goes): errors and logs quote them."""
    pieces = set()
    for piece in (url.host, url.username, url.password or ""):
        if len(piece) >= 3 and any(piece.casefold() in secret.casefold() for secret in secrets):
            pieces.add(piece)
    return pieces


def _invalid_request(req: _Request, exc: Exception) -> str:
    """Why httpx would not build the request, quoting nothing that came from a secret."""
    bad = [name for name, value in req.headers.items() if not value.isascii()]
    if bad:
        held = [name for name in bad if name.lower() in req.secret_headers]
        note = " once its ${NAME} references are expanded" if held else ""
        return f"invalid request: the value of header {bad[0]!r} is not ASCII text{note}"
    if req.secret_headers:
        return f"invalid request: {type(exc).__name__} (the reason is not shown: it may quote a secret)"
    return f"invalid request: {type(exc).__name__}: {exc}"


def _with_query(url: httpx.URL, query: Mapping[str, Any] | None) -> httpx.URL:
    """``url`` with the ``query`` option's parameters added to its query string.

    The URL's own query is kept byte for byte (a signed URL stays signed); a name given in
    both is sent once, with the option's value (the URL's pairs of that name are dropped).
    """
    if not query:
        return url
    try:
        added = str(httpx.QueryParams(query))
    except (TypeError, ValueError) as exc:
        raise _config_error(f"option 'query': {exc}") from None
    kept = [
        pair for pair in url.query.decode("ascii").split("&")
        if pair and unquote_plus(pair.split("=", 1)[0]) not in query
    ]
    return url.copy_with(query="&".join([*kept, added]).encode("ascii"))


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    if a.host != b.host:
        return False
    if a.scheme == b.scheme and a.port == b.port:
        return True
    # http -> https on the same host (default ports) keeps its credentials, as httpx does.
    return a.scheme == "http" and b.scheme == "https" and a.port in (None, 80) and b.port in (None, 443)


class _Inflater:
    """A ``gzip`` / ``deflate`` decoder that never produces more than it is asked for.

    httpx's own decoders inflate each network chunk whole (a 64 KiB chunk of a gzip bomb is
    64 MiB in memory); this one passes ``max_length`` to zlib and keeps the rest compressed.
    """

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.raw_deflate_tried = False
        wbits = zlib.MAX_WBITS | 16 if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._z = zlib.decompressobj(wbits)
        self._started = False

    def take(self, data: bytes, most: int) -> bytes:
        """Up to ``most`` (>= 1) bytes inflated from ``data`` plus what is left over."""
        data = self._z.unconsumed_tail + data
        try:
            out = self._z.decompress(data, most)
        except zlib.error as exc:
            if self.encoding == "deflate" and not self._started:  # raw deflate, as httpx accepts
                self._z, self._started = zlib.decompressobj(-zlib.MAX_WBITS), True
                return self.take(data, most)
            raise httpx.DecodingError(f"{self.encoding} body: {exc}") from None
        self._started = True
        return out

    @property
    def pending(self) -> bool:
        return bool(self._z.unconsumed_tail)


def _inflater(headers: httpx.Headers) -> _Inflater | None:
    codings = [c.strip().lower() for c in headers.get("content-encoding", "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in ("gzip", "x-gzip", "deflate"):
        raise httpx.DecodingError(
            f"Content-Encoding {headers.get('content-encoding')!r} is not supported "
            f"(gzip, deflate and identity are)"
        )
    return _Inflater(codings[0])


async def _read_limited(response: httpx.Response, limit: int) -> tuple[bytes, bool, str | None]:
    """At most ``limit`` bytes of the (decoded) body, whether there was more, and why the
    body could not be decoded (None if it could; the bytes are then what was decoded).

    Never reads the whole body, and never inflates a compressed one past ``limit + 1``
    bytes: memory stays bounded by the limit plus one network chunk.
    """
    buffer = bytearray()
    try:
        inflater = _inflater(response.headers)
    except httpx.DecodingError as exc:  # nothing is downloaded
        return b"", False, str(exc)
    async with contextlib.aclosing(cast("AsyncGenerator[bytes, None]", response.aiter_raw())) as chunks:
        async for chunk in chunks:
            if inflater is None:
                buffer += chunk[: limit + 1 - len(buffer)]
            else:
                try:
                    buffer += inflater.take(chunk, limit + 1 - len(buffer))
                    while inflater.pending and len(buffer) <= limit:
                        buffer += inflater.take(b"", limit + 1 - len(buffer))
                except httpx.DecodingError as exc:
                    return bytes(buffer[:limit]), False, str(exc)
            if len(buffer) > limit:
                return bytes(buffer[:limit]), True, None
    return bytes(buffer), False, None


# -- the executors ---------------------------------------------------------------------------
class _HttpBase:
    kind = "http"
    default_body_limit = DEFAULT_BODY_LIMIT

    def __init__(self, context: ExecutorContext) -> None:
        settings = dict(context.settings or {})
        self.allow = AllowList.from_setting(settings.get("http_allow"))
        self.secret_names = secrets_setting(settings.get("secrets"))
        limit = settings.get("http_body_limit")
        self.body_limit = (
            self.default_body_limit if limit is None else body_limit(limit, "setting http_body_limit")
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
            except ValidationError as exc:  # bad options (see .options)
                raise _config_error(exc.reason) from None
            finally:
                scrubber = Scrubber(secrets)
                token = ACTIVE.set(scrubber)
            outcome = await self._execute(task, request, extra, scrubber)
        except _Refused as refused:
            outcome = refused.outcome
        except VariableError as exc:
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
        resolved = resolve(target, "the target URL", secrets, self.secret_names)
        _check_userinfo(target, self.secret_names)
        try:
            url = httpx.URL(resolved)
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            names = sorted(set(ENV_REF.findall(target)))
            if names and resolved != target:
                # The parser's reason quotes the URL's pieces, and a piece of a secret (a
                # password cut at its "/") is not a secret the scrubber knows: say nothing of it.
                refs = ", ".join(f"${{{name}}}" for name in names)
                raise _config_error(
                    f"the target is not a valid URL once {refs} is expanded (the parser's reason is not "
                    f"shown: it may quote part of a secret); a value must be written as it goes in the URL, "
                    f"percent-encoded where needed"
                ) from None
            raise _config_error(f"the target is not a valid URL: {exc}") from None
        secrets |= _secret_pieces(url, secrets)
        self._check_url(url)
        if url.userinfo and secrets and any(s in unquote(url.userinfo.decode("ascii", "replace")) for s in secrets):
            # httpx turns the userinfo into "Authorization: Basic <base64>": an endpoint that
            # echoes it must not hand the secret back in another encoding.
            userpass = f"{url.username}:{url.password}".encode()
            secrets.add(base64.b64encode(userpass).decode("ascii"))
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
        literal = parse_ip(url.host)
        if literal is not None:  # names are checked once resolved, when connecting (see .client)
            try:
                check_address(literal, self.allow, url.host)
            except AddressRefused as exc:
                raise _forbidden(f"{hop}{exc}", **meta) from None

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
            raise _Refused(_transport_failure(exc, request.timeout, latency, request.url)) from None

    async def _send(self, req: _Request, started: float) -> _Fetched:
        client = self._shared.client()
        try:
            request = client.build_request(
                req.method, req.url, headers=req.headers, content=req.content, timeout=req.timeout,
            )
        except (ValueError, TypeError) as exc:  # e.g. a non-ASCII header value
            raise _config_error(_invalid_request(req, exc)) from None
        origin = request.url
        redirects = 0
        while True:
            try:
                response = await client.send(request, stream=True, follow_redirects=False)
            except AddressRefused as exc:
                latency = round((time.perf_counter() - started) * 1000, 1)
                hop = "redirect to " if redirects else ""
                extra = {"redirects": redirects} if redirects else {}
                raise _forbidden(f"{hop}{exc}", latency_ms=latency, **extra) from None
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
                body, truncated, body_error = await _read_limited(response, req.body_limit)
                return _Fetched(
                    status=response.status_code,
                    reason=response.reason_phrase,
                    headers=response.headers,
                    body=body,
                    truncated=truncated,
                    latency_ms=round((time.perf_counter() - started) * 1000, 1),
                    redirects=redirects,
                    charset=response.charset_encoding,
                    body_error=body_error,
                )
            finally:
                await response.aclose()

    def _meta(self, fetched: _Fetched, scrubber: Scrubber, *, excerpt_limit: int = EXCERPT_LIMIT,
              cut_is_truncated: bool = False) -> dict[str, Any]:
        """``meta`` of a response: status, latency and the first ``excerpt_limit`` bytes of the
        body as text (an excerpt: for ``http`` the body itself, up to ``body_limit``, is the
        value). ``truncated`` says the body was longer than ``body_limit`` (for ``rpc``, also
        that the excerpt was cut)."""
        body, cut = fetched.body, fetched.truncated
        if len(body) > excerpt_limit:
            body, cut = body[:excerpt_limit], True
        excerpt = _decode(body, cut, fetched.charset)
        if cut:
            excerpt = scrubber.tail(excerpt)
        meta: dict[str, Any] = {
            "status": fetched.status,
            "latency_ms": fetched.latency_ms,
            "body_excerpt": excerpt,
            "truncated": fetched.truncated or (cut and cut_is_truncated),
        }
        if fetched.redirects:
            meta["redirects"] = fetched.redirects
        if fetched.body_error is not None:
            meta["body_error"] = fetched.body_error
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
        options = parse_http(task.spec)
        url = self._url(task.spec.target, secrets)
        headers, secret_headers = _resolved_headers(options.headers, secrets, self.secret_names)
        if options.json_body:
            _set_default(headers, "Content-Type", "application/json")
        _with_idempotency_key(headers, task)
        request = _Request(
            method=options.method, url=_with_query(url, options.query), headers=headers, content=options.content,
            follow_redirects=options.follow_redirects,
            body_limit=self.body_limit if options.body_limit is None else options.body_limit,
            timeout=float(task.spec.timeout), secret_headers=secret_headers,
        )
        return request, options.success_codes

    async def _execute(self, task: Task, request: _Request, success: Any, scrubber: Scrubber) -> Outcome:
        fetched = await self._fetch(request)
        self._log(task, request.method, fetched)
        meta = self._meta(fetched, scrubber)
        if fetched.status not in success:
            return _status_failure(fetched, meta)
        if fetched.body_error is not None:
            del meta["body_error"]
            return Outcome.failure(
                f"undecodable response body: {fetched.body_error}", error_type="MalformedResponse",
                retryable=False, **meta,
            )
        if not fetched.truncated and _is_json(fetched.headers):
            parsed, doc = _parse_json(fetched.body)
            if parsed and json_problem(doc) is None:
                return Outcome.success(doc, **meta)
        text = _decode(fetched.body, fetched.truncated, fetched.charset)
        fitted = _fit(text, MAX_RESULT_BYTES)
        if len(fitted) < len(text):  # its JSON would be more than a result holds: cut like a truncation
            meta["truncated"] = True
            fitted = scrubber.tail(scrubber.text(fitted))
        elif fetched.truncated:
            fitted = scrubber.tail(fitted)
        return Outcome.success(fitted, **meta)


class RpcExecutor(_HttpBase):
    """One JSON-RPC 2.0 call (HTTP POST) per task; see the package README for the options."""

    kind = "rpc"
    default_body_limit = RPC_DEFAULT_BODY_LIMIT

    def _prepare(self, task: Task, secrets: set[str]) -> tuple[_Request, Any]:
        options = parse_rpc(task.spec)
        url = self._url(task.spec.target, secrets)
        headers, secret_headers = _resolved_headers(options.headers, secrets, self.secret_names)
        rpc_id = uuid.uuid4().hex
        payload: dict[str, Any] = {"jsonrpc": "2.0", "method": options.method, "id": rpc_id}
        if options.params is not None:
            payload["params"] = options.params
        try:
            content = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise _config_error(f"JSON-RPC params are not plain JSON: {exc}") from None
        _set_default(headers, "Content-Type", "application/json")
        _set_default(headers, "Accept", "application/json")
        _with_idempotency_key(headers, task)
        request = _Request(
            method="POST", url=url, headers=headers, content=content,
            follow_redirects=options.follow_redirects,
            body_limit=self.body_limit if options.body_limit is None else options.body_limit,
            timeout=float(task.spec.timeout), secret_headers=secret_headers,
        )
        return request, rpc_id

    async def _execute(self, task: Task, request: _Request, rpc_id: Any, scrubber: Scrubber) -> Outcome:
        fetched = await self._fetch(request)
        self._log(task, request.method, fetched)
        base = {"status": fetched.status, "latency_ms": fetched.latency_ms, "rpc_id": rpc_id}
        if fetched.redirects:
            base["redirects"] = fetched.redirects

        def malformed(why: str) -> Outcome:
            meta = {**self._meta(fetched, scrubber, excerpt_limit=RPC_EXCERPT, cut_is_truncated=True), **base}
            return Outcome.failure(
                f"malformed JSON-RPC response: {why}", error_type="MalformedResponse",
                retryable=False, **meta,
            )

        if not 200 <= fetched.status < 300:
            meta = {**self._meta(fetched, scrubber, excerpt_limit=RPC_EXCERPT, cut_is_truncated=True), **base}
            outcome = _status_failure(fetched, meta)
            error = _rpc_error(_json_or_none(fetched))
            if error is not None:
                code, message = error["code"], error["message"]
                outcome = attrs.evolve(
                    outcome,
                    error=f"{outcome.error}; JSON-RPC error {code}: {message}",
                    meta={**outcome.meta, "code": code, "message": _fit(message, RPC_MESSAGE_BYTES)},
                )
            return outcome
        if fetched.body_error is not None:
            return malformed(f"undecodable body: {fetched.body_error}")
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
        meta = {**base, "code": code, "message": _fit(message, RPC_MESSAGE_BYTES)}
        if "data" in error:
            meta.update(_rpc_data(error["data"]))
        return Outcome.failure(
            f"JSON-RPC error {code}: {message}",
            error_type="RPCError",
            retryable=code not in RPC_FINAL_CODES and (code == -32603 or -32099 <= code <= -32000),
            **meta,
        )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json(body: bytes) -> tuple[bool, Any]:
    """``(True, document)`` for a body that is strict JSON, ``(False, None)`` otherwise:
    NaN and Infinity (Python's extension) are not JSON, and a document nested too deeply for
    Python to parse is treated as not JSON rather than crashing the attempt."""
    try:
        return True, json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return False, None


def _json_or_none(fetched: _Fetched) -> Any:
    if fetched.truncated or fetched.body_error is not None:
        return None
    return _parse_json(fetched.body)[1]


def _fit(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose JSON encoding (as a result is stored) is at most
    ``limit`` bytes: an escaped control character takes 6 bytes, a non-ASCII one 2 to 4."""
    def size(n: int) -> int:
        return len(json.dumps(text[:n], ensure_ascii=False).encode("utf-8", "replace"))

    if size(len(text)) <= limit:
        return text
    low, high = 0, len(text)  # size(low) <= limit < size(high)
    while high - low > 1:
        middle = (low + high) // 2
        if size(middle) <= limit:
            low = middle
        else:
            high = middle
    return text[:low]


def _rpc_data(data: Any) -> dict[str, Any]:
    """The ``data`` of a JSON-RPC error for ``meta``: itself when it is at most
    :data:`RPC_DATA_BYTES` of JSON, else ``data_excerpt``, the start of its JSON text (meta
    is capped at a quarter of a result: a big ``data`` must not fail the attempt)."""
    if json_problem(data, RPC_DATA_BYTES) is None:
        return {"data": data}
    text = json.dumps(data, ensure_ascii=True)[:RPC_EXCERPT]
    return {"data_excerpt": text}


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
