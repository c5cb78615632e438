-- distsched PostgreSQL schema, version 9: a worker's pulls run one at a time, and a pull
-- whose reply was lost cannot take tasks after its retry looked for them.
--
-- A pull whose reply never came may still commit (a slow commit, or its request delivered
-- late on the old connection). The worker's next pull names it (p_prev) and gets back the
-- tasks it marked running. Two statements used to decide that: the look-up of the lost
-- pull's tasks, then the take of new ones; under READ COMMITTED the lost pull's commit could
-- land between them, or after both, and its tasks stayed `running` on a worker that never
-- got them, until their timeout spent an attempt on a task that never ran. Now:
-- * every pull of a worker first takes a transaction-level advisory lock keyed by the schema
--   and the worker, so a lost pull still committing finishes first and its retry sees it;
-- * a retry that found nothing of the lost pull records it in `lost_pulls`, and a pull so
--   recorded (arriving late) takes nothing.
-- Also ds_reap: when the worker row is already gone (moved aside meanwhile), it deletes
-- nothing - a registration committed between its check and its delete stays.

CREATE TABLE lost_pulls (
    worker_id text NOT NULL,
    op        text NOT NULL,              -- the pull whose reply was lost and that took nothing
    at        float8 NOT NULL,            -- database time; kept an hour
    PRIMARY KEY (worker_id, op)
);

CREATE OR REPLACE FUNCTION ds_pull(p_worker text, p_max int, p_op text, p_prev text) RETURNS SETOF tasks LANGUAGE plpgsql AS $$
DECLARE
    now float8 := ds_now();
BEGIN
    -- one pull of this worker at a time: each statement below sees the pulls before it
    PERFORM pg_advisory_xact_lock(hashtextextended('distsched:pull:' || current_schema() || ':' || p_worker, 0));
    IF EXISTS (SELECT 1 FROM lost_pulls WHERE worker_id = p_worker AND op = p_op) THEN
        RETURN;  -- its retry already looked for it and went on: arriving now, it takes nothing
    END IF;
    IF p_prev IS NOT NULL THEN
        RETURN QUERY SELECT * FROM tasks WHERE worker_id = p_worker AND state = 'running' AND pull_op = p_prev;
        IF FOUND THEN
            RETURN;
        END IF;
        DELETE FROM lost_pulls WHERE at < now - 3600;
        INSERT INTO lost_pulls (worker_id, op, at) VALUES (p_worker, p_prev, now) ON CONFLICT DO NOTHING;
    END IF;
    RETURN QUERY
    UPDATE tasks t SET state = 'running', started_at = now, updated_at = now, version = t.version + 1,
                       pull_op = p_op, ended = NULL
    FROM (SELECT id FROM tasks WHERE worker_id = p_worker AND state = 'dispatched'
          ORDER BY dispatched_at, id LIMIT p_max FOR UPDATE SKIP LOCKED) p
    WHERE t.id = p.id
    RETURNING t.*;
END $$;

CREATE OR REPLACE FUNCTION ds_reap(p_node text, p_term bigint, p_worker text, p_tasks json, p_retention float8)
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    now float8;
    written text[];
    present boolean;
BEGIN
    PERFORM ds_fence(p_node, p_term);
    now := ds_now();
    PERFORM 1 FROM workers WHERE id = p_worker FOR UPDATE;
    present := FOUND;
    written := ds_write(p_tasks, now, p_retention);
    IF NOT present THEN
        RETURN written;  -- gone already: nothing locked, so nothing to delete or mark
    END IF;
    IF cardinality(written) = json_array_length(p_tasks) AND NOT EXISTS (
            SELECT 1 FROM tasks WHERE worker_id = p_worker AND state IN ('dispatched', 'running')) THEN
        DELETE FROM workers WHERE id = p_worker;
    ELSE
        UPDATE workers SET dead = true, heartbeat = 0 WHERE id = p_worker;
    END IF;
    RETURN written;
END $$;
