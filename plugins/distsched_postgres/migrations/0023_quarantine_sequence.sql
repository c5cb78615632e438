-- distsched PostgreSQL schema, version 23: the quarantine's sequence number. The leader
-- reported a record put aside only when the count of `quarantine` rows grew; a record put
-- aside again under the same (kind, key) replaces its row, and a drop followed by a new
-- record leaves the count as it was: neither was reported (no `record.quarantined` event,
-- so `scheduler --jobs` did not sync its file again). Every row put aside now takes the next
-- number of `quarantine_sequence` (one row, updated in ds_put_aside's transaction: the number
-- and the row are seen together), and the leader asks for the rows numbered above the last
-- number it saw (ds_quarantined_since). Rows put aside before this version have no number.

CREATE TABLE quarantine_sequence (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    n   bigint NOT NULL DEFAULT 0          -- how many rows were ever put aside (from this version on)
);
INSERT INTO quarantine_sequence DEFAULT VALUES;

ALTER TABLE quarantine ADD COLUMN seq bigint;
CREATE INDEX quarantine_seq ON quarantine (seq);

-- As in version 10, and the row takes the next number (a row put aside again, a new one).
CREATE OR REPLACE FUNCTION ds_put_aside(p_kind text, p_key text, p_reason text, p_seen json DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    d text;
    s bigint;
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
    UPDATE quarantine_sequence SET n = n + 1 RETURNING n INTO s;
    INSERT INTO quarantine (kind, key, reason, at, data, seq) VALUES (p_kind, p_key, p_reason, ds_now(), d, s)
    ON CONFLICT (kind, key) DO UPDATE SET reason = excluded.reason, at = excluded.at, data = excluded.data,
                                          seq = excluded.seq;
    RETURN true;
END $$;
ALTER FUNCTION ds_put_aside(text, text, text, json) SET enable_seqscan = off SET jit = off;

-- The number, and the rows numbered above p_since, newest first, at most p_limit (0: the
-- number alone): one statement, one snapshot; a row with the number (no rows: one row with
-- NULL kind).
CREATE FUNCTION ds_quarantined_since(p_since bigint, p_limit int)
RETURNS TABLE (n bigint, kind text, key text, reason text, at float8) LANGUAGE sql STABLE AS $$
    SELECT s.n, q.kind, q.key, q.reason, q.at
    FROM quarantine_sequence s
    LEFT JOIN LATERAL (SELECT quarantine.kind, quarantine.key, quarantine.reason, quarantine.at, quarantine.seq
                       FROM quarantine WHERE quarantine.seq > p_since
                       ORDER BY quarantine.seq DESC LIMIT greatest(p_limit, 0)) q ON true
    ORDER BY q.seq DESC
$$;
