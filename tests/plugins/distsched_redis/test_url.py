"""Storage URLs: what is accepted, and clear errors naming the problem for what is not."""

import pytest

from distsched.model import ValidationError
from distsched.urls import redact_url as redact
from distsched_redis.url import parse


def test_plain_url_defaults() -> None:
    s = parse("redis://localhost")
    assert s.hosts == (("localhost", 6379),) and s.db == 0
    assert s.namespace == "distsched" and s.prefix == "{distsched}:"
    assert s.retention == 7 * 86400 and s.strict is False


def test_credentials_db_and_options() -> None:
    s = parse("redis://app:p%40ss@10.0.0.5:6380/3?namespace=prod.eu&retention=1d&strict=true&results_max=50")
    assert (s.username, s.password) == ("app", "p@ss")
    assert s.hosts == (("10.0.0.5", 6380),) and s.db == 3
    assert (s.namespace, s.retention, s.strict, s.results_max) == ("prod.eu", 86400.0, True, 50)
    assert s.lean is True and parse("redis://h/0?lean=false").lean is False
    assert "p@ss" not in repr(s) and "p%40ss" not in s.redacted and "***" in s.redacted


def test_engine_options_override_the_query() -> None:
    s = parse("redis://h/0?namespace=a&retention=60", {"namespace": "b", "strict": True})
    assert (s.namespace, s.retention, s.strict) == ("b", 60.0, True)


def test_tls_url() -> None:
    s = parse("rediss://h:6390/0?ssl_ca_certs=/ca.pem&ssl_cert_reqs=required&ssl_certfile=/c&ssl_keyfile=/k")
    assert s.scheme == "rediss" and s.ssl == {
        "ssl_ca_certs": "/ca.pem", "ssl_cert_reqs": "required", "ssl_certfile": "/c", "ssl_keyfile": "/k"}


def test_sentinel_url() -> None:
    s = parse("redis+sentinel://u:pw@s1:26379,s2,[::1]:26380/mymaster/2?namespace=x&sentinel_password=sp")
    assert s.hosts == (("s1", 26379), ("s2", 26379), ("::1", 26380))
    assert (s.service, s.db, s.namespace, s.sentinel_password) == ("mymaster", 2, "x", "sp")
    assert "sp" not in redact("redis+sentinel://s1/m?sentinel_password=sp").split("?")[1]


def test_sentinel_over_tls_url() -> None:
    s = parse("rediss+sentinel://u:pw@s1:26379,s2/mymaster/2?namespace=x&sentinel_password=sp&ssl_ca_certs=/ca.pem")
    assert s.scheme == "rediss+sentinel" and s.sentinel and s.tls and not s.cluster
    assert s.hosts == (("s1", 26379), ("s2", 26379)) and (s.service, s.db, s.sentinel_password) == ("mymaster", 2, "sp")
    assert s.ssl == {"ssl_ca_certs": "/ca.pem"}
    assert parse("redis+sentinel://s1/m").sentinel and not parse("redis+sentinel://s1/m").tls


def test_cluster_url() -> None:
    s = parse("redis+cluster://u:p%40w@c1:7000,c2,[::1]:7002/?namespace=prod&retention=1h")
    assert s.scheme == "redis+cluster" and s.hosts == (("c1", 7000), ("c2", 6379), ("::1", 7002))
    assert (s.db, s.namespace, s.prefix, s.retention) == (0, "prod", "{prod}:", 3600.0)
    assert (s.username, s.password) == ("u", "p@w") and "p@w" not in repr(s)
    assert s.redacted == "redis+cluster://u:***@c1:7000,c2,[::1]:7002/?namespace=prod&retention=1h"
    assert parse("redis+cluster://c1:7000").hosts == (("c1", 7000),)
    assert parse("redis+cluster://c1:7000/0").db == 0


def test_cluster_over_tls_url() -> None:
    s = parse("rediss+cluster://u:pw@c1:7000,c2/?namespace=prod&ssl_ca_certs=/ca.pem&ssl_certfile=/c"
              "&ssl_keyfile=/k&ssl_check_hostname=false")
    assert s.scheme == "rediss+cluster" and s.cluster and s.tls
    assert s.hosts == (("c1", 7000), ("c2", 6379)) and (s.db, s.namespace) == (0, "prod")
    assert s.ssl == {"ssl_ca_certs": "/ca.pem", "ssl_certfile": "/c", "ssl_keyfile": "/k", "ssl_check_hostname": False}
    assert "pw" not in s.redacted
    plain = parse("redis+cluster://c1:7000")
    assert plain.cluster and not plain.tls and not parse("redis://h").cluster and parse("rediss://h").tls


def test_unix_socket_url() -> None:
    s = parse("redis+unix://app:p%40ss@/run/redis/my%20redis.sock?db=2&namespace=prod&retention=1h")
    assert s.scheme == "redis+unix" and s.path == "/run/redis/my redis.sock" and s.hosts == ()
    assert (s.db, s.namespace, s.retention, s.lean) == (2, "prod", 3600.0, True)
    assert (s.username, s.password) == ("app", "p@ss") and "p@ss" not in repr(s)
    assert s.redacted == "redis+unix://app:***@/run/redis/my%20redis.sock?db=2&namespace=prod&retention=1h"
    assert parse("redis+unix:///tmp/r.sock").db == 0
    # two sockets are two data sets (the election checks that it shares the storage's)
    assert parse("redis+unix:///a.sock").target() != parse("redis+unix:///b.sock").target()


@pytest.mark.parametrize(("url", "fragment"), [
    ("redis+cluster://", "host is missing"),
    ("redis+cluster://c1/3", "a Redis Cluster has one database"),
    ("redis+cluster://c1/0/x", "unexpected path"),
    ("redis+cluster://c1,c1:6379/", "a start node is listed twice"),
    ("redis+cluster://c1:0/", "port must be a number between 1 and 65535"),
    ("redis+cluster://c1/?ssl_ca_certs=/x", "need a rediss+cluster:// URL"),
    ("rediss+cluster://c1/3", "a Redis Cluster has one database"),
    ("rediss+cluster://c1/?ssl_cert_reqs=maybe", "ssl_cert_reqs must be required, optional or none"),
    ("rediss+cluster://c1/?ssl_certfile=/c", "ssl_certfile and ssl_keyfile go together"),
    ("rediss+cluster://c1/?sentinel_password=x", "need a redis+sentinel:// or rediss+sentinel:// URL"),
    ("redis+cluster://c1/?sentinel_password=x", "need a redis+sentinel:// or rediss+sentinel:// URL"),
    ("redis+cluster://c1/?namespace={x}", "namespace must be"),
])
def test_bad_cluster_urls_name_the_problem(url: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse(url)
    assert info.value.field == "storage" and fragment in info.value.reason, info.value.reason
    assert "x@" not in str(info.value)


@pytest.mark.parametrize(("url", "fragment"), [
    ("redis://", "host is missing"),
    ("redis://h:99999/0", "port must be a number between 1 and 65535"),
    ("redis://h:abc/0", "port must be a number"),
    ("redis://h/zero", "database must be a number"),
    ("redis://h/0/extra", "unexpected path"),
    ("redis://h1,h2/0", "several hosts are only allowed with redis+sentinel"),
    ("redis://h/0?namespace=a{b}", "namespace must be"),
    ("redis://h/0?namespace=", "namespace must be"),
    ("redis://h/0?bogus=1", "unknown option(s) bogus"),
    ("redis://h/0?strict=maybe", "strict must be true or false"),
    ("redis://h/0?lean=sometimes", "lean must be true or false"),
    ("redis://h/0?retention=forever", "retention must be a number of seconds"),
    ("redis://h/0?retention=0", "retention must be between"),
    ("redis://h/0?results_max=-5", "results_max must be between"),
    ("redis://h/0?ssl_ca_certs=/x", "need a rediss:// URL"),
    ("rediss://h/0?ssl_cert_reqs=maybe", "ssl_cert_reqs must be required, optional or none"),
    ("rediss://h/0?ssl_certfile=/c", "ssl_certfile and ssl_keyfile go together"),
    ("redis://h/0?sentinel_password=x", "need a redis+sentinel:// or rediss+sentinel:// URL"),
    ("redis+sentinel://s1:26379", "sentinel service name is missing"),
    ("redis+sentinel://s1/m/0/1", "unexpected path"),
    ("redis+sentinel://s1/m/0?ssl_ca_certs=/x", "need a rediss+sentinel:// URL"),
    ("rediss+sentinel://s1:26379", "sentinel service name is missing (rediss+sentinel://"),
    ("rediss+sentinel://s1/m?ssl_certfile=/c", "ssl_certfile and ssl_keyfile go together"),
    ("redis://h/0?namespace=a&namespace=b", "given twice"),
    ("redis://[::1/0", "not a valid URL"),
    ("redis://a:pw@[::1/0", "not a valid URL"),
    ("memcached://h/0", "unsupported scheme memcached://"),
    ("redis://h/0#frag", "fragment"),
    ("redis+unix://", "socket path is missing"),
    ("redis+unix:///", "socket path is missing"),
    ("redis+unix://run/redis.sock", "takes no host ('run')"),
    ("redis+unix://localhost:6379/0", "takes no host"),
    ("redis+unix:///r.sock?db=two", "option db must be an integer"),
    ("redis+unix:///r.sock?db=-1", "option db must be between"),
    ("redis+unix:///r.sock?ssl_ca_certs=/x", "need a rediss:// URL"),
    ("redis://h/0?db=1", "option db is for redis+unix:// URLs"),
])
def test_bad_urls_name_the_problem(url: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse(url)
    assert info.value.field == "storage"
    assert fragment in info.value.reason, info.value.reason


def test_passwords_never_appear_in_errors() -> None:
    with pytest.raises(ValidationError) as info:
        parse("redis://app:s3cret@h/0?bogus=1")
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize("url", ["redis://app:s3cr\net@h/0", "redis://app:s3cr\tet@h/0", "redis://app:s3cr\x01et@h/0",
                                 "redis://h/0?namespace=a\nb"])
def test_a_control_character_is_refused_naming_it(url: str) -> None:
    """Python's URL parser drops a tab or a newline without a word (a password 'pa\\nss' was
    then said to hold an unencoded '/' or '@'); a control character is named as such."""
    with pytest.raises(ValidationError) as info:
        parse(url)
    assert "holds a control character" in info.value.reason and "s3cr" not in str(info.value)
    assert "\n" not in str(info.value) and "\t" not in str(info.value)
