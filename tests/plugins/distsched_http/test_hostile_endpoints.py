"""Hostile endpoints and targets (issue 16.5): compression bombs, link-local and cloud
metadata addresses (literal, resolved, on a redirect hop), trailing-dot IPs, framing headers,
bad worker settings. Every request goes to a real server on loopback (see conftest)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import httpx
import pytest

from distsched.config import WorkerConfig
from distsched.model import TaskSpec, ValidationError
from distsched.plugin.manager import PluginManager
from distsched_http.client import GuardedBackend
from distsched_http.options import check_settings, validate_http
from distsched_http.safety import AddressRefused, AllowList, check_address

from .conftest import gzip_bomb

MIB = 1024 * 1024


def _peak_rss_reset() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS; False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/self/status")


# -- compression ----------------------------------------------------------------------------
async def test_a_gzip_bomb_is_cut_while_inflating(server, make_executor, task_factory):
    gzip_bomb()  # built (and cached) before measuring
    executor = make_executor()
    await executor.run(task_factory(server.url("/text")))  # the client and its pool exist
    if not _peak_rss_reset():
        pytest.skip("/proc/self/clear_refs is not writable here: cannot measure the peak")
    before = _status_kib("VmRSS")
    outcome = await executor.run(task_factory(server.url("/gzip-bomb"), timeout=10.0))
    peak = _status_kib("VmHWM")
    assert outcome.ok, outcome
    assert outcome.meta["truncated"] is True
    assert outcome.value == "\0" * (64 * 1024)  # the default body_limit, of zeros
    assert outcome.meta["body_excerpt"] == "\0" * 4096  # meta holds an excerpt only
    # 305 KB of gzip inflates to 300 MiB; httpx's decoder made 64 MiB of each 64 KiB chunk.
    assert (peak - before) * 1024 < 16 * MIB, f"peak RSS grew by {(peak - before) / 1024:.1f} MiB"


async def test_a_small_gzip_or_deflate_body_is_decoded(server, make_executor, task_factory):
    executor = make_executor()
    outcome = await executor.run(task_factory(server.url("/gzip-small")))
    assert outcome.ok and outcome.value == {"small": True}, outcome
    for path in ("/deflate-small", "/deflate-small?raw=1"):
        outcome = await executor.run(task_factory(server.url(path)))
        assert outcome.ok and outcome.value == "deflated", (path, outcome)
    # A tiny limit cuts a compressed body too, and says so.
    outcome = await executor.run(task_factory(server.url("/deflate-small"), options={"body_limit": 3}))
    assert outcome.meta["body_excerpt"] == "def" and outcome.meta["truncated"] is True


async def test_an_unsupported_encoding_is_a_clear_failure(server, make_executor, task_factory):
    outcome = await make_executor().run(task_factory(server.url("/brotli")))
    assert outcome.error_type == "MalformedResponse", outcome
    assert "'br'" in outcome.error and "not supported" in outcome.error


# -- link-local and metadata addresses --------------------------------------------------------
@pytest.mark.parametrize("target", [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254./latest/meta-data/",        # trailing dot: the same IP
    "http://[fd00:ec2::254]/latest/meta-data/",          # AWS IPv6 metadata
    "http://[::ffff:169.254.169.254]/",                  # IPv4-mapped
    "http://[fe80::1]/",
    "http://100.100.100.200/latest/meta-data/",          # Alibaba Cloud
    "http://2852039166/latest/meta-data/",               # a "name" that resolves to 169.254.169.254
    "http://0xa9fea9fe/",                                # the same, in hex
])
async def test_metadata_addresses_are_refused_without_http_allow(make_executor, task_factory, target):
    outcome = await make_executor().run(task_factory(target, timeout=1.0))
    assert outcome.error_type == "Forbidden", outcome
    assert outcome.retryable is False
    assert "http_allow" in outcome.error and "link-local" in outcome.error


async def test_a_broad_allow_list_does_not_open_metadata(make_executor, task_factory):
    executor = make_executor(http_allow=["0.0.0.0/0", "::/0", "*.example.org"])
    outcome = await executor.run(task_factory("http://169.254.169.254/", timeout=1.0))
    assert outcome.error_type == "Forbidden" and "link-local" in outcome.error, outcome


async def test_an_explicit_entry_allows_a_metadata_address(make_executor):
    # No connection is made: a test must never reach a real metadata service (in CI on a
    # cloud machine it would answer). Both checks - the URL's and the connection's - pass.
    executor = make_executor(http_allow=["169.254.169.254"])
    executor._check_url(httpx.URL("http://169.254.169.254./latest/meta-data/"))
    backend = GuardedBackend(executor.allow)
    assert await backend._addresses("169.254.169.254.", 80, 1.0) == ["169.254.169.254"]
    assert await backend._addresses("2852039166", 80, 1.0) == ["169.254.169.254"]
    with pytest.raises(AddressRefused):
        await GuardedBackend(None)._addresses("2852039166", 80, 1.0)


def test_the_guarded_transport_fails_closed_if_httpx_keeps_its_pool_elsewhere(monkeypatch):
    """The guard replaces httpx's private connection pool; an httpx that kept it under
    another name would send requests through its own, unguarded, pool: refused instead."""
    import httpx

    from distsched_http.client import guarded_transport

    limits = httpx.Limits(max_connections=2)
    assert guarded_transport(limits, None)._pool._network_backend.__class__ is GuardedBackend

    class Moved(httpx.AsyncHTTPTransport):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._connections = self.__dict__.pop("_pool")

    monkeypatch.setattr(httpx, "AsyncHTTPTransport", Moved)
    with pytest.raises(RuntimeError, match="refusing to send requests unguarded"):
        guarded_transport(limits, None)


def test_check_address_rules():
    allow = AllowList.from_setting(["169.254.169.254", "0.0.0.0/0"])
    check_address(ipaddress.ip_address("169.254.169.254"), allow)
    check_address(ipaddress.ip_address("::ffff:169.254.169.254"), allow)
    check_address(ipaddress.ip_address("10.1.2.3"), None)
    for address in ("169.254.1.1", "fd00:ec2::254", "fe80::1", "100.100.100.200"):
        with pytest.raises(AddressRefused, match="link-local"):
            check_address(ipaddress.ip_address(address), allow)


async def test_a_redirect_to_a_metadata_address_is_refused(server, make_executor, task_factory):
    executor = make_executor()
    for to in ("http://169.254.169.254/latest/meta-data/", "http://2852039166/latest/meta-data/"):
        outcome = await executor.run(task_factory(server.url(f"/redirect?to={to}"),
                                                  options={"follow_redirects": True}, timeout=1.0))
        assert outcome.error_type == "Forbidden", outcome
        assert outcome.error.startswith("redirect to ") and outcome.meta["redirects"] == 1, outcome
    assert server.paths() == ["/redirect", "/redirect"]


async def test_a_trailing_dot_ip_is_the_ip(server, make_executor, task_factory):
    target = server.url("/ok", host="127.0.0.1.")
    outcome = await make_executor(http_allow=["127.0.0.1"]).run(task_factory(target))
    assert outcome.ok, outcome
    assert server.paths() == ["/ok"]
    outcome = await make_executor(http_allow=["10.0.0.0/8"]).run(task_factory(target))
    assert outcome.error_type == "Forbidden" and "http_allow" in outcome.error, outcome
    assert server.paths() == ["/ok"]


# -- framing headers --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["Content-Length", "transfer-encoding", " Transfer-Encoding"])
async def test_framing_headers_are_refused(server, make_executor, task_factory, name):
    spec = TaskSpec(executor="http", target=server.url("/ok"), options={"headers": {name: "0"}, "body": "x"})
    with pytest.raises(ValidationError) as caught:
        validate_http(spec)
    assert caught.value.field == "options.headers" and repr(name) in caught.value.reason
    outcome = await make_executor().run(task_factory(server.url("/ok"),
                                                     options={"headers": {name: "0"}, "body": "x"}))
    assert outcome.error_type == "ConfigError" and "Content-Length" in outcome.error, outcome
    assert server.requests == []


# -- worker settings ----------------------------------------------------------------------------
@pytest.mark.parametrize(("settings", "field", "named"), [
    ({"http_allow": ["127.0.0.1", "http://api.example.com/"]}, "http_allow", "'http://api.example.com/'"),
    ({"http_allow": "127.0.0.1"}, "http_allow", "'127.0.0.1'"),
    ({"secrets": ["API_TOKEN", "not a name"]}, "secrets", "'not a name'"),
    ({"secrets": ["API_TOKEN\n"]}, "secrets", "'API_TOKEN\\n'"),  # a `$` rule let a final newline in
    ({"http_body_limit": -1}, "http_body_limit", "-1"),
])
def test_bad_settings_are_refused_naming_the_entry(settings, field, named):
    with pytest.raises(ValidationError) as caught:
        check_settings(settings)
    # the setting's name alone: the engine adds "[worker] " for every executor
    assert caught.value.field == field and named in caught.value.reason
    # the setting is named once (was: "[worker] http_allow: http_allow: '...' is not a host name")
    assert str(caught.value).count(field) == 1, str(caught.value)
    with pytest.raises(ValidationError) as caught:
        PluginManager().executors.check_settings(settings, where="worker")
    assert str(caught.value).startswith(f"worker: [worker] {field}: ") and str(caught.value).count(field) == 1


async def test_a_bad_http_allow_entry_stops_the_worker_at_start(distsched_app):
    config = WorkerConfig(settings={"http_allow": ["127.0.0.1", "https://api.example.com:443"]})
    with pytest.raises(ValidationError) as caught:
        await distsched_app(worker=config)
    assert "http_allow" in str(caught.value) and "'https://api.example.com:443'" in str(caught.value)


def test_a_bad_http_allow_entry_stops_the_worker_command(tmp_path, distsched_cli):
    jobs = tmp_path / "jobs.toml"
    jobs.write_text('[worker]\nhttp_allow = ["10.0.0.0/8", "http://x/"]\n', encoding="utf-8")
    result = distsched_cli("worker", "--storage", "memory://bad-allow", "--jobs", str(jobs))
    assert result.exit_code != 0
    assert "'http://x/'" in result.output and "http_allow" in result.output
    assert "Traceback" not in result.output


def test_worker_settings_from_the_config_file_are_checked_too(tmp_path, distsched_cli):
    config = tmp_path / "distsched.toml"
    config.write_text('[worker]\nsecrets = ["API_TOKEN", "bad-name"]\n', encoding="utf-8")
    result = distsched_cli("worker", "--config", str(config), "--storage", "memory://bad-secrets")
    assert result.exit_code != 0
    assert "secrets" in result.output and "'bad-name'" in result.output, result.output
    assert "Traceback" not in result.output
