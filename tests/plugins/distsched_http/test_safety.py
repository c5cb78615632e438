"""Secrets from the worker's environment, the allow-list and the scheme check."""

from __future__ import annotations

import email.utils
import json
import logging
from urllib.parse import quote

import pytest

from distsched_http.executor import parse_retry_after
from distsched_http.safety import AllowList, Scrubber

CANARY = "s3cr3t-canary"
LISTED = ["DISTSCHED_TEST_TOKEN", "DISTSCHED_TEST_UNSET"]


def assert_clean(outcome, caplog):
    assert CANARY not in repr(outcome)
    assert CANARY not in repr(outcome.meta)
    assert CANARY not in str(outcome.error)
    assert CANARY not in caplog.text
    for record in caplog.records:
        assert CANARY not in record.getMessage()


async def test_env_header_reaches_the_server_but_not_the_outcome(server, make_executor, task_factory,
                                                                 monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DISTSCHED_TEST_TOKEN", CANARY)
    task = task_factory(
        server.url("/echo-headers"),
        options={"headers": {"Authorization": "Bearer ${DISTSCHED_TEST_TOKEN}", "X-Key": "${DISTSCHED_TEST_TOKEN}"}},
    )
    outcome = await make_executor(secrets=LISTED).run(task)
    assert outcome.ok, outcome
    received = server.requests[0]["headers"]
    assert received["Authorization"] == f"Bearer {CANARY}"
    assert received["X-Key"] == CANARY
    # The echo came back, scrubbed.
    assert outcome.value["headers"]["Authorization"] == "Bearer ***"
    assert_clean(outcome, caplog)
    # Nothing was written back into the task.
    assert task.spec.options["headers"]["X-Key"] == "${DISTSCHED_TEST_TOKEN}"


async def test_env_in_url_is_scrubbed_everywhere(server, make_executor, task_factory, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DISTSCHED_TEST_TOKEN", CANARY)
    executor = make_executor(secrets=LISTED)
    outcome = await executor.run(task_factory(server.url("/echo-headers?token=${DISTSCHED_TEST_TOKEN}")))
    assert outcome.ok
    assert server.requests[0]["target"] == f"/echo-headers?token={CANARY}"
    assert "httpx" in caplog.text  # httpx logged the request line, scrubbed
    assert_clean(outcome, caplog)
    # An error path: a 404 for a path carrying the secret.
    outcome = await executor.run(task_factory(server.url("/missing/${DISTSCHED_TEST_TOKEN}")))
    assert outcome.error_type == "HTTPStatus"
    assert_clean(outcome, caplog)


async def test_truncated_excerpt_does_not_leak_a_secret_prefix(server, make_executor, task_factory, monkeypatch):
    monkeypatch.setenv("DISTSCHED_TEST_TOKEN", CANARY)
    task = task_factory(server.url("/echo-headers"), options={"headers": {"X-Key": "${DISTSCHED_TEST_TOKEN}"}})
    full = (await make_executor(secrets=LISTED).run(task)).meta["body_excerpt"]
    cut = full.index("***") + 6  # the excerpt would end in the middle of the secret
    outcome = await make_executor(secrets=LISTED).run(
        task_factory(server.url("/echo-headers"),
                     options={"headers": {"X-Key": "${DISTSCHED_TEST_TOKEN}"}, "body_limit": cut})
    )
    assert outcome.meta["truncated"] is True
    assert not outcome.meta["body_excerpt"].endswith(CANARY[:6])
    assert outcome.meta["body_excerpt"].endswith("***")


async def test_secret_headers_are_dropped_on_a_cross_origin_redirect(server, make_executor, task_factory,
                                                                    monkeypatch):
    monkeypatch.setenv("DISTSCHED_TEST_TOKEN", CANARY)
    elsewhere = server.url("/echo-headers", host="localhost")
    task = task_factory(
        server.url(f"/redirect?to={elsewhere}"),
        options={"follow_redirects": True, "headers": {"X-Key": "${DISTSCHED_TEST_TOKEN}", "X-Plain": "p"}},
    )
    outcome = await make_executor(secrets=LISTED).run(task)
    assert outcome.ok, outcome
    assert server.requests[0]["headers"]["X-Key"] == CANARY
    assert "X-Key" not in server.requests[1]["headers"]
    assert server.requests[1]["headers"]["X-Plain"] == "p"


async def test_unset_variable_is_a_config_error(server, make_executor, task_factory, monkeypatch):
    monkeypatch.delenv("DISTSCHED_TEST_UNSET", raising=False)
    task = task_factory(server.url("/ok"), options={"headers": {"X-Key": "${DISTSCHED_TEST_UNSET}"}})
    outcome = await make_executor(secrets=LISTED).run(task)
    assert outcome.error_type == "ConfigError"
    assert outcome.retryable is False
    assert "DISTSCHED_TEST_UNSET" in outcome.error and "'X-Key'" in outcome.error
    assert server.requests == []


async def test_a_variable_the_worker_does_not_list_is_not_expanded(server, make_executor, task_factory,
                                                                  monkeypatch):
    """16.1: a job cannot read the worker's environment beyond its ``secrets`` list."""
    monkeypatch.setenv("DISTSCHED_TEST_TOKEN", CANARY)
    monkeypatch.setenv("DISTSCHED_TEST_OTHER", "other-" + CANARY)
    cases = [
        (make_executor(secrets=["DISTSCHED_TEST_TOKEN"]), "DISTSCHED_TEST_OTHER", "it lists DISTSCHED_TEST_TOKEN"),
        (make_executor(), "DISTSCHED_TEST_TOKEN", "it lists none"),  # no list: no expansion at all
    ]
    for executor, name, listed in cases:
        for target, headers, where in (
            (server.url("/echo-headers?k=${" + name + "}"), {}, "the target URL"),
            (server.url("/echo-headers"), {"X-Key": "${" + name + "}"}, "header 'X-Key'"),
        ):
            outcome = await executor.run(task_factory(target, options={"headers": headers}))
            assert outcome.error_type == "ConfigError" and outcome.retryable is False, outcome
            assert f"environment variable {name!r} referenced in {where}" in outcome.error
            assert listed in outcome.error
            assert f"[worker] secrets = [{name!r}]" in outcome.error  # how to allow it
            assert CANARY not in repr(outcome)
    assert server.requests == []


async def test_a_secret_in_the_userinfo_is_not_echoed_in_base64(server, make_executor, task_factory,
                                                                monkeypatch, caplog):
    """16.4: httpx sends the userinfo as ``Authorization: Basic <base64>``; an endpoint that
    echoes it must not hand the secret back in that form."""
    import base64

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DISTSCHED_TEST_TOKEN", CANARY)
    encoded = base64.b64encode(f"user:{CANARY}".encode()).decode()
    outcome = await make_executor(secrets=LISTED).run(
        task_factory(server.url("/echo-headers").replace("://", "://user:${DISTSCHED_TEST_TOKEN}@")))
    assert outcome.ok, outcome
    assert server.requests[0]["headers"]["Authorization"] == f"Basic {encoded}"
    assert outcome.value["headers"]["Authorization"] == "Basic ***"
    assert encoded not in repr(outcome) and encoded not in caplog.text
    assert_clean(outcome, caplog)


#: A secret with the characters JSON encoders escape in different ways ("/", "<", "&", "'").
ESCAPABLE = "Zk9/Qm+Tx2<Lp8>&rV'w"


@pytest.mark.parametrize("style", ["php", "go", "gson"])
async def test_a_secret_echoed_by_another_json_encoder_is_scrubbed(server, make_executor, task_factory,
                                                                   monkeypatch, caplog, style):
    """Found by an exploratory probe: PHP's json_encode writes "/" as "\\/", Go writes "<>&" as
    \\u003c..., Gson the same in upper case; the echoed secret came back in the body excerpt."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DISTSCHED_TEST_TOKEN", ESCAPABLE)
    outcome = await make_executor(secrets=LISTED).run(task_factory(
        server.url(f"/echo-escaped?style={style}"),
        options={"headers": {"Authorization": "Bearer ${DISTSCHED_TEST_TOKEN}"}},
    ))
    assert outcome.ok, outcome
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {ESCAPABLE}"
    assert outcome.value["headers"]["Authorization"] == "Bearer ***"
    excerpt = outcome.meta["body_excerpt"]
    assert "Bearer ***" in excerpt, excerpt
    assert "Zk9" not in repr(outcome) and "Zk9" not in caplog.text, excerpt


async def test_a_secret_is_scrubbed_whatever_its_case(server, make_executor, task_factory, monkeypatch, caplog):
    """Found by an exploratory probe: httpx lower-cases a host, so a secret host name came
    back in errors and logs in a form the case-sensitive scrubber missed."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DISTSCHED_TEST_TOKEN", "Canary-Host-S3cr3t.invalid")
    target = "http://${DISTSCHED_TEST_TOKEN}:" + str(server.port) + "/ok"
    unresolvable = await make_executor(secrets=LISTED).run(task_factory(target))
    refused = await make_executor(secrets=LISTED, http_allow=["127.0.0.1"]).run(task_factory(target))
    assert unresolvable.error_type == "ConnectError" or unresolvable.error_type == "ConnectionError", unresolvable
    assert "cannot resolve '***'" in unresolvable.error, unresolvable
    assert refused.error_type == "Forbidden" and "host '***' refused" in refused.error, refused
    assert "s3cr3t" not in (repr(unresolvable) + repr(refused)).lower()
    assert "s3cr3t" not in caplog.text.lower()
    assert server.requests == []


@pytest.mark.parametrize(("where", "value", "says"), [
    ("userinfo", "Zk9/Qm+Tx2Lp8rVw", "would change the host the request is sent to"),
    ("userinfo", "p@ss#w0rdQ", "would change the host the request is sent to"),
    ("host", "evilhost.invalid/Xq9", "cannot resolve '***'"),  # the host is a piece of the secret
    ("port", "80x", "not a valid URL once ${DISTSCHED_TEST_TOKEN} is expanded"),
    ("path", "Tok\x7fenXq", "not a valid URL once ${DISTSCHED_TEST_TOKEN} is expanded"),
])
async def test_a_url_broken_by_a_secret_is_refused_without_quoting_it(server, make_executor, task_factory,
                                                                      monkeypatch, caplog, where, value, says):
    """Found by an exploratory probe: a password with "/" in the userinfo made the parser
    report "Invalid port: 'Zk9'", a piece of the secret the scrubber did not know; one with
    "@" and "#" sent the request to host "ss"; a host that is a piece of a secret was quoted."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DISTSCHED_TEST_TOKEN", value)
    ref = "${DISTSCHED_TEST_TOKEN}"
    target = {
        "userinfo": server.url("/echo-headers").replace("://", f"://svc:{ref}@"),
        "host": f"http://{ref}:{server.port}/echo-headers",
        "port": f"http://127.0.0.1:{ref}/echo-headers",
        "path": server.url(f"/echo-headers/{ref}"),
    }[where]
    outcome = await make_executor(secrets=LISTED).run(task_factory(target))
    assert outcome.error_type == ("ConnectionError" if where == "host" else "ConfigError"), outcome
    assert says in outcome.error, outcome
    for piece in (value[:3], value[-3:]):
        assert piece not in repr(outcome) and piece not in caplog.text, outcome
    assert server.requests == []


async def test_a_non_ascii_secret_header_is_refused_without_quoting_it(server, make_executor, task_factory,
                                                                      monkeypatch):
    monkeypatch.setenv("DISTSCHED_TEST_TOKEN", "pässwörd")
    outcome = await make_executor(secrets=LISTED).run(task_factory(
        server.url("/ok"), options={"headers": {"X-Key": "${DISTSCHED_TEST_TOKEN}"}}))
    assert outcome.error_type == "ConfigError", outcome
    assert outcome.error == ("invalid request: the value of header 'X-Key' is not ASCII text once its "
                             "${NAME} references are expanded")
    assert server.requests == []


async def test_host_outside_the_allow_list_is_refused(server, make_executor, task_factory):
    executor = make_executor(http_allow=["10.0.0.0/8", "api.example.com", "*.example.org"])
    outcome = await executor.run(task_factory(server.url("/ok")))
    assert not outcome.ok
    assert outcome.error_type == "Forbidden"
    assert outcome.retryable is False
    assert "'127.0.0.1'" in outcome.error
    assert server.requests == []
    rpc = make_executor("rpc", http_allow=["localhost"])
    outcome = await rpc.run(task_factory(server.url("/rpc"), executor="rpc", options={"method": "add"}))
    assert outcome.error_type == "Forbidden"
    assert server.requests == []


async def test_allowed_host_passes(server, make_executor, task_factory):
    executor = make_executor(http_allow=["127.0.0.0/8"])
    assert (await executor.run(task_factory(server.url("/ok")))).ok


async def test_empty_allow_list_allows_nothing(server, make_executor, task_factory):
    outcome = await make_executor(http_allow=[]).run(task_factory(server.url("/ok")))
    assert outcome.error_type == "Forbidden"
    assert server.requests == []


@pytest.mark.parametrize("target", ["file:///etc/passwd", "gopher://127.0.0.1:70/x", "ftp://127.0.0.1/"])
async def test_other_schemes_are_always_refused(make_executor, task_factory, target):
    outcome = await make_executor(secrets=LISTED).run(task_factory(target))
    assert outcome.error_type == "Forbidden"
    assert outcome.retryable is False


def test_allow_list_matching():
    allow = AllowList.from_setting(["127.0.0.1", "10.0.0.0/8", "api.example.com", "*.example.org", "::1"])
    assert allow.allows("127.0.0.1")
    assert not allow.allows("127.0.0.2")
    assert allow.allows("10.20.30.40")
    assert allow.allows("API.Example.com.")
    assert not allow.allows("example.com")
    assert not allow.allows("api.example.com.evil.net")
    assert allow.allows("a.example.org") and allow.allows("a.b.example.org")
    assert not allow.allows("example.org")  # *.suffix means sub-domains only
    assert not allow.allows("badexample.org")
    assert allow.allows("::1") and allow.allows("[::1]")
    assert allow.allows("::ffff:10.1.2.3")  # IPv4-mapped IPv6
    assert not allow.allows("localhost")  # networks match IP literals only
    assert AllowList.from_setting(None) is None


def test_scrubber_forms():
    scrub = Scrubber(["a b/c", "xyz"])
    assert scrub.text("1 a b/c 2 a%20b%2Fc 3 a+b%2Fc 4 xyz") == "1 *** 2 *** 3 *** 4 ***"
    assert scrub.value({"k": ["xyz", 1, {"xyz": "a b/c"}]}) == {"k": ["***", 1, {"***": "***"}]}
    assert scrub.tail("prefix a b") == "prefix ***"
    assert scrub.tail("prefix xy") == "prefix xy"  # too short to be told from text
    assert Scrubber([""]).text("anything") == "anything"


def test_scrubber_covers_the_json_escapes_of_every_encoder():
    """Found by an exploratory probe: a secret JSON-escaped by PHP ("\\/", \\uXXXX for
    non-ASCII), Go (\\u003c for "<"), with upper-case hex, or lower-cased by a URL parser."""
    secret = "Zk9/Qm<é>&'😀 x"
    scrub = Scrubber([secret])
    php = json.dumps(secret).replace("/", "\\/")[1:-1]
    go = json.dumps(secret, ensure_ascii=False)[1:-1].replace("<", "\\u003c").replace(">", "\\u003e")
    upper_hex = json.dumps(secret)[1:-1].replace("\\u00e9", "\\u00E9").replace("\\ud83d\\ude00", "\\uD83D\\uDE00")
    lower_percent = quote(secret, safe="").lower()
    for form in (php, go, upper_hex, lower_percent, secret.lower(), secret.upper()):
        assert form != secret or form is secret
        assert scrub.text(f"<{form}>") == "<***>", form
    assert scrub.text("Zk9/Qm") == "Zk9/Qm"  # a piece of a secret alone is not a secret
    assert scrub.tail("... Bearer zK9\\/qM") == "... Bearer ***"  # a cut secret, in another case and form


def test_parse_retry_after():
    assert parse_retry_after("2") == 2
    assert parse_retry_after(" 0 ") == 0
    assert parse_retry_after("-1") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    now = 1_700_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == 30
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0
