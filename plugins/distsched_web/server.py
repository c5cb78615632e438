"""The dashboard and REST API: one Starlette application over one DistributeSchedule.

Pages are server-rendered with Jinja2 and work without JavaScript; ``static/live.js``
refreshes the ``data-live`` regions of the page every few seconds by fetching the same URL
(filters live in the query string, so they survive; scroll is untouched because only those
regions are replaced). The JSON API under ``/api/v1`` serves the same data
(``/api/v1/openapi.json`` documents it). Plugins add pages and API routes through the
``distsched_web_routes`` hook; ``/metrics`` serves prometheus-client's registry when that
library is installed (the metrics plugin fills it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import attrs
import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from distsched.history import shown_error
from distsched.model import (
    AlreadyExists,
    DistschedError,
    NotFound,
    PluginError,
    TaskState,
    ValidationError,
    VersionConflict,
    past_at,
)
from distsched.urls import redact_text, redact_url

from . import data as q
from .auth import CSRF_COOKIE, SESSION_COOKIE, SESSION_SECONDS, Security
from .openapi import openapi_document

log = logging.getLogger("distsched.web")
HERE = Path(__file__).parent
MAX_BODY = 1_000_000
#: Deepest nesting of arrays and objects a JSON body may have (the JSON parser's recursion
#: would otherwise decide, at about 1,000 levels and depending on the stack: a 500).
MAX_DEPTH = 100
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


class ApiError(Exception):
    def __init__(self, status: int, field: str | None, reason: str, code: str = "invalid") -> None:
        super().__init__(reason)
        self.status, self.field, self.reason, self.code = status, field, reason, code


def _unreachable(exc: BaseException, transient: tuple[type[BaseException], ...]) -> BaseException | None:
    """What in ``exc`` says the store does not answer, or None. A store that cannot be opened
    (not yet opened when it went down: the dashboard's first request) comes as a PluginError
    raised from the backend's error, itself raised from the socket's: its causes are looked
    at too, before its backend's ``transient_errors`` are known. A TLS error (an untrusted
    certificate) is an OSError but no outage: it stays an error naming the reason."""
    unreachable: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError, *transient)
    if isinstance(exc, unreachable) and not isinstance(exc, ssl.SSLError):
        return exc
    if not isinstance(exc, PluginError):
        return None
    seen: set[int] = set()
    cause = exc.__cause__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLError):
            return None
        if isinstance(cause, unreachable):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__
    return None


class _Repeats:
    """A WARNING said at most once per ``window`` seconds for each text; the repeats in between
    are counted and said with the next one (``(12 more in the last 60s)``). A store that is
    down answers every request - the pages' live refresh included - with the same 503, which
    logged one WARNING per request."""

    #: Distinct texts remembered; past it the oldest is forgotten (texts come from errors).
    MAX_TEXTS = 100

    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._seen: dict[str, tuple[float, int]] = {}  # text -> (when last said, repeats since)

    def warning(self, text: str) -> None:
        now = self.clock()
        said = self._seen.get(text)
        if said is not None and now - said[0] < self.window:
            self._seen[text] = (said[0], said[1] + 1)
            return
        if said is not None and said[1]:
            log.warning("%s (%d more in the last %.0fs)", text, said[1], now - said[0])
        else:
            log.warning("%s", text)
        self._seen.pop(text, None)
        self._seen[text] = (now, 0)
        if len(self._seen) > self.MAX_TEXTS:
            del self._seen[next(iter(self._seen))]


_store_warnings = _Repeats()


def _error_of(exc: BaseException, transient: tuple[type[BaseException], ...] = (), *,
              store_open: bool = True) -> ApiError:
    """The API error of ``exc``. ``store_open``: whether the app's store was open when the
    request failed; a plugin error while it was not is the store's open failing (a schema
    that needs migrating, a refused login...): the server's fault, not the request's - a
    503 naming why, as for a store that does not answer."""
    if isinstance(exc, ApiError):
        return exc
    if (down := _unreachable(exc, transient)) is not None:
        _store_warnings.warning(f"web: the store did not answer: {type(down).__name__}")
        return ApiError(503, None, f"the store does not answer ({type(down).__name__}); try again shortly",
                        "unavailable")
    if isinstance(exc, PluginError) and not store_open:
        _store_warnings.warning(f"web: the store cannot be opened: {redact_text(str(exc))}")
        return ApiError(503, None, f"the store cannot be opened: {redact_text(str(exc))}", "unavailable")
    if isinstance(exc, ValidationError):
        return ApiError(400, exc.field, exc.reason)
    if isinstance(exc, NotFound):
        return ApiError(404, None, str(exc), "not_found")
    if isinstance(exc, (AlreadyExists, VersionConflict)):
        return ApiError(409, None, str(exc), "conflict")
    if isinstance(exc, DistschedError):
        return ApiError(400, None, str(exc))
    if isinstance(exc, HTTPException):
        return ApiError(exc.status_code, None, str(exc.detail), "http")
    log.exception("web: unexpected error")
    return ApiError(500, None, "internal error (see the server log)", "internal")


def _status_title(status: int) -> str:
    """An error page's title: ``503 Service Unavailable`` (the status alone for one Python
    does not name)."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _json_error(err: ApiError) -> JSONResponse:
    body: dict[str, Any] = {"error": {"code": err.code, "field": err.field, "reason": err.reason}}
    headers = {"WWW-Authenticate": 'Bearer realm="distsched"'} if err.status == 401 else None
    return JSONResponse(body, status_code=err.status, headers=headers)


@attrs.define
class Dashboard:
    """The web application's state: the facade, the queries, security and templates."""

    app: Any
    security: Security
    data: q.WebData
    env: jinja2.Environment
    nav: list[tuple[str, str]] = attrs.field(factory=list)

    # -- helpers ----------------------------------------------------------------------
    def transient(self) -> tuple[type[BaseException], ...]:
        """The exception types that mean the store is unreachable for now (its backend's
        ``transient_errors``)."""
        storage = getattr(self.app.engine, "storage", None)
        return tuple(getattr(storage, "transient_errors", ()))

    def error_of(self, exc: BaseException) -> ApiError:
        """``exc`` as the API error a request answers (:func:`_error_of`)."""
        return _error_of(exc, self.transient(), store_open=getattr(self.app.engine, "storage", None) is not None)

    def logged_in(self, request: Request) -> bool:
        return self.security.session_ok(request.cookies.get(SESSION_COOKIE))

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        csrf_cookie = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
        new_cookie = None
        if not csrf_cookie:
            csrf_cookie = new_cookie = self.security.new_csrf_cookie()
        context.update(
            request=request, nav=self.nav, logged_in=self.logged_in(request), writable=self.security.writable,
            csrf=self.security.csrf_token(csrf_cookie), storage=redact_url(self.app.config.storage),
            path=request.url.path, here=_here(request), qs=_qs,
        )
        if "title" not in context and "error" in context:
            # every error page (a 503 while the store is down, a 404...): the tab says which
            context["title"] = _status_title(status)
        html = self.env.get_template(name).render(**context)
        response = HTMLResponse(html, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = ("default-src 'self'; style-src 'self'; script-src 'self'; "
                                                       "img-src 'self' data:; frame-ancestors 'none'")
        if new_cookie:
            self._cookie(response, CSRF_COOKIE, new_cookie, max_age=None)
        return response

    def _cookie(self, response: Response, name: str, value: str, *, max_age: int | None) -> None:
        response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict",
                            secure=self.security.secure_cookies, path="/")

    async def form(self, request: Request) -> dict[str, str]:
        """The form of a page POST, after the CSRF check."""
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            raise ApiError(413, None, "form too large")
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        if not self.security.csrf_ok(request.cookies.get(CSRF_COOKIE), values.get("csrf")):
            raise ApiError(403, "csrf", "the form's CSRF token is missing or stale: reload the page and try again",
                           "csrf")
        return values


def _qs(base: dict[str, Any], **changes: Any) -> str:
    merged = {k: v for k, v in {**base, **changes}.items() if v not in (None, "")}
    return "?" + urlencode(merged) if merged else ""


# -- decorators -------------------------------------------------------------------------
Handler = Callable[[Dashboard, Request], Awaitable[Response]]


def api(method: Handler) -> Callable[[Dashboard], Callable[[Request], Awaitable[Response]]]:
    """An API endpoint: token check on mutating methods, JSON errors."""

    def bind(d: Dashboard) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(method)
        async def endpoint(request: Request) -> Response:
            try:
                _check_api_auth(d, request)
                return await method(d, request)
            except Exception as exc:  # every error becomes JSON, never a traceback
                return _json_error(d.error_of(exc))

        return endpoint

    return bind


def _check_api_auth(d: Dashboard, request: Request) -> None:
    mutating = request.method in MUTATING
    if not mutating and not d.security.reads_need_login:
        return
    if not d.security.writable:
        raise ApiError(403, None, "the dashboard is read-only: start it with DISTSCHED_WEB_TOKEN set to allow "
                                  "changes", "read_only")
    if not d.security.bearer_ok(request.headers.get("authorization")):
        raise ApiError(401, "Authorization", "a valid 'Authorization: Bearer <token>' header is required",
                       "unauthorized")


def page(method: Handler) -> Callable[[Dashboard], Callable[[Request], Awaitable[Response]]]:
    """A page: login required for reads on a non-loopback bind, and for every POST; HTML errors."""

    def bind(d: Dashboard) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(method)
        async def endpoint(request: Request) -> Response:
            try:
                if request.method in MUTATING:
                    await d.form(request)  # CSRF first: it needs no session
                    if not d.security.writable:
                        raise ApiError(403, None, "the dashboard is read-only: start it with DISTSCHED_WEB_TOKEN "
                                                  "set to allow changes", "read_only")
                    if not d.logged_in(request):
                        return RedirectResponse(f"/login?next={quote(_here(request), safe='')}", status_code=303)
                elif d.security.reads_need_login and not d.logged_in(request):
                    return RedirectResponse(f"/login?next={quote(_here(request), safe='')}", status_code=303)
                return await method(d, request)
            except Exception as exc:
                err = d.error_of(exc)
                return d.render(request, "error.html", status=err.status, error=err)

        return endpoint

    return bind


def _here(request: Request) -> str:
    """The path and query of ``request``: where the login sends the browser back to."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


# -- API --------------------------------------------------------------------------------
async def _body(request: Request) -> dict[str, Any]:
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        raise ApiError(413, None, f"body larger than {MAX_BODY} bytes", "too_large")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ApiError(413, None, f"body larger than {MAX_BODY} bytes", "too_large")
    too_deep = ApiError(400, "body", f"nested deeper than {MAX_DEPTH} levels of arrays and objects")
    try:
        value = json.loads(raw or b"null")
    except RecursionError:
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "body", f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "body", f"must be a JSON object, not {type(value).__name__}")
    if _depth(value) > MAX_DEPTH:
        raise too_deep
    return value


def _depth(value: Any) -> int:
    """How deep arrays and objects nest in a JSON value (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if level <= MAX_DEPTH:
            stack.extend((child, level + 1) for child in children)
    return deepest


def _params(request: Request, default_limit: int = 50, cursor: str = "cursor") -> tuple[str | None, int]:
    """The page's cursor (``after`` for the jobs) and its size, checked."""
    return (q.check_cursor(request.query_params.get(cursor), cursor),
            q.check_limit(request.query_params.get("limit"), default_limit))


@api
async def api_overview(d: Dashboard, request: Request) -> Response:
    return JSONResponse(await d.data.overview())


@api
async def api_jobs(d: Dashboard, request: Request) -> Response:
    if request.method == "POST":
        body = await _body(request)
        stored = await _put_job(d, body, replace=False)
        return JSONResponse(await d.data.job(stored.name), status_code=201)
    after, limit = _params(request, cursor="after")
    return JSONResponse(await d.data.jobs(after=after, limit=limit))


async def _put_job(d: Dashboard, body: dict[str, Any], *, replace: bool, name: str | None = None) -> Any:
    from distsched.model import JOB_FIELDS, build_job

    body = dict(body)
    given = body.pop("name", None)
    if name is not None and given is not None and given != name:
        raise ValidationError("name", f"the body names {given!r} but the path names {name!r}")
    name = name if name is not None else given
    if not isinstance(name, str) or not name:
        raise ValidationError("name", "missing (every job needs a unique name)")
    for key in body:
        if key not in JOB_FIELDS:
            raise ValidationError(key, f"unknown field (expected name, {', '.join(JOB_FIELDS)})")
    try:
        config = build_job(name, **body)
    except ValidationError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError("body", f"{type(exc).__name__}: {exc}") from None
    return await d.app.put_job(config, replace=replace)


@api
async def api_job(d: Dashboard, request: Request) -> Response:
    name = request.path_params["name"]
    if request.method == "PUT":
        body = await _body(request)
        existed = True
        try:
            await d.app.get_job(name)
        except NotFound:
            existed = False
        stored = await _put_job(d, body, replace=True, name=name)
        return JSONResponse(await d.data.job(stored.name), status_code=200 if existed else 201)
    if request.method == "DELETE":
        if not await d.app.remove_job(name):
            raise NotFound(f"job {name!r} does not exist")
        return JSONResponse({"removed": name})
    return JSONResponse(await d.data.job(name))


@api
async def api_job_history(d: Dashboard, request: Request) -> Response:
    cursor, limit = _params(request, 20)
    return JSONResponse(await d.data.job_history(request.path_params["name"], cursor=cursor, limit=limit))


def _job_action(action: str) -> Handler:
    async def handler(d: Dashboard, request: Request) -> Response:
        name = request.path_params["name"]
        return JSONResponse(await _do_action(d, name, action))

    handler.__name__ = f"api_job_{action}"
    return handler


async def _do_action(d: Dashboard, name: str, action: str) -> dict[str, Any]:
    if action == "pause":
        await d.app.get_job(name)
        await d.app.pause_job(name)
        return {"job": name, "paused": True}
    if action == "resume":
        await d.app.get_job(name)
        await d.app.resume_job(name)
        return {"job": name, "paused": False}
    if action == "trigger":
        return {"job": name, "task_id": await d.app.trigger_job(name)}
    if action == "remove":
        if not await d.app.remove_job(name):
            raise NotFound(f"job {name!r} does not exist")
        return {"removed": name}
    raise NotFound(f"no action {action!r}")


@api
async def api_tasks(d: Dashboard, request: Request) -> Response:
    if request.method == "POST":
        body = await _body(request)
        task_id = await _submit(d, body)
        # accepted, but likely a mistake: an "at" long past (due at once; the app logs it too)
        said = past_at((await d.app.storage()).clock(), body.get("at"))
        return JSONResponse({**await d.data.task(task_id), "warnings": [said] if said else []}, status_code=201)
    cursor, limit = _params(request)
    state = q.check_state(request.query_params.get("state"))
    job = _text_param(request, "job")
    worker = _text_param(request, "worker")
    return JSONResponse(await d.data.tasks(state=state, job=job, worker=worker, cursor=cursor, limit=limit))


def _text_param(request: Request, name: str, *, empty_is_any: bool = False) -> str | None:
    """A text filter; ``""`` means none only on the pages (their form sends it)."""
    value = request.query_params.get(name)
    if value == "" and empty_is_any:
        return None
    if value is not None and not 1 <= len(value) <= 256:
        raise ValidationError(name, "must be 1-256 characters when given")
    return value


SUBMIT_FIELDS = ("target", "executor", "args", "kwargs", "options", "timeout", "retry", "balancer", "task_id",
                 "delay", "at")


async def _submit(d: Dashboard, body: dict[str, Any]) -> str:
    for key in body:
        if key not in SUBMIT_FIELDS:
            raise ValidationError(key, f"unknown field (expected {', '.join(SUBMIT_FIELDS)})")
    target = body.get("target")
    if not isinstance(target, str) or not target:
        raise ValidationError("target", "missing: the function name, URL or method to run")
    args = body.get("args", [])
    if not isinstance(args, list):
        raise ValidationError("args", f"must be a list, not {type(args).__name__}")
    for key in ("kwargs", "options"):
        if not isinstance(body.get(key, {}), dict):
            raise ValidationError(key, "must be an object")
    for key in ("executor", "balancer", "task_id"):
        if key in body and not isinstance(body[key], str):
            raise ValidationError(key, "must be a string")
    timeout = body.get("timeout", 60.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float, str)):
        raise ValidationError("timeout", "must be seconds or a duration such as '30s'")
    # a task for later: delay (seconds or "10s") or at (ISO-8601 with an offset, or epoch seconds)
    for key in ("delay", "at"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, str))):
            raise ValidationError(key, "must be seconds or a duration such as '10s'" if key == "delay" else
                                       "must be an ISO-8601 date-time with an offset ('2030-01-01T09:00:00Z') or "
                                       "epoch seconds")
    retry = body.get("retry")
    if retry is not None and not isinstance(retry, dict):
        raise ValidationError("retry", "must be an object with max_attempts, backoff, delay, max_delay, jitter, "
                                       "intervals, retry_on, dont_retry_on")
    try:
        result: str = await d.app.submit(
            target, *args, executor=body.get("executor", "local"), kwargs=body.get("kwargs") or {},
            options=body.get("options") or {}, timeout=timeout, retry=retry,
            balancer=body.get("balancer", "least-tasks"), task_id=body.get("task_id"),
            delay=body.get("delay"), at=body.get("at"))
    except (ValidationError, DistschedError):
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError("body", f"{type(exc).__name__}: {exc}") from None
    return result


@api
async def api_task(d: Dashboard, request: Request) -> Response:
    return JSONResponse(await d.data.task(request.path_params["task_id"]))


#: What a task action records as the cancelled task's reason (``tasks cancel --reason``).
CANCEL_REASONS = {"api": "cancelled through the REST API", "page": "cancelled from the dashboard"}
#: The states a task page offers to retry: every final one (succeeded, failed, timed_out,
#: cancelled, skipped), the rule ``retry_task`` enforces - the API and ``distsched tasks
#: retry`` retry the same.
RETRY_OFFERED = tuple(s.value for s in TaskState if s.terminal)


async def _cancel_task(d: Dashboard, task_id: str, reason: str) -> dict[str, Any]:
    """Cancel a task that has not finished (``DistributeSchedule.cancel_task``, as ``distsched
    tasks cancel``): a running attempt is stopped by its worker within one heartbeat. A
    finished task is a 409 saying so."""
    from distsched.model import InvalidTransition

    try:
        task = await d.app.cancel_task(task_id, reason)
    except InvalidTransition:
        current = await d.app.get_task(task_id)
        raise ApiError(409, None, f"task {task_id!r} already finished ({current.state.value}): only a task that "
                                  "has not finished can be cancelled", "conflict") from None
    return {"task_id": task_id, "cancelled": True, "was_running_on": task.worker_id,
            "task": await d.data.task(task_id)}


async def _retry_task(d: Dashboard, task_id: str) -> dict[str, Any]:
    """Run a finished task again as a new task with the same call (``DistributeSchedule.
    retry_task``, as ``distsched tasks retry``); one that has not finished is a 409."""
    try:
        new_id = await d.app.retry_task(task_id)
    except ValidationError as exc:  # not finished: the task's state, not the request, is in the way
        raise ApiError(409, None, exc.reason, "conflict") from None
    return {"task_id": task_id, "retry_task_id": new_id, "task": await d.data.task(new_id)}


@api
async def api_task_cancel(d: Dashboard, request: Request) -> Response:
    return JSONResponse(await _cancel_task(d, request.path_params["task_id"], CANCEL_REASONS["api"]))


@api
async def api_task_retry(d: Dashboard, request: Request) -> Response:
    return JSONResponse(await _retry_task(d, request.path_params["task_id"]), status_code=201)


@api
async def api_workers(d: Dashboard, request: Request) -> Response:
    return JSONResponse({"items": await d.data.workers()})


@api
async def api_quarantine(d: Dashboard, request: Request) -> Response:
    return JSONResponse(await d.data.quarantine(limit=q.check_limit(request.query_params.get("limit"), 100)))


@api
async def api_openapi(d: Dashboard, request: Request) -> Response:
    return JSONResponse(openapi_document())


# -- pages ------------------------------------------------------------------------------
@page
async def overview_page(d: Dashboard, request: Request) -> Response:
    data = await d.data.overview()
    peak = max([b["count"] for b in data["throughput"]] or [0]) or 1
    return d.render(request, "overview.html", o=data, peak=peak, title="Overview")


@page
async def jobs_page(d: Dashboard, request: Request) -> Response:
    after, limit = _params(request, cursor="after")
    return d.render(request, "jobs.html", page=await d.data.jobs(after=after, limit=limit), title="Jobs",
                    flash=request.query_params.get("done"), keep=_keep_limit(request, limit))


@page
async def job_page(d: Dashboard, request: Request) -> Response:
    name = request.path_params["name"]
    cursor, limit = _params(request, 20)
    job = await d.data.job(name)
    history = await d.data.job_history(name, cursor=cursor, limit=limit)
    return d.render(request, "job.html", job=job, history=history, title=f"Job {name}",
                    flash=request.query_params.get("done"), keep=_keep_limit(request, limit))


def _keep_limit(request: Request, limit: int) -> dict[str, Any]:
    """What the pager links keep of the query: the page size, when one was asked for."""
    return {"limit": limit} if "limit" in request.query_params else {}


@page
async def job_confirm_page(d: Dashboard, request: Request) -> Response:
    name = request.path_params["name"]
    action = request.path_params["action"]
    if action not in ("pause", "resume", "trigger", "remove"):
        raise NotFound(f"no action {action!r}")
    job = await d.data.job(name)
    return d.render(request, "confirm.html", job=job, action=action, title=f"{action.title()} {name}?")


@page
async def job_action_page(d: Dashboard, request: Request) -> Response:
    name = request.path_params["name"]
    action = request.path_params["action"]
    result = await _do_action(d, name, action)
    if action == "remove":
        return RedirectResponse(f"/jobs?done={quote('removed ' + name)}", status_code=303)
    note = f"triggered: task {result['task_id']}" if action == "trigger" else f"{action}d"
    return RedirectResponse(f"/jobs/{quote(name, safe='')}?done={quote(note)}", status_code=303)


@page
async def tasks_page(d: Dashboard, request: Request) -> Response:
    cursor, limit = _params(request)
    state = q.check_state(request.query_params.get("state"), empty_is_any=True)
    job = _text_param(request, "job", empty_is_any=True)
    worker = _text_param(request, "worker", empty_is_any=True)
    tasks = await d.data.tasks(state=state, job=job, worker=worker, cursor=cursor, limit=limit)
    return d.render(request, "tasks.html", page=tasks, states=q.TASK_STATES, title="Tasks",
                    filters={"state": state, "job": job, "worker": worker, **_keep_limit(request, limit)})


@page
async def task_page(d: Dashboard, request: Request) -> Response:
    return await _task_page(d, request, request.path_params["task_id"])


async def _task_page(d: Dashboard, request: Request, task_id: str) -> Response:
    task = await d.data.task(task_id)
    # the outcome of an action (its own flash line: a retry's links to the new task)
    retried = request.query_params.get("retried")
    return d.render(request, "task.html", task=task, title=f"Task {task['id']}", retry_offered=RETRY_OFFERED,
                    done=request.query_params.get("done"), retried=retried or None)


#: The task actions of a task page (``/tasks/ID/<action>``: a confirmation page, then a POST).
TASK_ACTIONS = ("cancel", "retry")


def _task_action(request: Request) -> str:
    """The action of ``/tasks/ID/<action>``: the last part of the path its route matched."""
    return str(request.scope["path"]).rsplit("/", 1)[1]


@page
async def task_confirm_page(d: Dashboard, request: Request) -> Response:
    """``/tasks/ID/cancel`` or ``/retry``: the confirmation of a task action - or, for a task
    whose own id ends so (``/tasks/a/cancel`` with no task ``a``), that task's page."""
    task_id, action = request.path_params["task_id"], _task_action(request)
    try:
        task = await d.data.task(task_id)
    except NotFound:
        return await _task_page(d, request, f"{task_id}/{action}")
    refused = None
    finished = TaskState(task["state"]).terminal
    if action == "cancel" and finished:
        refused = f"Task {task_id} already finished ({task['state']}): only a task that has not finished can be cancelled."
    elif action == "retry" and not finished:
        refused = f"Task {task_id} is {task['state']}: only a finished task can be retried (cancel it first)."
    return d.render(request, "task_confirm.html", status=409 if refused else 200, task=task, action=action,
                    refused=refused, title=f"{action.title()} task {task_id}?")


@page
async def task_action_page(d: Dashboard, request: Request) -> Response:
    task_id, action = request.path_params["task_id"], _task_action(request)
    here = f"/tasks/{quote(task_id, safe='')}"
    if action == "cancel":
        done = await _cancel_task(d, task_id, CANCEL_REASONS["page"])
        worker = done["was_running_on"]
        note = f"cancelled (it was running on {worker}: its worker stops it within one heartbeat)" if worker else "cancelled"
        return RedirectResponse(f"{here}?{urlencode({'done': note})}", status_code=303)
    retried = await _retry_task(d, task_id)
    new_id = retried["retry_task_id"]
    return RedirectResponse(f"{here}?{urlencode({'done': f'retried as task {new_id}', 'retried': new_id})}",
                            status_code=303)


@page
async def workers_page(d: Dashboard, request: Request) -> Response:
    return d.render(request, "workers.html", workers=await d.data.workers(), title="Workers")


async def login_page(d: Dashboard, request: Request) -> Response:
    next_url = request.query_params.get("next") or "/"
    if (not next_url.startswith("/") or next_url.startswith("//") or "\\" in next_url
            or any(ord(c) < 32 or ord(c) == 127 for c in next_url)):
        next_url = "/"  # only a path of this site (and its query): never an open redirect (//host, /\host)
    if request.method == "GET":
        return d.render(request, "login.html", title="Log in", next=next_url, failed=False)
    try:
        form = await d.form(request)
    except ApiError as err:
        return d.render(request, "error.html", status=err.status, error=err)
    if not d.security.writable:
        read_only = ApiError(403, None, "the dashboard is read-only: there is nothing to log in to "
                                        "(start it with DISTSCHED_WEB_TOKEN)", "read_only")
        return d.render(request, "error.html", status=403, error=read_only)
    if not d.security.token_ok(form.get("token", "")):
        log.warning("web: failed login from %s", request.client.host if request.client else "?")
        return d.render(request, "login.html", status=401, title="Log in", next=next_url, failed=True)
    response = RedirectResponse(next_url, status_code=303)
    d._cookie(response, SESSION_COOKIE, d.security.new_session(), max_age=SESSION_SECONDS)
    return response


async def logout_page(d: Dashboard, request: Request) -> Response:
    try:
        await d.form(request)
    except ApiError as err:
        return d.render(request, "error.html", status=err.status, error=err)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


# -- the application --------------------------------------------------------------------
def create_app(app: Any, security: Security) -> Starlette:
    """The ASGI application of the dashboard over ``app`` (a DistributeSchedule)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=jinja2.select_autoescape(default=True), trim_blocks=True, lstrip_blocks=True)
    env.filters["urlpart"] = lambda s: quote(str(s), safe="")
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True, default=str)
    env.globals["shown_error"] = shown_error  # an attempt's error, as distsched tasks show prints it
    d = Dashboard(app=app, security=security, data=q.WebData(app), env=env)
    d.nav = [("Overview", "/"), ("Jobs", "/jobs"), ("Tasks", "/tasks"), ("Workers", "/workers")]

    def both(handler: Callable[[Dashboard, Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await handler(d, request)

        return endpoint

    routes: list[BaseRoute] = [
        Route("/api/v1/openapi.json", api_openapi(d)),
        Route("/api/v1/overview", api_overview(d)),
        Route("/api/v1/jobs", api_jobs(d), methods=["GET", "POST"]),
        Route("/api/v1/jobs/{name}", api_job(d), methods=["GET", "PUT", "DELETE"]),
        Route("/api/v1/jobs/{name}/history", api_job_history(d)),
        *[Route(f"/api/v1/jobs/{{name}}/{a}", api(_job_action(a))(d), methods=["POST"])
          for a in ("pause", "resume", "trigger")],
        Route("/api/v1/tasks", api_tasks(d), methods=["GET", "POST"]),
        # before the task itself: a POST to .../ID/cancel is the action, a GET of it the task "ID/cancel"
        Route("/api/v1/tasks/{task_id:path}/cancel", api_task_cancel(d), methods=["POST"]),
        Route("/api/v1/tasks/{task_id:path}/retry", api_task_retry(d), methods=["POST"]),
        Route("/api/v1/tasks/{task_id:path}", api_task(d)),
        Route("/api/v1/workers", api_workers(d)),
        Route("/api/v1/quarantine", api_quarantine(d)),
        Route("/", overview_page(d)),
        Route("/jobs", jobs_page(d)),
        Route("/jobs/{name}", job_page(d)),
        Route("/jobs/{name}/{action}", job_confirm_page(d), methods=["GET"]),
        Route("/jobs/{name}/{action}", job_action_page(d), methods=["POST"]),
        Route("/tasks", tasks_page(d)),
        *[Route(f"/tasks/{{task_id:path}}/{a}", handler(d), methods=[method])
          for a in TASK_ACTIONS for handler, method in ((task_confirm_page, "GET"), (task_action_page, "POST"))],
        Route("/tasks/{task_id:path}", task_page(d)),
        Route("/workers", workers_page(d)),
        Route("/login", both(login_page), methods=["GET", "POST"]),
        Route("/logout", both(logout_page), methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    extra = _plugin_routes(app)
    for route in extra:
        name = getattr(route, "name", None)
        path = getattr(route, "path", "")
        if name and isinstance(route, Route) and not path.startswith("/api/") and "{" not in path:
            d.nav.append((name, path))
        # The read rule covers a plugin's routes as the dashboard's own: on a non-loopback
        # bind a page wants a login, an API call the bearer token (a route that changes
        # anything still checks the write rule itself).
        if isinstance(route, (Route, Mount)):
            route.app = _Asgi(route.app, guard=d, pages=not path.startswith("/api/"))
    metrics = _metrics_app(app)
    if metrics is not None:  # a Route, not a Mount: /metrics itself answers (no redirect to /metrics/)
        routes.append(Route("/metrics", _Asgi(metrics, guard=d), methods=["GET"]))

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        detail = getattr(exc, "detail", "not found")
        err = ApiError(status, None, str(detail) if status != 404 else f"no such page: {request.url.path}",
                       "not_found" if status == 404 else "http")
        response = (_json_error(err) if request.url.path.startswith("/api/")
                    else d.render(request, "error.html", status=status, error=err))
        response.headers.update(getattr(exc, "headers", None) or {})  # e.g. Allow on a 405
        return response

    web = Starlette(routes=extra + routes, exception_handlers={HTTPException: not_found})
    web.state.dashboard = d
    return web


def _plugin_routes(app: Any) -> list[BaseRoute]:
    """Routes that plugins add through ``distsched_web_routes``."""
    hook = getattr(app.plugins.hook_manager.hook, "distsched_web_routes", None)
    if hook is None:
        return []
    out: list[BaseRoute] = []
    for routes in hook(app=app):
        out.extend(routes or ())
    return out


class _Asgi:
    """An ASGI callable Starlette's Route passes the raw request to (not a request handler).

    With ``guard``, the dashboard's read rule applies first: on a non-loopback bind a request
    needs the bearer token (what a Prometheus scraper sends: ``authorization`` in its scrape
    config) or a login session, else 401; on loopback it is open, as every read is."""

    def __init__(self, app: Any, guard: Dashboard | None = None, *, pages: bool = False) -> None:
        self.app = app
        self.guard = guard
        self.pages = pages  # a refused page goes to the login, as the dashboard's own pages do

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        d = self.guard
        if d is not None and scope.get("type") == "http" and d.security.reads_need_login:
            request = Request(scope, receive)
            if not (d.security.bearer_ok(request.headers.get("authorization")) or d.logged_in(request)):
                if self.pages:
                    await RedirectResponse(f"/login?next={quote(_here(request), safe='')}",
                                           status_code=303)(scope, receive, send)
                    return
                refused = ApiError(401, "Authorization", "a valid 'Authorization: Bearer <token>' header (or a "
                                                         "login session) is required", "unauthorized")
                await _json_error(refused)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _metrics_app(app: Any) -> Any:
    """``/metrics``: the metrics plugin's ASGI app for this engine when that plugin is
    installed (its ``asgi_app(engine)``: the engine's metrics and the store's gauges), else
    prometheus-client's default registry, else nothing. No other tie between the plugins."""
    try:
        import distsched_metrics
    except ImportError:
        distsched_metrics = None  # type: ignore[assignment]
    make = getattr(distsched_metrics, "asgi_app", None)
    try:
        if make is not None:
            return make(app.engine)
        import prometheus_client
    except ImportError:
        return None
    return prometheus_client.make_asgi_app()


# -- serving ----------------------------------------------------------------------------
@attrs.define
class WebServer:
    """A running dashboard (what ``distsched_serve`` returns): ``port`` it listens on,
    ``aclose()`` to stop it."""

    server: Any
    task: asyncio.Task[None]
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host if ':' not in self.host else f'[{self.host}]'}:{self.port}/"

    async def aclose(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, SystemExit):
            await self.task


async def start(app: Any, bind: str, *, token: str | None = None) -> WebServer:
    """Start the dashboard of ``app`` (a DistributeSchedule) on ``bind`` in this event loop.

    Raises ValidationError (field ``bind``) for a non-loopback bind without a token, and
    OSError when the address cannot be bound.
    """
    import uvicorn

    from .auth import parse_bind

    host, port = parse_bind(bind)
    security = Security.for_bind(host, token)
    web = create_app(app, security)
    config = uvicorn.Config(web, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
                            server_header=False)
    server = uvicorn.Server(config)
    # The process owns SIGINT/SIGTERM (the CLI sets its stop event): uvicorn must not take them.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve())
    while not server.started:  # uvicorn has no start event; it binds within milliseconds
        if task.done():
            with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot bind
                await task
            raise OSError(f"the dashboard could not listen on {bind} (address in use?)")
        await asyncio.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
    handle = WebServer(server=server, task=task, host=host, port=bound)
    log.warning("dashboard on %s (%s)", handle.url,
                "read-only: DISTSCHED_WEB_TOKEN is not set" if not security.writable else "changes need the token")
    return handle


async def serve(app: Any, bind: str, stop: asyncio.Event, *, token: str | None = None,
                ready: Callable[[int], None] | None = None) -> None:
    """Serve the dashboard of ``app`` on ``bind`` until ``stop`` is set (``ready`` gets the port)."""
    handle = await start(app, bind, token=token)
    if ready is not None:
        ready(handle.port)
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({handle.task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        await handle.aclose()
