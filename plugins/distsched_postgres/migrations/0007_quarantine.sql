-- distsched PostgreSQL schema, version 7: poison isolation. A row the engine cannot decode
-- (a JSON column written by something else than distsched) is moved aside - out of its
-- table and every index, its row kept as JSON, the reason recorded - in one step.

CREATE TABLE quarantine (
    kind   text NOT NULL,                  -- task, job, worker, scheduler
    key    text NOT NULL,                  -- its id or name
    reason text NOT NULL,
    at     float8 NOT NULL,                -- database time
    data   text,                           -- the row as it was (row_to_json)
    PRIMARY KEY (kind, key)
);
CREATE INDEX quarantine_at ON quarantine (at);

-- Returns true when the row was moved now (false: it was gone already).
CREATE FUNCTION ds_put_aside(p_kind text, p_key text, p_reason text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    IF p_kind = 'task' THEN
        DELETE FROM tasks WHERE id = p_key RETURNING row_to_json(tasks.*)::text INTO d;
    ELSIF p_kind = 'job' THEN
        DELETE FROM jobs WHERE name = p_key RETURNING row_to_json(jobs.*)::text INTO d;
    ELSIF p_kind = 'worker' THEN
        DELETE FROM workers WHERE id = p_key RETURNING row_to_json(workers.*)::text INTO d;
    ELSIF p_kind = 'scheduler' THEN
        DELETE FROM schedulers WHERE id = p_key RETURNING row_to_json(schedulers.*)::text INTO d;
    ELSE
        RAISE EXCEPTION 'ds_put_aside: unknown kind %', p_kind;
    END IF;
    IF d IS NULL THEN
        RETURN false;
    END IF;
    INSERT INTO quarantine (kind, key, reason, at, data) VALUES (p_kind, p_key, p_reason, ds_now(), d)
    ON CONFLICT (kind, key) DO UPDATE SET reason = excluded.reason, at = excluded.at, data = excluded.data;
    RETURN true;
END $$;
