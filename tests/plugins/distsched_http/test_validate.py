"""The http and rpc executors check a job's target and options when it is added (issue 12.6):
at every entry point - the facade, the jobs-file loader, ``distsched run`` and ``jobs add`` -
with the job's name, the field and the reason, and nothing stored."""

from __future__ import annotations

import textwrap
import uuid

import pytest

from distsched import DistributeSchedule
from distsched.jobs import JobsFileError, load_jobs_file
from distsched.model import TaskSpec, ValidationError, build_job
from distsched_http.options import check_target, validate_http, validate_rpc

GOOD = "https://example.test/hook"


# -- the validators ---------------------------------------------------------------------------
@pytest.mark.parametrize("target", [
    GOOD, "http://127.0.0.1:8080/x?y=1", "HTTPS://Example.test", "https://${API_TOKEN}@api.example.test/v1",
    "https://${API_HOST}/x", "${HOOK_URL}", "${HOOK_URL}/path", "http://[::1]:80/",
])
def test_accepted_targets(target):
    check_target(target, "http")


@pytest.mark.parametrize(("target", "fragment"), [
    ("ping", "(a job without a target uses its name as the target)"),
    ("example.test/hook", "needs an http(s) URL such as https://host/path"),
    ("ftp://example.test/x", "needs an http(s) URL"),
    ("file:///etc/passwd", "needs an http(s) URL"),
    ("https:///path-only", "needs a URL with a host"),
    ("http://", "needs a URL with a host"),
    ("https://[::1/x", "is not one"),
    ("", "needs an http(s) URL"),
])
def test_refused_targets(target, fragment):
    with pytest.raises(ValidationError) as info:
        check_target(target, "http")
    assert info.value.field == "target" and fragment in info.value.reason


@pytest.mark.parametrize(("options", "field", "fragment"), [
    ({"method": 5}, "options.method", "HTTP method"),
    ({"method": "GET\n"}, "options.method", "HTTP method"),  # a `$` rule let a final newline in
    ({"json": {}, "body": "x"}, "options.json", "exclusive"),
    ({"headers": ["a"]}, "options.headers", "table"),
    ({"success_codes": ["2yy"]}, "options.success_codes", "2yy"),
    ({"follow_redirects": "yes"}, "options.follow_redirects", "true or false"),
    ({"body_limit": -1}, "options.body_limit", "between 0 and"),
    ({"header": {"a": "b"}}, "options.header", "unknown option"),
    # a table or a null was sent as Python's text of it (a=%7B%27b%27...)
    ({"query": {"a": {"b": 1}}}, "options.query", "'a' must be text, a number, true or false, or a list of them"),
    ({"query": {"a": [1, {"b": 1}]}}, "options.query", "not list"),
    ({"query": {"a": None}}, "options.query", "not NoneType"),
])
def test_http_options_are_checked(options, field, fragment):
    with pytest.raises(ValidationError) as info:
        validate_http(TaskSpec(executor="http", target=GOOD, options=options))
    assert (info.value.field, fragment in info.value.reason) == (field, True)


def test_rpc_needs_a_url_and_a_method():
    validate_rpc(TaskSpec(executor="rpc", target=GOOD, args=(1, 2), options={"method": "add"}))
    with pytest.raises(ValidationError, match="options.method: rpc executor: options.method is required"):
        validate_rpc(TaskSpec(executor="rpc", target=GOOD))
    with pytest.raises(ValidationError, match="target: the rpc executor needs an http"):
        validate_rpc(TaskSpec(executor="rpc", target="add", options={"method": "add"}))
    with pytest.raises(ValidationError, match="kwargs: JSON-RPC params are positional"):
        validate_rpc(TaskSpec(executor="rpc", target=GOOD, args=(1,), kwargs={"a": 1}, options={"method": "m"}))


# -- the facade -------------------------------------------------------------------------------
@pytest.fixture
async def app():
    app = DistributeSchedule(f"memory://validate-{uuid.uuid4().hex}")
    async with app:
        yield app


async def test_the_facade_refuses_an_http_job_without_a_url(app):
    with pytest.raises(ValidationError) as info:
        await app.add_job("ping", every="1m", executor="http")  # no target: defaults to "ping"
    assert str(info.value).startswith("job 'ping': target: the http executor needs an http(s) URL")
    assert info.value.field == "target" and info.value.where == "job 'ping'"
    with pytest.raises(ValidationError, match="job 'rpc-job': options.method: rpc executor: options.method is required"):
        await app.put_job(build_job("rpc-job", every="1m", executor="rpc", target=GOOD))
    with pytest.raises(ValidationError, match="job 'b': target: "):
        await app.put_jobs([build_job("a", every="1m", executor="http", target=GOOD),
                            build_job("b", every="1m", executor="http", target="b")])
    assert await app.jobs() == []  # put_jobs checks every job before it stores any

    await app.add_job("ok", every="1m", executor="http", target=GOOD)
    with pytest.raises(ValidationError, match="job 'ok': target: "):
        await app.update_job("ok", target="not-a-url")
    with pytest.raises(ValidationError, match="job 'ok': options.method: "):
        await app.update_job("ok", options={"method": "NOT A METHOD"})
    assert (await app.get_job("ok")).spec.target == GOOD


async def test_submit_refuses_a_bad_target_and_stores_nothing(app):
    with pytest.raises(ValidationError, match="task: target: the http executor needs an http"):
        await app.submit("hello", executor="http", task_id="t1")
    with pytest.raises(ValidationError, match="task: options.method: "):
        await app.submit(GOOD, executor="rpc", task_id="t2")
    with pytest.raises(ValidationError, match="task: target: "):
        await app.submit_many([TaskSpec(executor="http", target=GOOD), TaskSpec(executor="rpc", target="x")],
                              task_ids=["t3", "t4"])
    storage = await app.storage()
    assert await storage.tasks.get_many(["t1", "t2", "t3", "t4"]) == [None] * 4
    assert await app.submit(GOOD, executor="http", task_id="t5") == "t5"


# -- the jobs-file loader and the CLI ---------------------------------------------------------
BAD_FILE = """
    [[jobs]]
    name = "ping"
    every = "1m"
    executor = "http"

    [[jobs]]
    name = "call"
    every = "1m"
    executor = "rpc"
    target = "https://example.test/rpc"

    [[jobs]]
    name = "fine"
    every = "1m"
    executor = "http"
    target = "https://example.test/ok"
"""


@pytest.fixture
def bad_file(tmp_path):
    path = tmp_path / "jobs.toml"
    path.write_text(textwrap.dedent(BAD_FILE))
    return path


def _expect_both_problems(text: str) -> None:
    assert "2 problem(s)" in text, text
    assert "job 'ping': target: the http executor needs an http(s) URL such as https://host/path, not 'ping' " \
           "(a job without a target uses its name as the target)" in text, text
    assert "job 'call': options.method: rpc executor: options.method is required" in text, text
    assert "Traceback" not in text


def test_the_loader_refuses_with_the_check_of_an_app(bad_file):
    app = DistributeSchedule("memory://")
    with pytest.raises(JobsFileError) as info:
        load_jobs_file(bad_file, check_spec=app.check_spec)
    _expect_both_problems(str(info.value))
    # Without a check (the model alone, as `distsched explain` reads a file) the file loads.
    assert [job.name for job in load_jobs_file(bad_file).jobs] == ["ping", "call", "fine"]


def test_distsched_run_refuses(distsched_cli, bad_file):
    result = distsched_cli("run", str(bad_file), "--duration", "0")
    assert result.exit_code != 0
    _expect_both_problems(result.output)


def test_distsched_jobs_add_refuses_and_stores_nothing(distsched_cli, bad_file, tmp_path):
    from distsched.testing.redis_server import redis_server_binary

    if redis_server_binary() is None:
        pytest.skip("redis-server is not on PATH")
    from distsched.testing.redis_server import RedisServer

    with RedisServer() as server:
        url = server.url_for(namespace=f"v{uuid.uuid4().hex[:8]}")
        result = distsched_cli("jobs", "add", str(bad_file), "--storage", url)
        assert result.exit_code != 0
        _expect_both_problems(result.output)
        listed = distsched_cli("jobs", "list", "--storage", url, "--json")
        assert listed.exit_code == 0 and listed.output.strip() == "[]"
        only_fine = distsched_cli("jobs", "add", str(bad_file), "fine", "--storage", url)
        assert only_fine.exit_code == 0 and "fine: version" in only_fine.output
        scheduler = distsched_cli("scheduler", "--storage", url, "--jobs", str(bad_file))
        assert scheduler.exit_code != 0
        _expect_both_problems(scheduler.output)
