"""``distsched web`` and ``distsched run --web`` as an operator runs them (real processes)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from distsched import DistributeSchedule, hookimpl
from distsched.testing.redis_server import free_port

ROOT = Path(__file__).resolve().parents[3]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTSCHED_")}
    env.update(extra)
    return env


def _get_when_up(url: str, proc: subprocess.Popen, timeout: float = 20.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if proc.poll() is not None:
                raise AssertionError(f"the process ended ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _web(storage: str, **env: str) -> tuple[subprocess.Popen, str]:
    """``distsched web --storage STORAGE`` on a free loopback port: the process and its base URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "distsched", "web", "--storage", storage,
                             "--bind", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=_env(**env))
    return proc, f"http://127.0.0.1:{port}"


def test_run_with_web_serves_the_embedded_store():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "distsched", "run", str(ROOT / "examples" / "jobs.toml"),
                             "--web", f"127.0.0.1:{port}", "--duration", "30"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        base = f"http://127.0.0.1:{port}"
        jobs = _get_when_up(f"{base}/api/v1/jobs", proc).json()
        assert {"tick", "flaky", "slow", "nightly-report"} <= {j["name"] for j in jobs["items"]}
        deadline = time.monotonic() + 15
        while not httpx.get(f"{base}/api/v1/tasks?state=succeeded&job=tick").json()["items"]:
            assert time.monotonic() < deadline, "no tick succeeded within 15 s"
            time.sleep(0.2)
        overview = httpx.get(f"{base}/").text
        assert "Overview" in overview and "memory://" in overview
        assert httpx.post(f"{base}/api/v1/jobs/tick/pause").status_code == 403  # no token: read-only
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "dashboard on http://127.0.0.1:" in err


def test_web_refuses_a_public_bind_without_a_token():
    out = subprocess.run([sys.executable, "-m", "distsched", "web", "--bind", "0.0.0.0:0"], capture_output=True,
                         text=True, env=_env(), timeout=60)
    assert out.returncode != 0
    assert "bind: 0.0.0.0 is not a loopback address: set DISTSCHED_WEB_TOKEN" in out.stderr
    assert "Traceback" not in out.stderr
    run = subprocess.run([sys.executable, "-m", "distsched", "run", str(ROOT / "examples" / "jobs.toml"),
                          "--web", "0.0.0.0:0", "--duration", "5"], capture_output=True, text=True, env=_env(),
                         timeout=60)
    assert run.returncode != 0 and "DISTSCHED_WEB_TOKEN" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.redis
def test_web_over_a_store_with_the_token(redis_server):
    token = "cli-token-0123456789abcdef"
    url = redis_server.url_for(namespace=f"webcli{os.getpid()}")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "distsched", "web", "--storage", url, "--bind", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=_env(DISTSCHED_WEB_TOKEN=token))
    try:
        base = f"http://127.0.0.1:{port}"
        assert _get_when_up(f"{base}/api/v1/jobs", proc).json()["items"] == []
        auth = {"Authorization": f"Bearer {token}"}
        created = httpx.post(f"{base}/api/v1/jobs", json={"name": "ping", "every": "1m", "target": "ping"},
                             headers=auth)
        assert created.status_code == 201, created.text
        assert [j["name"] for j in httpx.get(f"{base}/api/v1/jobs").json()["items"]] == ["ping"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert token not in err


@pytest.mark.redis
def test_web_without_the_token_opens_its_store_as_a_reader_and_writes_nothing(redis_server):
    """The read-only dashboard (no token) writes nothing to its store: not the layout marks a
    writer's open sets on a new namespace, nor any tidying a writer's read does."""
    namespace = f"webro{os.getpid()}"
    proc, base = _web(redis_server.url_for(namespace=namespace))
    try:
        assert _get_when_up(f"{base}/api/v1/jobs", proc).json()["items"] == []
        for path in ("/", "/jobs", "/tasks", "/workers", "/api/v1/overview", "/api/v1/tasks",
                     "/api/v1/workers", "/api/v1/quarantine"):
            assert httpx.get(f"{base}{path}", timeout=10).status_code == 200, path
        with redis_server.client() as client:
            assert sorted(client.scan_iter(match=f"{{{namespace}}}:*")) == []
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err


@pytest.mark.postgres
def test_web_without_the_token_on_a_schema_never_created_answers_503_naming_the_upgrade(postgres_database):
    """The read-only dashboard does not create or migrate a PostgreSQL schema: until one is
    there, the API and the pages answer 503 naming `distsched db upgrade` (the server's state,
    not a bad request), and they recover once it ran."""
    url = postgres_database.url_for(schema=f"webnew{os.getpid()}")
    proc, base = _web(url)
    try:
        answer = _get_when_up(f"{base}/api/v1/jobs", proc)
        assert answer.status_code == 503, answer.text
        error = answer.json()["error"]
        assert error["code"] == "unavailable"
        assert error["reason"].startswith("the store cannot be opened: ") and "distsched db upgrade" in error["reason"]
        page = httpx.get(f"{base}/jobs", timeout=10)
        assert page.status_code == 503 and "distsched db upgrade" in page.text
        upgrade = subprocess.run([sys.executable, "-m", "distsched", "db", "upgrade", "--storage", url],
                                 capture_output=True, text=True, env=_env(), timeout=60)
        assert upgrade.returncode == 0, upgrade.stderr
        answer = httpx.get(f"{base}/api/v1/jobs", timeout=10)
        assert answer.status_code == 200 and answer.json()["items"] == [], answer.text
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


class EchoServer:
    """A third-party server beside the engine, through ``distsched_serve``."""

    def __init__(self) -> None:
        self.closed = False
        self.seen: list[tuple[str, str]] = []

    @hookimpl
    def distsched_serve(self, engine, name, address):
        if name != "echo":
            return None
        self.seen.append((name, address))
        server = self

        class Handle:
            async def aclose(self) -> None:
                server.closed = True

        return Handle()


async def test_a_plugin_serves_beside_the_engine_and_is_closed():
    echo = EchoServer()
    app = DistributeSchedule("memory://", plugins=[("echo", echo)], serve={"echo": "127.0.0.1:1"})
    async with app.running():
        assert echo.seen == [("echo", "127.0.0.1:1")] and not echo.closed
        facade = DistributeSchedule.of_engine(app.engine)
        await facade.add_job("j", every="1m", target="x")
        assert [j.name for j in await app.jobs()] == ["j"]  # the same store
    assert echo.closed


@pytest.mark.parametrize("bind", ["nohost", "127.0.0.1:99999"])
def test_web_bad_bind_names_the_field(bind):
    out = subprocess.run([sys.executable, "-m", "distsched", "web", "--bind", bind], capture_output=True, text=True,
                         env=_env(), timeout=60)
    assert out.returncode != 0 and "bind" in out.stderr and "Traceback" not in out.stderr


def test_run_with_web_without_the_plugin_says_what_to_install():
    out = subprocess.run([sys.executable, "-m", "distsched", "run", str(ROOT / "examples" / "jobs.toml"),
                          "--web", "127.0.0.1:0", "--duration", "5"], capture_output=True, text=True,
                         env=_env(DISTSCHED_DISABLE_PLUGINS="web"), timeout=60)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "no plugin serves 'web'" in out.stderr and "pip install 'distsched[web]'" in out.stderr


@pytest.mark.redis
def test_a_store_down_at_the_first_request_is_a_503_and_the_dashboard_recovers():
    """A store that was down when the dashboard first needed it answered 400 ``invalid`` (the
    engine could not open it: a PluginError raised from redis-py's ConnectionError), not the
    503 ``unavailable`` it answers once the store had been opened; the page said the same."""
    from distsched.testing.redis_server import RedisServer

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    password = f"pw-{os.getpid()}-{time.monotonic_ns()}"
    redis = RedisServer(port=free_port(), config={"requirepass": password})  # not started yet
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "distsched", "web", "--storage", redis.url_for(password=password),
                             "--bind", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=_env())
    try:
        base = f"http://127.0.0.1:{port}"
        down = _get_when_up(f"{base}/api/v1/overview", proc)
        assert down.status_code == 503, down.text
        assert down.json()["error"]["code"] == "unavailable" and "the store does not answer" in down.text
        page = httpx.get(f"{base}/jobs", timeout=30)
        assert page.status_code == 503 and "the store does not answer" in page.text
        assert password not in down.text + page.text
        redis.start()
        deadline = time.monotonic() + 20
        while (up := httpx.get(f"{base}/api/v1/overview", timeout=30)).status_code != 200:
            assert up.status_code == 503, up.text
            assert time.monotonic() < deadline, "the dashboard did not recover"
            time.sleep(0.2)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
        redis.stop()
    assert "Traceback" not in err and password not in err
    # one WARNING for the whole outage (at least two requests met it), not one per request
    assert err.count("the store did not answer") == 1, err


@pytest.mark.redis
def test_a_store_outage_is_a_503_and_the_dashboard_recovers(tmp_path):
    from distsched.testing.redis_server import RedisServer

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    with RedisServer() as redis:
        proc, base = _web(redis.url)
        try:
            assert _get_when_up(f"{base}/api/v1/overview", proc).status_code == 200
            redis.kill()
            down = httpx.get(f"{base}/api/v1/overview", timeout=30)
            assert down.status_code == 503 and down.json()["error"]["code"] == "unavailable"
            page = httpx.get(f"{base}/", timeout=30)
            assert page.status_code == 503 and "the store does not answer" in page.text
            redis.restart()
            deadline = time.monotonic() + 20
            while httpx.get(f"{base}/api/v1/overview", timeout=30).status_code != 200:
                assert time.monotonic() < deadline, "the dashboard did not recover"
                time.sleep(0.2)
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=20)
        assert "Traceback" not in err


@pytest.mark.redis
def test_an_error_page_has_a_title_naming_its_status():
    """The 503 page of a store outage (and every error page) had an empty title: the tab read
    `` · distsched``. It now names the status: ``503 Service Unavailable · distsched``."""
    import re

    from distsched.testing.redis_server import RedisServer

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")

    def title(response: httpx.Response) -> str:
        found = re.search(r"<title>(.*?)</title>", response.text)
        assert found, response.text
        return found.group(1)

    with RedisServer() as redis:
        proc, base = _web(redis.url)
        try:
            up = _get_when_up(f"{base}/", proc)
            assert up.status_code == 200 and title(up) == "Overview · distsched"
            missing = httpx.get(f"{base}/no-such-page", timeout=30)
            assert missing.status_code == 404 and title(missing) == "404 Not Found · distsched"
            redis.kill()
            page = httpx.get(f"{base}/", timeout=30)
            assert page.status_code == 503 and "the store does not answer" in page.text
            assert title(page) == "503 Service Unavailable · distsched"
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=20)
        assert "Traceback" not in err
