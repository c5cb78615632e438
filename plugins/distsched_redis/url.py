"""Storage URLs and options of the Redis backend, validated with errors that name the problem.

``redis://[user:password@]host[:port][/db][?option=value&...]``
``redis+unix://[[user]:password@]/PATH/TO/redis.sock[?db=N&option=value&...]``
                  a server on the same machine through its Unix socket (Redis's ``unixsocket``):
                  the absolute path after three slashes, the database as ``db=N``
``rediss://...``  the same over TLS (``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``,
                  ``ssl_cert_reqs``, ``ssl_check_hostname``)
``redis+sentinel://[user:password@]host[:port][,host2[:port2]...]/SERVICE[/db][?...]``
                  the master of ``SERVICE`` as the sentinels report it (``user:password`` are the
                  master's; ``sentinel_username`` / ``sentinel_password`` authenticate to the
                  sentinels)
``rediss+sentinel://...``
                  the same over TLS, to the sentinels and to the master (the ``ssl_*``
                  options of ``rediss://``)
``redis+cluster://[user:password@]host[:port][,host2[:port2]...][/][?...]``
                  a Redis Cluster, found from these start nodes; the namespace's keys all
                  hash to one slot (``{namespace}`` is their hash tag), so one namespace lives
                  on one master
``rediss+cluster://...``
                  the same over TLS, to every node (the ``ssl_*`` options of ``rediss://``)

Options (URL query or the engine's storage options; an option given both ways takes the
engine's value): ``namespace`` (default ``distsched``), ``retention`` (how long finished tasks
are kept, default ``7d``), ``results_max`` (cap of the result list, default 100000),
``strict`` (refuse an evicting ``maxmemory-policy``), ``socket_timeout`` (default 5 s),
``connect_timeout`` (default 3 s), ``health_check_interval`` (default 15 s),
``max_connections``, ``max_reply`` (largest reply accepted, in bytes, default 256 MiB: see
:mod:`.parser`), ``lean`` (default true: on ``redis://`` and ``redis+unix://`` the hot calls go through one lean
pipelined connection, :mod:`.lean`; ``lean=false`` sends every call through redis-py's client).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

from distsched.model import ValidationError
from distsched.urls import (
    option_bool,
    option_int,
    option_seconds,
    redact_url,
    refuse_control_characters,
    url_error,
    userinfo_end,
)

from .parser import DEFAULT_MAX_REPLY

SCHEMES = ("redis", "rediss", "redis+unix", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
TLS_SCHEMES = ("rediss", "rediss+sentinel", "rediss+cluster")
DEFAULT_NAMESPACE = "distsched"
DEFAULT_RETENTION = 7 * 86400.0
DEFAULT_RESULTS_MAX = 100_000
NAMESPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")
SSL_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")
SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")
OPTIONS = (
    "namespace", "retention", "results_max", "strict", "socket_timeout", "connect_timeout",
    "health_check_interval", "max_connections", "max_reply", "lean", "db", *SSL_OPTIONS, *SENTINEL_OPTIONS,
)
@attrs.frozen(kw_only=True)
class RedisSettings:
    """A parsed, validated storage URL plus options."""

    url: str
    scheme: str
    hosts: tuple[tuple[str, int], ...]
    path: str | None = None
    """The Unix socket of a ``redis+unix://`` URL (``hosts`` is then empty)."""
    db: int = 0
    username: str | None = attrs.field(default=None, repr=False)
    password: str | None = attrs.field(default=None, repr=False)
    service: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    retention: float = DEFAULT_RETENTION
    results_max: int = DEFAULT_RESULTS_MAX
    strict: bool = False
    socket_timeout: float = 5.0
    connect_timeout: float = 3.0
    health_check_interval: float = 15.0
    max_connections: int | None = None
    max_reply: int = DEFAULT_MAX_REPLY
    lean: bool = True
    ssl: dict[str, Any] = attrs.field(factory=dict)
    sentinel_username: str | None = attrs.field(default=None, repr=False)
    sentinel_password: str | None = attrs.field(default=None, repr=False)

    @property
    def prefix(self) -> str:
        """Every key starts with this: the namespace as a hash tag."""
        return "{" + self.namespace + "}:"

    @property
    def cluster(self) -> bool:
        """A Redis Cluster (``redis+cluster://``, ``rediss+cluster://``)."""
        return self.scheme in CLUSTER_SCHEMES

    @property
    def sentinel(self) -> bool:
        """A master found through Sentinel (``redis+sentinel://``, ``rediss+sentinel://``)."""
        return self.scheme in SENTINEL_SCHEMES

    @property
    def tls(self) -> bool:
        """Every connection is TLS (``rediss://``, ``rediss+sentinel://``, ``rediss+cluster://``)."""
        return self.scheme in TLS_SCHEMES

    @property
    def redacted(self) -> str:
        """The URL without its passwords, for messages and logs."""
        return redact_url(self.url)

    def target(self) -> tuple[Any, ...]:
        """What identifies the data set (for checking that election and storage match)."""
        return (self.scheme, self.hosts, self.path, self.db, self.service, self.namespace)


def _host_port(url: str, text: str, default_port: int) -> tuple[str, int]:
    if not text:
        raise url_error(url, "the host is missing (expected HOST[:PORT])")
    if text.startswith("["):  # [IPv6]:port
        end = text.find("]")
        if end < 0:
            raise url_error(url, f"unterminated IPv6 address in {text!r}")
        host, rest = text[1:end], text[end + 1:]
        if rest and not rest.startswith(":"):
            raise url_error(url, f"unexpected {rest!r} after the IPv6 address")
        port_text = rest[1:] if rest else ""
    elif text.count(":") > 1:
        raise url_error(url, f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:6379")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise url_error(url, f"the host is missing in {text!r}")
    if port_text == "":
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise url_error(url, f"the port must be a number between 1 and 65535, not {port_text!r}")
    return host, int(port_text)


def _db(url: str, text: str) -> int:
    if text == "":
        return 0
    if not text.isdigit():
        raise url_error(url, f"the database must be a number such as /0, not {text!r}")
    return int(text)


def parse(url: Any, options: dict[str, Any] | None = None) -> RedisSettings:
    """Validate ``url`` (and the engine's ``options``) into :class:`RedisSettings`."""
    if not isinstance(url, str) or "://" not in url:
        shown = repr(redact_url(url)) if isinstance(url, str) else type(url).__name__
        raise ValidationError("storage", f"must be a URL such as redis://host:6379/0, not {shown}")
    scheme = url.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise url_error(url, f"unsupported scheme {scheme}:// (use one of {', '.join(s + '://' for s in SCHEMES)})")
    refuse_control_characters(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise url_error(url, f"not a valid URL ({exc})") from None
    netloc_at = url.index("://") + 3 + parts.netloc.rfind("@") if "@" in parts.netloc else -1
    if userinfo_end(url) != netloc_at:
        # The password (or user name) holds a '/', '?' or '#' that ends the host part early:
        # say so without echoing any piece of it.
        raise url_error(url, "the user name or password holds an unencoded '/', '?', '#' or '@': percent-encode "
                         "it (%2F, %3F, %23, %40)")
    if parts.fragment:
        raise url_error(url, "a URL fragment (#...) is not allowed")
    netloc = parts.netloc
    username = password = None
    if "@" in netloc:
        creds, netloc = netloc.rsplit("@", 1)
        user, sep, pw = creds.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if sep else None
        if password == "":
            password = None
    path = parts.path.strip("/")
    segments = path.split("/") if path else []
    service = socket_path = None
    if scheme == "redis+unix":
        if netloc:
            raise url_error(url, f"redis+unix:// takes no host ({netloc!r}): write the socket's absolute path "
                             "after three slashes, e.g. redis+unix:///run/redis/redis.sock")
        if not path:
            raise url_error(url, "the socket path is missing (redis+unix:///run/redis/redis.sock[?db=N])")
        socket_path = unquote(parts.path)
        hosts: tuple[tuple[str, int], ...] = ()
        db = 0
    elif scheme in SENTINEL_SCHEMES:
        hosts = tuple(_host_port(url, h.strip(), 26379) for h in netloc.split(","))
        if not segments or not segments[0]:
            raise url_error(url, "the sentinel service name is missing "
                             f"({scheme}://HOST:PORT[,HOST:PORT]/SERVICE[/DB])")
        service = unquote(segments[0])
        if len(segments) > 2:
            raise url_error(url, f"unexpected path {parts.path!r} (expected /SERVICE[/DB])")
        db = _db(url, segments[1] if len(segments) > 1 else "")
    elif scheme in CLUSTER_SCHEMES:
        hosts = tuple(_host_port(url, h.strip(), 6379) for h in netloc.split(","))
        if len(set(hosts)) != len(hosts):
            raise url_error(url, "a start node is listed twice")
        if segments and segments != ["0"]:
            raise url_error(url, f"unexpected path {parts.path!r}: a Redis Cluster has one database "
                             f"({scheme}://HOST:PORT[,HOST:PORT...]/?namespace=...)")
        db = 0
    else:
        if "," in netloc:
            raise url_error(url, "several hosts are only allowed with redis+sentinel://, redis+cluster:// and their "
                             "TLS forms rediss+sentinel://, rediss+cluster://")
        hosts = (_host_port(url, netloc, 6379),)
        if len(segments) > 1:
            raise url_error(url, f"unexpected path {parts.path!r} (expected /DB, a number)")
        db = _db(url, segments[0] if segments else "")

    values: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in values:
            raise url_error(url, f"option {key} is given twice")
        values[key] = value
    for key, value in (options or {}).items():
        values[key] = value
    unknown = sorted(set(values) - set(OPTIONS))
    if unknown:
        raise url_error(url, f"unknown option(s) {', '.join(unknown)} (known: {', '.join(OPTIONS)})")
    if scheme not in TLS_SCHEMES:
        given = [k for k in SSL_OPTIONS if k in values]
        if given:
            tls_scheme = {"redis+cluster": "rediss+cluster", "redis+sentinel": "rediss+sentinel"}.get(scheme, "rediss")
            raise url_error(url, f"TLS option(s) {', '.join(given)} need a {tls_scheme}:// URL")
    if scheme not in SENTINEL_SCHEMES:
        given = [k for k in SENTINEL_OPTIONS if k in values]
        if given:
            raise url_error(url, f"option(s) {', '.join(given)} need a redis+sentinel:// or rediss+sentinel:// URL")

    if "db" in values:
        if scheme != "redis+unix":
            raise url_error(url, "option db is for redis+unix:// URLs; here the database is the path: "
                             "redis://HOST:PORT/DB")
        db = option_int(url, "db", values["db"], 0, 1_000_000)
    kw: dict[str, Any] = {}
    if "namespace" in values:
        ns = values["namespace"]
        if not isinstance(ns, str) or not NAMESPACE_RE.fullmatch(ns):  # not match: "$" takes a final "\n"
            raise url_error(url, f"namespace must be 1-64 characters of letters, digits, '_', '-', '.', ':' "
                             f"(starting with a letter or digit), not {ns!r}")
        kw["namespace"] = ns
    if "retention" in values:
        kw["retention"] = option_seconds(url, "retention", values["retention"], 1, 366 * 86400)
    if "results_max" in values:
        kw["results_max"] = option_int(url, "results_max", values["results_max"], 1, 100_000_000)
    if "strict" in values:
        kw["strict"] = option_bool(url, "strict", values["strict"])
    if "lean" in values:
        kw["lean"] = option_bool(url, "lean", values["lean"])
    for name, low, high in (("socket_timeout", 0.1, 300), ("connect_timeout", 0.1, 300),
                            ("health_check_interval", 0, 3600)):
        if name in values:
            kw[name] = option_seconds(url, name, values[name], low, high)
    if "max_connections" in values:
        kw["max_connections"] = option_int(url, "max_connections", values["max_connections"], 2, 100_000)
    if "max_reply" in values:
        kw["max_reply"] = option_int(url, "max_reply", values["max_reply"], 1024 * 1024, 1 << 40)
    for name in SENTINEL_OPTIONS:
        if name in values:
            kw[name] = str(values[name])
    ssl: dict[str, Any] = {}
    if scheme in TLS_SCHEMES:
        for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
            if name in values:
                ssl[name] = str(values[name])
        if "ssl_cert_reqs" in values:
            reqs = str(values["ssl_cert_reqs"]).lower()
            if reqs not in ("required", "optional", "none"):
                raise url_error(url, f"option ssl_cert_reqs must be required, optional or none, not {reqs!r}")
            ssl["ssl_cert_reqs"] = reqs
        if "ssl_check_hostname" in values:
            ssl["ssl_check_hostname"] = option_bool(url, "ssl_check_hostname", values["ssl_check_hostname"])
        if ("ssl_certfile" in ssl) != ("ssl_keyfile" in ssl):
            raise url_error(url, "ssl_certfile and ssl_keyfile go together (a client certificate and its key)")
    return RedisSettings(
        url=url, scheme=scheme, hosts=hosts, path=socket_path, db=db, username=username, password=password,
        service=service, ssl=ssl, **kw,
    )
