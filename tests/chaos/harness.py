"""Chaos harness for distsched on Redis (issue 7, "Reliability under faults").

One run = one throwaway ``redis-server`` (AOF ``appendfsync always``), 3 ``distsched scheduler``
and 4 ``distsched worker`` processes (real subprocesses), a workload (20 jobs firing every
second with ``misfire = "fire-all"`` plus a stream of one-off tasks submitted in bulk through
``DistributeSchedule.submit_many``), and a seeded schedule of faults:

* ``kill -9`` of the current leader and of workers, each restarted after a short delay;
* ``SIGSTOP`` of the leader and of a worker for longer than their TTLs, then ``SIGCONT``;
* Redis ``SHUTDOWN NOSAVE`` / ``kill -9`` then restart on the same port, and ``DEBUG SLEEP``;
* a network cut between scheduler ``s1`` and Redis through a TCP proxy of ours (modes
  ``drop``: reset every connection and refuse new ones; ``blackhole``: hold every byte until
  the cut heals, like a partition that TCP rides out; ``delay``: add latency each way).

Every scheduler reaches Redis through its own proxy (only ``s1``'s is ever cut; the others
just pass bytes), so the harness can count the writes the store refused as ``FENCED`` on the
wire - including those a paused or partitioned ex-leader sent and no longer waited for.

Every process loads an observer plugin (``-p chaos_observer``, written into the run
directory) whose ``distsched_event`` hook appends each event as one JSON line to a per-process
history file. After the faults the harness quiesces (faults stop, jobs are paused, every task
must become terminal), snapshots the store, stops everything with SIGTERM and then checks the
history, the logs and the snapshot **offline** (:func:`check`), printing one line per property.

The pieces, one module each: ``chaos_cluster`` (the deployment - Redis and the processes,
on :class:`distsched.testing.processes.Deployment` - the timings and the files written into
the run directory), ``chaos_proxy`` (the TCP proxy and its wire log), ``chaos_faults`` (the
profiles and the fault schedule), ``chaos_checks`` (the offline check); this module runs
them (:class:`Run`, :func:`run`).

Only processes started here are ever signalled, by their own pid; all traffic is on 127.0.0.1.
``--storage postgres`` runs the same on a throwaway PostgreSQL cluster (``initdb`` +
``pg_ctl``); what differs there (the store's faults, how fenced writes are counted without a
wire parser) is in ``chaos_pg``.

Entry point: ``python tests/chaos/run.py --profile smoke|soak [--seed N] [--json] [--storage redis|postgres]``.
"""

import asyncio
import contextlib
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from chaos_checks import Prop, check
from chaos_cluster import (
    HEARTBEAT_INTERVAL,
    HEARTBEAT_TTL,
    JOBS,
    LEASE_TTL,
    MUTANTS,
    PROXIED,
    RENEW_INTERVAL,
    SCHEDULERS,
    TIMEOUT_GRACE,
    WORKERS,
    Cluster,
    JsonlWriter,
    Proc,
    now,
    read_jsonl,
)
from chaos_faults import PROFILES, Faults, Profile

from distsched.testing import all_tasks
from distsched.testing.processes import WaitTimeout, wait_until_async


# -- the run -------------------------------------------------------------------------------
class Run:
    """One run: start the cluster, submit the workload, run the faults (:class:`Faults`),
    quiesce, snapshot the store and stop everything; then :func:`check` judges the files."""

    def __init__(self, profile: Profile, seed: int, run_dir: Path, *, verbose: bool = True,
                 mutant: str | None = None, storage: str = "redis") -> None:
        if storage == "postgres":
            import logging

            from chaos_pg import profile_for

            profile = profile_for(profile)
            # The harness's own client pool warns (with a traceback) at every reconnection
            # while the server is down; the nodes' logs keep their own.
            logging.getLogger("asyncpg.pool").setLevel(logging.ERROR)
        self.storage = storage
        self.profile = profile
        self.seed = seed
        self.rng = random.Random(seed)
        self.dir = run_dir
        self.verbose = verbose
        self.cluster = Cluster(run_dir, mutant, storage, appendfsync=profile.appendfsync, faketime=profile.faketime)
        self.faults_log = JsonlWriter(run_dir / "faults.jsonl")
        self.acked_log = JsonlWriter(run_dir / "acked.jsonl")
        self.supervisor_log = JsonlWriter(run_dir / "supervisor.jsonl")
        self.app: Any = None
        self.election: Any = None
        self.stop_faults = False
        self.submitted = 0
        self.submit_errors = 0
        self.items: list[tuple[str, str, Any]] = []
        self._submit_lock = asyncio.Lock()
        self._submit_app: Any = None
        self.meta: dict[str, Any] = {"profile": asdict(profile), "seed": seed, "dir": str(run_dir), "mutant": mutant,
                                     "storage": storage,
                                     "timings": {"lease_ttl": LEASE_TTL, "renew_interval": RENEW_INTERVAL,
                                                 "heartbeat_ttl": HEARTBEAT_TTL,
                                                 "heartbeat_interval": HEARTBEAT_INTERVAL,
                                                 "timeout_grace": TIMEOUT_GRACE}}

    def say(self, text: str) -> None:
        if self.verbose:
            print(f"[chaos {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    # -- store access (the public API) -----------------------------------------------------
    async def open_client(self) -> None:
        from distsched import DistributeSchedule

        self.app = DistributeSchedule(self.cluster.url)
        await self.app.storage()
        self.election = await self.app.engine.open_election()

    async def mono_to_server(self) -> float:
        """Redis's time minus this machine's monotonic clock (best of a few TIME round trips):
        the check maps the events' ``mono`` stamps to the server's time with it."""
        client = self.cluster.redis_client()
        try:
            best: tuple[float, float] = (float("inf"), 0.0)
            for _ in range(5):
                t0 = time.monotonic()
                sec, usec = await asyncio.to_thread(client.time)
                t1 = time.monotonic()
                best = min(best, (t1 - t0, sec + usec / 1e6 - (t0 + t1) / 2))
            return best[1]
        finally:
            client.close()

    async def leader(self) -> str | None:
        try:
            fence = await asyncio.wait_for(self.election.current(), 2.0)
        except Exception:
            return None
        return fence.node_id if fence is not None else None

    async def wait_leader(self, timeout: float, *, other_than: str | None = None) -> str | None:
        async def found() -> str | None:
            node = await self.leader()
            return node if node and node != other_than and self.cluster.by_node(node) is not None else None

        try:
            return await wait_until_async(found, timeout, what="a leader", interval=0.1)
        except WaitTimeout:
            return None

    # -- supervisor: restarts a process that exited on its own (counted: not expected) ------
    async def supervise(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            for proc in self.cluster.procs.values():
                if proc.should_run and proc.child is not None and not proc.alive():
                    rc = proc.returncode
                    log = proc.log_text()
                    self.supervisor_log.write({"t": now(), "proc": proc.name, "gen": proc.gen, "rc": rc,
                                               "tail": log[-1500:]})
                    self.say(f"{proc.name}-g{proc.gen} exited on its own (rc {rc}); restarting it")
                    await asyncio.sleep(0.5)
                    proc.start()

    # -- workload --------------------------------------------------------------------------
    def workload(self) -> list[tuple[str, str, Any]]:
        from distsched.model import RetryPolicy, TaskSpec

        p = self.profile
        rng = random.Random(self.seed * 7919 + 1)
        out = []
        hang_retry = RetryPolicy(max_attempts=2, backoff="fixed", delay=0.2, jitter=0.0)
        for i in range(p.tasks):
            tid = f"c{self.seed}-{i:06d}"
            r = rng.random()
            if r < p.hang_fraction:
                kind, spec = "hang", TaskSpec(target="chaos_hang", args=(60,), timeout=0.5, retry=hang_retry)
            elif r < p.hang_fraction + p.block_fraction:
                kind, spec = "block", TaskSpec(target="chaos_block", args=(2.0,), timeout=0.5)
            elif r < p.hang_fraction + p.block_fraction + p.slow_fraction:
                kind, spec = "slow", TaskSpec(target="chaos_work", args=(tid, rng.randint(500, 2000)), timeout=30)
            else:
                kind, spec = "work", TaskSpec(target="chaos_work", args=(tid, rng.randint(0, 50)), timeout=30)
            out.append((tid, kind, spec))
        return out

    async def submitter(self, span: float) -> None:
        """Submit the stream in batches (submit_many), at a steady rate over ``span`` seconds;
        a failed batch is retried with the same ids (creation is idempotent) until it is acked."""
        from distsched import DistributeSchedule

        self._submit_app = DistributeSchedule(self.cluster.url)
        items = self.items
        rate = len(items) / span
        t0 = time.monotonic()
        try:
            while self.submitted < len(items):
                due = min(len(items), int(rate * (time.monotonic() - t0)) + 1)
                if due <= self.submitted:
                    await asyncio.sleep(0.25)
                    continue
                if not await self._submit_next(due - self.submitted):
                    await asyncio.sleep(0.5)
        finally:
            try:
                await self._submit_app.engine.close()
            except Exception:
                pass

    async def _submit_next(self, count: int) -> bool:
        """Submit the next ``count`` (at most 500) items of the stream; True when acked."""
        async with self._submit_lock:
            i = self.submitted
            batch = self.items[i:i + min(count, 500)]
            if not batch:
                return True
            try:
                await asyncio.wait_for(self._submit_app.submit_many(
                    [s for _, _, s in batch], task_ids=[t for t, _, _ in batch]), 30.0)
            except Exception as exc:
                self.submit_errors += 1
                if self.submit_errors % 5 == 1:
                    self.say(f"submit failed ({type(exc).__name__}: {exc}); retrying the same ids")
                return False
            acked = now()
            for tid, kind, _ in batch:
                self.acked_log.write({"id": tid, "kind": kind, "acked": acked})
            self.submitted = i + len(batch)
            return True

    async def burst(self, count: int) -> int:
        """Submit the next ``count`` items of the stream at once (they are taken from later in
        the stream, so the total stays the same): the leader is busy when the fault hits."""
        before = self.submitted
        while self.submitted - before < count and self.submitted < len(self.items):
            if not await self._submit_next(count - (self.submitted - before)):
                break
        return self.submitted - before

    # -- faults ----------------------------------------------------------------------------

    # -- faults: see chaos_faults.Faults ---------------------------------------------------

    # -- quiesce and snapshot --------------------------------------------------------------
    async def restore_all(self) -> None:
        for proxy in self.cluster.proxies.values():
            proxy.set_mode("pass")
        if not self.cluster.store.running:
            await asyncio.to_thread(self.cluster.store.restart)
        for proc in self.cluster.procs.values():
            if proc.paused:
                proc.resume()
            if not proc.alive():
                proc.start()

    async def _retry(self, what: str, call: Any, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await asyncio.wait_for(call(), 10.0)
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what}: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(0.5)

    async def quiesce(self, submit_task: asyncio.Task[None], deadline: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        t0 = time.monotonic()
        await asyncio.wait({submit_task}, timeout=max(1.0, deadline - time.monotonic()))
        out["submitter_done"] = submit_task.done()
        if not submit_task.done():
            submit_task.cancel()
        app = self.app
        for i in range(JOBS):
            await self._retry("pause job", lambda i=i: app.pause_job(f"tick-{i:02d}"))
        out["jobs_paused_at"] = now()
        storage = await app.storage()
        live = None
        while time.monotonic() < deadline:
            try:
                counts = await asyncio.wait_for(storage.tasks.counts(), 10.0)
            except Exception:
                await asyncio.sleep(0.5)
                continue
            live = {k: v for k, v in counts.items() if k in ("pending", "dispatched", "running", "retrying") and v}
            if not live:
                break
            await asyncio.sleep(0.25)
        out["live_at_end"] = live
        out["quiesce_seconds"] = round(time.monotonic() - t0, 2)
        return out

    async def snapshot(self) -> dict[str, Any]:
        """The final store state (tasks of the stream and of the jobs, counts, workers, lease)."""
        storage = await self.app.storage()
        acked = [r["id"] for r in read_jsonl(self.dir / "acked.jsonl")]
        found = await self._retry("read tasks", lambda: storage.tasks.get_many(acked), 60)
        tasks: dict[str, Any] = {}
        for tid, task in zip(acked, found):
            tasks[tid] = None if task is None else compact(task)
        jobs: dict[str, Any] = {}
        for i in range(JOBS):
            name = f"tick-{i:02d}"
            listed = await self._retry("list job", lambda name=name: all_tasks(storage, job=name), 60)
            jobs[name] = [compact(t) for t in listed]
        counts = await self._retry("counts", storage.tasks.counts)
        workers = await self._retry("workers", storage.workers.list_workers)
        fence = await self._retry("lease", self.election.current)
        clock = storage.clock()
        alive = {p.name: p.pid for p in self.cluster.procs.values() if p.role == "worker" and p.alive()}
        return {"now": clock, "tasks": tasks, "jobs": jobs, "counts": counts, "worker_processes": alive,
                "workers": [{"id": w.id, "pid": w.pid, "load": w.load, "heartbeat_age": clock - w.last_heartbeat,
                             "draining": w.draining} for w in workers],
                "lease": None if fence is None else {"node_id": fence.node_id, "term": fence.term}}

    async def stop_all(self) -> dict[str, Any]:
        """SIGTERM every process at once (workers drain), wait, record exit codes."""
        procs = [p for p in self.cluster.procs.values() if p.alive()]
        for p in procs:
            p.should_run = False

        def wait_all() -> dict[str, Any]:
            codes = self.cluster.stop_all(procs, timeout=40)
            return {p.node_id: "killed after 40 s" if code is None else code for p, code in codes.items()}

        return await asyncio.to_thread(wait_all)

    # -- the whole run ---------------------------------------------------------------------
    async def main(self) -> dict[str, Any]:
        p = self.profile
        c = self.cluster
        t_start = now()
        self.meta["started"] = t_start
        await asyncio.to_thread(c.start)
        await c.start_proxies()
        if self.storage == "redis":
            self.meta["redis"] = {"port": c.store.port, "dir": str(c.store.dir), "appendonly": "yes",
                                  "appendfsync": c.appendfsync, "maxmemory-policy": "noeviction"}
            self.meta["mono_to_server"] = await self.mono_to_server()
        self.meta["proxy_ports"] = {n: p.port for n, p in c.proxies.items()}
        await self.open_client()
        if self.storage == "postgres":
            from chaos_pg import install

            await install(await self.app.storage(), c.mutant)
        # The jobs of the jobs file go in once through the API (the schedulers' --jobs then
        # find them identical), so three schedulers starting at once do not race to add them.
        from distsched.jobs import load_jobs_file

        for job in load_jobs_file(self.dir / "jobs.toml").jobs:
            await self.app.put_job(job, replace=True)
        for name in SCHEDULERS:
            c.add(Proc(c, name, "scheduler"))
        for name in WORKERS:
            c.add(Proc(c, name, "worker"))
        supervisor = asyncio.create_task(self.supervise())
        c.procs[PROXIED].start()  # s1 first: it leads, and is cut first
        first = await self.wait_leader(30.0)
        self.say(f"leader {first}; starting the other processes")
        for name in SCHEDULERS[1:] + WORKERS:
            c.procs[name].start()
        storage = await self.app.storage()

        async def workers_up() -> bool:
            ws = await storage.workers.list_workers()
            return len({w.pid for w in ws if w.is_alive(storage.clock(), HEARTBEAT_TTL)}) >= len(WORKERS)

        with contextlib.suppress(WaitTimeout):
            await wait_until_async(workers_up, 45, what="every worker", interval=0.2)
        self.say(f"{len(c.procs)} processes up on {self.storage} port {c.store.port} (proxies {', '.join(str(p.port) for p in c.proxies.values())}); "
                 f"profile {p.name}, seed {self.seed}")
        self.items = items = self.workload()
        t_faults = time.monotonic() + p.warmup
        submit_task = asyncio.create_task(self.submitter(span=p.window * 0.85 + p.warmup))
        await asyncio.sleep(p.warmup)
        self.meta["faults_started"] = now()
        if self.storage == "postgres":
            from chaos_pg import PgFaults

            faults = await PgFaults(self).run_faults(t_faults)
        else:
            faults = await Faults(self).run_faults(t_faults)
        self.meta["faults_ended"] = now()
        self.meta["faults_run"] = dict(Counter(f.kind for f in faults))
        self.say(f"faults over ({len(faults)}); quiescing (submitted {self.submitted}/{len(items)})")
        await self.restore_all()
        q = await self.quiesce(submit_task, time.monotonic() + p.quiesce)
        self.meta["quiesce"] = q
        self.say(f"quiesced in {q['quiesce_seconds']} s; live tasks left: {q['live_at_end'] or 0}")
        snap = await self.snapshot()
        (self.dir / "final.json").write_text(json.dumps(snap))
        supervisor.cancel()
        self.meta["stopping"] = now()
        self.meta["exit_codes"] = await self.stop_all()
        self.meta["proxies"] = {n: p.stats() for n, p in c.proxies.items()}
        if self.storage == "postgres":
            from chaos_pg import collect

            self.meta["postgres"] = await collect(self)
        self.meta["submit_errors"] = self.submit_errors
        self.meta["submitted"] = self.submitted
        self.meta["ended"] = now()
        self.meta["wall_seconds"] = round(now() - t_start, 1)
        try:
            await self.app.engine.close()
        except Exception:
            pass
        for proxy in c.proxies.values():
            await proxy.close()
        (self.dir / "run.json").write_text(json.dumps(self.meta, indent=2, default=str))
        return self.meta

    def cleanup(self) -> None:
        # kill -9 what still runs; stopping Redis removes its temp dir, keeping the AOF out of
        # the run directory.
        if self.storage == "postgres" and not (self.dir / "postgres.log").exists():
            from chaos_pg import server_log

            (self.dir / "postgres.log").write_text(server_log(self.cluster))
        self.cluster.close()
        for w in (self.faults_log, self.acked_log, self.supervisor_log, self.cluster.proc_log):
            w.close()


def compact(task: Any) -> dict[str, Any]:
    r = task.result
    return {
        "id": task.id, "job": task.job, "slot": task.slot, "state": task.state.value, "attempt": task.attempt,
        "dispatches": task.dispatches, "redeliveries": task.redeliveries, "worker_id": task.worker_id,
        "dispatched_at": task.dispatched_at, "started_at": task.started_at, "finished_at": task.finished_at,
        "timeout": task.spec.timeout, "target": task.spec.target, "reason": task.reason,
        "attempt_id": task.attempt_id, "max_attempts": task.spec.retry.max_attempts,
        "result": None if r is None else {"attempt_id": r.attempt_id, "outcome": r.outcome, "worker_id": r.worker_id,
                                          "started_at": r.started_at, "finished_at": r.finished_at},
    }


# -- entry point ---------------------------------------------------------------------------
def run(profile: str = "smoke", seed: int | None = None, *, workdir: str | None = None, as_json: bool = False,
        keep: bool = True, verbose: bool = True, mutant: str | None = None,
        storage: str = "redis") -> tuple[dict[str, Any], list[Prop]]:
    if storage == "postgres":
        from distsched.testing.postgres_server import postgres_bindir

        if postgres_bindir() is None:
            raise SystemExit("PostgreSQL server binaries (initdb, pg_ctl) not found")
    elif shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not on PATH")
    prof = PROFILES[profile]
    seed = int(seed if seed is not None else random.SystemRandom().randrange(1, 10**6))
    run_dir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"distsched-chaos-{profile}-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    harness = Run(prof, seed, run_dir, verbose=verbose, mutant=mutant, storage=storage)
    try:
        asyncio.run(harness.main())
    finally:
        harness.cleanup()
    fig, props = check(run_dir)
    fig["dir"] = str(run_dir)
    fig["command"] = f"python tests/chaos/run.py --profile {profile} --seed {seed}" + (f" --mutate {mutant}" if mutant else "")
    if storage != "redis":
        fig["command"] += f" --storage {storage}"
    fig["mutant"] = mutant
    out = sys.stderr if as_json else sys.stdout
    on = "" if storage == "redis" else f" on {storage}"
    print(f"chaos {profile}{on} seed {seed}{' MUTANT ' + mutant if mutant else ''}: {meta_line(run_dir)}", file=out)
    for p in props:
        print(f"  [{p.label}] {p.line}", file=out)
    print(f"  run directory: {run_dir}", file=out)
    if as_json:
        print(json.dumps(fig, default=str))
    if not keep and fig["ok"]:
        shutil.rmtree(run_dir, ignore_errors=True)
    return fig, props


def meta_line(run_dir: Path) -> str:
    meta = json.loads((Path(run_dir) / "run.json").read_text())
    faults = meta.get("faults_run", {})
    return (f"{meta.get('wall_seconds')} s wall clock, {sum(faults.values())} faults "
            f"({', '.join(f'{k} {v}' for k, v in sorted(faults.items()))}), {meta.get('submitted')} tasks submitted")


__all__ = ["MUTANTS", "PROFILES", "Run", "check", "compact", "meta_line", "run"]
