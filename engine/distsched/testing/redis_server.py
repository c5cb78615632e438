"""Throwaway ``redis-server`` (and Sentinel) processes for tests.

>>> server = RedisServer(config={"maxmemory-policy": "allkeys-lru"})
>>> server.start()
>>> server.url                 # redis://127.0.0.1:<port>/0
>>> server.kill(); server.restart()   # kill -9, then the same port again
>>> server.prepare_slow_load(); server.kill(); server.restart(loaded=False)  # answers -LOADING a while
>>> server.stop()              # terminate and remove the temp dir

Each server runs on a free loopback port in its own temp dir with ``--save ''`` and
``--appendonly no`` unless told otherwise. It never uses 6379 (a shared Redis may live
there). TLS (``tls=True``) uses a CA and certificates generated at start: with ``trustme``
when installed, else with the ``openssl`` command. ``users={"name": "password"}`` adds ACL
users (all keys and commands), ``default_user=False`` turns the password-less default user off.
:class:`RedisSentinel` runs a Sentinel monitoring a :class:`RedisServer`.

``binary=`` runs a given ``redis-server`` (default the one on PATH), e.g. a Redis 6.2 built by
``.ci/redis6``; :func:`redis_server_version` tells which version a binary is. Tuning directives
that only newer servers know (:data:`NEWER_DIRECTIVES`: ``cluster-port``,
``loading-process-events-interval-bytes``) are left out of an older server's command line.

Only processes started here are ever signalled, by their own pid.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from .processes import ChildProcess, StoreServer

SHARED_PORT = 6379
LOOPBACK = "127.0.0.1"
SOCKET_NAME = "redis.sock"
#: A Unix socket's path must fit ``sockaddr_un`` (108 bytes with its NUL on Linux): a server
#: whose temp dir is deeper listens on TCP only.
SOCKET_PATH_MAX = 100

#: Directives this helper and its callers set that older servers refuse at start ("Bad
#: directive"), with the version that brought each. Each only tunes the test setup (an
#: explicit cluster bus port, how often a loading server answers clients), so it is left
#: out of an older server's command line and that server's default applies.
NEWER_DIRECTIVES: dict[str, tuple[int, int]] = {
    "cluster-port": (7, 0),
    "loading-process-events-interval-bytes": (7, 0),
}

_VERSION = re.compile(r"\bv=(\d+)\.(\d+)\.(\d+)")


def redis_server_binary() -> str | None:
    """The ``redis-server`` on PATH, or None."""
    return shutil.which("redis-server")


def redis_server_version(binary: str | None = None) -> tuple[int, int, int]:
    """The version of a ``redis-server`` binary (default the one on PATH), from
    ``redis-server --version`` (``Redis server v=6.2.14 ...``), e.g. ``(6, 2, 14)``. Raises
    RuntimeError naming the binary when it cannot be run or does not say its version."""
    path = binary or redis_server_binary()
    if path is None:
        raise RuntimeError("redis-server is not on PATH")
    return _version(os.path.abspath(path))


@cache
def _version(path: str) -> tuple[int, int, int]:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"cannot run {path} --version: {exc}") from None
    match = _VERSION.search(out.stdout)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"{path} --version did not say a Redis version (exit {out.returncode}): "
                           f"{(out.stdout + out.stderr).strip()[:200]!r}")
    major, minor, patch = (int(x) for x in match.groups())
    return major, minor, patch


def free_port() -> int:
    """A free TCP port on the loopback interface (never the shared 6379)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port = sock.getsockname()[1]
        if port != SHARED_PORT:
            return port


def _ping(port: int, *, tls: ssl.SSLContext | None = None, timeout: float = 0.5,
          command: bytes = b"PING\r\n") -> bytes | None:
    """Send one inline command and return the first reply line, or None if nobody answers."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as raw:
            sock = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
            with sock:
                sock.sendall(command)
                data = b""
                while not data.endswith(b"\r\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                return data or None
    except (OSError, ssl.SSLError):
        return None


class Certificates:
    """A throwaway CA plus a server and a client certificate for ``localhost``/127.0.0.1."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = directory / "ca.crt"
        self.server_cert = directory / "server.crt"
        self.server_key = directory / "server.key"
        self.client_cert = directory / "client.crt"
        self.client_key = directory / "client.key"
        directory.mkdir(parents=True, exist_ok=True)
        try:
            import trustme
        except ImportError:
            self._openssl()
        else:
            ca = trustme.CA()
            ca.cert_pem.write_to_path(str(self.ca))
            server = ca.issue_cert("localhost", LOOPBACK)
            server.private_key_pem.write_to_path(str(self.server_key))
            server.cert_chain_pems[0].write_to_path(str(self.server_cert))
            client = ca.issue_cert("distsched-client")
            client.private_key_pem.write_to_path(str(self.client_key))
            client.cert_chain_pems[0].write_to_path(str(self.client_cert))

    def _openssl(self) -> None:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise RuntimeError("TLS test certificates need the 'trustme' package or the 'openssl' command")
        d = self.dir
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

        def run(*args: str) -> None:
            subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

        # The extensions Python 3.13's default VERIFY_X509_STRICT requires: a critical
        # basicConstraints and key usage on the CA, key identifiers on both sides.
        run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=distsched test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash")
        common = ("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                  "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
        (d / "server.ext").write_text(common + "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                      "extendedKeyUsage=serverAuth\n")
        (d / "client.ext").write_text(common + "extendedKeyUsage=clientAuth\n")
        for name in ("server", "client"):
            run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={'localhost' if name == 'server' else 'distsched-client'}")
            run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx


class RedisServer:
    """One throwaway ``redis-server`` on a free loopback port.

    ``config`` are extra settings (``{"maxmemory-policy": "allkeys-lru"}`` or a list of
    ``("name", "value"...)`` tuples); ``tls`` serves TLS only (``rediss://``);
    ``tls_auth_clients`` is Redis's ``tls-auth-clients`` (``no``, ``optional``, ``yes``);
    ``users`` adds ACL users with full access; ``default_user=False`` disables the
    password-less default user; ``appendonly`` / ``appendfsync`` turn the AOF on;
    ``binary`` is the ``redis-server`` to run (default the one on PATH); ``certs`` are the
    TLS certificates to serve (default: made at start; a cluster's nodes share one set).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        config: Mapping[str, Any] | Iterable[tuple[str, ...]] = (),
        tls: bool = False,
        tls_auth_clients: str = "optional",
        users: Mapping[str, str] | None = None,
        default_user: bool = True,
        appendonly: bool = False,
        appendfsync: str = "everysec",
        binary: str | None = None,
        start_timeout: float = 10.0,
        certs: Certificates | None = None,
    ) -> None:
        if port == SHARED_PORT:
            raise ValueError("refusing port 6379: a shared Redis may be running there")
        found = binary or redis_server_binary()
        if found is None:
            raise RuntimeError("redis-server is not on PATH")
        self.binary: str = found
        self.port = port
        if isinstance(config, Mapping):
            self.config: list[tuple[str, ...]] = [(str(k), str(v)) for k, v in config.items()]
        else:
            self.config = [tuple(str(x) for x in item) for item in config]
        self.tls = tls
        self.tls_auth_clients = tls_auth_clients
        self.users = dict(users or {})
        self.default_user = default_user
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.start_timeout = start_timeout
        self.host = LOOPBACK
        self.dir: Path | None = None
        self.certs: Certificates | None = certs
        self._proc: ChildProcess | None = None

    @property
    def version(self) -> tuple[int, int, int]:
        """The version of :attr:`binary` (``redis-server --version``), e.g. ``(7, 0, 15)``."""
        return redis_server_version(self.binary)

    def knows(self, directive: str) -> bool:
        """False for a directive of :data:`NEWER_DIRECTIVES` that this server's version predates."""
        since = NEWER_DIRECTIVES.get(directive.lower())
        return since is None or self.version[:2] >= since

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _args(self) -> list[str]:
        assert self.dir is not None and self.port is not None
        args = [self.binary, "--bind", LOOPBACK, "--dir", str(self.dir), "--daemonize", "no",
                "--logfile", str(self.dir / "redis.log"), "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", self.appendfsync]
        if self.tls:
            assert self.certs is not None
            args += ["--port", "0", "--tls-port", str(self.port),
                     "--tls-cert-file", str(self.certs.server_cert),
                     "--tls-key-file", str(self.certs.server_key),
                     "--tls-ca-cert-file", str(self.certs.ca),
                     "--tls-auth-clients", self.tls_auth_clients]
        else:
            args += ["--port", str(self.port)]
            if self._socket_fits():  # and its Unix socket (redis+unix://, url_for(unix=True)), for its owner only
                args += ["--unixsocket", str(self.dir / SOCKET_NAME), "--unixsocketperm", "700"]
        if not self.default_user:
            args += ["--user", "default", "off"]
        for name, password in self.users.items():
            args += ["--user", name, "on", f">{password}", "~*", "&*", "+@all"]
        for item in self.config:
            if self.knows(item[0]):
                args += [f"--{item[0]}", *item[1:]]
        return [str(a) for a in args]

    def start(self, *, loaded: bool = True) -> RedisServer:
        """Start the server and wait until it answers PING (raises after ``start_timeout``);
        with ``loaded=False`` only until it answers at all, possibly still loading its data
        set (``-LOADING``)."""
        if self._proc is not None and self._proc.alive():
            return self
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="distsched-redis-"))
        if self.tls and self.certs is None:
            self.certs = Certificates(self.dir / "tls")
        fixed = self.port is not None
        for _ in range(1 if fixed else 5):
            if not fixed:
                self.port = free_port()
            self._proc = ChildProcess(self._args(), self.dir / "stdout.log")
            if self._wait_ready(loaded):
                return self
            self._proc.kill()
        raise RuntimeError(f"redis-server did not start on port {self.port}: {self.log_tail()}")

    def _wait_ready(self, loaded: bool = True) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc is None or not self._proc.alive():
                return False
            if self.ping() or (not loaded and self.loading):
                return True
            time.sleep(0.02)
        return False

    def ping(self) -> bool:
        """True when the server answers (PONG, or an auth error when the default user is off)."""
        reply = _ping(self.port or 0, tls=self.certs.client_context() if self.tls and self.certs else None)
        return reply is not None and reply.startswith((b"+PONG", b"-NOAUTH", b"-NOPERM"))

    @property
    def loading(self) -> bool:
        """True while the server answers ``-LOADING`` (loading its AOF or RDB after a start)."""
        reply = _ping(self.port or 0, tls=self.certs.client_context() if self.tls and self.certs else None)
        return reply is not None and reply.startswith(b"-LOADING")

    def kill(self) -> None:
        """SIGKILL (a crash): data not persisted is gone; the temp dir stays for restart()."""
        if self._proc is not None:
            self._proc.kill()

    def restart(self, *, loaded: bool = True) -> RedisServer:
        """Start again on the same port (after kill() or stop()); ``loaded`` as for start()."""
        if self._proc is not None and self._proc.alive():
            self._proc.stop()
        return self.start(loaded=loaded)

    def stop(self) -> None:
        """Terminate the server and remove its temp dir."""
        if self._proc is not None:
            self._proc.stop()
            self._proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
            self.certs = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.alive() else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.alive()

    def log_tail(self, lines: int = 20) -> str:
        if self.dir is None:
            return ""
        out = []
        for name in ("redis.log", "stdout.log"):
            path = self.dir / name
            if path.exists():
                out += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(out)

    # -- URLs ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The storage URL of database 0 (``rediss://`` with the CA when TLS is on)."""
        return self.url_for()

    def _socket_fits(self) -> bool:
        return self.dir is not None and len(str(self.dir / SOCKET_NAME).encode()) <= SOCKET_PATH_MAX

    @property
    def socket_path(self) -> str:
        """The server's Unix socket (plain TCP servers listen on both, unless the temp dir's
        path is too long for a socket's: then this raises)."""
        if self.dir is None or self.tls:
            raise RuntimeError("the server is not started" if self.dir is None else "a TLS server has no Unix socket")
        if not self._socket_fits():
            raise RuntimeError(f"no Unix socket: {self.dir / SOCKET_NAME} is longer than {SOCKET_PATH_MAX} bytes "
                               "(set TMPDIR to a shorter directory)")
        return str(self.dir / SOCKET_NAME)

    def url_for(self, user: str | None = None, password: str | None = None, *, db: int = 0,
                client_cert: bool = False, unix: bool = False, **query: Any) -> str:
        """A URL with credentials and query options, e.g. ``url_for("app", "pw", namespace="x")``;
        ``unix=True``: ``redis+unix://`` through the server's Unix socket."""
        if self.port is None:
            raise RuntimeError("the server is not started")
        creds = ""
        if user is not None or password is not None:
            creds = quote(user or "", safe="")
            if password is not None:
                creds += ":" + quote(password, safe="")
            creds += "@"
        params = dict(query)
        if self.tls:
            assert self.certs is not None
            params.setdefault("ssl_ca_certs", str(self.certs.ca))
            if client_cert:
                params.setdefault("ssl_certfile", str(self.certs.client_cert))
                params.setdefault("ssl_keyfile", str(self.certs.client_key))
        if unix:  # the database is an option there
            base = f"redis+unix://{creds}{quote(self.socket_path)}"
            params = {"db": db, **params} if db else params
        else:
            base = f"{'rediss' if self.tls else 'redis'}://{creds}{'localhost' if self.tls else self.host}:{self.port}/{db}"
        return base + (f"?{urlencode(params)}" if params else "")

    def client(self, **kwargs: Any) -> Any:
        """A synchronous redis-py client for assertions (over TLS, with the client
        certificate, for a TLS server)."""
        import redis

        if self.port is None:
            raise RuntimeError("the server is not started")
        kwargs.setdefault("decode_responses", True)
        if self.tls and self.certs is not None:
            kwargs.setdefault("ssl", True)
            kwargs.setdefault("ssl_ca_certs", str(self.certs.ca))
            kwargs.setdefault("ssl_certfile", str(self.certs.client_cert))
            kwargs.setdefault("ssl_keyfile", str(self.certs.client_key))
        return redis.Redis(host=self.host, port=self.port, **kwargs)

    def prepare_slow_load(self, keys: int = 20_000, key_load_delay: int = 100) -> None:
        """Make the next restart spend a few seconds loading (answering ``-LOADING``): write
        ``keys`` filler keys, rewrite the AOF (its RDB preamble is loaded key by key) and
        start from then on with ``key-load-delay`` (microseconds per key) and a small
        ``loading-process-events-interval-bytes`` (so clients are answered meanwhile). Needs
        ``appendonly=True`` and Redis 7 or later (before 7, a loading server answers clients
        only every 2 MB loaded); about 0.25 ms per key here with the default delay."""
        if not self.appendonly:
            raise RuntimeError("prepare_slow_load needs appendonly=True")
        if not self.knows("loading-process-events-interval-bytes"):
            raise RuntimeError(f"prepare_slow_load needs Redis 7 or later (loading-process-events-interval-bytes): "
                               f"{self.binary} is {'.'.join(map(str, self.version))}")
        raw = self.client()
        try:
            pipe = raw.pipeline(transaction=False)
            for i in range(keys):
                pipe.set(f"filler:{i}", "x")
            pipe.execute()
            raw.bgrewriteaof()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                info = raw.info("persistence")
                if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError("the AOF rewrite did not finish within 60 s")
        finally:
            raw.close()
        self.config = [c for c in self.config if c[0] not in ("key-load-delay", "loading-process-events-interval-bytes")]
        self.config += [("key-load-delay", str(key_load_delay)), ("loading-process-events-interval-bytes", "1024")]


class RedisSentinel:
    """A Sentinel (``redis-server --sentinel``) monitoring ``master`` as ``service``;
    ``password`` makes the Sentinel itself require it (``requirepass``: clients pass it as
    the URL's ``sentinel_password``). For a TLS master the Sentinel serves TLS only too, with
    the master's certificates, and reaches the master over TLS (``rediss+sentinel://``)."""

    def __init__(self, master: RedisServer, *, service: str = "mymaster", start_timeout: float = 10.0,
                 password: str | None = None) -> None:
        self.master = master
        self.service = service
        self.start_timeout = start_timeout
        self.password = password
        self.port: int | None = None
        self.dir: Path | None = None
        self._proc: ChildProcess | None = None

    def __enter__(self) -> RedisSentinel:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> RedisSentinel:
        if self.master.port is None:
            raise RuntimeError("start the master first")
        self.dir = Path(tempfile.mkdtemp(prefix="distsched-sentinel-"))
        binary = self.master.binary
        for _ in range(5):
            self.port = free_port()
            conf = self.dir / "sentinel.conf"  # Sentinel rewrites it: it must be writable
            lines = [
                f"port {self.port}",
                f"bind {LOOPBACK}",
                f"dir {self.dir}",
                f"logfile {self.dir / 'sentinel.log'}",
                f"sentinel monitor {self.service} {LOOPBACK} {self.master.port} 1",
                f"sentinel down-after-milliseconds {self.service} 5000",
            ]
            user = next(iter(self.master.users.items()), None)
            if user is not None and not self.master.default_user:
                lines += [f"sentinel auth-user {self.service} {user[0]}",
                          f"sentinel auth-pass {self.service} {user[1]}"]
            if self.password is not None:
                lines.append(f"requirepass {self.password}")
            certs = self.master.certs
            if self.master.tls:
                if certs is None:
                    raise RuntimeError("start the TLS master first (its certificates)")
                lines[0] = f"port 0\ntls-port {self.port}"
                lines += [f"tls-cert-file {certs.server_cert}", f"tls-key-file {certs.server_key}",
                          f"tls-ca-cert-file {certs.ca}", "tls-auth-clients optional", "tls-replication yes",
                          f"tls-client-cert-file {certs.client_cert}", f"tls-client-key-file {certs.client_key}"]
            conf.write_text("\n".join(lines) + "\n")
            self._proc = ChildProcess([str(binary), str(conf), "--sentinel"], self.dir / "stdout.log")
            if self._wait_ready():
                return self
            self._proc.kill()
        raise RuntimeError(f"redis sentinel did not start: {self.log_tail()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.start_timeout
        command = f"SENTINEL get-master-addr-by-name {self.service}\r\n".encode()
        if self.password is not None:  # the master is in the config file: answering AUTH is enough
            command, expected = f"AUTH {self.password}\r\n".encode(), b"+OK"
        else:
            expected = b"*2"
        while time.monotonic() < deadline:
            if self._proc is None or not self._proc.alive():
                return False
            tls = self.master.certs.client_context() if self.master.tls and self.master.certs else None
            reply = _ping(self.port or 0, command=command, tls=tls)
            if reply and reply.startswith(expected):
                return True
            time.sleep(0.05)
        return False

    @property
    def url(self) -> str:
        return self.url_for()

    def url_for(self, user: str | None = None, password: str | None = None, *, db: int = 0, **query: Any) -> str:
        """``redis+sentinel://`` (``rediss+sentinel://`` with the CA, for a TLS master)."""
        creds = ""
        if user is not None or password is not None:
            creds = quote(user or "", safe="") + (":" + quote(password, safe="") if password is not None else "") + "@"
        scheme = "redis+sentinel"
        if self.master.tls and self.master.certs is not None:
            scheme = "rediss+sentinel"
            query = {"ssl_ca_certs": str(self.master.certs.ca), **query}
        tail = f"?{urlencode(query)}" if query else ""
        return f"{scheme}://{creds}{LOOPBACK}:{self.port}/{self.service}/{db}{tail}"

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def log_tail(self, lines: int = 20) -> str:
        if self.dir is None:
            return ""
        path = self.dir / "sentinel.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


if TYPE_CHECKING:
    def _a_redis_server_is_a_store_server(server: RedisServer) -> StoreServer:
        return server


__all__ = ["NEWER_DIRECTIVES", "Certificates", "RedisSentinel", "RedisServer", "free_port", "redis_server_binary",
           "redis_server_version"]
