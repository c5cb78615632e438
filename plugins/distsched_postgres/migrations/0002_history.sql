-- distsched PostgreSQL schema, version 2: the history queries of the storage port
-- (tasks.query / detail / throughput, jobs.page and last outcome, schedulers, lease info).
-- Names, ids and cursors compare in code point order: COLLATE "C".

-- Lease info kept after a release or expiry.
ALTER TABLE lease ADD COLUMN last_holder text, ADD COLUMN acquired_at timestamptz, ADD COLUMN renewed_at timestamptz;
UPDATE lease SET last_holder = holder, acquired_at = clock_timestamp(), renewed_at = clock_timestamp()
    WHERE holder IS NOT NULL;

ALTER TABLE jobs ADD COLUMN last_outcome text, ADD COLUMN last_outcome_at float8, ADD COLUMN last_task text;
CREATE INDEX jobs_name_c ON jobs (name COLLATE "C");

-- The record of the attempt a write ends (written by the plugin beside the task; the trigger
-- below files it when the write moves the task out of dispatched/running).
ALTER TABLE tasks ADD COLUMN ended text;
DROP INDEX tasks_job_updated;
DROP INDEX tasks_state_updated;
DROP INDEX tasks_updated;
CREATE INDEX tasks_created ON tasks (created_at, id COLLATE "C");
CREATE INDEX tasks_job_created ON tasks (job, created_at, id COLLATE "C");
CREATE INDEX tasks_state_created ON tasks (state, created_at, id COLLATE "C");
CREATE INDEX tasks_worker_created ON tasks (worker_id, created_at, id COLLATE "C");

ALTER TYPE task_in ADD ATTRIBUTE ended text;

-- Ended attempts, oldest first per task (at most 50 kept); they go with their task.
CREATE TABLE attempts (
    n         bigserial PRIMARY KEY,
    task_id   text NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    worker_id text,                          -- the worker the attempt was assigned to
    data      text NOT NULL                  -- Attempt JSON (distsched.ports.Attempt)
);
CREATE INDEX attempts_task ON attempts (task_id, n);
CREATE INDEX attempts_worker ON attempts (worker_id, task_id);

-- Tasks that reached a final state per minute of database time (kept 2 hours).
CREATE TABLE throughput (
    minute bigint NOT NULL,
    state  text NOT NULL,
    n      int NOT NULL,
    PRIMARY KEY (minute, state)
);

CREATE TABLE schedulers (
    id        text PRIMARY KEY,
    data      text NOT NULL,                 -- SchedulerNode JSON (host, pid, started_at)
    heartbeat float8 NOT NULL,
    role      text NOT NULL
);

-- Per task write that ends an attempt or finishes a task, in the same transaction: file the
-- attempt, count the finish in its minute, record the job's last outcome.
CREATE FUNCTION ds_task_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    now float8;
    fresh boolean;
BEGIN
    IF OLD.state IN ('dispatched', 'running') AND NEW.state NOT IN ('dispatched', 'running')
            AND NEW.ended IS NOT NULL THEN
        INSERT INTO attempts (task_id, worker_id, data) VALUES (NEW.id, OLD.worker_id, NEW.ended);
        IF NEW.dispatches > 50 THEN
            DELETE FROM attempts WHERE task_id = NEW.id AND n <= (
                SELECT n FROM attempts WHERE task_id = NEW.id ORDER BY n DESC OFFSET 50 LIMIT 1);
        END IF;
    END IF;
    IF ds_terminal(NEW.state) AND NOT ds_terminal(OLD.state) THEN
        now := ds_now();
        IF NEW.state <> 'skipped' THEN
            INSERT INTO throughput (minute, state, n) VALUES (floor(now / 60)::bigint, NEW.state, 1)
            ON CONFLICT (minute, state) DO UPDATE SET n = throughput.n + 1
            RETURNING xmax = 0 INTO fresh;
            IF fresh THEN  -- a new minute: forget the minutes older than two hours
                DELETE FROM throughput WHERE minute < floor(now / 60)::bigint - 120;
            END IF;
            IF NEW.job IS NOT NULL THEN
                UPDATE jobs SET last_outcome = NEW.state, last_outcome_at = now, last_task = NEW.id
                WHERE name = NEW.job;
            END IF;
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER tasks_changed AFTER UPDATE ON tasks FOR EACH ROW
    WHEN ((OLD.state IN ('dispatched', 'running') AND NEW.state NOT IN ('dispatched', 'running'))
          OR (NEW.state IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped')
              AND OLD.state NOT IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped')))
    EXECUTE FUNCTION ds_task_changed();

-- ds_write now carries the ended attempt.
CREATE OR REPLACE FUNCTION ds_write(p_tasks json, p_now float8, p_retention float8) RETURNS text[] LANGUAGE plpgsql AS $$
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
            serial_limit = n.serial_limit, version = t.version + 1, pull_op = NULL, ended = n.ended,
            expires_at = CASE WHEN ds_terminal(n.state) THEN p_now + p_retention END
        FROM n WHERE t.id = n.id AND t.version = n.version
        RETURNING t.id)
    SELECT coalesce(array_agg(id), '{}') INTO written FROM upd;
    RETURN written;
END $$;

-- Pulls and settles end no attempt the plugin described: they clear `ended`.
CREATE OR REPLACE FUNCTION ds_pull(p_worker text, p_max int, p_op text, p_prev text) RETURNS SETOF tasks LANGUAGE plpgsql AS $$
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
                       pull_op = p_op, ended = NULL
    FROM (SELECT id FROM tasks WHERE worker_id = p_worker AND state = 'dispatched'
          ORDER BY dispatched_at, id LIMIT p_max FOR UPDATE SKIP LOCKED) p
    WHERE t.id = p.id
    RETURNING t.*;
END $$;

CREATE OR REPLACE FUNCTION ds_settle(p_node text, p_term bigint, p_max int, p_retention float8, p_want boolean)
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
                         expires_at = now + p_retention, ended = NULL
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

-- The lease functions record when it was taken and renewed (election.lease()).
CREATE FUNCTION ds_lease_acquire(p_node text, p_ttl float8) RETURNS bigint LANGUAGE sql AS $$
    UPDATE lease SET holder = p_node, last_holder = p_node, term = term + 1,
                     acquired_at = clock_timestamp(), renewed_at = clock_timestamp(),
                     expires_at = clock_timestamp() + make_interval(secs => p_ttl)
    WHERE id = 1 AND (holder IS NULL OR holder = p_node OR expires_at <= clock_timestamp())
    RETURNING term
$$;

CREATE FUNCTION ds_lease_renew(p_node text, p_term bigint, p_ttl float8) RETURNS boolean LANGUAGE sql AS $$
    UPDATE lease SET renewed_at = clock_timestamp(), expires_at = clock_timestamp() + make_interval(secs => p_ttl)
    WHERE id = 1 AND holder = p_node AND term = p_term AND expires_at > clock_timestamp()
    RETURNING true
$$;

CREATE FUNCTION ds_lease_release(p_node text, p_term bigint) RETURNS void LANGUAGE sql AS $$
    UPDATE lease SET holder = NULL, expires_at = clock_timestamp()
    WHERE id = 1 AND holder = p_node AND term = p_term AND expires_at > clock_timestamp()
$$;

-- schedulers.register: store (or replace) a node, heartbeat = database time; records older
-- than a day are dropped.
CREATE FUNCTION ds_scheduler_register(p_id text, p_data text, p_role text) RETURNS void LANGUAGE sql AS $$
    DELETE FROM schedulers WHERE heartbeat < ds_now() - 86400;
    INSERT INTO schedulers (id, data, heartbeat, role) VALUES (p_id, p_data, ds_now(), p_role)
    ON CONFLICT (id) DO UPDATE SET data = excluded.data, heartbeat = excluded.heartbeat, role = excluded.role;
$$;
