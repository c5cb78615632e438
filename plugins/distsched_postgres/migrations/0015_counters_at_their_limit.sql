-- distsched PostgreSQL schema, version 15: a counter at the limit of its integer column
-- (written by something other than distsched) no longer fails the writes around it.
--
-- * A minute's count of finished tasks (throughput.n) at 2^31 - 1 made every write that
--   finished a task that minute fail with "integer out of range": the leader's settle at
--   every pass, so the leader stopped for the rest of the minute - and for good with rows
--   written ahead for the minutes to come (the Redis scripts' HINCRBY of the same figure
--   runs protected since 29eb873). The count now stops at 2^31 - 1, which no minute
--   reaches, in one function both writers call: ds_count_finished, the upsert the row
--   trigger and ds_settle each had.
-- * A task's version at 2^31 - 1: the engine refuses to decode such a task (it is
--   quarantined when read), but ds_pull and ds_settle change rows they do not decode. A
--   dispatched task at the limit failed every pull of its worker (version + 1), which ran
--   nothing until the leader's deadline check read and quarantined the task; a running one
--   failed the settle of its result. Both now leave such a row alone: the pull takes the
--   worker's other tasks, the settle drops the result as stale, and the leader's timeout
--   check moves the task aside.
-- ds_task_changed, ds_settle (as in version 8, with version 14's settings) and ds_pull (as
-- in version 9, with version 14's settings) are restated with these changes only.

-- Count p_n tasks finished in p_state at p_now's minute (at most 2^31 - 1); a new minute
-- forgets the minutes older than two hours.
CREATE FUNCTION ds_count_finished(p_now float8, p_state text, p_n int) RETURNS void
LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
    fresh boolean;
BEGIN
    INSERT INTO throughput (minute, state, n) VALUES (floor(p_now / 60)::bigint, p_state, p_n)
    ON CONFLICT (minute, state) DO UPDATE
        SET n = CASE WHEN throughput.n > 2147483647 - excluded.n THEN 2147483647 ELSE throughput.n + excluded.n END
    RETURNING xmax = 0 INTO fresh;
    IF fresh THEN  -- a new minute: forget the minutes older than two hours
        DELETE FROM throughput WHERE minute < floor(p_now / 60)::bigint - 120;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION ds_task_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    now float8;
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
            PERFORM ds_count_finished(now, NEW.state, 1);
            IF NEW.job IS NOT NULL THEN
                UPDATE jobs SET last_outcome = NEW.state, last_outcome_at = now, last_task = NEW.id
                WHERE name = NEW.job;
            END IF;
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION ds_settle(p_node text, p_term bigint, p_max int, p_retention float8, p_want boolean)
RETURNS text LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
    now float8;
    walked bigint[];
    rows json;
    n_walked int;
    n_settled int;
    n_left bigint;
BEGIN
    PERFORM ds_fence(p_node, p_term);
    now := ds_now();
    -- the walk: the oldest results up to (not including) the first failure or timeout, found
    -- in one statement: one snapshot (under READ COMMITTED each statement sees the rows
    -- committed before it began, so a failure reported between two statements was walked
    -- as a success)
    SELECT array_agg(seq ORDER BY seq) INTO walked FROM (
        SELECT seq FROM results
        WHERE ok AND seq < coalesce((SELECT min(seq) FROM results WHERE NOT ok), 9223372036854775807)
        ORDER BY seq LIMIT p_max) w;
    n_walked := coalesce(cardinality(walked), 0);
    IF n_walked = 0 THEN
        SELECT count(*) INTO n_left FROM results;
        RETURN json_build_object('settled', 0, 'stale', 0, 'left', n_left, 'rows', '[]'::json)::text;
    END IF;
    -- a success of the current attempt, dispatched or running on the worker that reported it,
    -- finishes its task (several results of one attempt: one of them is applied)
    WITH done AS (
        UPDATE tasks t SET state = 'succeeded', version = t.version + 1, updated_at = now, finished_at = now,
                           started_at = coalesce(t.started_at, r.started_at), result = r.data,
                           expires_at = now + p_retention, ended = ''
        FROM results r
        WHERE r.seq = ANY (walked) AND r.ok AND t.id = r.task_id AND t.state IN ('dispatched', 'running')
          AND r.attempt_id = t.id || '#' || t.dispatches
          AND (r.worker_id IS NULL OR t.worker_id IS NULL OR r.worker_id = t.worker_id)
          AND t.version < 2147483647
        RETURNING r.seq, t.id, t.job, t.attempt, r.data),
    -- what the row trigger does for the other writes, once for the batch
    per_job AS (
        UPDATE jobs j SET last_outcome = 'succeeded', last_outcome_at = now, last_task = d.id
        FROM (SELECT DISTINCT ON (job) job, id FROM done WHERE job IS NOT NULL ORDER BY job, seq DESC) d
        WHERE j.name = d.job)
    SELECT count(*), CASE WHEN p_want THEN
               coalesce(json_agg(json_build_array(id, job, attempt, data, now) ORDER BY seq), '[]'::json) END
    INTO n_settled, rows FROM done;
    IF n_settled > 0 THEN
        PERFORM ds_count_finished(now, 'succeeded', n_settled);
    END IF;
    DELETE FROM results WHERE seq = ANY (walked);
    SELECT count(*) INTO n_left FROM results;
    RETURN json_build_object('settled', n_settled, 'stale', n_walked - n_settled, 'left', n_left,
                             'rows', coalesce(rows, '[]'::json))::text;
END $$;

CREATE OR REPLACE FUNCTION ds_pull(p_worker text, p_max int, p_op text, p_prev text) RETURNS SETOF tasks
LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
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
    FROM (SELECT id FROM tasks WHERE worker_id = p_worker AND state = 'dispatched' AND version < 2147483647
          ORDER BY dispatched_at, id LIMIT p_max FOR UPDATE SKIP LOCKED) p
    WHERE t.id = p.id
    RETURNING t.*;
END $$;
