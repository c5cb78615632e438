-- distsched PostgreSQL schema, version 19: an update that conflicts with a stored version
-- below 1 (written by hand meanwhile) is reported as a conflict. ds_job_update returned the
-- stored version negated, which is 0 or more for such a version: read as "not found" (0), as
-- a success with a version the job does not have while nothing was written (-5 gave 5), or
-- failing with "integer out of range" (-2^31). It returns -2147483648 for it now, which no
-- other conflict returns (a stored version of 1 to 2^31 - 1 gives -1 to -(2^31 - 1)).
-- ds_job_update (version 18) is restated with this change only.

CREATE OR REPLACE FUNCTION ds_job_update(p_name text, p_config text, p_version int, p_next float8, p_enabled boolean)
RETURNS int LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
    cur int;
    nxt int;
BEGIN
    SELECT version INTO cur FROM jobs WHERE name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    IF cur <> p_version THEN
        RETURN CASE WHEN cur < 1 THEN -2147483648 ELSE -cur END;
    END IF;
    nxt := CASE WHEN cur < 1 OR cur >= 2147483647 THEN 1 ELSE cur + 1 END;
    UPDATE jobs SET config = p_config, version = nxt, next_fire_at = p_next, enabled = p_enabled
    WHERE name = p_name;
    PERFORM ds_notify_activity();
    RETURN nxt;
END $$;
