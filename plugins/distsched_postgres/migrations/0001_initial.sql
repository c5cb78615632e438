-- distsched PostgreSQL schema, version 1.
--
-- Applied by distsched_postgres.migrate inside one transaction, under an advisory lock, with
-- search_path set to the deployment's schema: every name below is unqualified and lands in
-- that schema. The functions are the PostgreSQL counterpart of the Redis plugin's Lua
-- scripts: each port call is one statement (one round trip, one transaction), and every leader
-- write checks the fence (ds_fence) first, in the same transaction, holding a share lock on
-- the lease row until it commits - a node taking the lease waits for the write to finish.
-- All times are UNIX seconds of the database clock (ds_now: clock_timestamp()).

-- The lease: one row. term rises with every acquisition.
CREATE TABLE lease (
    id         int PRIMARY KEY CHECK (id = 1),
    holder     text,
    term       bigint NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO lease (id) VALUES (1);

CREATE TABLE jobs (
    name         text PRIMARY KEY,
    config       text NOT NULL,               -- TaskConfig JSON (its version is the column)
    version      int NOT NULL,
    enabled      boolean NOT NULL,
    next_fire_at float8,
    last_slot    float8,
    paused       boolean NOT NULL DEFAULT false
);
CREATE INDEX jobs_due ON jobs (next_fire_at, name) WHERE enabled AND NOT paused AND next_fire_at IS NOT NULL;

CREATE TABLE tasks (
    id            text PRIMARY KEY,
    job           text,
    slot          float8,
    state         text NOT NULL,
    spec          text NOT NULL,              -- TaskSpec JSON
    timeout       float8 NOT NULL,            -- spec.timeout, for the deadline
    created_at    float8 NOT NULL,
    updated_at    float8 NOT NULL,
    not_before    float8 NOT NULL,
    attempt       int NOT NULL,
    dispatches    int NOT NULL,
    redeliveries  int NOT NULL,
    worker_id     text,
    dispatched_at float8,
    started_at    float8,
    finished_at   float8,
    result        text,                       -- TaskResult JSON
    reason        text,
    serial_limit  int,
    version       int NOT NULL,
    expires_at    float8,                     -- terminal tasks: end of their retention
    pull_op       text,                       -- the pull that marked it running (lost replies)
    deadline      float8 GENERATED ALWAYS AS (
        CASE WHEN state IN ('dispatched', 'running') THEN coalesce(started_at, dispatched_at) + timeout END
    ) STORED
);
CREATE INDEX tasks_ready ON tasks (not_before, id) WHERE state IN ('pending', 'retrying');
CREATE INDEX tasks_assigned ON tasks (worker_id, dispatched_at, id) WHERE state IN ('dispatched', 'running');
CREATE INDEX tasks_deadline ON tasks (deadline) WHERE deadline IS NOT NULL;
CREATE INDEX tasks_live ON tasks (job, created_at)
    WHERE state NOT IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped');
CREATE INDEX tasks_job_updated ON tasks (job, updated_at);
CREATE INDEX tasks_state_updated ON tasks (state, updated_at);
CREATE INDEX tasks_updated ON tasks (updated_at);
CREATE INDEX tasks_expires ON tasks (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE workers (
    id        text PRIMARY KEY,
    data      text NOT NULL,                  -- Worker JSON (host, pid, concurrency, capacity, started_at)
    heartbeat float8 NOT NULL,                -- database time; 0 = deregistered or declared dead
    draining  boolean NOT NULL DEFAULT false,
    dead      boolean NOT NULL DEFAULT false  -- declared dead by a reap: heartbeats are refused
);

-- The result channel, oldest first.
CREATE TABLE results (
    seq         bigserial PRIMARY KEY,
    task_id     text NOT NULL,
    attempt_id  text NOT NULL,
    worker_id   text,
    ok          boolean NOT NULL,             -- a success (settle applies those itself)
    started_at  float8 NOT NULL,
    data        text NOT NULL                 -- TaskResult JSON
);

-- A task as the plugin sends it (JSON objects with these keys; firing = index of its firing in
-- ds_fire).
CREATE TYPE task_in AS (
    id text, job text, slot float8, state text, spec text, timeout float8, created_at float8,
    updated_at float8, not_before float8, attempt int, dispatches int, redeliveries int,
    worker_id text, dispatched_at float8, started_at float8, finished_at float8, result text,
    reason text, serial_limit int, version int, firing int
);

CREATE FUNCTION ds_now() RETURNS float8 LANGUAGE sql VOLATILE AS $$
    SELECT extract(epoch FROM clock_timestamp())::float8
$$;

-- The LISTEN/NOTIFY channel of this schema for `part` ('activity', or 'q:' || worker id).
CREATE FUNCTION ds_channel(part text) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT 'ds_' || left(md5(current_schema() || ':' || part), 24)
$$;

CREATE FUNCTION ds_notify_activity() RETURNS void LANGUAGE sql AS $$
    SELECT pg_notify(ds_channel('activity'), '')
$$;

-- The fence: raises DSFEN unless (node, term) holds an unexpired lease; otherwise keeps a
-- share lock on the lease row until the caller's transaction ends.
CREATE FUNCTION ds_fence(p_node text, p_term bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    l record;
BEGIN
    SELECT holder, term, expires_at > clock_timestamp() AS live INTO l FROM lease WHERE id = 1 FOR SHARE;
    IF l.holder IS DISTINCT FROM p_node OR l.term <> p_term OR NOT l.live THEN
        RAISE EXCEPTION USING ERRCODE = 'DSFEN', MESSAGE = format(
            'write by %L with term %s refused: the lease is now held by %s', p_node, p_term,
            CASE WHEN l.holder IS NULL OR NOT l.live THEN 'nobody (the lease expired)'
                 ELSE format('%L with term %s', l.holder, l.term) END);
    END IF;
END $$;

-- Retention: delete at most `p_limit` terminal tasks whose retention ended.
CREATE FUNCTION ds_prune(p_now float8, p_limit int) RETURNS void LANGUAGE sql AS $$
    DELETE FROM tasks WHERE id IN (
        SELECT id FROM tasks WHERE expires_at < p_now ORDER BY expires_at LIMIT p_limit
        FOR UPDATE SKIP LOCKED)
$$;

CREATE FUNCTION ds_terminal(p_state text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT p_state IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped')
$$;

-- Optimistic write of tasks: each one only when the stored version is the one it carries; the
-- stored version becomes that + 1. Rows are locked in id order (no deadlock between two
-- writers). Returns the ids written.
CREATE FUNCTION ds_write(p_tasks json, p_now float8, p_retention float8) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    written text[];
BEGIN
    PERFORM 1 FROM tasks WHERE id IN (SELECT n.id FROM json_populate_recordset(NULL::task_in, p_tasks) n)
        ORDER BY id FOR UPDATE;
    WITH n AS (SELECT * FROM json_populate_recordset(NULL::task_in, p_tasks)),
    upd AS (
        UPDATE tasks t SET
            job = n.job, slot = n.slot, state = n.state, spec = n.spec, timeout = n.timeout,
            created_at = n.created_at, updated_at = n.updated_at, not_before = n.not_before,
            attempt = n.attempt, dispatches = n.dispatches, redeliveries = n.redeliveries,
            worker_id = n.worker_id, dispatched_at = n.dispatched_at, started_at = n.started_at,
            finished_at = n.finished_at, result = n.result, reason = n.reason,
            serial_limit = n.serial_limit, version = t.version + 1, pull_op = NULL,
            expires_at = CASE WHEN ds_terminal(n.state) THEN p_now + p_retention END
        FROM n WHERE t.id = n.id AND t.version = n.version
        RETURNING t.id)
    SELECT coalesce(array_agg(id), '{}') INTO written FROM upd;
    RETURN written;
END $$;

-- Create tasks whose id does not exist yet (version 1). Returns the ids created.
CREATE FUNCTION ds_create(p_tasks json, p_now float8, p_retention float8) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    created text[];
BEGIN
    -- a terminal task past its retention is gone, as it is on Redis: its id is free again
    DELETE FROM tasks WHERE expires_at < p_now
        AND id IN (SELECT n.id FROM json_populate_recordset(NULL::task_in, p_tasks) n);
    WITH ins AS (
        INSERT INTO tasks (id, job, slot, state, spec, timeout, created_at, updated_at, not_before, attempt,
                           dispatches, redeliveries, worker_id, dispatched_at, started_at, finished_at,
                           result, reason, serial_limit, version, expires_at)
        SELECT n.id, n.job, n.slot, n.state, n.spec, n.timeout, n.created_at, n.updated_at, n.not_before,
               n.attempt, n.dispatches, n.redeliveries, n.worker_id, n.dispatched_at, n.started_at,
               n.finished_at, n.result, n.reason, n.serial_limit, 1,
               CASE WHEN ds_terminal(n.state) THEN p_now + p_retention END
        FROM json_populate_recordset(NULL::task_in, p_tasks) n
        ON CONFLICT (id) DO NOTHING
        RETURNING id)
    SELECT coalesce(array_agg(id), '{}') INTO created FROM ins;
    RETURN created;
END $$;

-- tasks.submit: not fenced; wakes the leader.
CREATE FUNCTION ds_submit(p_tasks json, p_retention float8) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    now float8 := ds_now();
    created text[];
BEGIN
    PERFORM ds_prune(now, 100 + 2 * json_array_length(p_tasks));
    created := ds_create(p_tasks, now, p_retention);
    PERFORM ds_notify_activity();
    RETURN created;
END $$;

-- tasks.save (fenced): optimistic writes, and the acknowledged results dropped.
CREATE FUNCTION ds_save(p_node text, p_term bigint, p_tasks json, p_ack bigint[], p_retention float8)
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    now float8;
    written text[];
BEGIN
    PERFORM ds_fence(p_node, p_term);
    now := ds_now();
    PERFORM ds_prune(now, 100 + 2 * json_array_length(p_tasks));
    written := ds_write(p_tasks, now, p_retention);
    IF cardinality(p_ack) > 0 THEN
        DELETE FROM results WHERE seq = ANY (p_ack);
    END IF;
    RETURN written;
END $$;

-- tasks.dispatch (fenced): optimistic writes of dispatched tasks; each worker that got one
-- is woken (its queue is its dispatched tasks).
CREATE FUNCTION ds_dispatch(p_node text, p_term bigint, p_tasks json, p_retention float8)
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    written text[];
BEGIN
    PERFORM ds_fence(p_node, p_term);
    written := ds_write(p_tasks, ds_now(), p_retention);
    PERFORM pg_notify(ds_channel('q:' || w), '')
        FROM (SELECT DISTINCT worker_id AS w FROM tasks WHERE id = ANY (written) AND worker_id IS NOT NULL) x;
    RETURN written;
END $$;

-- jobs.fire (fenced): per firing, if the job's next_fire_at is still the expected one, create
-- its slot tasks that do not exist yet and advance the schedule. Returns the number of tasks
-- created, the number that existed, and the names of the conflicting jobs.
CREATE FUNCTION ds_fire(p_node text, p_term bigint, p_firings json, p_tasks json, p_retention float8,
                        OUT created int, OUT existing int, OUT conflicts text[])
LANGUAGE plpgsql AS $$
DECLARE
    now float8;
    f record;
    ok int[] := '{}';
    wanted int;
BEGIN
    PERFORM ds_fence(p_node, p_term);
    now := ds_now();
    conflicts := '{}';
    FOR f IN SELECT * FROM json_to_recordset(p_firings) AS x(job text, expected float8, nxt float8, last float8, idx int)
    LOOP
        UPDATE jobs SET next_fire_at = f.nxt, last_slot = f.last WHERE name = f.job AND next_fire_at = f.expected;
        IF FOUND THEN
            ok := ok || f.idx;
        ELSE
            conflicts := conflicts || f.job;
        END IF;
    END LOOP;
    SELECT count(*) INTO wanted FROM json_populate_recordset(NULL::task_in, p_tasks) n WHERE n.firing = ANY (ok);
    PERFORM ds_prune(now, 100 + 2 * wanted);
    created := cardinality(ds_create(
        (SELECT coalesce(json_agg(e), '[]') FROM json_array_elements(p_tasks) e
          WHERE (e->>'firing')::int = ANY (ok)), now, p_retention));
    existing := wanted - created;
    PERFORM ds_notify_activity();
END $$;

-- queues.pull: mark up to p_max of the worker's dispatched tasks running (oldest dispatch
-- first; rows another pull holds are skipped). A pull retried after its reply was lost
-- (p_prev = the lost call's op id) gets back the tasks that call took and that still run here.
CREATE FUNCTION ds_pull(p_worker text, p_max int, p_op text, p_prev text) RETURNS SETOF tasks LANGUAGE plpgsql AS $$
DECLARE
    now float8 := ds_now();
BEGIN
    IF p_prev IS NOT NULL THEN
        RETURN QUERY SELECT * FROM tasks WHERE worker_id = p_worker AND state = 'running' AND pull_op = p_prev;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    RETURN QUERY
    UPDATE tasks t SET state = 'running', started_at = now, updated_at = now, version = t.version + 1,
                       pull_op = p_op
    FROM (SELECT id FROM tasks WHERE worker_id = p_worker AND state = 'dispatched'
          ORDER BY dispatched_at, id LIMIT p_max FOR UPDATE SKIP LOCKED) p
    WHERE t.id = p.id
    RETURNING t.*;
END $$;

-- queues.report: append results, keep at most p_cap, wake the leader.
CREATE FUNCTION ds_report(p_results json, p_cap bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    top bigint;
BEGIN
    IF json_array_length(p_results) > 0 THEN
        INSERT INTO results (task_id, attempt_id, worker_id, ok, started_at, data)
        SELECT r.task_id, r.attempt_id, r.worker_id, r.ok, r.started_at, r.data
        FROM json_to_recordset(p_results) AS r(task_id text, attempt_id text, worker_id text, ok boolean,
                                               started_at float8, data text);
        top := currval(pg_get_serial_sequence('results', 'seq'));
        IF top > p_cap THEN
            DELETE FROM results WHERE seq <= top - p_cap;
        END IF;
    END IF;
    PERFORM ds_notify_activity();
END $$;

-- results.settle (fenced): walk the oldest results while they are successes; a success of
-- the current attempt (dispatched or running, on the worker that reported it) finishes its
-- task as Task.finish would; any other success is stale. Stops at the first failure or
-- timeout. The walked results are removed. Returns JSON {settled, stale, left, rows}.
CREATE FUNCTION ds_settle(p_node text, p_term bigint, p_max int, p_retention float8, p_want boolean)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    now float8;
    r record;
    t record;
    walked bigint[] := '{}';
    n_settled int := 0;
    n_stale int := 0;
    rows json[] := '{}';
    n_left bigint;
BEGIN
    PERFORM ds_fence(p_node, p_term);
    now := ds_now();
    FOR r IN SELECT * FROM results ORDER BY seq LIMIT p_max LOOP
        EXIT WHEN NOT r.ok;
        walked := walked || r.seq;
        UPDATE tasks SET state = 'succeeded', version = version + 1, updated_at = now, finished_at = now,
                         started_at = coalesce(started_at, r.started_at), result = r.data,
                         expires_at = now + p_retention
        WHERE id = r.task_id AND state IN ('dispatched', 'running') AND r.attempt_id = id || '#' || dispatches
          AND (r.worker_id IS NULL OR worker_id IS NULL OR r.worker_id = worker_id)
        RETURNING job, attempt, started_at INTO t;
        IF FOUND THEN
            n_settled := n_settled + 1;
            IF p_want THEN
                rows := rows || json_build_array(r.task_id, t.job, t.attempt, r.data, now);
            END IF;
        ELSE
            n_stale := n_stale + 1;
        END IF;
    END LOOP;
    IF cardinality(walked) > 0 THEN
        DELETE FROM results WHERE seq = ANY (walked);
    END IF;
    SELECT count(*) INTO n_left FROM results;
    RETURN json_build_object('settled', n_settled, 'stale', n_stale, 'left', n_left, 'rows', to_json(rows))::text;
END $$;

-- workers.register: store a worker, heartbeat = database time; wakes the leader.
CREATE FUNCTION ds_register(p_id text, p_data text, p_draining boolean) RETURNS void LANGUAGE sql AS $$
    INSERT INTO workers (id, data, heartbeat, draining, dead) VALUES (p_id, p_data, ds_now(), p_draining, false)
    ON CONFLICT (id) DO UPDATE SET data = excluded.data, heartbeat = excluded.heartbeat,
                                   draining = excluded.draining, dead = false;
    SELECT ds_notify_activity();
$$;

-- workers.deregister: draining and dead at once (heartbeat 0): the leader reaps it now.
CREATE FUNCTION ds_deregister(p_id text) RETURNS void LANGUAGE sql AS $$
    UPDATE workers SET heartbeat = 0, draining = true WHERE id = p_id AND NOT dead;
    SELECT ds_notify_activity();
$$;

-- workers.reap (fenced): optimistic writes of the requeued tasks; the worker is removed when
-- all were written and nothing is assigned to it any more, else declared dead (kept for the
-- next pass).
CREATE FUNCTION ds_reap(p_node text, p_term bigint, p_worker text, p_tasks json, p_retention float8)
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    now float8;
    written text[];
BEGIN
    PERFORM ds_fence(p_node, p_term);
    now := ds_now();
    PERFORM 1 FROM workers WHERE id = p_worker FOR UPDATE;
    written := ds_write(p_tasks, now, p_retention);
    IF cardinality(written) = json_array_length(p_tasks) AND NOT EXISTS (
            SELECT 1 FROM tasks WHERE worker_id = p_worker AND state IN ('dispatched', 'running')) THEN
        DELETE FROM workers WHERE id = p_worker;
    ELSE
        UPDATE workers SET dead = true, heartbeat = 0 WHERE id = p_worker;
    END IF;
    RETURN written;
END $$;

-- jobs.add_many: store the jobs whose name is free; returns the names stored.
CREATE FUNCTION ds_job_add(p_jobs json) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    stored text[];
BEGIN
    WITH ins AS (
        INSERT INTO jobs (name, config, version, enabled, next_fire_at)
        SELECT j.name, j.config, 1, j.enabled, j.next_fire_at
        FROM json_to_recordset(p_jobs) AS j(name text, config text, enabled boolean, next_fire_at float8)
        ON CONFLICT (name) DO NOTHING
        RETURNING name)
    SELECT coalesce(array_agg(name), '{}') INTO stored FROM ins;
    PERFORM ds_notify_activity();
    RETURN stored;
END $$;

-- jobs.update: replace the job if p_version is the stored one. Returns the new version, 0 when
-- the job does not exist, or minus the stored version on a conflict.
CREATE FUNCTION ds_job_update(p_name text, p_config text, p_version int, p_next float8, p_enabled boolean)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    cur int;
BEGIN
    SELECT version INTO cur FROM jobs WHERE name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    IF cur <> p_version THEN
        RETURN -cur;
    END IF;
    UPDATE jobs SET config = p_config, version = cur + 1, next_fire_at = p_next, enabled = p_enabled
    WHERE name = p_name;
    PERFORM ds_notify_activity();
    RETURN cur + 1;
END $$;

CREATE FUNCTION ds_job_pause(p_name text, p_paused boolean, p_next float8) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    UPDATE jobs SET paused = p_paused, next_fire_at = coalesce(p_next, next_fire_at) WHERE name = p_name;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM ds_notify_activity();
    RETURN true;
END $$;
