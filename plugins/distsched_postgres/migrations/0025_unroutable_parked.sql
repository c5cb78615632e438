-- distsched PostgreSQL schema, version 25: tasks that no live worker may run are *parked* out
-- of the ready queue (TaskRepository.park / unpark / parked), as on memory and Redis, so that
-- unroutable_wait may be on by default here too.
--
-- A task whose function no live worker offers (or whose executor none has) waits for one, up
-- to unroutable_wait. In the ready queue (tasks_ready), oldest first, more than dispatch_batch
-- (500) of them at its head filled every ready read of the leader: every other task was held
-- back until they were placed or failed. Now the leader has the store park them: tasks.parked
-- holds what the task waits for (the executor, or 'local:<function>'), parked_until when its
-- wait runs out; tasks_ready leaves parked rows out (its predicate), tasks_parked lists them
-- per key and tasks_parked_until by the end of their wait. ds_park / ds_unpark are fenced.
-- A parked task that is written with a new version (ds_save, ds_cancel...) leaves the parked
-- set in the same statement (the trigger tasks_parked_written: back in tasks_ready when it is
-- still pending or retrying) - except a dispatch, which the trigger refuses (the row is not
-- written: ds_dispatch_slim does not return it). Rows of earlier versions are not parked.
-- The trigger's WHEN is evaluated without calling the function for a row that is not parked.

ALTER TABLE tasks ADD COLUMN parked text, ADD COLUMN parked_until float8;

DROP INDEX tasks_ready;
CREATE INDEX tasks_ready ON tasks (not_before, id)
    WHERE state IN ('pending', 'retrying') AND NOT held AND parked IS NULL;
CREATE INDEX tasks_parked ON tasks (parked, parked_until, id)
    WHERE parked IS NOT NULL AND state IN ('pending', 'retrying');
CREATE INDEX tasks_parked_until ON tasks (parked_until, id)
    WHERE parked IS NOT NULL AND state IN ('pending', 'retrying');

CREATE FUNCTION ds_parked_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'dispatched' THEN
        RETURN NULL;  -- a parked task is never dispatched
    END IF;
    NEW.parked := NULL;
    NEW.parked_until := NULL;
    RETURN NEW;
END $$;

CREATE TRIGGER tasks_parked_written BEFORE UPDATE ON tasks FOR EACH ROW
    WHEN (OLD.parked IS NOT NULL AND NEW.version IS DISTINCT FROM OLD.version)
    EXECUTE FUNCTION ds_parked_written();

-- tasks.park (fenced): each task moves to the parked set of its key while its version is the
-- one given and it is pending or retrying, not held and not parked. Returns the ids parked.
CREATE FUNCTION ds_park(p_node text, p_term bigint, p_ids text[], p_versions int[], p_keys text[],
                        p_until float8[]) RETURNS text[]
LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
    written text[];
BEGIN
    PERFORM ds_fence(p_node, p_term);
    PERFORM 1 FROM tasks WHERE id = ANY (p_ids) ORDER BY id FOR UPDATE;
    WITH n AS (SELECT * FROM unnest(p_ids, p_versions, p_keys, p_until) AS n(id, version, key, until)),
    upd AS (
        UPDATE tasks t SET parked = n.key, parked_until = n.until
        FROM n WHERE t.id = n.id AND t.version = n.version AND t.state IN ('pending', 'retrying')
            AND NOT t.held AND t.parked IS NULL
        RETURNING t.id)
    SELECT coalesce(array_agg(id), '{}') INTO written FROM upd;
    RETURN written;
END $$;

-- tasks.unpark (fenced): back to the ready queue, at most p_limit: first the tasks parked under
-- p_keys (a live worker may run them now), each key's by parked_until, then those of any key
-- whose wait ran out by p_until. Returns how many moved.
CREATE FUNCTION ds_unpark(p_node text, p_term bigint, p_keys text[], p_until float8, p_limit int) RETURNS int
LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
    k text;
    moved int := 0;
    n int;
BEGIN
    PERFORM ds_fence(p_node, p_term);
    FOREACH k IN ARRAY p_keys LOOP
        EXIT WHEN moved >= p_limit;
        UPDATE tasks SET parked = NULL, parked_until = NULL WHERE id = ANY (ARRAY(
            SELECT id FROM tasks WHERE parked = k AND state IN ('pending', 'retrying')
            ORDER BY parked, parked_until, id LIMIT p_limit - moved));
        GET DIAGNOSTICS n = ROW_COUNT;
        moved := moved + n;
    END LOOP;
    IF moved < p_limit THEN
        UPDATE tasks SET parked = NULL, parked_until = NULL WHERE id = ANY (ARRAY(
            SELECT id FROM tasks WHERE parked IS NOT NULL AND state IN ('pending', 'retrying')
                AND parked_until <= p_until
            ORDER BY parked_until, id LIMIT p_limit - moved));
        GET DIAGNOSTICS n = ROW_COUNT;
        moved := moved + n;
    END IF;
    RETURN moved;
END $$;

-- tasks.ready: as in version 24, the parked rows left out (tasks_ready's predicate).
CREATE OR REPLACE FUNCTION ds_ready(p_now float8, p_limit int) RETURNS SETOF tasks
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
    RETURN QUERY SELECT * FROM tasks WHERE state IN ('pending', 'retrying') AND NOT held AND parked IS NULL
        AND not_before <= p_now ORDER BY not_before, id LIMIT p_limit;
END $$;
