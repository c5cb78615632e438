"""Storage URLs and options of the PostgreSQL backend, validated with errors that name the problem.

``postgresql://[user[:password]@]host[:port]/database[?option=value&...]`` (``postgres://`` too)

A Unix socket, as libpq writes it: the socket's directory as the host, percent-encoded
(``postgresql://app@%2Fvar%2Frun%2Fpostgresql/sched``), or no host and the ``host`` option
(``postgresql://app@/sched?host=/var/run/postgresql``); the port names the socket file
(``.s.PGSQL.<port>``).

distsched's own options (URL query or the engine's storage options; an option given both ways
takes the engine's value): ``schema`` (or its alias ``namespace``; default ``distsched``: the
PostgreSQL schema holding this deployment's tables, so several deployments share one database),
``pool_size`` (most connections of the pool, default 10), ``pool_min`` (default 1),
``retention`` (how long finished tasks are kept, default ``7d``), ``results_max`` (cap of the
result channel, default 100000), ``migrate`` (apply missing migrations at open, default true;
false refuses to start on an outdated schema), ``connect_timeout`` (default 5 s),
``command_timeout`` (default 30 s).

libpq options passed to the driver as they are: ``sslmode`` (disable, allow, prefer, require,
verify-ca, verify-full), ``sslrootcert``, ``sslcert``, ``sslkey``, ``sslcrl``, ``sslpassword``,
``application_name``, ``target_session_attrs``, ``passfile``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import attrs

from distsched.model import ValidationError
from distsched.urls import (
    option_bool,
    option_int,
    option_seconds,
    redact_url,
    refuse_control_characters,
    url_error,
)

SCHEMES = ("postgresql", "postgres")
DEFAULT_SCHEMA = "distsched"
DEFAULT_RETENTION = 7 * 86400.0
DEFAULT_RESULTS_MAX = 100_000
SCHEMA_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,62}$")
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
LIBPQ_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslpassword",
                 "application_name", "target_session_attrs", "passfile")
OPTIONS = ("schema", "namespace", "pool_size", "pool_min", "retention", "results_max", "migrate",
           "connect_timeout", "command_timeout", "host", *LIBPQ_OPTIONS)
@attrs.frozen(kw_only=True)
class PostgresSettings:
    """A parsed, validated storage URL plus options."""

    url: str
    #: A host name or address, or (starting with "/") the directory of a Unix socket.
    host: str
    port: int
    database: str
    user: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    schema: str = DEFAULT_SCHEMA
    pool_size: int = 10
    pool_min: int = 1
    retention: float = DEFAULT_RETENTION
    results_max: int = DEFAULT_RESULTS_MAX
    migrate: bool = True
    connect_timeout: float = 5.0
    command_timeout: float = 30.0
    libpq: dict[str, str] = attrs.field(factory=dict)

    @property
    def redacted(self) -> str:
        return redact_url(self.url)

    @property
    def quoted_schema(self) -> str:
        return '"' + self.schema + '"'

    def target(self) -> tuple[Any, ...]:
        """What identifies the data set (for checking that election and storage match)."""
        return (self.host, self.port, self.database, self.schema)

    def dsn(self) -> str:
        """The URL the driver connects to: credentials, host, database and libpq options only."""
        creds = ""
        if self.user is not None:
            creds = quote(self.user, safe="")
            if self.password is not None:
                creds += ":" + quote(self.password, safe="")
            creds += "@"
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in sorted(self.libpq.items()))
        database = quote(self.database, safe="")
        if self.unix_socket:  # the driver takes the socket's directory as the host option
            out = f"postgresql://{creds}/{database}?host={quote(self.host, safe='')}&port={self.port}"
            return f"{out}&{query}" if query else out
        host = f"[{self.host}]" if ":" in self.host else self.host
        out = f"postgresql://{creds}{host}:{self.port}/{database}"
        return f"{out}?{query}" if query else out

    @property
    def unix_socket(self) -> bool:
        """The server is reached through a Unix socket in the directory ``host``."""
        return self.host.startswith("/")

    def channel(self, *parts: str) -> str:
        """A LISTEN/NOTIFY channel name of this schema (a hash: channel names are identifiers
        of at most 63 bytes; ``ds_channel`` in the SQL computes the same)."""
        text = ":".join((self.schema, *parts))
        return "ds_" + hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:24]

    def lock_key(self) -> int:
        """The advisory lock key of this schema's migrations (a signed 64-bit integer)."""
        digest = hashlib.sha256(("distsched-migrate:" + self.schema).encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


def parse(url: Any, options: dict[str, Any] | None = None) -> PostgresSettings:
    """Validate ``url`` (and the engine's ``options``) into :class:`PostgresSettings`."""
    if not isinstance(url, str) or "://" not in url:
        raise ValidationError("storage", f"must be a URL such as postgresql://user@host:5432/db, not {url!r}")
    scheme = url.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise url_error(url, f"unsupported scheme {scheme}:// (use postgresql:// or postgres://)")
    refuse_control_characters(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise url_error(url, f"not a valid URL ({exc}); the port must be a number between 1 and 65535") from None
    if parts.fragment:
        raise url_error(url, "a URL fragment (#...) is not allowed")
    netloc = parts.netloc
    if "," in netloc:
        raise url_error(url, "several hosts are not supported; name one host")
    user = password = None
    if "@" in netloc:
        creds = netloc.rsplit("@", 1)[0]
        name, sep, pw = creds.partition(":")
        user = unquote(name) or None
        password = unquote(pw) if sep and pw else None
    # the host as written (urlsplit's hostname is lowercased: a socket directory is a path)
    written = netloc.rsplit("@", 1)[-1]
    written = unquote(written.rsplit(":", 1)[0] if port is not None else written)
    host = written if written.startswith("/") else parts.hostname
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise url_error(url, "the database name is missing (postgresql://HOST[:PORT]/DATABASE)")
    if "/" in database:
        raise url_error(url, f"unexpected path {parts.path!r} (expected /DATABASE)")

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

    if "host" in values:
        socket_dir = values.pop("host")
        if host:
            raise url_error(url, "the host is given twice: in the URL and as the host option")
        if not isinstance(socket_dir, str) or not socket_dir.startswith("/"):
            raise url_error(url, "option host must be the absolute path of a Unix socket's directory "
                             f"(e.g. /var/run/postgresql), not {socket_dir!r}; name a network host in the URL")
        host = socket_dir
    if not host:
        raise url_error(url, "the host is missing (postgresql://[user[:password]@]HOST[:PORT]/DATABASE, or "
                         "?host=/SOCKET/DIRECTORY for a Unix socket)")

    kw: dict[str, Any] = {}
    if "schema" in values and "namespace" in values and values["schema"] != values["namespace"]:
        raise url_error(url, "options schema and namespace name the same thing: give one")
    schema = values.get("schema", values.get("namespace"))
    if schema is not None:
        if not isinstance(schema, str) or not SCHEMA_RE.fullmatch(schema):  # not match: "$" takes a final "\n"
            raise url_error(url, "schema (namespace) must be 1-63 characters of letters, digits, '_' and '-' "
                             f"(not starting with '-'), not {schema!r}")
        kw["schema"] = schema
    if "pool_size" in values:
        kw["pool_size"] = option_int(url, "pool_size", values["pool_size"], 2, 1000)
    if "pool_min" in values:
        kw["pool_min"] = option_int(url, "pool_min", values["pool_min"], 0, 1000)
    if kw.get("pool_min", 1) > kw.get("pool_size", 10):
        raise url_error(url, f"option pool_min ({kw.get('pool_min', 1)}) must not exceed pool_size "
                         f"({kw.get('pool_size', 10)})")
    if "retention" in values:
        kw["retention"] = option_seconds(url, "retention", values["retention"], 1, 366 * 86400)
    if "results_max" in values:
        kw["results_max"] = option_int(url, "results_max", values["results_max"], 1, 100_000_000)
    if "migrate" in values:
        kw["migrate"] = option_bool(url, "migrate", values["migrate"])
    for name, low, high in (("connect_timeout", 0.1, 300), ("command_timeout", 0.1, 3600)):
        if name in values:
            kw[name] = option_seconds(url, name, values[name], low, high)
    libpq = {k: str(values[k]) for k in LIBPQ_OPTIONS if k in values}
    if "sslmode" in libpq and libpq["sslmode"] not in SSLMODES:
        raise url_error(url, f"option sslmode must be one of {', '.join(SSLMODES)}, not {libpq['sslmode']!r}")
    return PostgresSettings(url=url, host=host, port=port or 5432, database=database, user=user,
                            password=password, libpq=libpq, **kw)
