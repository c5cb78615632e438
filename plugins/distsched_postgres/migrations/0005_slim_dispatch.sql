-- distsched PostgreSQL schema, version 5: tasks.dispatch sends only the fields a dispatch
-- changes (as arrays), not the whole task.

-- Fenced. Per task: written only when the stored version is the caller's and the task is
-- pending or retrying (Task.dispatch: state, worker, dispatches, dispatched_at, updated_at;
-- started_at cleared); each worker that got one is woken. Returns the ids written.
CREATE FUNCTION ds_dispatch_slim(p_node text, p_term bigint, p_ids text[], p_versions int[], p_workers text[],
                                 p_dispatches int[], p_at float8[], p_updated float8[])
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    written text[];
BEGIN
    PERFORM ds_fence(p_node, p_term);
    PERFORM 1 FROM tasks WHERE id = ANY (p_ids) ORDER BY id FOR UPDATE;
    WITH n AS (SELECT * FROM unnest(p_ids, p_versions, p_workers, p_dispatches, p_at, p_updated)
                   AS n(id, version, worker_id, dispatches, dispatched_at, updated_at)),
    upd AS (
        UPDATE tasks t SET state = 'dispatched', worker_id = n.worker_id, dispatches = n.dispatches,
                           dispatched_at = n.dispatched_at, started_at = NULL, updated_at = n.updated_at,
                           version = t.version + 1, pull_op = NULL, ended = NULL
        FROM n WHERE t.id = n.id AND t.version = n.version AND t.state IN ('pending', 'retrying')
        RETURNING t.id, t.worker_id)
    SELECT coalesce(array_agg(id), '{}') INTO written FROM upd;
    PERFORM pg_notify(ds_channel('q:' || w), '')
        FROM (SELECT DISTINCT worker_id AS w FROM unnest(p_ids, p_workers) AS x(id, worker_id)
              WHERE id = ANY (written)) x;
    RETURN written;
END $$;

DROP FUNCTION ds_dispatch(text, bigint, json, float8);
