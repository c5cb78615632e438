-- distsched PostgreSQL schema, version 3: tasks.cancel (not fenced).

-- An optimistic write of a cancelled task: only when the stored version is the one it carries
-- and the stored task is not final. The attempt it ends is filed (trigger), the leader woken.
CREATE FUNCTION ds_cancel(p_tasks json, p_retention float8) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    t task_in;
    written text[];
BEGIN
    SELECT * INTO t FROM json_populate_recordset(NULL::task_in, p_tasks) LIMIT 1;
    PERFORM 1 FROM tasks WHERE id = t.id AND version = t.version AND NOT ds_terminal(state) FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    written := ds_write(p_tasks, ds_now(), p_retention);
    PERFORM ds_notify_activity();
    RETURN cardinality(written) = 1;
END $$;
