-- distsched PostgreSQL schema, version 14: a write costs the same whatever the tasks table
-- holds, and a submission writes only its tasks.
--
-- 1. Plans cached while the table was small. PL/pgSQL keeps each statement's plan for the
--    life of the connection and, from the sixth call on, a generic one; planned while `tasks`
--    had a page or two, that plan is a sequential scan (cheaper than any index on a page), and
--    it stays until something invalidates it (an ANALYZE, a VACUUM that updates the table's
--    size). A deployment that started empty then scanned every retained task at every call:
--    locking a dispatched task by id took 0.3 ms at 10,000 rows, ds_create's check for an
--    expired id 3 ms, growing with the table until autovacuum came round. Every function
--    that reads or writes tasks (or jobs, results) by key now runs with enable_seqscan off:
--    the planner takes the index whenever there is one, whatever the table's size when the
--    plan was made (a scan that has no index still runs, and jit is off so that its penalty
--    cost never makes PostgreSQL compile it). About 1 us a call. tasks.get_many reads by id
--    through such a function too (ds_get_tasks): its prepared statement had the same fault.
--    A migration that replaces one of these functions must restate both settings (CREATE OR
--    REPLACE resets them); tests/plugins/distsched_postgres/test_costs.py checks.
-- 2. Retention pruning leaves the write functions, as on Redis (issue 13): ds_submit, ds_save
--    and ds_fire each deleted up to twice their batch of expired tasks, 120-200 us a call even
--    with nothing to delete (an SQL function is planned at every call). The leader's
--    housekeeping pass (StorageBackend.housekeeping) prunes with its own budget, through
--    ds_prune(p_limit), which returns how many it deleted. Its query compared expires_at with
--    ds_now() in the statement, a volatile call that no index can bound: it read every task
--    of tasks_expires (every retained final task) at every pass, 2.8 ms at 5,000 and none
--    to delete; ds_prune compares with a value.
-- 3. ds_create inserts first and looks for an expired task of the same id only for the ids
--    that were taken (rare): a submission of new ids is one INSERT.

DROP FUNCTION ds_prune(float8, int);

-- Retention: delete at most `p_limit` terminal tasks whose retention ended (rows another
-- pruner holds are skipped); returns how many were deleted.
CREATE FUNCTION ds_prune(p_limit int) RETURNS int LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
    now float8 := ds_now();  -- a value, not the volatile call: the index's bound
    gone int;
BEGIN
    DELETE FROM tasks WHERE id = ANY (ARRAY(
        SELECT id FROM tasks WHERE expires_at < now ORDER BY expires_at LIMIT p_limit
        FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS gone = ROW_COUNT;
    RETURN gone;
END $$;

-- tasks.get_many: the unexpired tasks of these ids.
CREATE FUNCTION ds_get_tasks(p_ids text[]) RETURNS SETOF tasks
LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
BEGIN
    RETURN QUERY SELECT * FROM tasks WHERE id = ANY (p_ids) AND (expires_at IS NULL OR expires_at >= ds_now());
END $$;

CREATE OR REPLACE FUNCTION ds_create(p_tasks json, p_now float8, p_retention float8) RETURNS text[]
LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
    created text[] := '{}';
    inserted text[];
    taken text[];  -- NULL: every task of p_tasks
BEGIN
    FOR round IN 1..2 LOOP
        WITH ins AS (
            INSERT INTO tasks (id, job, slot, state, spec, timeout, created_at, updated_at, not_before, attempt,
                               dispatches, redeliveries, worker_id, dispatched_at, started_at, finished_at,
                               result, reason, serial_limit, version, expires_at)
            SELECT n.id, n.job, n.slot, n.state, n.spec, n.timeout, n.created_at, n.updated_at, n.not_before,
                   n.attempt, n.dispatches, n.redeliveries, n.worker_id, n.dispatched_at, n.started_at,
                   n.finished_at, n.result, n.reason, n.serial_limit, 1,
                   CASE WHEN ds_terminal(n.state) THEN p_now + p_retention END
            FROM json_populate_recordset(NULL::task_in, p_tasks) n
            WHERE taken IS NULL OR n.id = ANY (taken)
            ON CONFLICT (id) DO NOTHING
            RETURNING id)
        SELECT coalesce(array_agg(id), '{}') INTO inserted FROM ins;
        created := created || inserted;
        EXIT WHEN round = 2 OR cardinality(created) = json_array_length(p_tasks);
        -- an id that exists: a terminal task past its retention is gone, as it is on Redis
        -- (its id is free again, and the second round creates it); a live or retained one
        -- stays and this submission of it is refused
        SELECT coalesce(array_agg(n.id), '{}') INTO taken
        FROM json_populate_recordset(NULL::task_in, p_tasks) n WHERE NOT n.id = ANY (created);
        DELETE FROM tasks WHERE id = ANY (taken) AND expires_at < p_now;
        EXIT WHEN NOT FOUND;
    END LOOP;
    RETURN created;
END $$;

-- tasks.submit: not fenced; wakes the leader.
CREATE OR REPLACE FUNCTION ds_submit(p_tasks json, p_retention float8) RETURNS text[]
LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
    created text[];
BEGIN
    created := ds_create(p_tasks, ds_now(), p_retention);
    PERFORM ds_notify_activity();
    RETURN created;
END $$;

-- tasks.save (fenced): optimistic writes, and the acknowledged results dropped.
CREATE OR REPLACE FUNCTION ds_save(p_node text, p_term bigint, p_tasks json, p_ack bigint[], p_retention float8)
RETURNS text[] LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
    written text[];
BEGIN
    PERFORM ds_fence(p_node, p_term);
    written := ds_write(p_tasks, ds_now(), p_retention);
    IF cardinality(p_ack) > 0 THEN
        DELETE FROM results WHERE seq = ANY (p_ack);
    END IF;
    RETURN written;
END $$;

-- jobs.fire (fenced): as in version 11, without the pruning.
CREATE OR REPLACE FUNCTION ds_fire(p_node text, p_term bigint, p_firings json, p_tasks json, p_retention float8,
                                   OUT created int, OUT existing int, OUT conflicts text[])
LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
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
        UPDATE jobs SET next_fire_at = f.nxt, last_slot = f.last
        WHERE name = f.job AND next_fire_at = f.expected AND enabled AND NOT paused;
        IF FOUND THEN
            ok := ok || f.idx;
        ELSE
            conflicts := conflicts || f.job;
        END IF;
    END LOOP;
    SELECT count(*) INTO wanted FROM json_populate_recordset(NULL::task_in, p_tasks) n WHERE n.firing = ANY (ok);
    created := cardinality(ds_create(
        (SELECT coalesce(json_agg(e), '[]') FROM json_array_elements(p_tasks) e
          WHERE (e->>'firing')::int = ANY (ok)), now, p_retention));
    existing := wanted - created;
    PERFORM ds_notify_activity();
END $$;

ALTER FUNCTION ds_write(json, float8, float8) SET enable_seqscan = off SET jit = off;
ALTER FUNCTION ds_dispatch_slim(text, bigint, text[], int[], text[], int[], float8[], float8[]) SET enable_seqscan = off SET jit = off;
ALTER FUNCTION ds_cancel(json, float8) SET enable_seqscan = off SET jit = off;
ALTER FUNCTION ds_reap(text, bigint, text, json, float8) SET enable_seqscan = off SET jit = off;
ALTER FUNCTION ds_pull(text, int, text, text) SET enable_seqscan = off SET jit = off;
ALTER FUNCTION ds_report(json, bigint) SET enable_seqscan = off SET jit = off;
ALTER FUNCTION ds_settle(text, bigint, int, float8, boolean) SET enable_seqscan = off SET jit = off;
ALTER FUNCTION ds_put_aside(text, text, text, json) SET enable_seqscan = off SET jit = off;
ALTER FUNCTION ds_job_add(json) SET enable_seqscan = off SET jit = off;
ALTER FUNCTION ds_job_update(text, text, int, float8, boolean) SET enable_seqscan = off SET jit = off;
ALTER FUNCTION ds_job_pause(text, boolean, float8) SET enable_seqscan = off SET jit = off;
