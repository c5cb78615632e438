-- distsched PostgreSQL schema, version 10: a row is put aside only as it was read. A read
-- that cannot decode a row moves it into `quarantine` in a later call; a write committed in
-- between (a worker registering again, a job updated, a task id submitted again after its
-- retention) replaced the bad row with a good one, and the good one was moved aside. The
-- read now sends the text columns a decode can fail on (p_seen, JSON), and the row is moved
-- only while they are still the ones read (the DELETE re-checks them on the newest row
-- version); otherwise nothing is moved, and the next read decides again. A column the read
-- did not send is not compared.

DROP FUNCTION ds_put_aside(text, text, text);

-- Whether `value` is what p_seen says of `col` (true when p_seen does not name it).
CREATE FUNCTION ds_as_read(p_seen json, col text, value text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT p_seen IS NULL OR NOT (p_seen::jsonb ? col) OR value IS NOT DISTINCT FROM p_seen->>col
$$;

-- Returns true when the row was moved now (false: it was gone already, or rewritten since).
CREATE FUNCTION ds_put_aside(p_kind text, p_key text, p_reason text, p_seen json DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    IF p_kind = 'task' THEN
        DELETE FROM tasks WHERE id = p_key AND ds_as_read(p_seen, 'state', state)
                AND ds_as_read(p_seen, 'spec', spec) AND ds_as_read(p_seen, 'result', result)
            RETURNING row_to_json(tasks.*)::text INTO d;
    ELSIF p_kind = 'job' THEN
        DELETE FROM jobs WHERE name = p_key AND ds_as_read(p_seen, 'config', config)
            RETURNING row_to_json(jobs.*)::text INTO d;
    ELSIF p_kind = 'worker' THEN
        DELETE FROM workers WHERE id = p_key AND ds_as_read(p_seen, 'data', data)
            RETURNING row_to_json(workers.*)::text INTO d;
    ELSIF p_kind = 'scheduler' THEN
        DELETE FROM schedulers WHERE id = p_key AND ds_as_read(p_seen, 'data', data)
                AND ds_as_read(p_seen, 'role', role)
            RETURNING row_to_json(schedulers.*)::text INTO d;
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
