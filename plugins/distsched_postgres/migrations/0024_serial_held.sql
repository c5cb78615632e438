-- distsched PostgreSQL schema, version 24: a serial job's waiting slots are held out of the
-- ready queue, as on memory and Redis, and ds_fire decides max_backlog in its own transaction
-- and says which slots it skipped.
--
-- 1. A serial job slower than its interval keeps its waiting slots pending. They stayed in
--    the ready queue (tasks_ready), by not_before, oldest first; the leader's ready read
--    returns at most dispatch_batch (500) tasks, so a few such jobs (6 x 100 waiting, or one
--    with max_backlog 1000) ahead of another task hid it from every pass, and every pass
--    read them again. Now ds_fire holds a serial job's new pending slot (tasks.held) while
--    the job has its serial limit of tasks live and not held, or held ones (slot order);
--    tasks_ready leaves held rows out (its predicate), so the ready read never meets them.
--    The leader's ready read is ds_ready: it first releases, for each job with held slots
--    that has room (fewer than its limit live and not held), the oldest held ones - one probe
--    of the empty tasks_held index when nothing is held - then reads the ready tasks. The
--    leader's own serial check stays (held is an optimisation of the queue, not the rule).
--    tasks_serial_admitted counts a job's live, not held serial tasks without reading its
--    backlog; its predicate leaves every other task out (no entry, no cost for them).
-- 2. max_backlog was counted by the plugin before ds_fire, outside its transaction (one
--    more round trip per serial firing); ds_fire counts the job's live tasks itself, in the
--    firing's transaction, and returns the ids it stored skipped (`skipped`), so that the
--    leader announces them (task.skipped).
-- A held task that is written (cancelled...) keeps the flag but leaves tasks_held with its
-- pending state; `held` is never read outside these functions. Rows of earlier versions are
-- not held.

ALTER TABLE tasks ADD COLUMN held boolean NOT NULL DEFAULT false;

DROP INDEX tasks_ready;
CREATE INDEX tasks_ready ON tasks (not_before, id) WHERE state IN ('pending', 'retrying') AND NOT held;
CREATE INDEX tasks_held ON tasks (job, not_before, id) WHERE held AND state = 'pending';
CREATE INDEX tasks_serial_admitted ON tasks (job) WHERE serial_limit IS NOT NULL AND NOT held
    AND state NOT IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped');

-- jobs.fire (fenced): as in version 14; per firing that names a serial limit (`serial`, the
-- tasks' serial_limit) its new pending tasks, in array (slot) order, are stored skipped
-- (reason 'overlap: backlog full (max_backlog = N)') while the job has serial + `backlog`
-- tasks live (with `backlog`), else held while it has `serial` live and not held or held
-- ones. Returns the ids stored skipped so, in firing order.
DROP FUNCTION ds_fire(text, bigint, json, json, float8);
CREATE FUNCTION ds_fire(p_node text, p_term bigint, p_firings json, p_tasks json, p_retention float8,
                        OUT created int, OUT existing int, OUT conflicts text[], OUT skipped text[])
LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
    now float8;
    f record;
    t record;
    ok int[] := '{}';
    wanted int;
    n_live int;
    n_held int;
    hold text[] := '{}';
    why jsonb := '{}';
    v_tasks json := p_tasks;
    made text[];
BEGIN
    PERFORM ds_fence(p_node, p_term);
    now := ds_now();
    conflicts := '{}';
    skipped := '{}';
    FOR f IN SELECT * FROM json_to_recordset(p_firings)
             AS x(job text, expected float8, nxt float8, last float8, idx int, serial int, backlog int)
    LOOP
        UPDATE jobs SET next_fire_at = f.nxt, last_slot = f.last
        WHERE name = f.job AND next_fire_at = f.expected AND enabled AND NOT paused;
        IF NOT FOUND THEN
            conflicts := conflicts || f.job;
            CONTINUE;
        END IF;
        ok := ok || f.idx;
        CONTINUE WHEN f.serial IS NULL;
        SELECT count(*), count(*) FILTER (WHERE held) INTO n_live, n_held FROM tasks
        WHERE job = f.job AND state NOT IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped');
        FOR t IN SELECT e->>'id' AS id FROM json_array_elements(p_tasks) WITH ORDINALITY AS a(e, n)
                 WHERE (e->>'firing')::int = f.idx AND e->>'state' = 'pending' AND e->>'serial_limit' IS NOT NULL
                 ORDER BY n
        LOOP
            -- an existing task is left as it is (a final one past its retention is made anew)
            CONTINUE WHEN EXISTS (SELECT 1 FROM tasks WHERE id = t.id AND (expires_at IS NULL OR expires_at >= now));
            IF f.backlog IS NOT NULL AND n_live >= f.serial + f.backlog THEN
                skipped := skipped || t.id;
                why := why || jsonb_build_object(t.id, format('overlap: backlog full (max_backlog = %s)', f.backlog));
            ELSE
                IF n_held > 0 OR n_live - n_held >= f.serial THEN
                    hold := hold || t.id;
                    n_held := n_held + 1;
                END IF;
                n_live := n_live + 1;
            END IF;
        END LOOP;
    END LOOP;
    IF cardinality(skipped) > 0 THEN  -- as Task.skipped: finished at its creation
        v_tasks := (SELECT json_agg(CASE WHEN why ? (e->>'id') THEN
                                      (e::jsonb || jsonb_build_object('state', 'skipped', 'reason', why->>(e->>'id'),
                                                                      'finished_at', e->'created_at'))::json
                                  ELSE e END ORDER BY n)
                  FROM json_array_elements(p_tasks) WITH ORDINALITY AS a(e, n));
    END IF;
    SELECT count(*) INTO wanted FROM json_populate_recordset(NULL::task_in, v_tasks) n WHERE n.firing = ANY (ok);
    made := ds_create(
        (SELECT coalesce(json_agg(e), '[]') FROM json_array_elements(v_tasks) e
          WHERE (e->>'firing')::int = ANY (ok)), now, p_retention);
    created := cardinality(made);
    existing := wanted - created;
    IF cardinality(hold) > 0 THEN
        UPDATE tasks SET held = true WHERE id = ANY (hold) AND id = ANY (made);
    END IF;
    IF cardinality(skipped) > 0 THEN
        skipped := ARRAY(SELECT s FROM unnest(skipped) WITH ORDINALITY AS u(s, n) WHERE s = ANY (made) ORDER BY n);
    END IF;
    PERFORM ds_notify_activity();
END $$;

-- tasks.ready (the leader's): first, for each serial job with held slots that has room (fewer
-- than its limit of tasks live and not held), the oldest held ones leave the held queue;
-- then the ready tasks (pending or retrying, not held, due by p_now), oldest first. The jobs
-- with held slots are found by a loose scan of tasks_held (one probe per job), and a job's
-- tasks live and not held are counted on tasks_serial_admitted, at most its limit of them.
CREATE FUNCTION ds_ready(p_now float8, p_limit int) RETURNS SETOF tasks
LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
    j record;
    admitted int;
BEGIN
    IF EXISTS (SELECT 1 FROM tasks WHERE held AND state = 'pending') THEN
        FOR j IN
            WITH RECURSIVE held_jobs(job) AS (
                (SELECT job FROM tasks WHERE held AND state = 'pending' ORDER BY job LIMIT 1)
                UNION ALL
                SELECT (SELECT x.job FROM tasks x WHERE x.held AND x.state = 'pending' AND x.job > h.job
                        ORDER BY x.job LIMIT 1)
                FROM held_jobs h WHERE h.job IS NOT NULL)
            SELECT h.job, (SELECT x.serial_limit FROM tasks x WHERE x.held AND x.state = 'pending' AND x.job = h.job
                           ORDER BY x.not_before, x.id LIMIT 1) AS lim
            FROM held_jobs h WHERE h.job IS NOT NULL
        LOOP
            SELECT count(*) INTO admitted FROM (
                SELECT 1 FROM tasks WHERE job = j.job AND serial_limit IS NOT NULL AND NOT held
                    AND state NOT IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped')
                LIMIT j.lim) a;
            IF admitted < j.lim THEN
                UPDATE tasks SET held = false WHERE id = ANY (ARRAY(
                    SELECT id FROM tasks WHERE job = j.job AND held AND state = 'pending'
                    ORDER BY not_before, id LIMIT j.lim - admitted));
            END IF;
        END LOOP;
    END IF;
    RETURN QUERY SELECT * FROM tasks WHERE state IN ('pending', 'retrying') AND NOT held AND not_before <= p_now
        ORDER BY not_before, id LIMIT p_limit;
END $$;
