-- distsched PostgreSQL schema, version 18: a job's version at the limit of its integer
-- column, or below 1 (written by hand or restored from elsewhere), is followed by 1. An
-- update of a job at 2^31 - 1 failed with "integer out of range" (the dashboard's HTTP 500),
-- and the job could never be changed again; below 1, the new version returned (0 or less)
-- read as "not found" or as a conflict, so every update was refused after it was made.
-- Versions are compared for equality only; Redis follows the same rule (next_version in
-- lua/lib/jobs.lua). ds_job_update (version 1, with version 14's settings) is restated with
-- this change only.

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
        RETURN -cur;
    END IF;
    nxt := CASE WHEN cur < 1 OR cur >= 2147483647 THEN 1 ELSE cur + 1 END;
    UPDATE jobs SET config = p_config, version = nxt, next_fire_at = p_next, enabled = p_enabled
    WHERE name = p_name;
    PERFORM ds_notify_activity();
    RETURN nxt;
END $$;
