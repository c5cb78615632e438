"""Entry point of the ``http`` plugin: hook implementations only, nothing heavy.

httpx and the executors are imported inside the factories, when a worker builds them; the
validators (run wherever a job is added) import only :mod:`.options` (no httpx).
"""

from __future__ import annotations

from distsched import hookimpl

#: The worker settings (``[worker]`` keys) the http and rpc executors read.
SETTINGS = ("http_allow", "http_body_limit", "secrets")


@hookimpl
def distsched_register_executors(registry):
    registry.add(
        "http",
        _make_http,
        description="Makes one HTTP(S) request to the target URL (status, latency and a body excerpt in meta)",
        validate=_validate_http,
        check_settings=_check_settings,
        settings=SETTINGS,
    )
    registry.add(
        "rpc",
        _make_rpc,
        description="Calls a JSON-RPC 2.0 method over HTTP(S) POST at the target endpoint",
        validate=_validate_rpc,
        check_settings=_check_settings,
        settings=SETTINGS,
    )


def _make_http(context):
    from .executor import HttpExecutor

    return HttpExecutor(context)


def _make_rpc(context):
    from .executor import RpcExecutor

    return RpcExecutor(context)


def _validate_http(spec):
    from .options import validate_http

    validate_http(spec)


def _validate_rpc(spec):
    from .options import validate_rpc

    validate_rpc(spec)


def _check_settings(settings):
    from .options import check_settings

    check_settings(settings)
