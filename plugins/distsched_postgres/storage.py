"""``postgresql://`` / ``postgres://`` storage: every port of distsched on asyncpg, with the
semantics of the memory and Redis backends.

Every write is one call of a PL/pgSQL function (migrations/0001_initial.sql): one statement,
one round trip, one transaction. Leader writes check the fence inside that transaction. Task
writes are optimistic per task. A worker's queue is its dispatched tasks, taken with
``FOR UPDATE SKIP LOCKED``; wake-ups travel by LISTEN/NOTIFY on one dedicated connection per
storage. See ``docs/postgres.md``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from distsched.asyncutil import WakeSignal
from distsched.history import (
    check_finished,
    check_limit,
    check_since,
    check_state,
    decode_cursor,
    encode_cursor,
    merge_attempts,
    readable_attempts,
)
from distsched.model import (
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
    SettledTask,
    TaskDetail,
    TaskPage,
    ThroughputBucket,
)
from distsched.urls import redact_text

from . import codec, migrate
from .codec import TASK_COLUMNS
from .url import PostgresSettings, parse

log = logging.getLogger("distsched.postgres")


class _PoolFloorInOneLine(logging.Filter):
    """asyncpg's pool, while it cannot reconnect its ``pool_min`` connections (the server down
    or restarting), logs every try with the whole traceback (``Failed to restore the pool
    connection floor; retrying``, WARNING, from 1 s to 60 s apart). The reason goes on that
    one line instead; asyncpg's other records are left as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.msg, str) and record.msg.startswith("Failed to restore the pool"):
            exc = record.exc_info[1]
            record.msg = f"{record.msg} ({type(exc).__name__}: {exc})" if exc is not None else record.msg
            record.exc_info = record.exc_text = None
        return True


logging.getLogger("asyncpg.pool").addFilter(_PoolFloorInOneLine())

T = TypeVar("T")

#: Re-measure the offset to the database clock this often (seconds).
CLOCK_REFRESH = 60.0
#: Tasks per function call for bulk writes.
WRITE_CHUNK = 1000
#: A pull retried after a lost reply may ask for the tasks the lost call took, this long.
OP_REPLY_TTL = 55.0
#: While the LISTEN connection is down, waits last at most this long (then look at the store).
RELISTEN_POLL = 1.0
#: The tables whose growth the leader's housekeeping watches (see PostgresStorage.housekeeping).
WATCHED_TABLES = ("tasks", "jobs", "attempts", "results")
#: A watched table is analyzed once it holds twice the pages its statistics say (and this
#: many at least: below that, a plan made for a smaller table costs too little to matter).
ANALYZE_FLOOR_PAGES = 128
#: After a server refused to move a record aside (a hot standby), reads leave such records
#: where they are for this long (seconds) before trying again.
UNTIDY_FOR = 60.0
#: SQLSTATE of a refused fence (raised by ds_fence).
FENCED = "DSFEN"
#: ds_job_update's reply to a conflict with a stored version below 1 (migration 0019); any
#: other conflict is the stored version negated.
_CONFLICT_BELOW_1 = -2147483648
#: Retried at once: the whole transaction was rolled back, nothing of the call landed.
_RETRY = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)
#: A NUL character sent in a text parameter (refused as a ValidationError).
_NUL = (asyncpg.exceptions.CharacterNotInRepertoireError, asyncpg.exceptions.UntranslatableCharacterError)


def _op_id() -> str:
    return os.urandom(8).hex()


def _chunks(items: Sequence[T], size: int = WRITE_CHUNK) -> list[Sequence[T]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


#: Per kind of row, the text columns its decode can fail on (the others are typed): a row is
#: put aside only while they are as read (ds_put_aside's p_seen).
_POISON_COLUMNS = {"task": ("state", "spec", "result"), "job": ("config",), "worker": ("data",),
                   "scheduler": ("data", "role")}


class PostgresStorage:
    """All ports of distsched over one PostgreSQL schema."""

    #: Errors that mean PostgreSQL is unreachable or not ready for now: the leader steps down
    #: on them with a warning, not an error.
    transient_errors: tuple[type[BaseException], ...] = (
        asyncpg.exceptions.PostgresConnectionError,
        asyncpg.exceptions.CannotConnectNowError,
        asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.CrashShutdownError,
        asyncpg.exceptions.ConnectionDoesNotExistError,
        asyncpg.exceptions.TooManyConnectionsError,
        ConnectionError,
    )
    #: Errors that mean PostgreSQL answers but refuses writes for now: a full disk, no memory
    #: or resources left, a hot standby (read-only): the leader steps down with a warning
    #: that says so.
    refusing_errors: tuple[type[BaseException], ...] = (
        asyncpg.exceptions.InsufficientResourcesError,  # DiskFullError, OutOfMemoryError...
        asyncpg.exceptions.ReadOnlySQLTransactionError,
    )

    def __init__(self, settings: PostgresSettings, pool: asyncpg.Pool) -> None:
        self.settings = settings
        self.url = settings.url
        self.pool = pool
        #: Opened for a command that only reads (``EngineConfig.reader``): no DDL at open, and
        #: its status reads a standby as one (``warnings``).
        self.reader = False
        #: a server refused to move a record aside (a standby) until then; records it could
        #: not move, warned of once each
        self._untidy_until = float("-inf")
        self._unmoved: set[tuple[str, str]] = set()
        self.retention = float(settings.retention)
        self._activity = WakeSignal()
        self._queue_signals: dict[str, WakeSignal] = {}
        #: LISTEN channel -> the signal of the worker it belongs to
        self._channel_signals: dict[str, WakeSignal] = {}
        self._listen_conn: Any = None
        self._listen_lock = asyncio.Lock()
        self._listen_failing = False  # the last attempt at the LISTEN connection failed (said once)
        self._activity_channel = settings.channel("activity")
        self._clock_last = 0.0
        self._clock_server = time.time()
        self._clock_mono = time.monotonic()
        self._clock_at = float("-inf")
        #: the background ANALYZE of grown tables (housekeeping), and each table's size in
        #: pages when one was last asked for
        self._analyzing: asyncio.Task[None] | None = None
        self._analyzed_pages: dict[str, int] = {}
        self.jobs = _Jobs(self)
        self.tasks = _Tasks(self)
        self.workers = _Workers(self)
        self.schedulers = _Schedulers(self)
        self.quarantine = _Quarantine(self)
        self.queues = _Queues(self)
        self.results = _Results(self)

    def __repr__(self) -> str:
        return f"<PostgresStorage {self.settings.redacted} schema={self.settings.schema!r}>"

    # -- opening ------------------------------------------------------------------------
    @classmethod
    async def open(cls, url: str, options: dict[str, Any] | None = None, *, reader: bool = False) -> PostgresStorage:
        """Parse and validate ``url``, bring the schema up to date (or check it: with
        ``migrate=false``, and for a ``reader``, which runs no DDL), open the pool."""
        settings = parse(url, options)
        conn = await connect(settings, migrations=True)
        try:
            await migrate.upgrade(conn, settings, apply=settings.migrate, reader=reader)
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(
            settings.dsn(), min_size=settings.pool_min, max_size=settings.pool_size,
            timeout=settings.connect_timeout, command_timeout=settings.command_timeout,
            server_settings=_server_settings(settings), reset=_keep_session)
        store = cls(settings, pool)
        store.reader = reader
        try:
            await store._sync_clock()
        except BaseException:
            await store.close()
            raise
        return store

    # -- clock --------------------------------------------------------------------------
    async def _sync_clock(self) -> None:
        """Offset to the database clock: the sample with the shortest round trip of three."""
        async with self.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
            best: tuple[float, float, float] | None = None
            for _ in range(3):
                before = time.monotonic()
                server = await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8")
                after = time.monotonic()
                if best is None or after - before < best[0]:
                    best = (after - before, server, (before + after) / 2)
        assert best is not None
        self._clock_server, self._clock_mono = best[1], best[2]
        self._clock_at = time.monotonic()

    async def _maybe_sync_clock(self) -> None:
        if time.monotonic() - self._clock_at >= CLOCK_REFRESH:
            self._clock_at = time.monotonic()
            try:
                await self._sync_clock()
            except (asyncpg.PostgresError, *self.transient_errors, OSError, asyncio.TimeoutError) as exc:
                log.debug("clock refresh failed: %s", exc)

    def clock(self) -> float:
        """Database time (measured at open, refreshed every minute) advanced by the local
        monotonic clock: cheap, and the same on every node."""
        now = self._clock_server + (time.monotonic() - self._clock_mono)
        if now < self._clock_last:
            return self._clock_last
        self._clock_last = now
        return now

    # -- plumbing -----------------------------------------------------------------------
    async def call(self, method: str, sql: str, *args: Any) -> Any:
        """``pool.<method>(sql, *args)``, retried when PostgreSQL rolled the call back for a
        deadlock or a serialization failure (nothing of it landed)."""
        for attempt in range(5):
            try:
                return await getattr(self.pool, method)(sql, *args)
            except _NUL as exc:
                raise ValidationError("value", f"must not contain a NUL character (U+0000): PostgreSQL text "
                                               f"cannot hold it ({exc.__class__.__name__})") from None
            except _RETRY:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    async def leader_write(self, fence: Fence, method: str, sql: str, *args: Any) -> Any:
        """A fenced function call: ``sql`` takes the node id and the term as $1 and $2."""
        try:
            return await self.call(method, sql, fence.node_id, fence.term, *args)
        except asyncpg.PostgresError as exc:
            if getattr(exc, "sqlstate", None) == FENCED:
                raise FencedError(str(exc)) from None
            raise

    async def decode(self, kind: str, rows: Sequence[Any], decode: Callable[[Any], T], key: str = "id") -> list[T]:
        """``decode`` each row; a row that cannot be decoded is put aside (quarantined) and
        left out, so one bad record never fails a read."""
        out: list[T] = []
        for row in rows:
            try:
                out.append(decode(row))
            except Exception as exc:  # anything: the row was not written by distsched
                await self.put_aside(kind, str(row[key]), exc, row)
        return out

    async def put_aside(self, kind: str, key: str, exc: BaseException, row: Any = None) -> None:
        """Move a row the engine cannot decode into ``quarantine`` (ds_put_aside): logged as
        an ERROR when moved; the read that met it goes on without it. With ``row`` (the row
        as read), only while its text columns a decode can fail on (``_POISON_COLUMNS``)
        are still the ones read: a row rewritten since (a worker registering again) stays."""
        reason = redact_text(f"{type(exc).__name__}: {exc}")[:500]  # a bad value quoted: a URL's password masked
        if time.monotonic() < self._untidy_until:  # the server refuses writes (a standby): leave it
            self._cannot_move(kind, key, reason)
            return
        seen = None
        if row is not None:
            names = set(row.keys())
            seen = codec.dumps({c: row[c] for c in _POISON_COLUMNS.get(kind, ()) if c in names})
        try:
            moved = await self.call("fetchval", "SELECT ds_put_aside($1, $2, $3, $4::json)", kind, key, reason, seen)
        except asyncpg.exceptions.ReadOnlySQLTransactionError:
            # a hot standby (or read-only sessions): nothing can be moved here; the read goes
            # on without the record, and the next read on the primary moves it aside
            self._untidy_until = time.monotonic() + UNTIDY_FOR
            self._cannot_move(kind, key, reason)
            return
        except (asyncpg.PostgresError, ValidationError, *self.transient_errors, OSError) as err:
            log.warning("could not quarantine %s %r (%s: %s)", kind, key, type(err).__name__, err)
            return
        if moved:
            log.error("quarantined %s %r: it cannot be decoded (%s); the rest goes on. Its row is kept in "
                      "%s.quarantine", kind, key, reason, self.settings.quoted_schema)

    def _cannot_move(self, kind: str, key: str, reason: str) -> None:
        """A record that cannot be decoded, on a server that refuses writes: said once per
        record (a dashboard reads it at every page)."""
        if (kind, key) in self._unmoved:
            log.debug("%s %r cannot be decoded (%s): left out", kind, key, reason)
            return
        self._unmoved.add((kind, key))
        log.warning("%s %r cannot be decoded (%s): left out of what this reads; this server refuses writes (a "
                    "standby?), so it stays where it is until a read on the primary moves it aside", kind, key, reason)

    async def next_times(self) -> tuple[float | None, float | None]:
        """``(jobs.next_due_at(), tasks.next_ready_at())`` in one round trip (one statement,
        so one snapshot): the leader's end of every pass."""
        row = await self.call("fetchrow", f"SELECT ({_NEXT_DUE}) AS due, ({_NEXT_READY}) AS ready")
        return row["due"], row["ready"]

    async def housekeeping(self, budget: int) -> int:
        """Delete up to ``budget`` finished tasks whose retention ended (``ds_prune``; the
        only pruning: no write function prunes); returns how many were due. And start an
        ``ANALYZE`` of each watched table that has grown to twice the size its statistics
        say (:meth:`_refresh_statistics`)."""
        await self._refresh_statistics()
        return int(await self.call("fetchval", "SELECT ds_prune($1)", max(1, int(budget))))

    async def _refresh_statistics(self) -> None:
        """Every connection keeps its plans (PL/pgSQL's and the prepared statements'), from
        the sixth call on a generic one, made for the table's size in its statistics; they
        are made again when the statistics change. Autovacuum analyzes a table after 10 %
        of it changed, at most once a naptime (a minute): a deployment that started empty
        and took a burst ran a minute or more on plans made for a few rows - a join that
        read every pending task, a lookup that read the whole table. So the leader asks for
        an ``ANALYZE`` of a watched table as soon as it holds twice the pages its statistics
        say (``ANALYZE_FLOOR_PAGES`` at least), in the background (one at a time; a table
        of a million rows takes a fraction of a second): every node's plans are made again
        for its size. A refusal (not the tables' owner) or a failure is logged once per
        size and left to autovacuum."""
        if self._analyzing is not None and not self._analyzing.done():
            return
        rows = await self.call(
            "fetch", "SELECT c.relname, c.relpages, pg_relation_size(c.oid) / current_setting('block_size')::int AS pages "
                     "FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY ($1)",
            list(WATCHED_TABLES))
        grown = []
        for row in rows:
            name, pages = row["relname"], int(row["pages"])
            if pages >= max(ANALYZE_FLOOR_PAGES, 2 * int(row["relpages"]), 2 * self._analyzed_pages.get(name, 0)):
                grown.append(name)
                self._analyzed_pages[name] = pages
        if grown:
            self._analyzing = asyncio.create_task(self._analyze(grown))

    async def _analyze(self, tables: list[str]) -> None:
        try:
            warnings: list[str] = []

            def listen(_conn: Any, message: Any) -> None:
                warnings.append(str(message))

            async with self.pool.acquire() as conn:
                conn.add_log_listener(listen)
                try:
                    await conn.execute("ANALYZE " + ", ".join(tables), timeout=self.settings.command_timeout)
                finally:
                    conn.remove_log_listener(listen)
            for warning in warnings:
                log.warning("ANALYZE of grown tables: %s; autovacuum will analyze them", warning)
        except (asyncpg.PostgresError, *self.transient_errors, OSError, asyncio.TimeoutError) as exc:
            log.warning("ANALYZE of grown tables %s failed (%s: %s); autovacuum will analyze them",
                        ", ".join(tables), type(exc).__name__, exc)

    # -- LISTEN/NOTIFY ------------------------------------------------------------------
    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if channel == self._activity_channel:
            self._activity.set()
            return
        signal = self._channel_signals.get(channel)
        if signal is not None:
            signal.set()

    def _on_listener_lost(self, conn: Any) -> None:
        self._activity.set()  # let the leader look at the store itself
        for signal in self._queue_signals.values():
            signal.set()

    async def _listener(self) -> bool:
        """The LISTEN connection, (re)connected when needed; False when it is down."""
        conn = self._listen_conn
        if conn is not None and not conn.is_closed():
            return True
        async with self._listen_lock:
            conn = self._listen_conn
            if conn is not None and not conn.is_closed():
                return True
            conn = None
            try:
                conn = await connect(self.settings)
                conn.add_termination_listener(self._on_listener_lost)
                await conn.add_listener(self._activity_channel, self._on_notify)
                for worker_id in list(self._queue_signals):
                    await conn.add_listener(self.settings.channel("q", worker_id), self._on_notify)
            except (asyncpg.PostgresError, *self.transient_errors, OSError, asyncio.TimeoutError) as exc:
                # Said once per outage (it is tried again every half second or so): without it
                # this node looks at the store on a timer instead of being woken.
                if self._listen_failing:
                    log.debug("LISTEN connection: %s", exc)
                else:
                    self._listen_failing = True
                    log.warning("cannot open the LISTEN connection (%s: %s): this node polls the store instead "
                                "of being woken by NOTIFY, and tries again (a full max_connections?)",
                                type(exc).__name__, redact_text(str(exc)))
                if conn is not None:
                    conn.terminate()
                return False
            if self._listen_failing:
                self._listen_failing = False
                log.warning("the LISTEN connection is open again: NOTIFY wakes this node")
            self._listen_conn = conn
            # anything may have happened while nobody listened
            self._on_listener_lost(conn)
            return True

    async def _listen_queue(self, worker_id: str) -> WakeSignal:
        signal = self._queue_signals.get(worker_id)
        if signal is not None:
            return signal
        signal = self._queue_signals[worker_id] = WakeSignal()
        self._channel_signals[self.settings.channel("q", worker_id)] = signal
        conn = self._listen_conn
        if conn is not None and not conn.is_closed():
            try:
                await conn.add_listener(self.settings.channel("q", worker_id), self._on_notify)
            except (asyncpg.PostgresError, *self.transient_errors, OSError) as exc:
                log.debug("LISTEN for %s: %s", worker_id, exc)
                del self._queue_signals[worker_id]
                del self._channel_signals[self.settings.channel("q", worker_id)]
                raise
        return signal

    async def wait_for_activity(self, timeout: float) -> None:
        """Sleep until ``timeout`` or a NOTIFY on the activity channel (a submission, a
        result, a job or worker change)."""
        await self._maybe_sync_clock()
        if not await self._listener():
            timeout = min(timeout, RELISTEN_POLL)
        await self._activity.wait(timeout)

    async def warnings(self) -> list[str]:
        """``StorageBackend.warnings``: a standby (in recovery) or sessions read-only by
        default refuse writes - no scheduler can lead (a full disk cannot be seen from here).
        A reader (``status`` pointed at a standby on purpose) is told how old what it reads is
        instead."""
        row = await self.call("fetchrow", "SELECT pg_is_in_recovery() AS standby, "
                                          "current_setting('default_transaction_read_only') AS read_only, "
                                          "extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())"
                                          "::float8 AS behind")
        out = []
        if row["standby"] and self.reader:
            behind = row["behind"]
            age = ("none replayed yet" if behind is None or not math.isfinite(behind)
                   else f"committed {max(0.0, behind):.1f}s ago on the primary; no lag if nothing was committed since")
            out.append(f"PostgreSQL is a standby (in recovery): what this reads is the primary's data as of the last "
                       f"transaction it replayed ({age}); schedulers and workers need the primary (it refuses writes)")
        elif row["standby"]:
            out.append("PostgreSQL is a standby (in recovery): it refuses writes - no scheduler can lead, nothing "
                       "is dispatched; point the storage URL at the primary")
        elif row["read_only"] == "on":
            out.append("PostgreSQL sessions are read-only (default_transaction_read_only = on): writes are refused "
                       "- no scheduler can lead, nothing is dispatched")
        return out

    async def close(self) -> None:
        if self._analyzing is not None and not self._analyzing.done():
            self._analyzing.cancel()
            await asyncio.gather(self._analyzing, return_exceptions=True)
        conn, self._listen_conn = self._listen_conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 2.0)
            except Exception as exc:  # pragma: no cover - closing a broken connection
                log.debug("close: %s", exc)
                conn.terminate()
        try:
            await asyncio.wait_for(self.pool.close(), 5.0)
        except Exception as exc:  # pragma: no cover
            log.debug("close: %s", exc)
            self.pool.terminate()


async def _keep_session(conn: Any) -> None:
    """The pool's reset of a released connection: nothing to send. asyncpg's default
    (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``) is a second round trip,
    awaited inside every call; nothing of distsched's changes the session (LISTEN has a
    connection of its own; advisory locks and ``SET LOCAL`` are transaction-scoped), and
    asyncpg still rolls back a transaction left open."""


def _server_settings(settings: PostgresSettings) -> dict[str, str]:
    out = {"search_path": settings.quoted_schema}
    if "application_name" not in settings.libpq:
        out["application_name"] = "distsched"
    return out


async def connect(settings: PostgresSettings, *, migrations: bool = False) -> Any:
    """One connection with the deployment's search_path (the LISTEN connection, migrations:
    those run without the command timeout - an index built over a large table takes long)."""
    try:
        return await asyncpg.connect(settings.dsn(), timeout=settings.connect_timeout,
                                     command_timeout=None if migrations else settings.command_timeout,
                                     server_settings=_server_settings(settings))
    except asyncpg.exceptions.InvalidPasswordError:
        raise ValidationError("storage", f"{settings.redacted}: authentication failed for user "
                                         f"{settings.user!r}") from None
    except asyncpg.exceptions.InvalidCatalogNameError:
        raise ValidationError("storage", f"{settings.redacted}: database {settings.database!r} does not "
                                         "exist (create it: createdb NAME)") from None


# -- jobs ---------------------------------------------------------------------------------
_JOB_COLUMNS = "name, config, version, enabled, next_fire_at, last_slot, paused, last_outcome, last_outcome_at, last_task"


class _Jobs:
    def __init__(self, store: PostgresStorage) -> None:
        self.store = store

    async def add(self, config: TaskConfig, *, next_fire_at: float | None) -> TaskConfig:
        [stored] = await self.add_many([(config, next_fire_at)])
        if stored is None:
            raise AlreadyExists(f"job {config.name!r} already exists")
        return stored

    async def add_many(self, jobs: Sequence[tuple[TaskConfig, float | None]], *,
                       all_or_nothing: bool = False) -> list[TaskConfig | None]:
        if all_or_nothing and jobs:
            return await self._add_all(jobs)
        out: list[TaskConfig | None] = []
        for chunk in _chunks(jobs):
            param = codec.dumps([{"name": c.name, "config": codec.config_json(c), "enabled": c.enabled,
                                  "next_fire_at": nfa} for c, nfa in chunk])
            stored = set(await self.store.call("fetchval", "SELECT ds_job_add($1::json)", param))
            out += [_evolve(c, 1) if c.name in stored else None for c, _ in chunk]
        return out

    async def _add_all(self, jobs: Sequence[tuple[TaskConfig, float | None]]) -> list[TaskConfig | None]:
        """Every job or none, in one transaction: a name that exists rolls every chunk back."""
        class _Exists(Exception):
            pass

        existing: tuple[str, ...] = ()
        try:
            async with self.store.pool.acquire() as conn, conn.transaction():
                stored: set[str] = set()
                for chunk in _chunks(jobs):
                    param = codec.dumps([{"name": c.name, "config": codec.config_json(c), "enabled": c.enabled,
                                          "next_fire_at": nfa} for c, nfa in chunk])
                    stored.update(await conn.fetchval("SELECT ds_job_add($1::json)", param))
                existing = tuple(c.name for c, _ in jobs if c.name not in stored)
                if existing:
                    raise _Exists  # rolls the transaction back
        except _Exists:
            raise AlreadyExists(f"{len(existing)} job(s) already exist", names=existing) from None
        return [_evolve(c, 1) for c, _ in jobs]

    async def update(self, config: TaskConfig, *, next_fire_at: float | None) -> TaskConfig:
        version = await self.store.call("fetchval", "SELECT ds_job_update($1, $2, $3, $4, $5)", config.name,
                                        codec.config_json(config), config.version, next_fire_at, config.enabled)
        if version == 0:
            raise NotFound(f"job {config.name!r} does not exist")
        if version < 0:
            stored = "below 1" if version == _CONFLICT_BELOW_1 else str(-version)
            raise VersionConflict(
                f"job {config.name!r}: update based on version {config.version}, but the stored "
                f"version is {stored}; reload the job and apply the change again"
            )
        return _evolve(config, version)

    async def _one(self, name: str) -> tuple[TaskConfig, JobState]:
        row = await self.store.call("fetchrow", f"SELECT {_JOB_COLUMNS} FROM jobs WHERE name = $1", name)
        found = await self.store.decode("job", [row], codec.decode_job, "name") if row is not None else []
        if not found:
            raise NotFound(f"job {name!r} does not exist")
        return found[0]

    async def get(self, name: str) -> TaskConfig:
        return (await self._one(name))[0]

    async def list_jobs(self) -> list[TaskConfig]:
        rows = await self.store.call("fetch", f'SELECT {_JOB_COLUMNS} FROM jobs ORDER BY name COLLATE "C"')
        return [config for config, _ in await self.store.decode("job", rows, codec.decode_job, "name")]

    async def page(self, after: str | None = None, limit: int = 50) -> JobPage:
        check_limit(limit)
        if after is not None and not isinstance(after, str):
            raise ValidationError("after", f"must be a job name, not {after!r}")
        if after is None:
            rows = await self.store.call("fetch", f'SELECT {_JOB_COLUMNS} FROM jobs ORDER BY name COLLATE "C" '
                                                  "LIMIT $1", limit + 1)
        else:
            rows = await self.store.call("fetch", f'SELECT {_JOB_COLUMNS} FROM jobs WHERE name COLLATE "C" > $1 '
                                                  'ORDER BY name COLLATE "C" LIMIT $2', after, limit + 1)
        jobs = await self.store.decode("job", rows[:limit], codec.decode_job, "name")
        more = len(rows) > limit
        return JobPage(jobs=tuple(jobs), next_after=jobs[-1][0].name if more and jobs else None)

    async def count(self) -> tuple[int, int]:
        row = await self.store.call("fetchrow", "SELECT count(*) AS total, count(*) FILTER (WHERE enabled) AS enabled "
                                                "FROM jobs")
        return int(row["total"]), int(row["enabled"])

    async def remove(self, name: str) -> bool:
        return await self.store.call("fetchval", "DELETE FROM jobs WHERE name = $1 RETURNING true", name) is True

    async def state(self, name: str) -> JobState:
        return (await self._one(name))[1]

    async def set_paused(self, name: str, paused: bool, *, next_fire_at: float | None = None) -> None:
        if not await self.store.call("fetchval", "SELECT ds_job_pause($1, $2, $3)", name, paused, next_fire_at):
            raise NotFound(f"job {name!r} does not exist")

    async def due(self, now: float, limit: int) -> list[tuple[TaskConfig, JobState]]:
        if limit <= 0:
            return []
        rows = await self.store.call(
            "fetch", f"SELECT {_JOB_COLUMNS} FROM jobs WHERE enabled AND NOT paused AND next_fire_at IS NOT NULL "
                     'AND next_fire_at <= $1 ORDER BY next_fire_at, name COLLATE "C" LIMIT $2', now, int(limit))
        return await self.store.decode("job", rows, codec.decode_job, "name")

    async def next_due_at(self) -> float | None:
        return await self.store.call("fetchval", _NEXT_DUE)

    async def fire(self, fence: Fence, firings: Sequence[Firing]) -> FireReport:
        meta = []
        for i, f in enumerate(firings):
            # a serial job's limit (its tasks' serial_limit): ds_fire holds the slots beyond it
            # and, with a max_backlog, stores skipped those beyond that (0024)
            serial = next((t.serial_limit for t in f.tasks if t.serial_limit is not None), None)
            meta.append({"job": f.job, "expected": f.expected_next, "nxt": f.next_fire_at, "last": f.last_slot,
                         "idx": i, "serial": serial, "backlog": None if serial is None else f.max_backlog})
        tasks = codec.dumps([codec.task_in(t, i) for i, f in enumerate(firings) for t in f.tasks])
        row = await self.store.leader_write(fence, "fetchrow", "SELECT * FROM ds_fire($1, $2, $3::json, $4::json, $5)",
                                            codec.dumps(meta), tasks, self.store.retention)
        # the ids ds_fire stored skipped for max_backlog: the reason is their firing's
        reasons = {t.id: f.backlog_full for f in firings for t in f.tasks} if row["skipped"] else {}
        return FireReport(created=row["created"], existing=row["existing"], conflicts=tuple(row["conflicts"]),
                          skipped=tuple((i, reasons[i]) for i in row["skipped"]),
                          existing_ids=tuple(row["existing_ids"]))  # (0026)


def _evolve(config: TaskConfig, version: int) -> TaskConfig:
    stored = copy.copy(config)
    stored.version = version
    return stored


# -- tasks --------------------------------------------------------------------------------
#: The first due job's next fire time; the first ready task's not_before (jobs_due, tasks_ready).
_NEXT_DUE = ("SELECT next_fire_at FROM jobs WHERE enabled AND NOT paused AND next_fire_at IS NOT NULL "
             "ORDER BY next_fire_at, name LIMIT 1")
_NEXT_READY = ("SELECT not_before FROM tasks WHERE state IN ('pending', 'retrying') AND NOT held AND parked IS NULL "
               "ORDER BY not_before, id LIMIT 1")
_LIVE = "state NOT IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped')"
_UNEXPIRED = "(expires_at IS NULL OR expires_at >= ds_now())"
# the predicate of the partial indexes tasks_rare_created and tasks_rare_finished
_RARE_STATES = ("failed", "timed_out", "cancelled", "skipped")
_RARE = f"state IN ({', '.join(repr(s) for s in _RARE_STATES)})"


class _Tasks:
    def __init__(self, store: PostgresStorage) -> None:
        self.store = store

    async def submit(self, tasks: Sequence[Task]) -> list[bool]:
        out: list[bool] = []
        for chunk in _chunks(tasks) or [[]]:  # an empty submission still wakes the leader
            created = set(await self.store.call("fetchval", "SELECT ds_submit($1::json, $2)",
                                                codec.tasks_param(chunk), self.store.retention))
            for task in chunk:
                ok = task.id in created
                if ok:
                    task.version = 1
                out.append(ok)
        return out

    async def _read(self, where: str, *args: Any) -> list[Task]:
        return await self._select(f"tasks WHERE {where}", *args)

    async def _select(self, source: str, *args: Any) -> list[Task]:
        """The tasks of ``SELECT <columns> FROM <source>``, decoded (a bad row is put aside)."""
        rows = await self.store.call("fetch", f"SELECT {TASK_COLUMNS} FROM {source}", *args)
        return await self.store.decode("task", rows, codec.decode_task)

    async def get(self, task_id: str) -> Task | None:
        return (await self.get_many([task_id]))[0]

    async def get_many(self, task_ids: Sequence[str]) -> list[Task | None]:
        ids = list(task_ids)
        wanted = [i for i in ids if "\x00" not in i]  # no stored id holds one
        found = {t.id: t for t in await self._select("ds_get_tasks($1::text[])", wanted)}
        return [copy.copy(found[i]) if i in found else None for i in ids]

    async def finished(self, states: Sequence[str], since: float, limit: int) -> list[Task]:
        check_limit(limit)
        names, since = check_finished(states, since)
        # the rare final states walk tasks_rare_finished (state, finished_at, id; 0012): its
        # predicate is named so that a generic plan of the prepared statement, which cannot
        # read the states from $1, still proves it; `succeeded` (nearly every row) has no
        # index by finish and is read from the table. updated_at >= finished_at holds (a
        # finished task's last write is its finish), so that condition filters nothing.
        rare = f" AND {_RARE}" if set(names).issubset(_RARE_STATES) else ""
        return await self._read(f"state = ANY($1::text[]){rare} AND updated_at >= $2 AND finished_at >= $2 AND "
                                f'{_UNEXPIRED} ORDER BY finished_at DESC, id COLLATE "C" DESC LIMIT $3',
                                names, since, limit)

    async def query(self, *, job: str | None = None, state: str | None = None, worker: str | None = None,
                    since: float | None = None, cursor: str | None = None, limit: int = 50) -> TaskPage:
        check_limit(limit)
        state = check_state(state)
        since = check_since(since)
        at, after = decode_cursor(cursor) if cursor is not None else (None, None)
        for name, value in (("job", job), ("worker", worker)):
            if value is not None and not isinstance(value, str):
                raise ValidationError(name, f"must be a string, not {value!r}")
        # only the filters given: each combination is its own (prepared) statement, planned
        # on the index it can walk (job, else worker, else created_at)
        where: list[str] = []
        args: list[Any] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if job is not None:
            where.append(f"job = {arg(job)}")
        if state is not None:
            where.append(f"state = {arg(state)}")
        if worker is not None:
            w = arg(worker)
            where.append(f"(worker_id = {w} OR id IN (SELECT task_id FROM attempts WHERE worker_id = {w}))")
        if since is not None:
            where.append(f"created_at >= {arg(since)}")
        if at is not None:
            where.append(f'(created_at, id COLLATE "C") < ({arg(at)}, {arg(after)}::text COLLATE "C")')
        where.append(_UNEXPIRED)
        found = await self._read(f'{" AND ".join(where)} ORDER BY created_at DESC, id COLLATE "C" DESC '
                                 f"LIMIT {arg(limit + 1)}", *args)
        tasks = found[:limit]
        more = len(found) > limit
        return TaskPage(tasks=tuple(tasks),
                        next_cursor=encode_cursor(tasks[-1].created_at, tasks[-1].id) if more and tasks else None)

    async def detail(self, task_id: str) -> TaskDetail | None:
        async with self.store.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            row = await conn.fetchrow(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1 AND {_UNEXPIRED}", task_id)
            if row is None:
                return None
            rows = await conn.fetch("SELECT worker_id, data FROM attempts WHERE task_id = $1 ORDER BY n", task_id)
        found = await self.store.decode("task", [row], codec.decode_task)
        if not found:
            return None
        task = found[0]
        recorded = readable_attempts(task.id, rows, lambda r: codec.decode_attempt(r["data"], r["worker_id"]))
        return TaskDetail(task=task, attempts=merge_attempts(task, recorded))

    async def throughput(self, minutes: int = 60) -> list[ThroughputBucket]:
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 120:
            raise ValidationError("minutes", f"must be an integer between 1 and 120, not {minutes!r}")
        current = int(self.store.clock() // 60)
        rows = await self.store.call("fetch", "SELECT minute, state, n FROM throughput WHERE minute > $1",
                                     current - minutes)
        counts: dict[int, dict[str, int]] = {}
        for row in rows:
            counts.setdefault(row["minute"], {})[row["state"]] = row["n"]
        return [ThroughputBucket(minute=m * 60.0, counts=counts.get(m, {}))
                for m in range(current - minutes + 1, current + 1)]

    async def counts(self) -> dict[str, int]:
        rows = await self.store.call("fetch", f"SELECT state, count(*) AS n FROM tasks WHERE {_UNEXPIRED} GROUP BY state")
        return {row["state"]: row["n"] for row in rows}

    async def ready(self, now: float, limit: int) -> list[Task]:
        if limit <= 0:
            return []
        # ds_ready (0024): a serial job's held slots that may run now leave the held queue
        # first; the held ones are never read (tasks_ready leaves them out)
        return await self._select("ds_ready($1, $2)", now, int(limit))

    async def next_ready_at(self) -> float | None:
        return await self.store.call("fetchval", _NEXT_READY)

    async def held_slots(self, jobs: Sequence[str] | None = None) -> dict[str, tuple[int, float]]:
        """Per serial job with held slots: how many and the earliest ``not_before``, one
        grouped read of the ``tasks_held`` index (migration 0024)."""
        rows = await self.store.call(
            "fetch", "SELECT job, count(*) AS n, min(not_before) AS oldest FROM tasks WHERE held AND state = 'pending' "
                     "AND ($1::text[] IS NULL OR job = ANY ($1::text[])) GROUP BY job",
            None if jobs is None else list(jobs))
        return {row["job"]: (int(row["n"]), float(row["oldest"])) for row in rows}

    async def park(self, fence: Fence, parked: Sequence[tuple[Task, str, float]]) -> list[bool]:
        """Move ready tasks no live worker may run to their key's parked set (ds_park, 0025;
        fenced, one transaction per chunk)."""
        out: list[bool] = []
        for chunk in _chunks(list(parked)):
            written = set(await self.store.leader_write(
                fence, "fetchval", "SELECT ds_park($1, $2, $3, $4, $5, $6)",
                [t.id for t, _, _ in chunk], [t.version for t, _, _ in chunk], [k for _, k, _ in chunk],
                [float(u) for _, _, u in chunk]))
            out += [t.id in written for t, _, _ in chunk]
        return out

    async def unpark(self, fence: Fence, keys: Sequence[str], until: float, limit: int) -> int:
        """Move parked tasks back to the ready queue (ds_unpark, 0025; fenced, one transaction)."""
        return int(await self.store.leader_write(fence, "fetchval", "SELECT ds_unpark($1, $2, $3, $4, $5)",
                                                 list(dict.fromkeys(keys)), float(until), max(0, int(limit))))

    async def parked(self, keys: Sequence[str] | None = None) -> dict[str, tuple[int, float]]:
        """Per key with parked tasks: how many and the earliest ``until``, one grouped read of
        the ``tasks_parked`` index (migration 0025: it grows with the parked tasks)."""
        rows = await self.store.call(
            "fetch", "SELECT parked, count(*) AS n, min(parked_until) AS first FROM tasks WHERE parked IS NOT NULL "
                     "AND state IN ('pending', 'retrying') AND ($1::text[] IS NULL OR parked = ANY ($1::text[])) "
                     "GROUP BY parked",
            None if keys is None else list(keys))
        return {row["parked"]: (int(row["n"]), float(row["first"])) for row in rows}

    async def live(self, job: str) -> list[Task]:
        return await self._read(f"job = $1 AND {_LIVE} ORDER BY created_at", job)

    async def assigned(self, worker_id: str) -> list[Task]:
        return await self._read("worker_id = $1 AND state IN ('dispatched', 'running') ORDER BY dispatched_at, id",
                                worker_id)

    async def overdue(self, now: float, limit: int) -> list[Task]:
        if limit <= 0:
            return []
        return await self._read("deadline IS NOT NULL AND deadline < $1 ORDER BY deadline LIMIT $2", now, int(limit))

    async def _cas(self, tasks: Sequence[Task], write: Callable[[str, bool], Awaitable[list[str]]], *,
                   ended: bool = True) -> list[bool]:
        out: list[bool] = []
        chunks = _chunks(tasks) or [[]]
        for n, chunk in enumerate(chunks):
            written = set(await write(codec.tasks_param(chunk, ended=ended), n == len(chunks) - 1))
            for task in chunk:
                ok = task.id in written
                if ok:
                    task.version += 1
                out.append(ok)
        return out

    async def cancel(self, task: Task) -> bool:
        ok = await self.store.call("fetchval", "SELECT ds_cancel($1::json, $2)",
                                   codec.tasks_param([task], ended=True), self.store.retention)
        if ok:
            task.version += 1
        return bool(ok)

    async def save(self, fence: Fence, tasks: Sequence[Task], *, ack_results: int = 0) -> list[bool]:
        store = self.store

        async def write(param: str, last: bool) -> list[str]:
            # results are acknowledged once, with the last chunk: the seqs the last peek returned
            ack = store.results.acked(ack_results) if last else []
            written = await store.leader_write(fence, "fetchval", "SELECT ds_save($1, $2, $3::json, $4::bigint[], $5)",
                                               param, ack, store.retention)
            if ack:
                store.results.forget(len(ack))
            return written

        return await self._cas(tasks, write)

    async def dispatch(self, fence: Fence, tasks: Sequence[Task]) -> list[bool]:
        """Only the fields a dispatch changes travel (ds_dispatch_slim), as arrays; the
        leader's signature of the dispatch too (None: unsigned; migration 27)."""
        out: list[bool] = []
        for chunk in _chunks(tasks) or [[]]:
            written = set(await self.store.leader_write(
                fence, "fetchval", "SELECT ds_dispatch_slim($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                [t.id for t in chunk], [t.version for t in chunk], [t.worker_id for t in chunk],
                [t.dispatches for t in chunk], [t.dispatched_at for t in chunk], [t.updated_at for t in chunk],
                [t.signature for t in chunk]))
            for task in chunk:
                ok = task.id in written
                if ok:
                    task.version += 1
                out.append(ok)
        return out


# -- workers ------------------------------------------------------------------------------
class _Workers:
    def __init__(self, store: PostgresStorage) -> None:
        self.store = store

    async def register(self, worker: Worker) -> None:
        await self.store.call("execute", "SELECT ds_register($1, $2, $3)", worker.id, codec.worker_json(worker),
                              worker.draining)

    async def heartbeat(self, worker_id: str, *, draining: bool = False, blocked: int = 0) -> bool:
        await self.store._maybe_sync_clock()
        ok = await self.store.call("fetchval", "UPDATE workers SET heartbeat = ds_now(), draining = $2, blocked = $3 "
                                               "WHERE id = $1 AND NOT dead RETURNING true", worker_id, draining,
                                   max(0, int(blocked)))
        return ok is True

    async def deregister(self, worker_id: str) -> None:
        await self.store.call("execute", "SELECT ds_deregister($1)", worker_id)

    async def list_workers(self) -> list[Worker]:
        rows = await self.store.call(
            "fetch", "SELECT w.id, w.data, w.heartbeat, w.draining, w.blocked, (SELECT count(*) FROM tasks t "
                     "WHERE t.worker_id = w.id AND t.state IN ('dispatched', 'running')) AS load "
                     "FROM workers w ORDER BY w.id")
        return await self.store.decode("worker", rows, codec.decode_worker)

    async def queue_depths(self) -> dict[str, int]:
        rows = await self.store.call(
            "fetch", "SELECT w.id, (SELECT count(*) FROM tasks t WHERE t.worker_id = w.id AND t.state = 'dispatched') "
                     "AS depth FROM workers w")
        return {row["id"]: row["depth"] for row in rows}

    async def reap(self, fence: Fence, worker_id: str, tasks: Sequence[Task]) -> list[bool]:
        written = set(await self.store.leader_write(fence, "fetchval", "SELECT ds_reap($1, $2, $3, $4::json, $5)",
                                                    worker_id, codec.tasks_param(tasks, ended=True), self.store.retention))
        out = []
        for task in tasks:
            ok = task.id in written
            if ok:
                task.version += 1
            out.append(ok)
        return out


class _Schedulers:
    def __init__(self, store: PostgresStorage) -> None:
        self.store = store

    async def register(self, node: SchedulerNode) -> None:
        await self.store.call("execute", "SELECT ds_scheduler_register($1, $2, $3)", node.id,
                              codec.scheduler_json(node), node.role)

    async def heartbeat(self, node_id: str, *, role: str) -> bool:
        ok = await self.store.call("fetchval", "UPDATE schedulers SET heartbeat = ds_now(), role = $2 WHERE id = $1 "
                                               "RETURNING true", node_id, role)
        return ok is True

    async def deregister(self, node_id: str) -> None:
        await self.store.call("execute", "DELETE FROM schedulers WHERE id = $1", node_id)

    async def list_schedulers(self) -> list[SchedulerNode]:
        rows = await self.store.call("fetch", 'SELECT id, data, heartbeat, role FROM schedulers ORDER BY id COLLATE "C"')
        return await self.store.decode("scheduler", rows, codec.decode_scheduler)


class _Quarantine:
    def __init__(self, store: PostgresStorage) -> None:
        self.store = store

    async def count(self) -> int:
        # count(*): O(entries), not the O(1) the port says; the leader uses quarantined_since
        return int(await self.store.call("fetchval", "SELECT count(*) FROM quarantine"))

    async def list_quarantined(self, limit: int = 100) -> list[Quarantined]:
        rows = await self.store.call("fetch", "SELECT kind, key, reason, at FROM quarantine ORDER BY at DESC LIMIT $1",
                                     max(1, int(limit)))
        # a time that is not finite (float8 takes NaN) is no JSON number: the dashboard's API
        # failed on it; such an entry is listed at time 0
        return [Quarantined(kind=r["kind"], key=r["key"], reason=r["reason"],
                            at=r["at"] if math.isfinite(r["at"]) else 0.0) for r in rows]

    async def quarantined_since(self, seq: int, limit: int) -> tuple[int, list[Quarantined]]:
        """``ds_quarantined_since`` (migration 23): the number of ``quarantine_sequence`` and
        the rows numbered above ``seq``, newest first, in one statement (see
        ``ports.Quarantine``)."""
        rows = await self.store.call("fetch", "SELECT * FROM ds_quarantined_since($1, $2)", int(seq), max(0, int(limit)))
        return (int(rows[0]["n"]) if rows else 0), [
            Quarantined(kind=r["kind"], key=r["key"], reason=r["reason"], at=r["at"] if math.isfinite(r["at"]) else 0.0)
            for r in rows if r["kind"] is not None]

    async def drop(self, kind: str, key: str) -> bool:
        """The row (its kept data with it, in one statement): see ``ports.Quarantine``."""
        status = await self.store.call("execute", "DELETE FROM quarantine WHERE kind = $1 AND key = $2", kind, key)
        return bool(status == "DELETE 1")


# -- queues and results -------------------------------------------------------------------
class _Queues:
    def __init__(self, store: PostgresStorage) -> None:
        self.store = store
        #: worker id -> (op id, when) of a pull whose reply never came (see _take)
        self._unanswered: dict[str, tuple[str, float]] = {}

    async def _take(self, worker_id: str, max_items: int) -> list[Task]:
        """Run ds_pull. A call that failed without a reply may still have committed and marked
        tasks running on this worker: the next pull of that worker names the lost call's op
        id, and gets back those of its tasks that still run here."""
        now = time.monotonic()
        prev, since = self._unanswered.pop(worker_id, (None, now))
        if prev is not None and now - since > OP_REPLY_TTL:
            prev = None
        op = _op_id()
        try:
            rows = await self.store.call("fetch", f"SELECT {TASK_COLUMNS} FROM ds_pull($1, $2, $3, $4)",
                                         worker_id, int(max_items), op, prev)
        except BaseException:
            self._unanswered[worker_id] = (op, now)
            raise
        tasks = await self.store.decode("task", rows, codec.decode_task)
        tasks.sort(key=lambda t: (t.dispatched_at or 0.0, t.id))
        return tasks

    async def pull(self, worker_id: str, max_items: int, timeout: float) -> list[Task]:
        """Take what is queued; if nothing is, wait for a NOTIFY on the worker's channel (or
        the timeout) and take again."""
        if max_items <= 0:
            return []
        signal = await self._signal(worker_id)
        out = await self._take(worker_id, max_items)
        if out:
            return out
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining < 0.005:
                return []
            if signal is None:  # no LISTEN connection (PostgreSQL restarting): look again soon
                await asyncio.sleep(min(remaining, RELISTEN_POLL))
            else:
                await signal.wait(remaining)
            # re-opened (and listening again) when the LISTEN connection was lost meanwhile
            signal = await self._signal(worker_id)
            out = await self._take(worker_id, max_items)
            if out:
                return out

    async def _signal(self, worker_id: str) -> WakeSignal | None:
        """The worker's wake-up signal, LISTENed to on a live connection; None while there is none."""
        store = self.store
        if not await store._listener():
            return None
        try:
            return await store._listen_queue(worker_id)
        except (asyncpg.PostgresError, *store.transient_errors, OSError):
            return None

    async def report(self, worker_id: str, results: Sequence[TaskResult], *, settle: bool = False) -> None:
        # settle is a hint this store does not take: results.settle finishes the successes
        for chunk in _chunks(results) or [[]]:  # an empty report still wakes the leader
            param = codec.dumps([{"task_id": r.task_id, "attempt_id": r.attempt_id, "worker_id": r.worker_id,
                                  "ok": r.ok, "started_at": r.started_at, "data": codec.result_json(r)}
                                 for r in chunk])
            await self.store.call("execute", "SELECT ds_report($1::json, $2)", param, self.store.settings.results_max)


class _Results:
    def __init__(self, store: PostgresStorage) -> None:
        self.store = store
        #: seqs of the results the last peek returned, oldest first: save(ack_results=n)
        #: deletes exactly the first n of them (a result committed later with a lower seq -
        #: sequence order is not commit order - is never dropped unseen)
        self._peeked: list[int] = []

    def acked(self, n: int) -> list[int]:
        return self._peeked[:max(0, int(n))]

    def forget(self, n: int) -> None:
        del self._peeked[:n]

    async def settle(self, fence: Fence, max_items: int, *, want_tasks: bool = False) -> Settled:
        if max_items <= 0:
            return Settled()
        text = await self.store.leader_write(fence, "fetchval", "SELECT ds_settle($1, $2, $3, $4, $5)",
                                             int(max_items), self.store.retention, want_tasks)
        reply = codec.loads(text)
        tasks = []
        for task_id, job, attempt, data, at in reply["rows"] or ():
            try:
                result = codec.loads(data)
                started, finished = float(result["started_at"]), float(result["finished_at"])
            except Exception:  # a result row not written by distsched: its task is put aside on read
                started = finished = at
            tasks.append(SettledTask(task_id=task_id, job=job, attempt=attempt, started_at=started,
                                     finished_at=finished, at=at))
        return Settled(settled=reply["settled"], stale=reply["stale"], left=reply["left"], tasks=tuple(tasks))

    async def peek(self, max_items: int) -> list[TaskResult]:
        if max_items <= 0:
            return []
        while True:
            rows = await self.store.call("fetch", "SELECT seq, data FROM results ORDER BY seq LIMIT $1", int(max_items))
            out: list[TaskResult] = []
            bad = None
            for row in rows:
                try:
                    out.append(codec.decode_result(row["data"]))
                except Exception as exc:  # anything in the channel that is not a valid result
                    bad = (row, exc)
                    break
            if bad is None:
                self._peeked = [row["seq"] for row in rows]
                return out
            # An undecodable entry would block the channel forever: drop it, loudly.
            log.error("dropping an undecodable result (seq %s): %s: %.200r", bad[0]["seq"], bad[1], bad[0]["data"])
            await self.store.call("execute", "DELETE FROM results WHERE seq = $1", bad[0]["seq"])
