"""The chaos harness on PostgreSQL (``--storage postgres``): what differs from Redis.

The deployment is a throwaway cluster (:class:`distsched.testing.postgres_server.PostgresServer`:
``initdb`` + ``pg_ctl`` on a free loopback port) with the settings below; the schedulers reach
it through the same TCP proxies (cuts, and one request held in the network), the workers
directly. The faults are the same as on Redis except the store's: ``pg-crash`` is
``pg_ctl stop -m immediate`` (every server process quits at once; the next start runs crash
recovery) followed by a restart on the same port. Redis's ``SHUTDOWN NOSAVE`` and
``DEBUG SLEEP`` have no PostgreSQL counterpart here and are reported "n/a on postgres"; the
smoke profile runs a ``cut-drop`` in DEBUG SLEEP's place (:func:`profile_for`).

How the fence is observed without a wire protocol parser (the Redis harness reads ``FENCED``
replies off RESP; the proxy here only forwards bytes, apart from spotting the one request
to hold):

* **refused leader writes**: ``ds_fence`` raises SQLSTATE ``DSFEN``; the cluster logs every
  error with ``log_line_prefix = '%m [%p] %e '`` (server time, backend pid, SQLSTATE), so each
  refusal is one ``DSFEN ERROR:`` line of the server log, with the writer's node and term in
  its message - counted whether or not the client still waited for the reply
  (:func:`refusals`).
* **accepted leader writes**: the harness wraps ``ds_fence`` in the throwaway database (the
  plugin's check is renamed ``chaos_fence_checked`` and called first, unchanged); the wrapper
  inserts ``(node, term)`` into ``chaos_leader_writes`` in the writer's transaction, so a row
  exists exactly for each leader write that committed. A trigger on the ``lease`` row records
  every acquisition (a rising term) in the same table. With ``track_commit_timestamp = on``
  the offline check compares commit times on the server's clock: a leader write of term T
  committed after term T' > T was acquired is a write accepted from a superseded term
  (:func:`collect`, checked in ``chaos_checks``).

The ``no-fence`` mutant: PostgreSQL checks the fence inside the database, so the mutant is
applied there (``chaos_fence_checked`` becomes a no-op) instead of in the schedulers' Python.
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from chaos_cluster import LEASE_TTL
from chaos_faults import Fault, Faults, Profile
from chaos_proxy import Proxy

#: Settings of the throwaway cluster (beside PostgresServer's fsync / synchronous_commit on).
SETTINGS = {
    "log_line_prefix": "%m [%p] %e ",
    "log_timezone": "UTC",
    "lc_messages": "C",
    "log_min_messages": "warning",
    "log_min_error_statement": "error",
    "track_commit_timestamp": "on",
    "max_connections": "200",
}

#: The audit of leader writes and lease acquisitions (run once, after the schema exists and
#: before any node starts).
AUDIT_SQL = """
CREATE TABLE chaos_leader_writes (
    kind text NOT NULL,            -- 'write' (a leader write passed the fence) or 'acquire'
    node text,
    term bigint NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
ALTER FUNCTION ds_fence(text, bigint) RENAME TO chaos_fence_checked;
CREATE FUNCTION ds_fence(p_node text, p_term bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM chaos_fence_checked(p_node, p_term);
    INSERT INTO chaos_leader_writes (kind, node, term) VALUES ('write', p_node, p_term);
END $$;
CREATE FUNCTION chaos_lease_acquired() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chaos_leader_writes (kind, node, term) VALUES ('acquire', NEW.holder, NEW.term);
    RETURN NEW;
END $$;
CREATE TRIGGER chaos_lease_acquired AFTER UPDATE ON lease FOR EACH ROW
    WHEN (NEW.term > OLD.term) EXECUTE FUNCTION chaos_lease_acquired();
"""

MUTANT_SQL = {
    # The fence check removed from every leader write (ds_fence is what fire, save, dispatch,
    # settle and reap call first); lease renewal still checks the lease, as in the Redis mutant.
    "no-fence": """
CREATE OR REPLACE FUNCTION chaos_fence_checked(p_node text, p_term bigint) RETURNS void
    LANGUAGE plpgsql AS $$ BEGIN /* fence removed by the chaos mutant */ END $$;
""",
}

#: Parameters of the fenced functions (ds_fire/save/reap/settle take 5, ds_dispatch_slim 9
#: since migration 27, with the dispatches' signatures); the lease's renew (3) and release (2)
#: take the same first two and are not leader writes.
LEADER_WRITE_PARAMS = (5, 9)

REFUSAL = re.compile(r"^(\S+ \S+) UTC \[(\d+)\] DSFEN ERROR:\s+write by '([^']*)' with term (\d+) refused")


def profile_for(profile: Profile) -> Profile:
    """The PostgreSQL variant of a profile: Redis's kill -9 and SHUTDOWN NOSAVE become
    ``pg-crash`` (pg_ctl stop -m immediate + restart); DEBUG SLEEP has no counterpart (n/a),
    its time goes to a ``cut-drop`` when the profile has none (so every cut mode runs)."""
    faults: dict[str, int] = {}
    for kind, n in profile.faults.items():
        if kind in ("redis-kill", "redis-shutdown"):
            faults["pg-crash"] = faults.get("pg-crash", 0) + n
        elif kind == "redis-sleep":
            if "cut-drop" not in profile.faults:
                faults["cut-drop"] = n
        else:
            faults[kind] = n
    return replace(profile, faults=faults)


def leader_write_markers(node: str, term: int) -> list[bytes]:
    """Bytes of a PostgreSQL Bind message of a fenced call by (node, term): the parameter
    count, then $1 = node (text) and $2 = term (int8), as asyncpg sends them (binary)."""
    head = struct.pack("!i", len(node.encode())) + node.encode() + struct.pack("!iq", 8, term)
    return [struct.pack("!h", n) + head for n in LEADER_WRITE_PARAMS]


class NoWireLog:
    """The proxy's wire log on PostgreSQL: nothing (the RESP parser is Redis's)."""

    def client(self, chunk: bytes) -> None:
        pass

    def server(self, chunk: bytes) -> None:
        pass


class PgProxy(Proxy):
    """The harness's proxy in front of PostgreSQL: forwards bytes (cuts as on Redis); it can
    hold the next chunk carrying any of several markers (:meth:`arm_hold_any`)."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self._hold_markers: list[bytes] = []

    def make_wire_log(self) -> Any:
        return NoWireLog()

    def arm_hold_any(self, markers: list[bytes]) -> asyncio.Event:
        self._hold_markers = list(markers)
        return self.arm_hold(markers[0])

    def release_hold(self) -> None:
        self._hold_markers = []
        super().release_hold()

    async def _maybe_hold(self, chunk: bytes) -> None:
        if self._hold_marker is not None and len(self._hold_markers) > 1:
            hit = next((m for m in self._hold_markers if m in chunk), None)
            if hit is not None:
                self._hold_marker = hit
        await super()._maybe_hold(chunk)

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        for key in ("fenced_replies", "fenced_at", "leader_writes", "unparsed_connections"):
            out.pop(key)
        out["wire_log"] = "n/a on postgres (refusals: the server log; accepted writes: the audit table)"
        out["held"] = self.held
        return out


def refusals(log_text: str) -> list[dict[str, Any]]:
    """Every ``DSFEN`` error of the server log: server time, backend pid, the writer's node and term."""
    out = []
    for line in log_text.splitlines():
        m = REFUSAL.match(line)
        if m:
            at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp()
            out.append({"at": at, "pid": int(m.group(2)), "node": m.group(3), "term": int(m.group(4))})
    return out


def server_log(cluster: Any) -> str:
    try:
        return Path(cluster.store.log).read_text(errors="replace")
    except (OSError, AssertionError):
        return ""


async def install(storage: Any, mutant: str | None) -> None:
    """The audit (and the mutant, if any) in the throwaway database, before any node starts."""
    async with storage.pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute(AUDIT_SQL)
            if mutant:
                await conn.execute(MUTANT_SQL[mutant])


async def collect(run: Any) -> dict[str, Any]:
    """After the nodes stopped: the audit rows (with commit times) and the server log's
    refusals; the log is copied into the run directory (the cluster's dir is removed)."""
    storage = await run.app.storage()
    rows = await run._retry("audit", lambda: storage.call(
        "fetch", "SELECT kind, node, term, extract(epoch FROM at)::float8 AS at, "
                 "extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8 AS committed "
                 "FROM chaos_leader_writes ORDER BY committed"), 60)
    text = server_log(run.cluster)
    (run.dir / "postgres.log").write_text(text)
    return {"port": run.cluster.store.port, "settings": run.cluster.store.settings,
            "writes": [[r["node"], r["term"], r["committed"]] for r in rows if r["kind"] == "write"],
            "acquisitions": [[r["node"], r["term"], r["committed"]] for r in rows if r["kind"] == "acquire"],
            "refusals": refusals(text)}


class PgFaults(Faults):
    """The fault schedule on PostgreSQL: the leader pause with a write in flight holds a Bind
    of a fenced call; refusals are counted from the server log; ``pg-crash``."""

    def fenced_on_wire(self) -> int:
        # Named as on Redis (the shared fault code calls it): here, DSFEN errors in the server log.
        return len(refusals(server_log(self.cluster)))

    def estimate(self, kind: str) -> float:
        return 8.0 if kind == "pg-crash" else super().estimate(kind)

    async def fault_leader_zombie(self, f: Fault) -> None:
        """As on Redis (:meth:`Faults.fault_leader_zombie`): the leader pauses with a fenced
        write held in the network until another node leads; then the write is delivered and
        must be refused (DSFEN), and the resumed node must step down on it."""
        proc = await self._leader_proc()
        fence = await asyncio.wait_for(self.run.election.current(), 3.0)
        if fence is None or fence.node_id != proc.node_id:
            raise RuntimeError(f"the lease moved before the pause ({fence})")
        proxy = self.cluster.proxies[proc.name]
        f.target, f.node_id, f.pid, f.was_leader = proc.name, proc.node_id, proc.pid, True
        f.extra["term"] = fence.term
        f.duration = self.rng.uniform(LEASE_TTL + 1.2, LEASE_TTL + 1.8)
        fenced_before = self.fenced_on_wire()
        caught = proxy.arm_hold_any(leader_write_markers(fence.node_id, fence.term))
        try:
            await asyncio.wait_for(caught.wait(), 5.0)
        except asyncio.TimeoutError:
            proxy.release_hold()
            f.note = "no leader write seen within 5 s; paused without one in flight"
        proc.pause()
        f.t0 = time.time()
        try:
            await asyncio.sleep(f.duration)
            f.extra["leader_at_release"] = await self.run.wait_leader(2.0, other_than=proc.node_id)
        finally:
            proxy.release_hold()
            await asyncio.sleep(0.3)
            proc.resume()
        f.t1 = time.time()
        await asyncio.sleep(0.5)
        f.extra["fenced_replies"] = self.fenced_on_wire() - fenced_before

    async def fault_pg_crash(self, f: Fault) -> None:
        """``pg_ctl stop -m immediate`` (a crash), then a restart on the same port after a
        seeded delay (crash recovery replays the WAL)."""
        f.target = "postgres"
        f.restart_delay = self.rng.uniform(0.5, 2.0)
        f.t0 = time.time()
        await asyncio.to_thread(self.cluster.store.kill)
        await asyncio.sleep(f.restart_delay)
        await asyncio.to_thread(self.cluster.store.restart)
        f.t_back = time.time()
        f.t1 = f.t_back
