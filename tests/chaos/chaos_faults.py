"""The chaos harness's faults: the profiles (how many faults of each kind, how long), the
seeded schedule, and one method per fault kind (``kill -9`` and ``SIGSTOP`` of the leader or
a worker, a leader paused with a write in flight, Redis ``kill -9`` / ``SHUTDOWN NOSAVE`` /
``DEBUG SLEEP``, and network cuts of ``s1`` through its proxy). Each fault is recorded as a
:class:`Fault` in ``faults.jsonl`` for the offline check.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from chaos_cluster import (
    HEARTBEAT_TTL,
    LEASE_TTL,
    NAMESPACE,
    PROXIED,
    PROXIED_WORKER,
    WORKERS,
    Proc,
    now,
)

from distsched.testing.processes import WaitTimeout, wait_until, wait_until_async

#: Stream tasks submitted at once right before a leader pause or a cut (see Faults._busy_leader).
BURST = 400


# -- profiles ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    name: str
    #: Seconds of fault injection (faults start after the warm-up, are sequential, and a fault
    #: that would end past the window is not started).
    window: float
    #: One-off tasks submitted (a stream over the window).
    tasks: int
    #: Fault counts by kind; the order is shuffled by the seed (the first cut stays first).
    faults: dict[str, int]
    #: Longest wait for everything to become terminal after the faults.
    quiesce: float
    warmup: float = 4.0
    #: Fractions of the stream that hang past a short timeout / run long (to be caught by
    #: kills and pauses) - the rest take 0-50 ms.
    hang_fraction: float = 0.015
    block_fraction: float = 0.005
    slow_fraction: float = 0.04
    #: Redis's ``appendfsync`` (``always``: no acknowledged write lost; ``everysec``: the
    #: loss is measured, the loss properties are reported, not gated).
    appendfsync: str = "always"
    #: Every node runs under libfaketime, so clock-skew faults can step its wall clock.
    faketime: bool = False


PROFILES = {
    "smoke": Profile(
        name="smoke", window=72.0, tasks=2400, quiesce=45.0,
        faults={"cut-blackhole": 1, "cut-delay": 1, "leader-kill": 2, "worker-kill": 2, "leader-stop": 1,
                "leader-zombie": 1, "worker-stop": 1, "redis-kill": 1, "redis-shutdown": 1, "redis-sleep": 1},
    ),
    "soak": Profile(
        name="soak", window=450.0, tasks=12000, quiesce=90.0,
        faults={"cut-blackhole": 3, "cut-drop": 2, "cut-delay": 2, "leader-kill": 10, "worker-kill": 12,
                "leader-stop": 6, "leader-zombie": 4, "worker-stop": 6, "redis-kill": 4, "redis-shutdown": 3,
                "redis-sleep": 3},
    ),
    # A short run of zombie-leader pauses only: with --mutate no-fence it checks that the
    # harness itself catches a leader write accepted from a superseded term.
    "fence-check": Profile(name="fence-check", window=16.0, tasks=300, quiesce=15.0, warmup=2.0,
                           faults={"leader-zombie": 2}),
    # The faults the smoke does not inject (issue 15.2): network cuts between a worker and
    # Redis (drop, blackhole), cuts that deliver requests and drop the replies (a scheduler and
    # a worker), and a node's wall clock stepped +-30 s while it runs (the leader, a worker).
    "faults2": Profile(
        name="faults2", window=66.0, tasks=1600, quiesce=45.0, faketime=True,
        faults={"wcut-drop": 1, "wcut-blackhole": 1, "wcut-reply-drop": 1, "cut-reply-drop": 1, "skew-leader": 1,
                "skew-worker": 1},
    ),
    # The clock-skew faults only: with --mutate wall-clock it checks that the harness catches a
    # node that reads its own wall clock.
    "skew-check": Profile(name="skew-check", window=22.0, tasks=300, quiesce=20.0, warmup=2.0, faketime=True,
                          faults={"skew-leader": 1, "skew-worker": 1}),
    # What a Redis kill -9 costs with `appendfsync everysec` (the AOF default): kills right after
    # a burst of acknowledged submissions, while the jobs fire; the losses are counted.
    "everysec": Profile(name="everysec", window=40.0, tasks=3000, quiesce=50.0, appendfsync="everysec",
                        faults={"redis-kill-busy": 4}),
}


@dataclass
class Fault:
    kind: str
    t0: float = 0.0
    t1: float = 0.0
    target: str | None = None
    node_id: str | None = None
    pid: int | None = None
    duration: float = 0.0
    restart_delay: float = 0.0
    t_back: float | None = None
    was_leader: bool | None = None
    mode: str | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Faults:
    """The fault schedule of one run (it shares the run's seeded random generator)."""

    def __init__(self, run: Any) -> None:
        #: The harness.Run: its store client, workload bursts, leader lookups and logs.
        self.run = run
        self.rng = run.rng
        self.cluster = run.cluster

    def schedule(self) -> list[str]:
        kinds = [k for k, n in self.run.profile.faults.items() for _ in range(n)]
        self.rng.shuffle(kinds)
        # The first fault is a blackhole cut of s1 while it leads (it is started first).
        if "cut-blackhole" in kinds:
            kinds.remove("cut-blackhole")
            kinds.insert(0, "cut-blackhole")
        return kinds

    def estimate(self, kind: str) -> float:
        return {"leader-kill": 6, "worker-kill": 3.5, "leader-stop": 8, "leader-zombie": 7, "worker-stop": 10,
                "redis-kill": 6, "redis-kill-busy": 5,
                "redis-shutdown": 6, "redis-sleep": 7, "skew-leader": 11, "skew-worker": 11}.get(kind, 9.0)

    async def run_faults(self, started: float) -> list[Fault]:
        """Run the seeded schedule; when it is done before the window closes, run it again
        (reshuffled) until the window closes: every kind in the profile runs at least once."""
        done: list[Fault] = []
        end = started + self.run.profile.window
        kinds = self.schedule()
        while kinds:
            kind = kinds.pop(0)
            if not kinds and time.monotonic() + 10 < end:
                kinds = self.schedule()
            if self.run.stop_faults:
                break
            if time.monotonic() + self.estimate(kind) > end:
                if done and len(done) >= sum(self.run.profile.faults.values()):
                    break
                self.run.faults_log.write({"kind": kind, "skipped": "window over"})
                continue
            fault = Fault(kind=kind)
            try:
                await getattr(self, "fault_" + kind.replace("-", "_"))(fault)
            except Exception as exc:  # a fault that could not be applied is recorded, not fatal
                fault.note = f"failed: {type(exc).__name__}: {exc}"
                self.run.say(f"fault {kind} failed: {fault.note}")
            self.run.faults_log.write(asdict(fault))
            done.append(fault)
            self.run.say(f"fault {kind} {fault.target or ''} {fault.note}".rstrip())
            # Let it settle: a leader again, then a seeded gap before the next fault.
            await self.run.wait_leader(20.0)
            if kind.startswith("worker") and fault.pid:
                await self.wait_reaped(fault)
            await asyncio.sleep(self.rng.uniform(1.0, 2.5))
        return done

    async def wait_reaped(self, f: Fault, timeout: float = 15.0) -> None:
        """Poll until the leader has reaped the incarnation(s) the fault hit (so the next fault
        starts after this one's effects)."""
        old = f.extra.get("worker_ids") or []
        if not old:
            return
        storage = await self.run.app.storage()

        async def reaped() -> bool:
            try:
                ids = {w.id for w in await asyncio.wait_for(storage.workers.list_workers(), 3.0)}
            except Exception:
                return False
            return not ids & set(old)

        try:
            await wait_until_async(reaped, timeout, what="the reap", interval=0.1)
        except WaitTimeout:
            f.note = (f.note + "; " if f.note else "") + f"not reaped within {timeout:g}s"

    async def _worker_ids(self, pid: int | None) -> list[str]:
        try:
            storage = await self.run.app.storage()
            return [w.id for w in await asyncio.wait_for(storage.workers.list_workers(), 3.0) if w.pid == pid]
        except Exception:
            return []

    async def _leader_proc(self) -> Proc:
        node = await self.run.wait_leader(15.0)
        proc = self.cluster.by_node(node)
        if proc is None:
            raise RuntimeError(f"no leader found (current: {node})")
        return proc

    async def _kill_and_restart(self, f: Fault, proc: Proc) -> None:
        """kill -9, then start a new generation after a seeded delay."""
        f.restart_delay = self.rng.uniform(0.5, 2.0)
        f.t0 = now()
        proc.kill9()
        await asyncio.sleep(f.restart_delay)
        proc.start()
        f.t1 = now()

    async def _pause(self, f: Fault, proc: Proc) -> None:
        """SIGSTOP for ``f.duration`` seconds, then SIGCONT."""
        f.t0 = now()
        proc.pause()
        await asyncio.sleep(f.duration)
        proc.resume()
        f.t1 = now()

    async def fault_leader_kill(self, f: Fault) -> None:
        proc = await self._leader_proc()
        f.target, f.node_id, f.pid, f.was_leader = proc.name, proc.node_id, proc.pid, True
        await self._kill_and_restart(f, proc)
        f.extra["new_node_id"] = proc.node_id

    async def fault_worker_kill(self, f: Fault) -> None:
        proc = self.cluster.procs[self.rng.choice(WORKERS)]
        f.target, f.pid = proc.name, proc.pid
        f.extra["worker_ids"] = await self._worker_ids(proc.pid)
        await self._kill_and_restart(f, proc)

    async def _busy_leader(self, f: Fault) -> None:
        """A burst of the stream, then a short wait: the leader is mid-pass (reading, deciding,
        writing) rather than idle when the fault hits, as a GC pause or a VM stall would be."""
        f.extra["burst"] = await self.run.burst(BURST)
        await asyncio.sleep(self.rng.uniform(0.1, 0.4))

    async def fault_leader_stop(self, f: Fault) -> None:
        f.duration = self.rng.uniform(LEASE_TTL + 1.5, LEASE_TTL + 4.0)
        await self._busy_leader(f)
        proc = await self._leader_proc()
        f.target, f.node_id, f.pid, f.was_leader = proc.name, proc.node_id, proc.pid, True
        fenced_before = self.fenced_on_wire()
        await self._pause(f, proc)
        await asyncio.sleep(0.5)
        f.extra["fenced_replies"] = self.fenced_on_wire() - fenced_before

    async def fault_leader_zombie(self, f: Fault) -> None:
        """The leader pauses (SIGSTOP) with a fenced write in flight: the network holds that
        write until the lease has expired and another node leads, then delivers it; then the
        old leader resumes. Kleppmann's example of why a lease needs a fence: the store must
        refuse the late write (FENCED), and the resumed node must step down on it."""
        proc = await self._leader_proc()
        proxy = self.cluster.proxies[proc.name]
        f.target, f.node_id, f.pid, f.was_leader = proc.name, proc.node_id, proc.pid, True
        f.duration = self.rng.uniform(LEASE_TTL + 1.2, LEASE_TTL + 1.8)
        fenced_before = self.fenced_on_wire()
        # Every fenced leader write (fire, save, dispatch, reap) carries an op-id key first.
        caught = proxy.arm_hold(f"{{{NAMESPACE}}}:op:".encode())
        try:
            await asyncio.wait_for(caught.wait(), 5.0)
        except asyncio.TimeoutError:
            proxy.release_hold()
            f.note = "no leader write seen within 5 s; paused without one in flight"
        proc.pause()
        f.t0 = now()
        try:
            await asyncio.sleep(f.duration)
            f.extra["leader_at_release"] = await self.run.wait_leader(2.0, other_than=proc.node_id)
        finally:
            proxy.release_hold()
            await asyncio.sleep(0.3)  # the FENCED reply reaches the paused process's socket
            proc.resume()
        f.t1 = now()
        await asyncio.sleep(0.5)
        f.extra["fenced_replies"] = self.fenced_on_wire() - fenced_before

    async def fault_worker_stop(self, f: Fault) -> None:
        # The worker holding the most tasks (after a burst), so its late results are exercised.
        f.extra["burst"] = await self.run.burst(BURST // 2)
        await asyncio.sleep(0.3)
        loads: dict[int, int] = {}
        try:
            storage = await self.run.app.storage()
            for w in await asyncio.wait_for(storage.workers.list_workers(), 3.0):
                loads[w.pid] = loads.get(w.pid, 0) + w.load
        except Exception:
            pass
        candidates = [self.cluster.procs[n] for n in WORKERS]
        self.rng.shuffle(candidates)
        proc = max(candidates, key=lambda p: loads.get(p.pid or -1, 0))
        f.target, f.pid = proc.name, proc.pid
        f.extra["load"] = loads.get(proc.pid or -1, 0)
        f.extra["worker_ids"] = await self._worker_ids(proc.pid)
        # Past the heartbeat TTL (it is reaped) and around/past the client's socket timeout (5 s),
        # so a call in flight is retried by redis-py on resume.
        f.duration = self.rng.uniform(HEARTBEAT_TTL + 2.0, HEARTBEAT_TTL + 6.0)
        await self._pause(f, proc)

    async def _redis_back(self, f: Fault) -> None:
        await asyncio.to_thread(self.cluster.store.restart)
        f.t_back = now()

    async def fault_redis_kill(self, f: Fault) -> None:
        f.target = "redis"
        f.restart_delay = self.rng.uniform(0.5, 2.0)
        f.t0 = now()
        await asyncio.to_thread(self.cluster.store.kill)
        await asyncio.sleep(f.restart_delay)
        await self._redis_back(f)
        f.t1 = f.t_back or now()

    async def fault_redis_shutdown(self, f: Fault) -> None:
        f.target = "redis"
        f.restart_delay = self.rng.uniform(0.5, 2.0)

        def shutdown() -> None:
            client = self.cluster.redis_client()
            try:
                client.shutdown(nosave=True)
            except Exception:
                pass  # the server closes the connection as it exits
            finally:
                client.close()
            with contextlib.suppress(WaitTimeout):
                wait_until(lambda: not self.cluster.store.running, 10, what="Redis to exit", interval=0.02)

        f.t0 = now()
        await asyncio.to_thread(shutdown)
        await asyncio.sleep(f.restart_delay)
        await self._redis_back(f)
        f.t1 = f.t_back or now()

    async def fault_redis_sleep(self, f: Fault) -> None:
        f.target = "redis"
        f.duration = self.rng.uniform(LEASE_TTL + 0.5, LEASE_TTL + 2.0)

        def stall() -> None:
            client = self.cluster.redis_client(timeout=f.duration + 10)
            try:
                client.execute_command("DEBUG", "SLEEP", f"{f.duration:.2f}")
            finally:
                client.close()

        f.t0 = now()
        await asyncio.to_thread(stall)
        f.t_back = f.t1 = now()

    async def _cut(self, f: Fault, mode: str) -> None:
        proxy = self.cluster.proxy
        proc = self.cluster.procs[PROXIED]
        if self.rng.random() < 0.8:
            await self._busy_leader(f)
        node = await self.run.leader()
        f.target, f.node_id, f.pid, f.mode = proc.name, proc.node_id, proc.pid, mode
        f.was_leader = node == proc.node_id
        f.duration = self.rng.uniform(LEASE_TTL + 2.0, LEASE_TTL + 4.0)
        delay = self.rng.uniform(LEASE_TTL + 0.5, LEASE_TTL + 1.5) if mode == "delay" else 0.0
        f.extra["delay"] = delay
        fenced_before = self.fenced_on_wire()
        f.t0 = now()
        proxy.set_mode(mode, delay)
        await asyncio.sleep(f.duration)
        proxy.set_mode("pass")
        f.t1 = now()
        # Held or delayed bytes drain after the heal; count the refusals they met.
        await asyncio.sleep(max(delay, 0.5) + 0.5)
        f.extra["fenced_replies"] = self.fenced_on_wire() - fenced_before

    def fenced_on_wire(self) -> int:
        return sum(len(p.fenced) for p in self.cluster.proxies.values())

    async def fault_cut_blackhole(self, f: Fault) -> None:
        await self._cut(f, "blackhole")

    async def fault_cut_drop(self, f: Fault) -> None:
        await self._cut(f, "drop")

    async def fault_cut_delay(self, f: Fault) -> None:
        await self._cut(f, "delay")


    # -- issue 15.2: worker cuts, reply-drop cuts, clock skew, kill -9 under everysec --------
    async def fault_cut_reply_drop(self, f: Fault) -> None:
        """``s1``'s requests reach Redis (and run), Redis's replies to it are dropped."""
        await self._cut(f, "reply-drop")

    async def _worker_cut(self, f: Fault, mode: str) -> None:
        """A cut between worker ``w1`` and Redis, past the heartbeat TTL, after a burst so that
        it holds tasks: with ``drop`` / ``blackhole`` its heartbeats stop, the leader reaps it
        and re-dispatches what it held; after the heal its late results must be refused."""
        proxy = self.cluster.proxies[PROXIED_WORKER]
        proc = self.cluster.procs[PROXIED_WORKER]
        f.extra["burst"] = await self.run.burst(BURST // 2)
        await asyncio.sleep(0.3)
        f.target, f.pid, f.mode = proc.name, proc.pid, mode
        f.extra["worker_ids"] = await self._worker_ids(proc.pid)
        f.duration = self.rng.uniform(HEARTBEAT_TTL + 2.0, HEARTBEAT_TTL + 4.0)
        dropped_before = proxy.replies_dropped
        f.t0 = now()
        proxy.set_mode(mode)
        await asyncio.sleep(f.duration)
        proxy.set_mode("pass")
        f.t1 = now()
        f.extra["replies_dropped"] = proxy.replies_dropped - dropped_before
        if mode != "reply-drop":
            await self.wait_reaped(f)
        await asyncio.sleep(1.0)  # held bytes drain, the worker re-registers and reports

    async def fault_wcut_drop(self, f: Fault) -> None:
        await self._worker_cut(f, "drop")

    async def fault_wcut_blackhole(self, f: Fault) -> None:
        await self._worker_cut(f, "blackhole")

    async def fault_wcut_reply_drop(self, f: Fault) -> None:
        await self._worker_cut(f, "reply-drop")

    async def _skew(self, f: Fault, proc: Proc) -> None:
        """Step ``proc``'s wall clock by +30 s and -30 s (seeded order, about 4 s each), then
        back: libfaketime rereads the offset within a second. Its monotonic clock is real."""
        offsets = [30.0, -30.0]
        self.rng.shuffle(offsets)
        f.target, f.pid = proc.name, proc.pid
        f.extra["steps"] = steps = []
        f.t0 = now()
        for offset in offsets:
            self.cluster.set_skew(proc.name, offset)
            steps.append((now(), offset))
            await asyncio.sleep(self.rng.uniform(3.5, 4.5))
        self.cluster.set_skew(proc.name, 0.0)
        steps.append((now(), 0.0))
        await asyncio.sleep(1.2)  # the last step takes effect
        f.t1 = now()
        f.duration = f.t1 - f.t0

    async def fault_skew_leader(self, f: Fault) -> None:
        proc = await self._leader_proc()
        f.node_id, f.was_leader = proc.node_id, True
        await self._skew(f, proc)

    async def fault_skew_worker(self, f: Fault) -> None:
        proc = self.cluster.procs[self.rng.choice(WORKERS)]
        f.extra["worker_ids"] = await self._worker_ids(proc.pid)
        await self._skew(f, proc)

    async def fault_redis_kill_busy(self, f: Fault) -> None:
        """Redis ``kill -9`` right after a burst of submissions was acknowledged, while the jobs
        fire: what the AOF had not written to disk yet is lost (``everysec``) or not
        (``always``)."""
        f.target = "redis"
        f.extra["burst"] = await self.run.burst(BURST // 2)
        f.extra["acked_before"] = self.run.submitted
        f.restart_delay = self.rng.uniform(0.5, 1.5)

        def aof_state() -> dict[str, Any]:
            client = self.cluster.redis_client(timeout=2.0)
            try:
                info = client.info("persistence")
            except Exception as exc:
                return {"error": f"{type(exc).__name__}: {exc}"}
            finally:
                client.close()
            return {k: info.get(k) for k in ("aof_delayed_fsync", "aof_pending_bio_fsync", "aof_last_write_status")}

        # Whether Redis had postponed an AOF write behind a slow fsync (what a process crash
        # under everysec can lose), read just before the kill.
        f.extra["aof"] = await asyncio.to_thread(aof_state)
        f.t0 = now()
        await asyncio.to_thread(self.cluster.store.kill)
        await asyncio.sleep(f.restart_delay)
        await self._redis_back(f)
        f.t1 = f.t_back or now()
