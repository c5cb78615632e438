-- distsched PostgreSQL schema, version 27: the leader's signature of a dispatch is stored
-- with the task (tasks.signature), as on memory and Redis, and read back by every task read
-- (the worker's pull included).
--
-- With a signing key (DISTSCHED_SIGNING_KEY, docs/security.md) the leader signs each dispatch
-- (Task.signature) and a worker runs only a task whose signature it can check. The schema had
-- no place for it: ds_dispatch_slim did not take it and no column held it, so every task a
-- worker pulled carried none and failed "BadSignature: refused to run: it carries no
-- signature" - a signed deployment on PostgreSQL ran nothing. A dispatch now writes the
-- signature it is given (NULL: unsigned) in the statement that writes the rest of it; other
-- writes leave it as it is (the next dispatch replaces it), as Redis does. ds_dispatch_slim
-- takes one more array, p_signatures: the 8-array form is dropped (stop the older nodes
-- first, as for every migration that changes the functions they call).

ALTER TABLE tasks ADD COLUMN signature text;

DROP FUNCTION ds_dispatch_slim(text, bigint, text[], int[], text[], int[], float8[], float8[]);

-- Fenced. Per task: written only when the stored version is the caller's and the task is
-- pending or retrying (Task.dispatch: state, worker, dispatches, dispatched_at, updated_at,
-- the dispatch's signature; started_at cleared); each worker that got one is woken. Returns
-- the ids written.
CREATE FUNCTION ds_dispatch_slim(p_node text, p_term bigint, p_ids text[], p_versions int[], p_workers text[],
                                 p_dispatches int[], p_at float8[], p_updated float8[], p_signatures text[])
RETURNS text[] LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
    written text[];
BEGIN
    PERFORM ds_fence(p_node, p_term);
    PERFORM 1 FROM tasks WHERE id = ANY (p_ids) ORDER BY id FOR UPDATE;
    WITH n AS (SELECT * FROM unnest(p_ids, p_versions, p_workers, p_dispatches, p_at, p_updated, p_signatures)
                   AS n(id, version, worker_id, dispatches, dispatched_at, updated_at, signature)),
    upd AS (
        UPDATE tasks t SET state = 'dispatched', worker_id = n.worker_id, dispatches = n.dispatches,
                           dispatched_at = n.dispatched_at, started_at = NULL, updated_at = n.updated_at,
                           version = t.version + 1, pull_op = NULL, ended = NULL, signature = n.signature
        FROM n WHERE t.id = n.id AND t.version = n.version AND t.state IN ('pending', 'retrying')
        RETURNING t.id, t.worker_id)
    SELECT coalesce(array_agg(id), '{}') INTO written FROM upd;
    PERFORM pg_notify(ds_channel('q:' || w), '')
        FROM (SELECT DISTINCT worker_id AS w FROM unnest(p_ids, p_workers) AS x(id, worker_id)
              WHERE id = ANY (written)) x;
    RETURN written;
END $$;
