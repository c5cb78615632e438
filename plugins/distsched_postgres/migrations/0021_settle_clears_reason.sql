-- distsched PostgreSQL schema, version 21: a success settled in the store clears the task's
-- reason, as Task.finish does. A task requeued after its worker was lost (the leader's reap:
-- reason "worker ... lost ...") and then run to success on another worker kept that reason:
-- `distsched tasks show` read "state succeeded (worker w1 lost ...)" and the dashboard's task
-- page "reason: worker w1 lost ...". The lost attempt's own record (the attempts table, as
-- `tasks show` and the task page list them) keeps the reason.
-- ds_settle (version 15, with version 14's settings) is restated with this change only.

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
                           expires_at = now + p_retention, ended = '', reason = NULL
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
