"""``redis://`` / ``rediss://`` / ``redis+unix://`` / ``redis(s)+sentinel://`` / ``redis(s)+cluster://``
storage: every port of distsched on
``redis.asyncio``, with exactly the semantics of the memory backend.

All multi-key changes are Lua scripts (``lua/``) called by SHA; every leader write checks the
fence inside its script first; task writes are optimistic per task; every mutating call
carries an op id so a retry after a lost reply is answered from the first call's reply
instead of being applied twice. See ``docs/redis.md`` for the key layout and the guarantees.
"""

from __future__ import annotations

import asyncio
import copy
import heapq
import logging
import math
import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import ConnectionPool, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from distsched.asyncutil import WakeSignal
from distsched.history import (
    SCAN_BASE,
    SCAN_FACTOR,
    check_finished,
    check_limit,
    check_since,
    check_state,
    decode_cursor,
    encode_cursor,
    merge_attempts,
    newest_finished,
    readable_attempts,
)
from distsched.model import (
    ASSIGNED,
    AlreadyExists,
    FencedError,
    JobState,
    NotFound,
    Task,
    TaskConfig,
    TaskResult,
    ValidationError,
    VersionConflict,
    Worker,
)
from distsched.ports import (
    Fence,
    FireReport,
    Firing,
    JobPage,
    Quarantined,
    SchedulerNode,
    Settled,
    TaskDetail,
    TaskPage,
    ThroughputBucket,
)
from distsched.urls import redact_text

from . import codec
from .codec import num, task_args
from .lean import BlockingClients, LeanClient
from .parser import parser_class
from .scripts import Scripts, unwrap_refusal
from .url import RedisSettings, parse

log = logging.getLogger("distsched.redis")
#: The layout of a namespace's records this code writes, kept in ``{ns}:layout`` (none: 1,
#: distsched 0.1). Raised when a version writes records an older one cannot read (0.2: the
#: worker records' ``signed``, which a 0.1 scheduler failed on at every pass): a node
#: refuses a namespace whose layout is higher than its own, naming the upgrade.
LAYOUT = 2
#: ARGV: this code's layout, whether the caller writes ("1") - then a lower layout (or none)
#: is raised to it. Reply: the layout found (1 for none).
_LAYOUT_SCRIPT = """
local found = tonumber(redis.call('GET', KEYS[1])) or 1
local mine = tonumber(ARGV[1])
if ARGV[2] == '1' then
  if found < mine then redis.call('SET', KEYS[1], mine) end
  redis.call('SET', KEYS[2], ARGV[3], 'NX')
end
return {found, redis.call('GET', KEYS[2]) or ''}
"""
#: Tasks looked at per housekeeping call until every retained task is in the history
#: indexes (lua/history_backfill.lua): a bounded time of Redis's per call.
HISTORY_BACKFILL = 1000

#: Jobs whose due entry the leader's housekeeping checks a pass (lua/job_check.lua), at most
#: once a second: about 0.5 ms of Redis a second, a walk of 100,000 jobs in under 10 minutes.
JOB_CHECK = 200

#: How long a writer whose server refused a read's tidying (:meth:`RedisStorage.read`)
#: reads without tidying before it tries again (seconds).
UNTIDY_FOR = 60.0

#: Tasks per script call for bulk writes (keeps each script short: Redis runs one at a time).
WRITE_CHUNK = 500
#: Re-measure the offset to the server clock this often (seconds).
CLOCK_REFRESH = 60.0
#: How long the leader's "ready tasks wait for room" hint lasts unless said again (ms).
ROOM_TTL_MS = 5000
EVICTING_OK = ("noeviction",)
#: How long Redis keeps a write's reply for a retry with the same op id (OP_TTL_MS in
#: lua/lib/common.lua), less a margin (seconds).
OP_REPLY_TTL = 55.0
#: How long a call waits for Redis to finish loading its data set (after a restart) before
#: it fails with BusyLoadingError, and the longest pause between two tries meanwhile (seconds).
LOADING_WAIT = 60.0
LOADING_POLL = 0.25


def _op_id() -> str:
    """A random id for one mutating call (64 bits: unique within the reply cache's minute)."""
    return os.urandom(8).hex()


def _token(fence: Fence) -> str:
    return f"{fence.node_id}|{fence.term}"


class RedisStorage:
    """All ports of distsched over one Redis data set (one namespace)."""

    #: Errors that mean Redis is unreachable or not ready for now (down, restarting, loading,
    #: cut off; on a cluster, a slot without a master during a failover): the leader steps
    #: down on them with a warning, not an error.
    transient_errors: tuple[type[BaseException], ...] = (
        RedisConnectionError, RedisTimeoutError, ClusterDownError, TryAgainError, SlotNotCoveredError)
    #: Errors that mean Redis answers but refuses writes for now: out of memory (maxmemory
    #: under noeviction), a replica that is read-only (after a failover that did not move
    #: the clients): the leader steps down with a warning that says so.
    refusing_errors: tuple[type[BaseException], ...] = (OutOfMemoryError, ReadOnlyError)

    def __init__(self, settings: RedisSettings, client: Redis, waiter: Redis, sentinel: Any = None) -> None:
        self.settings = settings
        self.url = settings.url
        self.client = client
        #: the lean pipelined connection of the hot calls (plain redis:// only; see lean.py)
        self.lean = _lean_client(settings)
        # ... and lean connections of their own for the blocking calls (BLMOVE; BLPOP without retries)
        self._blocking = BlockingClients(lambda: _lean_client(settings)) if self.lean is not None else None
        self._lean_waiter = (BlockingClients(lambda: _lean_client(settings, Retry(NoBackoff(), 0)))
                             if self.lean is not None else None)
        self._waiter = waiter
        self._activity = WakeSignal()
        #: set by wait_for_activity: the listener blocks on the notify list only when asked
        self._wanted = WakeSignal()
        self._listener: asyncio.Task[None] | None = None
        self._closing = False
        self._sentinel = sentinel
        self.prefix = settings.prefix
        self.retention = str(int(settings.retention))
        self.scripts = Scripts(client)
        # Blocking commands (BLMOVE, BLPOP) wait in chunks shorter than the socket timeout.
        self._block = max(0.05, min(settings.socket_timeout * 0.8, settings.socket_timeout - 0.5, 2.0))
        self._clock_last = 0.0
        self._clock_server = time.time()
        self._clock_mono = time.monotonic()
        self._clock_at = float("-inf")
        #: Whether every retained task is in the history indexes (lua/history_backfill.lua).
        self._history_indexed = False
        #: Where the walk of the jobs' schedule states (lua/job_check.lua) goes on ('0': a new one).
        self._job_check_cursor = "0"
        #: Where the walk of the jobs' configs (job_check.lua 'configs') goes on.
        self._config_check_cursor = "0"
        self._job_check_next = float("-inf")
        #: Whether this store wrote (or found) the namespace's layout mark at open: the
        #: leader's housekeeping finding it gone means the namespace lost its data.
        self._layout_marked = False
        #: The namespace's epoch (``{ns}:epoch``), a random token its first writer set: another
        #: one found later means the data was lost and the namespace written anew (by a node
        #: that opened it since, which also wrote the layout mark again).
        self._epoch: str | None = None
        #: Opened for a command that only reads (``EngineConfig.reader``): it writes nothing.
        self.reader = False
        #: Until when (monotonic) the reads of a writer tidy nothing (:meth:`read`): its
        #: server refused such a write (a replica, ``maxmemory``).
        self._untidy_until = float("-inf")
        #: Times the housekeeping found the namespace's data gone (``StorageBackend``'s
        #: ``data_losses``: the leader emits ``store.data_lost`` when it grows).
        self.data_losses = 0
        self.jobs = _Jobs(self)
        self.tasks = _Tasks(self)
        self.workers = _Workers(self)
        self.schedulers = _Schedulers(self)
        self.queues = _Queues(self)
        self.results = _Results(self)
        self.quarantine = _Quarantine(self)

    def __repr__(self) -> str:
        return f"<RedisStorage {self.settings.redacted} namespace={self.settings.namespace!r}>"

    # -- opening ------------------------------------------------------------------------
    @classmethod
    async def open(cls, url: str, options: dict[str, Any] | None = None, *, reader: bool = False) -> RedisStorage:
        """Parse and validate ``url``, connect, check the server and the namespace's layout
        (:data:`LAYOUT`; a ``reader`` only checks it), load the scripts."""
        settings = parse(url, options)
        client, waiter, sentinel = _clients(settings)
        store = cls(settings, client, waiter, sentinel)
        store.reader = reader
        try:
            # The first contact goes through the waiter's retry-free connection, so a wrong
            # password or an untrusted certificate fails at once instead of being retried;
            # a Redis still loading its data set is waited for.
            await _while_loading(lambda: store._first_contact(reader))
        except BaseException:
            await store.close()
            raise
        return store

    async def _check_layout(self, reader: bool) -> None:
        """Refuse a namespace a newer distsched wrote (``{ns}:layout`` above :data:`LAYOUT`:
        its records may not read here); a writer raises a lower one to :data:`LAYOUT`, in
        one script, so that an older node opening it later is refused in turn."""
        try:
            found_, epoch = await self._waiter.eval(_LAYOUT_SCRIPT, 2, self.prefix + "layout", self.prefix + "epoch",
                                                    LAYOUT, "0" if reader else "1", uuid.uuid4().hex)
            found = int(found_)
        except (ResponseError, ValueError, TypeError) as exc:
            # NOPERM (an ACL user without EVAL: the calls will say so), or not a number
            log.debug("%s: layout check at open: %s", self.settings.redacted, exc)
            return
        self._layout_marked = not reader
        self._epoch = (epoch.decode() if isinstance(epoch, bytes) else str(epoch)) or None
        if found > LAYOUT:
            raise ValidationError(
                "storage", f"{self.settings.redacted}: namespace {self.settings.namespace!r} was written by a newer "
                f"distsched (store layout {found}; this one knows up to {LAYOUT}): upgrade distsched on this node")

    async def _first_contact(self, reader: bool = False) -> None:
        await self._sync_clock(self._waiter)
        await self._check_server(self._waiter)
        await self.scripts.load(self._waiter)
        if self.lean is not None:  # the lean connection calls the library's functions (Redis 7+)
            await self.scripts.load_library(self._waiter)
        if not self.settings.cluster:
            try:  # a node of a Redis Cluster answers MOVED for a slot it does not serve
                await self._waiter.exists(self.prefix + "lease")
            except AskError as exc:
                raise ValidationError(
                    "storage", f"{self.settings.redacted} is a Redis Cluster node that does not serve the "
                    f"namespace's slot ({exc}): use redis+cluster://HOST:PORT[,HOST:PORT...]/?namespace=... "
                    "(rediss+cluster:// over TLS)",
                ) from None
            except ResponseError as exc:  # NOPERM (an ACL user without these keys): the calls will say so
                log.debug("%s: EXISTS at open: %s", self.settings.redacted, exc)
        await self._check_layout(reader)

    async def _check_server(self, client: Redis) -> None:
        settings = self.settings
        try:
            policies = await _maxmemory_policies(client)
        except ResponseError as exc:  # NOPERM, or CONFIG renamed/disabled
            log.info("%s: cannot read maxmemory-policy (%s); make sure it is noeviction", settings.redacted, exc)
            return
        policy = next((p for p in policies if p is not None and p not in EVICTING_OK), None)
        if policy is None:
            return
        message = (
            f"{settings.redacted}: Redis maxmemory-policy is {policy!r}: under memory pressure Redis "
            f"would silently evict distsched's keys (tasks, queues, the lease). Set "
            f"'maxmemory-policy noeviction'"
        )
        if settings.strict:
            raise ValidationError("storage", message + " (refused because strict=true)")
        log.warning("%s (or add strict=true to refuse to start)", message)

    # -- clock --------------------------------------------------------------------------
    async def _sync_clock(self, client: Redis | None = None) -> None:
        """Offset to the server clock: the sample with the shortest round trip of three
        (on a connection that is already open, so connecting does not skew it)."""
        client = client or self.client
        await client.ping()
        best: tuple[float, float, float] | None = None
        for _ in range(3):
            before = time.monotonic()
            sec, usec = await _time(client, self.prefix)
            after = time.monotonic()
            if best is None or after - before < best[0]:
                best = (after - before, sec + usec / 1e6, (before + after) / 2)
        assert best is not None
        self._clock_server, self._clock_mono = best[1], best[2]
        self._clock_at = time.monotonic()

    async def _maybe_sync_clock(self) -> None:
        if time.monotonic() - self._clock_at >= CLOCK_REFRESH:
            try:
                await self._sync_clock(self._waiter)  # retry-free: never stalls a caller long
            except RedisError as exc:
                log.debug("clock refresh failed: %s", exc)
                self._clock_at = time.monotonic()

    def clock(self) -> float:
        """Server time (measured with TIME at open, refreshed every minute) advanced by the
        local monotonic clock: cheap, and the same on every node."""
        now = self._clock_server + (time.monotonic() - self._clock_mono)
        if now < self._clock_last:  # a refresh moved the offset back a little: never go back
            return self._clock_last
        self._clock_last = now
        return now

    # -- plumbing -----------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _opkey(self) -> str:
        return f"{self.prefix}op:{_op_id()}"

    async def run(self, script: Any, args: Sequence[Any], *, op: bool = True) -> Any:
        keys = [self._opkey()] if op else [self.prefix + "lease"]
        return await self.call(script, keys, [self.prefix, *args])

    async def read(self, script: Any, args: Sequence[Any]) -> Any:
        """A read whose script may tidy the store as it goes - build an index a namespace
        written before it lacks, drop the entries of expired tasks - when its last argument
        is "1". A reader (``EngineConfig.reader``: the CLI's reading commands) never does
        ("0"): it writes nothing, and a replica or a primary at ``maxmemory`` answers it.
        A writer does; when its server refuses the write (``ReadOnlyError``: a replica;
        ``OutOfMemoryError``) it reads again without, and its reads tidy nothing for
        :data:`UNTIDY_FOR` seconds (the dashboard on a replica: one call per read)."""
        if self.reader or time.monotonic() < self._untidy_until:
            return await self.run(script, [*args, "0"], op=False)
        try:
            return await self.run(script, [*args, "1"], op=False)
        except (OutOfMemoryError, ReadOnlyError) as exc:
            log.debug("%s: a read that tidies was refused (%s); reading without tidying", self.settings.redacted, exc)
            self._untidy_until = time.monotonic() + UNTIDY_FOR
            return await self.run(script, [*args, "0"], op=False)

    async def call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """One script call: on the lean connection where there is one (as the library's
        function where the server took the library, else as a script), else through redis-py."""
        try:
            if self.lean is not None:
                function = self.scripts.function(script)
                if function is not None:
                    try:
                        return await self.lean.fcall(function, keys, args, self.scripts.library)
                    except (OutOfMemoryError, ReadOnlyError):
                        # Refused before it ran: a function may write, so Redis refuses it whole
                        # when out of memory (or on a replica). As a script it runs by EVAL's
                        # rules: reads and memory-freeing writes go on, and its first write that
                        # needs memory is refused - what every store call promised before.
                        pass
                return await self.lean.evalsha(script, keys, args)
            return await script(keys=keys, args=args)
        except ResponseError as exc:
            # Redis 6 wraps a script's refused write in a generic ERR ("Error running
            # script ... -OOM command not allowed ..."): raised as Redis 7 says it
            # (OutOfMemoryError, ReadOnlyError), so callers and users see the same error.
            refusal = unwrap_refusal(exc)
            if refusal is exc:
                raise
            raise refusal from exc

    async def housekeeping(self, budget: int) -> int:
        """lua/prune.lua: drop the index entries of finished tasks whose hashes expired, and
        sweep the per-worker history indexes of the workers still known. Until every
        retained task is in the history indexes - tasks stored by distsched 0.1, before they
        existed, are not -, lua/history_backfill.lua adds up to :data:`HISTORY_BACKFILL`
        of them a call (once done, the store records it and no call is made again). Once a
        second, lua/job_check.lua gives their due entry back to jobs that lost it
        (:meth:`_check_jobs`)."""
        due = int(await self.run(self.scripts.prune, [str(int(budget)), self.retention], op=False))
        if time.monotonic() >= self._job_check_next:
            self._job_check_next = time.monotonic() + 1.0
            await self._check_jobs()
        if self._layout_marked:
            mark, epoch = await self.client.mget(self.prefix + "layout", self.prefix + "epoch")
            if isinstance(epoch, bytes):
                epoch = epoch.decode()
            if mark is None or (self._epoch is not None and epoch != self._epoch):
                await self._data_lost()
        if not self._history_indexed:
            try:
                done, _, added = await self.run(self.scripts.history_backfill,
                                                [str(min(int(budget), HISTORY_BACKFILL)), self.retention], op=False)
            except (OutOfMemoryError, ReadOnlyError) as exc:  # it adds entries: the next pass tries again
                log.debug("%s: history backfill refused: %s", self.settings.redacted, exc)
                return due
            self._history_indexed = int(done) == 1
            if int(added):
                log.info("%s: %d history index entries added for tasks stored before the history indexes existed "
                         "(distsched 0.1); they are listed by 'distsched tasks list' and the dashboard now%s",
                         self.settings.redacted, int(added), "" if self._history_indexed else " (more to come)")
        return due

    async def _check_jobs(self) -> None:
        """lua/job_check.lua, a slice of about :data:`JOB_CHECK` jobs: a job whose due entry
        is gone while its config and schedule state stay (a partial loss: the due index
        evicted or deleted) gets it back, with a WARNING naming it; it never fired again."""
        try:
            reply = await self.run(self.scripts.job_check, [self._job_check_cursor, str(JOB_CHECK)], op=False)
        except (OutOfMemoryError, ReadOnlyError) as exc:  # it may write: the next pass tries again
            log.debug("%s: job check refused: %s", self.settings.redacted, exc)
            return
        self._job_check_cursor = reply[0] if isinstance(reply[0], str) else reply[0].decode()
        if len(reply) > 1:
            names = [n if isinstance(n, str) else n.decode("utf-8", "replace") for n in reply[1:]]
            log.warning("%s: %d job(s) had lost their entry in the due index (a partial loss of the store's data?) "
                        "and would never have fired: given back: %s", self.settings.redacted, len(names),
                        ", ".join(repr(n) for n in names[:20]) + (" ..." if len(names) > 20 else ""))
        # The configs left without their schedule state (a paused job's has no due entry, so
        # the due read never meets it): put aside as the due read puts a half aside. Before,
        # `status` and the dashboard's overview counted each as a job that no list showed,
        # whose page said it did not exist, for ever.
        reply = await self.run(self.scripts.job_check, [self._config_check_cursor, str(JOB_CHECK), "configs"],
                               op=False)
        self._config_check_cursor = reply[0] if isinstance(reply[0], str) else reply[0].decode()
        for name in reply[1:]:
            await _put_aside_half(self, name if isinstance(name, str) else name.decode("utf-8", "replace"), "", None)

    async def _data_lost(self) -> None:
        """The namespace's layout mark, written at open, is gone - or its epoch is another
        than the one found at open: a node that opened it since wrote both again -, and so
        is its data (a Redis that restarted without persistence or from an older snapshot, a
        FLUSHALL, a failover to an empty replica). Nothing stored before - jobs, tasks, workers - is there any more,
        and nothing else would say so: the nodes go on, registering again, with no job to
        fire. Said once per loss, at ERROR, and counted in ``data_losses`` (the leader then
        emits ``store.data_lost``: a scheduler started with ``--jobs`` syncs its file again);
        the mark is written again."""
        self.data_losses += 1
        log.error("%s: namespace %r lost its data - its layout mark, written when this node opened it, is gone or "
                  "was written anew "
                  "(a Redis restarted without persistence or from an older snapshot, a FLUSHALL, a failover to an "
                  "empty replica?): the jobs, tasks and worker records stored before are gone. A scheduler started "
                  "with --jobs FILE syncs its file again when it leads; else sync the jobs again (distsched jobs "
                  "sync FILE). Check the persistence settings (docs/redis.md)", self.settings.redacted, self.settings.namespace)
        try:
            await self._check_layout(False)
        except (RedisError, ValidationError) as exc:  # refused (out of memory...): said again next pass
            log.debug("%s: layout mark not written again: %s", self.settings.redacted, exc)

    async def warnings(self) -> list[str]:
        """``StorageBackend.warnings``: from ``INFO memory`` and ``INFO replication`` of the
        namespace's server (its master in a cluster) - at ``maxmemory`` (it refuses writes:
        ``OutOfMemoryError``, or evicts keys under another policy), an evicting policy, a
        replica. An ACL user that may not run INFO gets none (a debug line)."""
        try:
            memory = await _info(self.client, self.prefix, "memory")
            replication = await _info(self.client, self.prefix, "replication")
        except ResponseError as exc:  # NOPERM: nothing to tell
            log.debug("%s: INFO not allowed: %s", self.settings.redacted, exc)
            return []
        return redis_warnings(memory, replication)

    async def next_times(self) -> tuple[float | None, float | None]:
        """``(jobs.next_due_at(), tasks.next_ready_at())`` in one round trip (a pipeline of
        the two reads, not atomic together): the leader's end of every pass."""
        if self.lean is not None:
            due_, ready_ = await self.lean.pipeline(("ZRANGE", self.prefix + "due", 0, 0, "WITHSCORES"),
                                                    ("ZRANGE", self.prefix + "ready", 0, 0, "WITHSCORES"))
            return (float(due_[1]) if due_ else None, float(ready_[1]) if ready_ else None)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zrange(self.prefix + "due", 0, 0, withscores=True)
            pipe.zrange(self.prefix + "ready", 0, 0, withscores=True)
            due, ready = await pipe.execute()
        return (float(due[0][1]) if due else None, float(ready[0][1]) if ready else None)

    async def waiting_for_room(self, waiting: bool) -> None:
        """The leader's hint that ready tasks wait for room: ``{ns}:room`` (expires after
        ROOM_TTL, the leader says it again while it holds). While it exists, a report that
        only settled successes wakes the leader too (lua/report.lua)."""
        if self.lean is not None:
            await self.lean.execute(*(("SET", self.prefix + "room", "1", "PX", ROOM_TTL_MS) if waiting
                                      else ("DEL", self.prefix + "room")))
        elif waiting:
            await self.client.set(self.prefix + "room", "1", px=ROOM_TTL_MS)
        else:
            await self.client.delete(self.prefix + "room")

    async def put_aside(self, kind: str, key: str, exc: BaseException) -> None:
        """Quarantine a record the engine cannot decode (lua/quarantine.lua): it leaves every
        index, its bytes are kept under ``qd:<kind>:<key>``, and ``qr`` says why. Logged as
        an ERROR the first time; the read that met it goes on without it."""
        reason = redact_text(f"{type(exc).__name__}: {exc}")[:500]  # a bad value quoted: a URL's password masked
        try:
            new = await self.run(self.scripts.quarantine, [kind, key, reason], op=False)
        except RedisError as err:  # the read goes on; the next one tries again
            log.warning("could not quarantine %s %r (%s: %s)", kind, key, type(err).__name__, err)
            return
        if new:
            log.error("quarantined %s %r: it cannot be decoded (%s); the rest goes on. "
                      "Its bytes are kept under %sqd:%s:%s", kind, key, reason, self.prefix, kind, key)

    async def leader_write(self, script: Any, fence: Fence, args: Sequence[Any]) -> list[Any]:
        reply = await self.run(script, [_token(fence), *args])
        if reply[0] == "FENCED":
            holder = reply[1] or "nobody (the lease expired)"
            raise FencedError(
                f"write by {fence.node_id!r} with term {fence.term} refused: the lease is now held by {holder}"
            )
        return reply

    async def wait_for_activity(self, timeout: float) -> None:
        """Sleep until ``timeout`` or a wake-up token on the notify list.

        A background task blocks on the notify list (BLPOP on the waiter's own connection)
        and sets a local signal; the wait itself is a local timer. Redis checks blocked
        clients' timeouts only every 1/hz seconds (100 ms by default), so a BLPOP timeout
        alone would wake the leader up to 100 ms after a job is due.

        The listener blocks only when a wait asked it to, and once it took a token it waits
        to be asked again: a token pushed meanwhile (the leader is busy in a pass) stays on
        the list, and the next wait takes it at once. A leader under a stream of submissions
        thus makes one BLPOP per pass, not one per token.
        """
        await self._maybe_sync_clock()
        loop = asyncio.get_running_loop()
        if self._listener is None or self._listener.done() or self._listener.get_loop() is not loop:
            self._listener = loop.create_task(self._listen(), name="distsched-redis-notify")
        if not self._activity.is_set():
            self._wanted.set()
        await self._activity.wait(timeout)

    async def _listen(self) -> None:
        notify = self.prefix + "notify"
        while not self._closing:
            if not await self._wanted.wait(self._block):
                continue  # nobody asked: block on nothing
            # asked: block until a token comes, for as long as a wait is in progress
            while not self._closing:
                try:
                    if self._lean_waiter is not None:
                        woken = await self._lean_waiter.execute("BLPOP", notify, round(self._block, 3))
                    else:
                        woken = await self._waiter.blpop([notify], timeout=round(self._block, 3))
                except (RedisError, OSError) as exc:
                    # down, cut off, or (a failover) "UNBLOCKED ... master -> replica", CLUSTERDOWN
                    if self._closing:
                        return
                    log.debug("notify listener: %s", exc)
                    self._activity.set()  # let the leader look at the store itself
                    await asyncio.sleep(0.5)
                    break
                if woken:
                    self._activity.set()
                    if self._wanted.is_set():  # asked again meanwhile: this token answers it
                        await self._wanted.wait(0)
                    break
                if not self._activity.waiting():
                    break  # timed out, and the wait that asked is over

    async def close(self) -> None:
        self._closing = True
        listener, self._listener = self._listener, None
        if listener is not None and not listener.done():
            listener.cancel()
            if not isinstance(self._waiter, Redis):
                # redis-py's cluster client can swallow the cancellation of a blocked BLPOP
                # (the listener then blocked again, and close() waited for it in vain):
                # closing the waiter's connections ends the BLPOP, and the listener sees
                # that the store is closing.
                await _aclose(self._waiter)
            await asyncio.wait({listener}, timeout=self._block + 1.0)
        for lean in (self.lean, self._blocking, self._lean_waiter):
            if lean is not None:
                await lean.aclose()
        for client in (self._waiter, self.client):
            await _aclose(client)
        if self._sentinel is not None:
            for sentinel in self._sentinel.sentinels:
                try:
                    await sentinel.aclose()
                except Exception as exc:  # pragma: no cover
                    log.debug("close sentinel: %s", exc)


async def _aclose(client: Any) -> None:
    try:
        if isinstance(client, Redis):
            await client.aclose(close_connection_pool=True)
        else:  # a RedisCluster closes its nodes' connections
            await client.aclose()
    except Exception as exc:  # pragma: no cover - closing a broken connection
        log.debug("close: %s", exc)


async def _while_loading(call: Any) -> Any:
    """Await ``call()``; while Redis answers LOADING (a restart loading its AOF or RDB), try
    again (0.05 s doubling to LOADING_POLL apart) for up to LOADING_WAIT seconds."""
    deadline: float | None = None
    delay = 0.05
    while True:
        try:
            return await call()
        except BusyLoadingError:
            now = time.monotonic()
            if deadline is None:
                deadline = now + LOADING_WAIT
                log.debug("Redis is loading its data set; waiting (up to %gs)", LOADING_WAIT)
            if now >= deadline:
                raise
            await asyncio.sleep(min(delay, deadline - now))
            delay = min(delay * 2, LOADING_POLL)


class _Retry(Retry):
    """redis-py's Retry that also waits while Redis loads its data set.

    A LOADING reply raises BusyLoadingError, a ConnectionError: redis-py's Retry does retry
    it, but counts it against the same small budget as a lost connection (6 retries, at most
    2.55 s of jittered backoff, about 1.3 s on average), so a load longer than that failed
    the call - and a leader's pass with it. Here each try is first repeated while Redis
    answers LOADING (the command did not run, so sending it again is safe), and only other
    errors use the budget.
    """

    async def call_with_retry(self, do: Any, fail: Any, *args: Any, **kwargs: Any) -> Any:
        return await super().call_with_retry(lambda: _while_loading(do), fail, *args, **kwargs)


async def _time(client: Any, prefix: str) -> tuple[int, int]:
    """``TIME`` of the server holding the data: on a cluster, the master of the namespace's
    slot (the clock its scripts read), not a random node."""
    if isinstance(client, Redis):
        return await client.time()  # type: ignore[no-any-return]
    reply = await client.execute_command("TIME", target_nodes=client.get_node_from_key(prefix))
    return int(reply[0]), int(reply[1])


async def _info(client: Any, prefix: str, section: str) -> dict[str, Any]:
    """``INFO section`` of the server, or of the cluster node that holds the namespace."""
    if isinstance(client, Redis):
        return dict(await client.info(section))
    reply = await client.execute_command("INFO", section, target_nodes=client.get_node_from_key(prefix))
    return dict(reply) if isinstance(reply, dict) else {}


def redis_warnings(memory: dict[str, Any], replication: dict[str, Any]) -> list[str]:
    """The ``StorageBackend.warnings`` lines ``INFO memory`` and ``INFO replication`` give."""
    out = []
    policy = str(memory.get("maxmemory_policy", "noeviction"))
    used, limit = int(memory.get("used_memory", 0) or 0), int(memory.get("maxmemory", 0) or 0)
    if limit and used >= limit:
        size = f"{memory.get('used_memory_human', used)} of {memory.get('maxmemory_human', limit)}"
        out.append(f"Redis is at its maxmemory ({size}): it refuses writes (OutOfMemoryError) - no scheduler "
                   "can lead, nothing is dispatched; raise maxmemory or free memory (docs/redis.md)"
                   if policy in EVICTING_OK else
                   f"Redis is at its maxmemory ({size}) and evicts keys (maxmemory-policy {policy}): "
                   "distsched's records are being dropped (docs/redis.md)")
    elif policy not in EVICTING_OK:
        out.append(f"Redis maxmemory-policy is {policy!r}: under memory pressure it would evict distsched's keys "
                   "(tasks, queues, the lease); set 'maxmemory-policy noeviction'")
    if replication.get("role") == "slave":
        master = f"{replication.get('master_host', '?')}:{replication.get('master_port', '?')}"
        out.append(f"Redis is a replica of {master}: it refuses writes (READONLY) unless replica-read-only is off "
                   "- point the storage URL at the master")
    return out


async def _maxmemory_policies(client: Any) -> list[str | None]:
    """``maxmemory-policy`` of the server, or of every node of a cluster (a replica is
    promoted by a failover)."""
    if isinstance(client, Redis):
        targets = [None]
    else:
        targets = list(client.get_nodes())
    out: list[str | None] = []
    for node in targets:
        if node is None:
            reply = await client.config_get("maxmemory-policy")
        else:
            reply = await client.execute_command("CONFIG GET", "maxmemory-policy", target_nodes=node)
        out.append(reply.get("maxmemory-policy") if isinstance(reply, dict) else None)
    return out


def _cluster_clients(settings: RedisSettings, common: dict[str, Any], retry: Retry) -> tuple[Any, Any]:
    """A RedisCluster for the calls and one for the waiter. Every key of a namespace carries
    the hash tag ``{namespace}``, so each call (each script: its declared key and every key
    it builds from the prefix) lands on the one master of that slot, and redis-py follows
    MOVED after a failover. Replies are capped (``max_reply``) as on a single server: redis-py's
    RedisCluster takes no ``parser_class``, so it is set on the nodes' connection settings."""
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    kwargs = {k: v for k, v in common.items() if k not in ("db", "parser_class")}
    if settings.tls:  # every node, the start nodes and those found from them
        kwargs.update(ssl=True, **_ssl_kwargs(settings))
    nodes = [ClusterNode(host, port) for host, port in settings.hosts]

    def make(retries: Retry, max_connections: int) -> Any:
        client = RedisCluster(startup_nodes=nodes, retry=retries, max_connections=max_connections, **kwargs)
        client.connection_kwargs["parser_class"] = common["parser_class"]  # shared with its nodes manager
        for node in client.nodes_manager.startup_nodes.values():
            node.connection_kwargs["parser_class"] = common["parser_class"]
        return client

    # (the loading wait of _Retry does not apply: RedisCluster runs its own retry loop, and
    # after a failover it is a replica, not the master serving calls, that loads.) The
    # waiter does not retry, as on a single server: with retries, redis-py's cluster client
    # retried a cancelled BLPOP instead of letting the cancellation through (close() hung).
    return make(retry, settings.max_connections or 2**31), make(Retry(NoBackoff(), 0), 100)


def _sentinel_class() -> Any:
    """redis-py's Sentinel, whose "no master found" error names each sentinel by its address
    (redis-py's names it by its client's repr: about 1,500 characters of pool settings), says
    why the first sentinel that fails could not be asked (:func:`_with_reason`), and carries
    that error as its cause: redis-py keeps only the text, so a
    certificate or a password every sentinel refused read as "not reachable now" (a role
    waited for the store for ever instead of saying what is wrong)."""
    from redis.asyncio.sentinel import MasterNotFoundError, Sentinel

    class _Sentinel(Sentinel):  # type: ignore[misc]
        async def discover_master(self, service_name: str) -> Any:
            try:
                return await super().discover_master(service_name)
            except MasterNotFoundError as exc:
                text = str(exc)
                for each in self.sentinels:
                    kw = each.connection_pool.connection_kwargs
                    text = text.replace(str(each), f"sentinel {kw.get('host')}:{kw.get('port')}")
                cause: BaseException | None = None
                if " - " in text:  # some sentinel failed (else: they answered, none knows a master)
                    for each in self.sentinels:
                        try:
                            await each.ping()
                        except Exception as error:  # why this sentinel cannot be asked
                            cause = error
                            kw = each.connection_pool.connection_kwargs
                            text = _with_reason(text, f"sentinel {kw.get('host')}:{kw.get('port')}", error)
                            break
                raise MasterNotFoundError(text) from cause

    return _Sentinel


def _with_reason(text: str, sentinel: str, error: BaseException) -> str:
    """redis-py's "no master found" text with why ``sentinel`` could not be asked: redis-py
    before 8.2 (the newest for Python 3.10 is 8.1) writes only the class of each sentinel's
    error (``sentinel 127.0.0.1:26379 - network:ConnectionError``), leaving out the reason
    (an untrusted certificate, a refused password); 8.2 adds its text itself."""
    reason = str(error)
    if not reason or reason in text:
        return text
    named = f"{sentinel} - {error!r}"
    if named in text and f"{named}: " not in text:
        return text.replace(named, f"{named}: {reason}", 1)
    return f"{text} ({sentinel}: {reason})"


def _ssl_kwargs(settings: RedisSettings) -> dict[str, Any]:
    """redis-py's TLS settings of a TLS URL (``rediss://``, ``rediss+sentinel://``, ``rediss+cluster://``)."""
    ssl = dict(settings.ssl)
    if ssl.get("ssl_cert_reqs") == "none":
        ssl.setdefault("ssl_check_hostname", False)
    return ssl


def _retry() -> _Retry:
    """The calls' retries: 6 tries with jittered backoff (0.05 s doubling to 1 s), plus the
    wait while Redis loads its data set."""
    return _Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), 6)


def _lean_client(settings: RedisSettings, retry: Any = None) -> LeanClient | None:
    """A lean connection for the hot calls: on a plain ``redis://`` or ``redis+unix://`` server
    unless ``lean=false`` (TLS, sentinel and cluster URLs keep redis-py's client for every call)."""
    if settings.scheme not in ("redis", "redis+unix") or not settings.lean:
        return None
    host, port = settings.hosts[0] if settings.hosts else ("", 0)
    return LeanClient(host, port, path=settings.path, db=settings.db, username=settings.username, password=settings.password,
                      socket_timeout=settings.socket_timeout, connect_timeout=settings.connect_timeout,
                      max_reply=settings.max_reply, retry=retry or _retry())


def _clients(settings: RedisSettings) -> tuple[Any, Any, Any]:
    """The main client (one pool for the process) and the waiter's own client."""
    common: dict[str, Any] = {
        "db": settings.db,
        "username": settings.username,
        "password": settings.password,
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.connect_timeout,
        "socket_keepalive": True,
        "health_check_interval": settings.health_check_interval,
        "decode_responses": True,
        # Bytes that are not UTF-8 (a record written by something else) decode to lone
        # surrogates and encode back to the same bytes, instead of failing the whole reply:
        # the record alone is then found undecodable and quarantined.
        "encoding_errors": "surrogateescape",
        "client_name": "distsched",
        # Refuses a reply larger than max_reply instead of buffering it (a hostile server's
        # "$2000000000" would otherwise fill memory at network speed).
        "parser_class": parser_class(settings.max_reply),
    }
    retry = _retry()
    if settings.cluster:
        return (*_cluster_clients(settings, common, retry), None)
    if settings.sentinel:
        sentinel_kwargs: dict[str, Any] = {
            "socket_timeout": settings.socket_timeout,
            "socket_connect_timeout": settings.connect_timeout,
            "decode_responses": True,
            # (redis-py's Sentinel builds Redis(**these), which takes no parser_class: the
            # cap goes into each sentinel's pool below)
        }
        if settings.sentinel_password is not None:
            sentinel_kwargs["password"] = settings.sentinel_password
        if settings.sentinel_username is not None:
            sentinel_kwargs["username"] = settings.sentinel_username
        if settings.tls:  # the sentinels and the master (SentinelManagedSSLConnection)
            sentinel_kwargs.update(ssl=True, **_ssl_kwargs(settings))
            common.update(ssl=True, **_ssl_kwargs(settings))
        service = settings.service or ""  # the URL parser requires it for redis+sentinel://
        sentinel = _sentinel_class()(list(settings.hosts), sentinel_kwargs=sentinel_kwargs, **common)
        for each in sentinel.sentinels:
            # The sentinels' replies are capped like the master's: a hostile or broken
            # sentinel's "$2000000000" is refused instead of buffered.
            each.connection_pool.connection_kwargs["parser_class"] = common["parser_class"]
        client = sentinel.master_for(service, retry=retry, max_connections=settings.max_connections or 2**31)
        waiter = sentinel.master_for(service, retry=Retry(NoBackoff(), 0))
        return client, waiter, sentinel
    if settings.path is not None:  # redis+unix://
        common.pop("socket_keepalive")  # (a TCP option)
        kwargs = dict(common, connection_class=UnixDomainSocketConnection, path=settings.path)
    else:
        host, port = settings.hosts[0]
        kwargs = dict(common, host=host, port=port)
    if settings.tls:
        kwargs["connection_class"] = SSLConnection
        kwargs.update(_ssl_kwargs(settings))
    pool = ConnectionPool(retry=retry, max_connections=settings.max_connections, **kwargs)
    waiter_pool = ConnectionPool(retry=Retry(NoBackoff(), 0), **kwargs)
    return Redis(connection_pool=pool), Redis(connection_pool=waiter_pool), None


def _bits(reply: list[Any]) -> list[bool]:
    return [c == "1" for c in reply[1]]


async def _sizes_and_firsts(client: Any, key_prefix: str, names: list[str]) -> dict[str, tuple[int, float]]:
    """Per name with a non-empty sorted set ``<key_prefix><name>``: its ``ZCARD`` and its first
    entry's score, the names in one pipeline (the held slots' and the parked tasks' reads)."""
    if not names:
        return {}
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.zcard(key_prefix + name)
            pipe.zrange(key_prefix + name, 0, 0, withscores=True)
        replies = await pipe.execute()
    out: dict[str, tuple[int, float]] = {}
    for i, name in enumerate(names):
        count, first = replies[2 * i], replies[2 * i + 1]
        if count and first:
            out[name] = (int(count), float(first[0][1]))
    return out


def _chunks(items: Sequence[Any], size: int = WRITE_CHUNK):
    for i in range(0, len(items), size):
        yield items[i:i + size]


# -- jobs ---------------------------------------------------------------------------------
class _Jobs:
    def __init__(self, store: RedisStorage) -> None:
        self.store = store
        self.s = store.scripts

    async def add(self, config: TaskConfig, *, next_fire_at: float | None) -> TaskConfig:
        reply = await self.store.run(self.s.job_add, [
            config.name, codec.config_json(config), num(next_fire_at), "1" if config.enabled else "0",
            _op_id()], op=False)
        if reply == "EXISTS":
            raise AlreadyExists(f"job {config.name!r} already exists")
        return _evolve(config, 1)

    async def add_many(self, jobs: Sequence[tuple[TaskConfig, float | None]], *,
                       all_or_nothing: bool = False) -> list[TaskConfig | None]:
        out: list[TaskConfig | None] = []
        # all or nothing: one script call for the whole batch (one atomic step)
        for chunk in ([jobs] if all_or_nothing and jobs else _chunks(jobs)):
            # one argument per job (fewer arguments to pack): names never hold \x1f, JSON neither
            args = [codec.SEP.join((config.name, num(next_fire_at), "1" if config.enabled else "0",
                                    codec.config_json(config))) for config, next_fire_at in chunk]
            reply = await self.store.run(self.s.job_add_many, ["all" if all_or_nothing else "each", *args])
            if reply[0] == "EXISTS":
                names = tuple(reply[1:])
                raise AlreadyExists(f"{len(names)} job(s) already exist", names=names)
            bits = _bits(reply)
            out += [_evolve(config, 1) if created else None for (config, _), created in zip(chunk, bits, strict=True)]
        return out

    async def update(self, config: TaskConfig, *, next_fire_at: float | None) -> TaskConfig:
        reply = await self.store.run(self.s.job_update, [
            config.name, codec.config_json(config), str(config.version), num(next_fire_at),
            "1" if config.enabled else "0", _op_id()], op=False)
        if reply[0] == "NOTFOUND":
            raise NotFound(f"job {config.name!r} does not exist")
        if reply[0] == "CONFLICT":
            raise VersionConflict(
                f"job {config.name!r}: update based on version {config.version}, but the stored "
                f"version is {reply[1]}; reload the job and apply the change again"
            )
        return _evolve(config, int(reply[1]))

    async def _read(self, *args: Any) -> list[tuple[TaskConfig, JobState]]:
        flat = await self.store.run(self.s.job_read, args, op=False)
        return await _decode_jobs(self.store, flat)

    async def get(self, name: str) -> TaskConfig:
        found = await self._read("get", name)
        if not found:
            raise NotFound(f"job {name!r} does not exist")
        return found[0][0]

    async def list_jobs(self) -> list[TaskConfig]:
        return sorted((config for config, _ in await self._read("list")), key=lambda c: c.name)

    async def page(self, after: str | None = None, limit: int = 50) -> JobPage:
        """By name (``{ns}:jn``, lua/job_read.lua). On a namespace written before that index,
        a writer builds it; a reader (or a server that refuses writes) gets every name and
        pages them here, reading only the page's jobs (:func:`_name_order`)."""
        check_limit(limit)
        if after is not None and not isinstance(after, str):
            raise ValidationError("after", f"must be a job name, not {after!r}")
        flat = await self.store.read(self.s.job_read, ["page", after or "", str(limit)])
        # The next page starts after the last name this one examined, not after its last job:
        # a name whose job is half-stored (its config without its schedule state, which no
        # read puts aside) is left out, and a page of them ended the paging - every job named
        # after them was missing from `jobs list`, the dashboard and /api/v1/jobs.
        if flat and flat[0] == "all":
            start = _name_order(after) if after else None
            chosen = heapq.nsmallest(limit + 1, (n for n in flat[1:] if start is None or _name_order(n) > start),
                                     key=_name_order)
            jobs = await self._read("get", *chosen[:limit]) if chosen else []
            next_after = chosen[limit - 1] if len(chosen) > limit else None
        else:
            jobs = await _decode_jobs(self.store, flat[1:])
            next_after = flat[0] or None
        return JobPage(jobs=tuple(jobs), next_after=next_after)

    async def count(self) -> tuple[int, int]:
        """``HLEN`` of the jobs and the disabled ones (``{ns}:joff``, lua/job_read.lua). A
        reader (``status``), or a server that refuses writes (a replica, ``maxmemory``),
        counts without building the index (:meth:`RedisStorage.read`)."""
        total, enabled = await self.store.read(self.s.job_read, ["count"])
        return int(total), int(enabled)

    async def remove(self, name: str) -> bool:
        return bool(await self.store.run(self.s.job_remove, [name], op=False))

    async def state(self, name: str) -> JobState:
        found = await self._read("get", name)
        if not found:
            raise NotFound(f"job {name!r} does not exist")
        return found[0][1]

    async def set_paused(self, name: str, paused: bool, *, next_fire_at: float | None = None) -> None:
        ok = await self.store.run(self.s.job_pause, [name, "1" if paused else "0", num(next_fire_at)], op=False)
        if not ok:
            raise NotFound(f"job {name!r} does not exist")

    async def due(self, now: float, limit: int) -> list[tuple[TaskConfig, JobState]]:
        if limit <= 0:
            return []
        return await self._read("due", num(now), str(int(limit)))

    async def next_due_at(self) -> float | None:
        first = await self.store.client.zrange(self.store.prefix + "due", 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def fire(self, fence: Fence, firings: Sequence[Firing]) -> FireReport:
        args: list[str] = [self.store.retention]
        for f in firings:
            # a serial job's limit (its tasks' serial_limit): the script holds those beyond it
            serial = next((t.serial_limit for t in f.tasks if t.serial_limit is not None), None)
            backlog = "" if serial is None or f.max_backlog is None else str(f.max_backlog)
            args += [f.job, num(f.expected_next), num(f.next_fire_at), num(f.last_slot),
                     "" if serial is None else str(serial), backlog, str(len(f.tasks))]
            args += [task_args(task, 0) for task in f.tasks]
        reply = await self.store.leader_write(self.s.fire, fence, args)
        ends = 4 + int(reply[3])
        # then the ids the script stored skipped for max_backlog (the reason is their
        # firing's), then those of the `existing` tasks it left as they were
        there = len(reply) - int(reply[2])
        reasons = {t.id: f.backlog_full for f in firings for t in f.tasks} if there > ends else {}
        return FireReport(created=int(reply[1]), existing=int(reply[2]), conflicts=tuple(reply[4:ends]),
                          skipped=tuple((i, reasons[i]) for i in reply[ends:there]),
                          existing_ids=tuple(reply[there:]))


def _name_order(name: str) -> bytes:
    """A job name's place in ``{ns}:jn``'s order (ZRANGEBYLEX: by bytes)."""
    return name.encode("utf-8", "surrogateescape")


async def _decode_jobs(store: RedisStorage, flat: list[Any]) -> list[tuple[TaskConfig, JobState]]:
    out = []
    for i in range(0, len(flat), 4):
        name, config, state = flat[i], flat[i + 1], flat[i + 2]
        if config is None or state is None:  # a due job half gone (lua/job_read.lua 'due')
            await _put_aside_half(store, name, config, state)
            continue
        try:
            out.append(codec.decode_job(name, config, state, flat[i + 3]))
        except Exception as exc:  # one bad record never stops the reader
            await store.put_aside("job", name, exc)
    return out


async def _put_aside_half(store: RedisStorage, name: str, config: Any, state: Any) -> None:
    """A due job whose config or schedule state is gone (a partial loss of Redis's data: keys
    evicted or deleted one by one): the half left is quarantined, or the due entry alone
    removed, so that its name is free and the leader's next due time is not held in the past."""
    if config is None and state is None:
        log.warning("job %r: its config and schedule state are gone (a partial loss of the store's data?); "
                    "removed its entry in %sdue", name, store.prefix)
    missing = "config" if config is None else "schedule state"
    await store.put_aside("job", name, LookupError(
        f"its {missing} is missing (a partial loss of the store's data?): add or sync the job again"))


def _evolve(config: TaskConfig, version: int) -> TaskConfig:
    """``config`` as stored, with ``version`` (a copy: the caller's object is not changed; the
    fields were validated when it was built, so no validator runs again)."""
    stored = copy.copy(config)
    stored.version = version
    return stored


# -- tasks --------------------------------------------------------------------------------
class _Tasks:
    def __init__(self, store: RedisStorage) -> None:
        self.store = store
        self.s = store.scripts

    async def submit(self, tasks: Sequence[Task]) -> list[bool]:
        out: list[bool] = []
        for chunk in _chunks(tasks):
            args = [self.store.retention, *(task_args(task, 0) for task in chunk)]
            reply = await self.store.run(self.s.submit, args)
            bits = _bits(reply)
            for task, created in zip(chunk, bits, strict=True):
                if created:
                    task.version = 1
            out += bits
        if not tasks:  # nothing stored, but memory:// signals activity too
            await self.store.run(self.s.submit, [self.store.retention])
        return out

    async def _read(self, *args: Any, tidy: bool = False) -> list[Task]:
        """``tidy``: the mode drops misfiled index entries where it may (:meth:`RedisStorage.read`)."""
        rows = await (self.store.read(self.s.task_read, args) if tidy else self.store.run(self.s.task_read, args, op=False))
        return [task for task in [await self._decode(row) for row in rows if row] if task is not None]

    async def _decode(self, row: list[Any]) -> Task | None:
        """A task row, or None after quarantining a record that cannot be decoded."""
        try:
            return codec.decode_task(row)
        except Exception as exc:
            await self.store.put_aside("task", str(row[-1]), exc)
            return None

    async def get(self, task_id: str) -> Task | None:
        return (await self.get_many([task_id]))[0]

    async def get_many(self, task_ids: Sequence[str]) -> list[Task | None]:
        out: list[Task | None] = []
        for chunk in _chunks(list(task_ids), 1000):
            rows = await self.store.run(self.s.task_read, ["get", *chunk], op=False)
            out += [await self._decode(row) if row else None for row in rows]
        return out

    async def finished(self, states: Sequence[str], since: float, limit: int) -> list[Task]:
        """Per state, the newest entries of the retention index ``x:<state>`` (scored by the
        server time of the finish plus the retention), read by finish time: an entry scored
        at or after ``since`` + retention may be one of them; each task read is checked by
        its own ``finished_at``. The score uses the retention of the write that finished the
        task: a task finished under a shorter retention than the store's now is missed."""
        check_limit(limit)
        names, since = check_finished(states, since)
        store = self.store
        ids: list[str] = []
        for state in names:
            members = await store.client.zrevrangebyscore(store.prefix + "x:" + state, "+inf",
                                                          since + float(store.retention), start=0, num=limit)
            for member in members:  # "<#job>:<job><id>" (text: the client decodes replies)
                length, sep, rest = str(member).partition(":")
                if sep and length.isdigit() and int(length) <= len(rest):
                    ids.append(rest[int(length):])
        return newest_finished((t for t in await self.get_many(ids) if t is not None and t.state.value in names
                                and t.finished_at is not None and t.finished_at >= since), limit)

    async def query(
        self,
        *,
        job: str | None = None,
        state: str | None = None,
        worker: str | None = None,
        since: float | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> TaskPage:
        check_limit(limit)
        state = check_state(state)
        since = check_since(since)
        score, after = decode_cursor(cursor) if cursor is not None else (None, "")
        if job is not None:
            index = "jt:" + job
        elif worker is not None:
            index = "tw:" + worker
        elif state is not None:
            index = "ts:" + ("assigned" if state in _ASSIGNED_VALUES else state)
        else:
            index = "tc"
        rows = await self.store.read(self.s.task_read, [
            "query", index, state or "", job or "", worker or "", num(since), num(score), after,
            str(limit), str(SCAN_BASE + SCAN_FACTOR * limit)])
        tasks = tuple(task for task in [await self._decode(row) for row in rows[2:]] if task is not None)
        nxt = encode_cursor(float(rows[0]), rows[1]) if rows[0] != "" else None
        return TaskPage(tasks=tasks, next_cursor=nxt)

    async def detail(self, task_id: str) -> TaskDetail | None:
        reply = await self.store.run(self.s.task_read, ["detail", task_id], op=False)
        if not reply or not reply[0]:
            return None
        task = await self._decode(reply[0])
        if task is None:
            return None
        return TaskDetail(task=task, attempts=merge_attempts(task, readable_attempts(task.id, reply[1:],
                                                                                    codec.decode_attempt)))

    async def throughput(self, minutes: int = 60) -> list[ThroughputBucket]:
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 120:
            raise ValidationError("minutes", f"must be an integer between 1 and 120, not {minutes!r}")
        flat = await self.store.run(self.s.stats_read, ["throughput", str(minutes)], op=False)
        out = []
        for i in range(0, len(flat), 2):
            parts = flat[i + 1].split("|") if flat[i + 1] else []
            # a figure that is not a count (written by something other than distsched; the
            # scripts start it again at their next write) is left out, not a failed read
            counts = {parts[k]: int(parts[k + 1]) for k in range(0, len(parts) - 1, 2)
                      if parts[k + 1].isdigit() and parts[k + 1].isascii()}
            out.append(ThroughputBucket(minute=int(flat[i]) * 60.0, counts=counts))
        return out

    async def counts(self) -> dict[str, int]:
        flat = await self.store.read(self.s.counts, [self.store.retention])
        out = {}
        for i in range(0, len(flat), 2):
            try:
                out[flat[i]] = int(flat[i + 1])
            except ValueError as exc:
                await self.store.put_aside("count", flat[i], exc)
        return out

    async def ready(self, now: float, limit: int) -> list[Task]:
        if limit <= 0:
            return []
        return await self._read("ready", num(now), str(int(limit)))

    async def next_ready_at(self) -> float | None:
        first = await self.store.client.zrange(self.store.prefix + "ready", 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def held_slots(self, jobs: Sequence[str] | None = None) -> dict[str, tuple[int, float]]:
        """Per serial job with held slots: how many (``ZCARD {ns}:sh:<job>``) and the earliest
        ``not_before`` (its first entry), the jobs in one pipeline; every job: those of
        ``{ns}:shj`` (a job whose held queue emptied since is left out)."""
        client, prefix = self.store.client, self.store.prefix
        names: list[str] = (sorted(str(j) for j in await client.smembers(prefix + "shj")) if jobs is None
                            else list(dict.fromkeys(jobs)))
        return await _sizes_and_firsts(client, prefix + "sh:", names)

    async def park(self, fence: Fence, parked: Sequence[tuple[Task, str, float]]) -> list[bool]:
        """Move ready tasks no live worker may run to ``{ns}:pk:<key>`` (park.lua; fenced, one
        atomic step per chunk of a few thousand)."""
        out: list[bool] = []
        for chunk in _chunks(parked):
            args: list[str] = []
            for task, key, until in chunk:
                args += [task.id, str(task.version), key, num(until)]
            out += _bits(await self.store.leader_write(self.s.park, fence, args))
        return out

    async def unpark(self, fence: Fence, keys: Sequence[str], until: float, limit: int) -> int:
        """Move parked tasks back to ``{ns}:ready`` (unpark.lua; fenced, one atomic step)."""
        reply = await self.store.leader_write(self.s.unpark, fence, [num(until), str(max(0, int(limit))),
                                                                     *dict.fromkeys(keys)])
        return int(reply[1])

    async def parked(self, keys: Sequence[str] | None = None) -> dict[str, tuple[int, float]]:
        """Per key with parked tasks: ``ZCARD {ns}:pk:<key>`` and its first entry's until, the
        keys in one pipeline; every key: those of ``{ns}:pkk`` (a key emptied since is left out)."""
        client, prefix = self.store.client, self.store.prefix
        names: list[str] = ([str(k) for k in await client.zrange(prefix + "pkk", 0, -1)] if keys is None
                            else list(dict.fromkeys(keys)))
        return await _sizes_and_firsts(client, prefix + "pk:", names)

    async def live(self, job: str) -> list[Task]:
        return sorted(await self._read("live", job, tidy=True), key=lambda t: t.created_at)

    async def assigned(self, worker_id: str) -> list[Task]:
        return await self._read("assigned", worker_id, tidy=True)

    async def overdue(self, now: float, limit: int) -> list[Task]:
        if limit <= 0:
            return []
        return await self._read("overdue", num(now), str(int(limit)))

    async def _cas(self, script: Any, fence: Fence, tasks: Sequence[Task], head: list[str],
                   encode: Any = task_args) -> list[bool]:
        out: list[bool] = []
        chunks = list(_chunks(tasks)) or [[]]
        for n, chunk in enumerate(chunks):
            # results are acknowledged once, with the last chunk
            args = list(head) if n == len(chunks) - 1 else _no_ack(head, script is self.s.save)
            args += [encode(task) for task in chunk]
            bits = _bits(await self.store.leader_write(script, fence, args))
            for task, written in zip(chunk, bits, strict=True):
                if written:
                    task.version += 1
            out += bits
        return out

    async def save(self, fence: Fence, tasks: Sequence[Task], *, ack_results: int = 0) -> list[bool]:
        return await self._cas(self.s.save, fence, tasks, [self.store.retention, str(max(0, int(ack_results)))])

    async def cancel(self, task: Task) -> bool:
        if task.state.value != "cancelled":
            raise ValidationError("state", f"cancel writes a cancelled task, not a {task.state.value} one")
        reply = await self.store.run(self.s.cancel, [self.store.retention, task_args(task)])
        if reply[1] == "1":
            task.version += 1
            return True
        return False

    async def dispatch(self, fence: Fence, tasks: Sequence[Task]) -> list[bool]:
        # Only the dispatch fields travel (codec.dispatch_args): a dispatch changes nothing else.
        return await self._cas(self.s.dispatch, fence, tasks, [self.store.retention], codec.dispatch_args)


_ASSIGNED_VALUES = frozenset(s.value for s in ASSIGNED)


def _no_ack(head: list[str], is_save: bool) -> list[str]:
    """Arguments of the chunks before the last: no acknowledgement."""
    return [head[0], "0"] if is_save else list(head)


# -- workers ------------------------------------------------------------------------------
class _Workers:
    def __init__(self, store: RedisStorage) -> None:
        self.store = store
        self.s = store.scripts

    async def register(self, worker: Worker) -> None:
        await self.store.run(self.s.worker_register, [
            worker.id, codec.worker_json(worker), "1" if worker.draining else "0"], op=False)

    async def heartbeat(self, worker_id: str, *, draining: bool = False, blocked: int = 0) -> bool:
        await self.store._maybe_sync_clock()
        ok = await self.store.run(self.s.worker_heartbeat,
                                  [worker_id, "1" if draining else "0", str(max(0, int(blocked)))], op=False)
        return bool(ok)

    async def deregister(self, worker_id: str) -> None:
        await self.store.run(self.s.worker_deregister, [worker_id], op=False)

    async def list_workers(self) -> list[Worker]:
        flat = await self.store.run(self.s.worker_list, [], op=False)
        workers = []
        for i in range(0, len(flat), 6):
            try:
                workers.append(codec.decode_worker(*flat[i:i + 6]))
            except Exception as exc:  # a garbage entry: moved aside, the others listed
                await self.store.put_aside("worker", flat[i], exc)
        return sorted(workers, key=lambda w: w.id)

    async def queue_depths(self) -> dict[str, int]:
        flat = await self.store.run(self.s.stats_read, ["queues"], op=False)
        return {flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def reap(self, fence: Fence, worker_id: str, tasks: Sequence[Task]) -> list[bool]:
        args = [self.store.retention, worker_id, *(task_args(task) for task in tasks)]
        bits = _bits(await self.store.leader_write(self.s.reap, fence, args))
        for task, written in zip(tasks, bits, strict=True):
            if written:
                task.version += 1
        return bits


class _Schedulers:
    def __init__(self, store: RedisStorage) -> None:
        self.store = store
        self.s = store.scripts

    async def register(self, node: SchedulerNode) -> None:
        data = codec.dumps({"id": node.id, "host": node.host, "pid": node.pid, "started_at": node.started_at,
                            "signed": node.signed})
        await self.store.run(self.s.scheduler_node, ["register", node.id, data, node.role], op=False)

    async def heartbeat(self, node_id: str, *, role: str) -> bool:
        return bool(await self.store.run(self.s.scheduler_node, ["heartbeat", node_id, role], op=False))

    async def deregister(self, node_id: str) -> None:
        await self.store.run(self.s.scheduler_node, ["deregister", node_id], op=False)

    async def list_schedulers(self) -> list[SchedulerNode]:
        flat = await self.store.run(self.s.stats_read, ["schedulers"], op=False)
        nodes = []
        for i in range(0, len(flat), 4):
            try:
                data = codec.loads(flat[i + 1])
                # the key names the node (its heartbeat and role are kept under it), not the
                # copy of the id in its JSON: one that is not a string failed the sort below,
                # and with it the status and the dashboard's overview
                data.update(id=flat[i], last_heartbeat=float(flat[i + 2]), role=flat[i + 3])
                nodes.append(SchedulerNode.from_dict(data))
            except Exception as exc:  # a garbage entry: moved aside, the others listed
                await self.store.put_aside("scheduler", flat[i], exc)
        return sorted(nodes, key=lambda n: n.id)


class _Quarantine:
    """What :meth:`RedisStorage.put_aside` moved out of the way (``qr``)."""

    def __init__(self, store: RedisStorage) -> None:
        self.store = store

    async def count(self) -> int:
        return int(await self.store.client.hlen(self.store.prefix + "qr"))

    async def list_quarantined(self, limit: int = 100) -> list[Quarantined]:
        out = [_entry(field, raw) for field, raw in (await self.store.client.hgetall(self.store.prefix + "qr")).items()]
        out.sort(key=lambda q: q.at, reverse=True)
        return out[:limit]

    async def quarantined_since(self, seq: int, limit: int) -> tuple[int, list[Quarantined]]:
        """lua/quarantine_since.lua: ``qseq`` and the entries whose number in ``qs`` is
        above ``seq``, newest first (see ``ports.Quarantine``)."""
        flat = await self.store.run(self.store.scripts.quarantine_since, [str(int(seq)), str(max(0, int(limit)))],
                                    op=False)
        return int(flat[0]), [_entry(flat[i], flat[i + 1]) for i in range(1, len(flat) - 1, 2)]

    async def drop(self, kind: str, key: str) -> bool:
        """The kept bytes (``qd:<kind>:<key>``), then the entry (its number in ``qs``, then
        ``qr``): see ``ports.Quarantine``."""
        prefix, client = self.store.prefix, self.store.client
        await client.delete(f"{prefix}qd:{kind}:{key}")
        await client.zrem(prefix + "qs", f"{kind}:{key}")
        return bool(await client.hdel(prefix + "qr", f"{kind}:{key}"))


def _entry(field: Any, raw: Any) -> Quarantined:
    """A ``qr`` entry (``field`` "<kind>:<id>", ``raw`` its JSON) as a :class:`Quarantined`."""
    try:
        data = codec.loads(raw if isinstance(raw, str) else raw.decode())
        at = float(data["at"])
        if not math.isfinite(at):  # "nan": no JSON number (the dashboard's API failed on it)
            raise ValueError(at)
        return Quarantined(kind=str(data["kind"]), key=str(data["id"]), reason=str(data["reason"]), at=at)
    except Exception:
        kind, _, key = str(field).partition(":")
        return Quarantined(kind=kind, key=key, reason="(unreadable quarantine entry)", at=0.0)


# -- queues and results -------------------------------------------------------------------
class _Queues:
    def __init__(self, store: RedisStorage) -> None:
        self.store = store
        self.s = store.scripts
        #: worker id -> (op key, when) of a pull whose reply never came (see _take)
        self._unanswered: dict[str, tuple[str, float]] = {}
        #: workers whose last take here emptied their claim list and queue (it returned fewer
        #: than asked for): their next blocking pull goes straight to BLMOVE, which returns
        #: at once if something was queued since (only BLMOVE fills the claim list)
        self._drained: set[str] = set()

    async def _take(self, worker_id: str, max_items: int, report: Sequence[str] | None = None) -> list[Task]:
        """Run pull.lua. A call that failed without a reply may still have run and marked
        tasks running on this worker - after redis-py's own retries ran out (Redis down
        longer than they last, e.g. killed while the script's write was being fsynced). The
        next pull of that worker sends the same op key again, so the script's reply cache
        hands over those tasks (the ones still running here) instead of leaving them marked
        running on a worker that never got them until the leader times them out.
        ``report`` (the arguments of a report after the worker id): lua/report_pull.lua
        instead, the report and the take in one call (it writes the same reply cache)."""
        store = self.store
        now = time.monotonic()
        key, since = self._unanswered.pop(worker_id, (None, now))
        if key is None or now - since > OP_REPLY_TTL:
            key, since = store._opkey(), now
        try:
            if report is None:
                rows = await store.call(self.s.pull, [key], [store.prefix, worker_id, str(int(max_items))])
            else:
                rows = await store.call(self.s.report_pull, [key], [store.prefix, worker_id, str(int(max_items)), *report])
        except BaseException:
            self._drained.discard(worker_id)  # the next pull takes first (and replays this key)
            self._unanswered[worker_id] = (key, since)
            for stale in [w for w, (_, t) in self._unanswered.items() if now - t > OP_REPLY_TTL]:
                del self._unanswered[stale]
            raise
        out = []
        for row in rows:
            if row and row[0] == "!bad":  # pull.lua could not read this record's fields
                await store.put_aside("task", row[1], ValueError("its version or timeout is not a number"))
                continue
            try:
                out.append(codec.decode_task(row))
            except Exception as exc:
                await store.put_aside("task", str(row[-1]), exc)
        return out

    async def pull(self, worker_id: str, max_items: int, timeout: float) -> list[Task]:
        """Take what is queued; if nothing is, block on the queue (BLMOVE into the claim
        list, in chunks shorter than the socket timeout) and take again when it fills."""
        if max_items <= 0:
            return []
        drained = self._drained
        # A blocking pull after a take that emptied both lists skips the take that would find
        # nothing (one round trip per task under a trickle): the BLMOVE sees what came since.
        if worker_id not in drained or timeout < 0.05:
            out = await self._take(worker_id, max_items)
            if len(out) < max_items:
                drained.add(worker_id)
            if out:
                return out
        store = self.store
        queue, claim = store.key("q", worker_id), store.key("c", worker_id)
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining < 0.01:
                # nothing came: the next pull takes first (a BLMOVE whose reply redis-py's
                # retry swallowed may have left an entry in the claim list)
                drained.discard(worker_id)
                return []
            try:
                args = ("BLMOVE", queue, claim, "LEFT", "RIGHT", round(min(remaining, store._block), 3))
                if store._blocking is not None:
                    moved = await store._blocking.execute(*args)
                else:
                    moved = await store.client.execute_command(*args)
            except BaseException:
                drained.discard(worker_id)  # it may have moved an entry: the next pull takes first
                raise
            if moved is not None:
                out = await self._take(worker_id, max_items)
                if len(out) >= max_items:
                    drained.discard(worker_id)
                if out:
                    return out

    async def report(self, worker_id: str, results: Sequence[TaskResult], *, settle: bool = False) -> None:
        # settle: lua/report.lua finishes this worker's unsigned current successes itself
        retention = self.store.retention if settle else ""
        for chunk in list(_chunks(results)) or [[]]:  # an empty report still wakes the leader
            args = [worker_id, str(self.store.settings.results_max), retention]
            args += [codec.result_json(result) for result in chunk]
            await self.store.run(self.s.report, args)

    async def report_and_pull(self, worker_id: str, results: Sequence[TaskResult], max_items: int, *,
                              settle: bool = False) -> list[Task]:
        """lua/report_pull.lua: the report (as :meth:`report`) and a take that never blocks
        (as :meth:`pull` with no wait) in one script call. A report of more than one chunk
        sends the others first, as :meth:`report` would."""
        chunks = list(_chunks(results))
        if len(chunks) > 1:
            await self.report(worker_id, [r for chunk in chunks[:-1] for r in chunk], settle=settle)
        if max_items <= 0:
            await self.report(worker_id, chunks[-1] if chunks else [], settle=settle)
            return []
        last = chunks[-1] if chunks else []
        args = [str(self.store.settings.results_max), self.store.retention if settle else ""]
        args += [codec.result_json(result) for result in last]
        out = await self._take(worker_id, max_items, args)
        drained = self._drained
        if len(out) < max_items:
            drained.add(worker_id)  # its next blocking pull goes straight to BLMOVE
        else:
            drained.discard(worker_id)
        return out


class _Results:
    def __init__(self, store: RedisStorage) -> None:
        self.store = store

    async def settle(self, fence: Fence, max_items: int, *, want_tasks: bool = False) -> Settled:
        """lua/settle.lua: successes of current attempts are finished in the store itself."""
        if max_items <= 0:
            return Settled()
        reply = await self.store.leader_write(self.store.scripts.settle, fence, [
            self.store.retention, str(int(max_items)), "1" if want_tasks else "0"])
        return Settled(settled=int(reply[1]), stale=int(reply[2]), left=int(reply[3]),
                       tasks=tuple(codec.decode_settled(row) for row in reply[4:]))

    async def peek(self, max_items: int) -> list[TaskResult]:
        if max_items <= 0:
            return []
        key = self.store.prefix + "results"
        while True:
            # Raw bytes: an entry that is not UTF-8 must not fail the whole read.
            raw = await self.store.client.execute_command("LRANGE", key, 0, max_items - 1, NEVER_DECODE=True)
            out: list[TaskResult] = []
            bad = None
            for data in raw:
                try:
                    out.append(codec.decode_result(data.decode("utf-8")))
                except Exception as exc:  # anything in the list that is not a valid result
                    bad = (data, exc)
                    break
            if bad is None:
                return out
            # An undecodable entry would block the channel forever (the leader acknowledges
            # by count): drop it, loudly, and read again.
            log.error("dropping an undecodable entry of %s: %s: %.200r", key, bad[1], bad[0])
            await self.store.client.lrem(key, 1, bad[0])
