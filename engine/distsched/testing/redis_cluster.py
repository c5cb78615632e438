"""A throwaway Redis Cluster (``redis-server --cluster-enabled yes``) for tests.

>>> cluster = RedisClusterServer(masters=3, replicas=1, node_timeout_ms=1000)
>>> cluster.start()              # 6 nodes on free ports, `redis-cli --cluster create`, cluster_state:ok
>>> cluster.url_for(namespace="a")   # redis+cluster://127.0.0.1:P1,127.0.0.1:P2,.../?namespace=a
>>> node = cluster.master_for_key("{a}:lease")      # the RedisServer serving that slot
>>> cluster.failover(cluster.replicas_of(node)[0])  # CLUSTER FAILOVER on the replica, waited for
>>> cluster.kill_node(node); cluster.wait_healthy() # kill -9 of a master: its replica takes over
>>> cluster.stop()

``tls=True``: every node serves TLS only, on its client port, its cluster bus and its
replication link (one throwaway CA for all: ``tls-cluster``, ``tls-replication``), and
:meth:`url_for` gives a ``rediss+cluster://`` URL with the CA.

Each node is a :class:`~distsched.testing.redis_server.RedisServer` in its own temp dir (its
``nodes.conf`` there), on a free loopback port with an explicit ``cluster-port`` (a port +
10000 may not exist). It fits :class:`~distsched.testing.processes.StoreServer`: ``kill``
crashes every node, ``restart`` starts them again on the same ports (they find each other
through their ``nodes.conf``). Only processes started here are ever signalled, by their pid.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import attrs

from .processes import StoreServer, wait_until
from .redis_server import LOOPBACK, Certificates, RedisServer, free_port, redis_server_binary


def redis_cli_binary() -> str | None:
    """The ``redis-cli`` on PATH, or None."""
    return shutil.which("redis-cli")


@attrs.frozen
class ClusterNode:
    """One line of ``CLUSTER NODES`` as a live node sees it."""

    id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slots: tuple[tuple[int, int], ...]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "noaddr"})

    def serves(self, slot: int) -> bool:
        return any(low <= slot <= high for low, high in self.slots)


def parse_cluster_nodes(text: str) -> list[ClusterNode]:
    """Parse a ``CLUSTER NODES`` reply (importing/migrating slot marks are skipped)."""
    out = []
    for line in text.strip().splitlines():
        fields = line.split()
        addr = fields[1].split("@", 1)[0]
        port = int(addr.rsplit(":", 1)[1]) if ":" in addr and addr.rsplit(":", 1)[1] else 0
        slots: list[tuple[int, int]] = []
        for item in fields[8:]:
            if item.startswith("["):
                continue
            low, _, high = item.partition("-")
            slots.append((int(low), int(high or low)))
        out.append(ClusterNode(id=fields[0], port=port, flags=frozenset(fields[2].split(",")),
                               master_id=None if fields[3] == "-" else fields[3], slots=tuple(slots)))
    return out


def key_slot(key: str) -> int:
    """The cluster hash slot of ``key`` (CRC16 of its hash tag, as Redis computes it)."""
    from redis.crc import key_slot as crc_slot

    return int(crc_slot(key.encode()))


class RedisClusterServer:
    """A Redis Cluster of ``masters`` masters with ``replicas`` replicas each, on loopback.

    ``node_timeout_ms`` is ``cluster-node-timeout`` (how long a master must be unreachable
    before its replica is promoted; small here so that failover tests are quick); ``config``
    is added to every node's settings (e.g. ``{"appendonly": "yes"}``); ``appendonly`` /
    ``appendfsync`` as for :class:`RedisServer`; ``tls``: TLS only, everywhere (the module's
    doc).
    """

    def __init__(self, *, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 1000,
                 config: Mapping[str, Any] | Iterable[tuple[str, ...]] = (), appendonly: bool = False,
                 appendfsync: str = "everysec", start_timeout: float = 30.0, tls: bool = False) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        if redis_server_binary() is None or redis_cli_binary() is None:
            raise RuntimeError("redis-server and redis-cli must be on PATH")
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        if isinstance(config, Mapping):
            self.config: list[tuple[str, ...]] = [(str(k), str(v)) for k, v in config.items()]
        else:
            self.config = [tuple(str(x) for x in item) for item in config]
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.start_timeout = start_timeout
        self.tls = tls
        self.certs: Certificates | None = None
        self._certs_dir: str | None = None
        self.nodes: list[RedisServer] = []
        self.host = LOOPBACK

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> RedisClusterServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while every node runs."""
        return bool(self.nodes) and all(node.running for node in self.nodes)

    def start(self) -> RedisClusterServer:
        """Start the nodes, create the cluster and wait until every node says ``cluster_state:ok``."""
        if self.running:
            return self
        if self.nodes:  # after kill(): the same nodes, the same ports
            return self.restart()
        try:
            tls_config: list[tuple[str, ...]] = []
            cli_tls: list[str] = []
            if self.tls:
                self._certs_dir = tempfile.mkdtemp(prefix="distsched-cluster-tls-")
                certs = self.certs = Certificates(Path(self._certs_dir))
                # the nodes' own connections (bus, replication) present the client certificate
                tls_config = [("tls-cluster", "yes"), ("tls-replication", "yes"),
                              ("tls-client-cert-file", str(certs.client_cert)),
                              ("tls-client-key-file", str(certs.client_key))]
                cli_tls = ["--tls", "--cacert", str(certs.ca), "--cert", str(certs.client_cert),
                           "--key", str(certs.client_key)]
            for _ in range(self.masters * (1 + self.replicas)):
                node = RedisServer(config=[
                    ("cluster-enabled", "yes"), ("cluster-config-file", "nodes.conf"),
                    ("cluster-node-timeout", str(self.node_timeout_ms)), ("cluster-port", str(free_port())),
                    ("repl-diskless-sync-delay", "0"), *tls_config,
                    *self.config], appendonly=self.appendonly, appendfsync=self.appendfsync,
                    tls=self.tls, certs=self.certs)
                self.nodes.append(node.start())
            cli = redis_cli_binary()
            assert cli is not None
            create = subprocess.run(
                [cli, *cli_tls, "--cluster", "create", *(f"{self.host}:{n.port}" for n in self.nodes),
                 "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                capture_output=True, text=True, timeout=self.start_timeout)
            if create.returncode != 0 or "[OK] All 16384 slots covered" not in create.stdout:
                raise RuntimeError(f"redis-cli --cluster create failed: {create.stdout[-2000:]}{create.stderr[-2000:]}")
            self.wait_healthy(self.start_timeout)
            wait_until(self._formed, self.start_timeout, what="every replica attached to its master",
                       interval=0.05, detail=self.log_tail)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every node and remove their temp dirs."""
        for node in self.nodes:
            node.stop()
        self.nodes = []
        if self._certs_dir is not None:
            shutil.rmtree(self._certs_dir, ignore_errors=True)
            self._certs_dir, self.certs = None, None

    def kill(self) -> None:
        """kill -9 every node (what they persisted stays for :meth:`restart`)."""
        for node in self.nodes:
            node.kill()

    def restart(self) -> RedisClusterServer:
        """Start every node that is down again, on its port, and wait for ``cluster_state:ok``."""
        for node in self.nodes:
            if not node.running:
                node.restart()
        self.wait_healthy(self.start_timeout)
        return self

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(f"--- node {n.port}{'' if n.running else ' (down)'}\n{n.log_tail(lines)}"
                         for n in self.nodes)

    # -- URLs -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.url_for()

    def url_for(self, user: str | None = None, password: str | None = None, **query: Any) -> str:
        """``redis+cluster://`` (``rediss+cluster://`` with the CA, for a TLS cluster) with every
        node as a start node and these query options."""
        if not self.nodes:
            raise RuntimeError("the cluster is not started")
        creds = ""
        if user is not None or password is not None:
            creds = quote(user or "", safe="") + (":" + quote(password, safe="") if password is not None else "") + "@"
        hosts = ",".join(f"{self.host}:{n.port}" for n in self.nodes)
        scheme = "redis+cluster"
        if self.tls:
            assert self.certs is not None
            scheme = "rediss+cluster"
            query = {"ssl_ca_certs": str(self.certs.ca), **query}
        tail = f"?{urlencode(query)}" if query else ""
        return f"{scheme}://{creds}{hosts}/{tail}"

    # -- topology -------------------------------------------------------------------------
    def node_by_port(self, port: int) -> RedisServer:
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(f"no node on port {port}")

    def topology(self) -> list[ClusterNode]:
        """``CLUSTER NODES`` as the first live node that answers sees it."""
        last: Exception | None = None
        for node in self.nodes:
            if not node.running:
                continue
            try:
                client = node.client(socket_timeout=2)
                try:
                    return parse_cluster_nodes(client.execute_command("CLUSTER", "NODES"))
                finally:
                    client.close()
            except Exception as exc:  # a node restarting: ask the next one
                last = exc
        raise RuntimeError(f"no cluster node answers CLUSTER NODES ({last!r})")

    def _info(self, node: RedisServer) -> dict[str, str]:
        client = node.client(socket_timeout=2)
        try:
            text = client.execute_command("CLUSTER", "INFO")
        finally:
            client.close()
        if isinstance(text, bytes):
            text = text.decode()
        return dict(line.split(":", 1) for line in str(text).strip().splitlines() if ":" in line)

    def master_for_slot(self, slot: int) -> RedisServer:
        """The node serving ``slot`` now (as a live node sees it)."""
        for entry in self.topology():
            if entry.is_master and not entry.failed and entry.serves(slot):
                return self.node_by_port(entry.port)
        raise RuntimeError(f"no live master serves slot {slot}")

    def master_for_key(self, key: str) -> RedisServer:
        return self.master_for_slot(key_slot(key))

    def masters_now(self) -> list[RedisServer]:
        return [self.node_by_port(e.port) for e in self.topology() if e.is_master and not e.failed and e.slots]

    def replicas_of(self, master: RedisServer) -> list[RedisServer]:
        entries = self.topology()
        ids = {e.port: e.id for e in entries}
        master_id = ids.get(master.port or 0)
        return [self.node_by_port(e.port) for e in entries
                if e.master_id == master_id and not e.is_master and not e.failed]

    def healthy(self) -> bool:
        """Every live node says ``cluster_state:ok``, none of them is flagged failed, and every
        slot is served by a running master."""
        try:
            for node in self.nodes:
                if node.running and self._info(node).get("cluster_state") != "ok":
                    return False
            entries = self.topology()
            if any(e.failed and self.node_by_port(e.port).running for e in entries):
                return False  # a node restarted a moment ago, not yet seen back
            # a master killed a moment ago is still listed (not yet flagged fail): it does not count
            covered = sum(high - low + 1 for e in entries
                          if e.is_master and not e.failed and self.node_by_port(e.port).running
                          for low, high in e.slots)
            return covered == 16384
        except Exception:
            return False

    def _formed(self) -> bool:
        """Every node sees the same layout: ``masters`` masters, each with ``replicas`` replicas."""
        try:
            for node in self.nodes:
                client = node.client(socket_timeout=2)
                try:
                    entries = parse_cluster_nodes(client.execute_command("CLUSTER", "NODES"))
                finally:
                    client.close()
                masters = {e.id for e in entries if e.is_master and e.slots and not e.failed}
                attached = [e for e in entries if not e.is_master and e.master_id in masters and not e.failed
                            and "handshake" not in e.flags]
                if len(masters) != self.masters or len(attached) != self.masters * self.replicas:
                    return False
            return True
        except Exception:
            return False

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait (at most ``timeout`` seconds) until :meth:`healthy`."""
        wait_until(self.healthy, timeout, what="cluster_state:ok on every live node", interval=0.05,
                   detail=self.log_tail)

    def failover(self, replica: RedisServer, timeout: float = 30.0) -> float:
        """``CLUSTER FAILOVER`` on ``replica`` (a coordinated, lossless switch); waits until
        it is a master and the cluster is healthy; the seconds it took."""
        began = time.monotonic()
        client = replica.client(socket_timeout=2)
        try:
            client.execute_command("CLUSTER FAILOVER")
        finally:
            client.close()

        def promoted() -> bool:
            try:
                entry = next(e for e in self.topology() if e.port == replica.port)
            except (StopIteration, RuntimeError):
                return False
            return entry.is_master and bool(entry.slots) and self.healthy()

        wait_until(promoted, timeout, what=f"node {replica.port} promoted by CLUSTER FAILOVER",
                   interval=0.05, detail=self.log_tail)
        return time.monotonic() - began

    def kill_node(self, node: RedisServer) -> None:
        """kill -9 one node (a crash); :meth:`wait_healthy` then waits for its replica's promotion."""
        node.kill()


if TYPE_CHECKING:
    def _a_redis_cluster_is_a_store_server(server: RedisClusterServer) -> StoreServer:
        return server


__all__ = ["ClusterNode", "RedisClusterServer", "key_slot", "parse_cluster_nodes",
           "redis_cli_binary"]
