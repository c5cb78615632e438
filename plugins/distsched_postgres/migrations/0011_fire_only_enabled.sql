-- distsched PostgreSQL schema, version 11: a firing applies only to a job that is still
-- enabled and not paused. The leader reads the due jobs, then fires them; a pause (or a
-- disable) committed in between kept next_fire_at, so the firing's check of next_fire_at
-- passed and the job fired once after the pause had returned. The firing's UPDATE now also
-- checks enabled and paused (on the newest row version, as for next_fire_at): a paused job's
-- firing is a conflict and creates nothing.

CREATE OR REPLACE FUNCTION ds_fire(p_node text, p_term bigint, p_firings json, p_tasks json, p_retention float8,
                                   OUT created int, OUT existing int, OUT conflicts text[])
LANGUAGE plpgsql AS $$
DECLARE
    now float8;
    f record;
    ok int[] := '{}';
    wanted int;
BEGIN
    PERFORM ds_fence(p_node, p_term);
    now := ds_now();
    conflicts := '{}';
    FOR f IN SELECT * FROM json_to_recordset(p_firings) AS x(job text, expected float8, nxt float8, last float8, idx int)
    LOOP
        UPDATE jobs SET next_fire_at = f.nxt, last_slot = f.last
        WHERE name = f.job AND next_fire_at = f.expected AND enabled AND NOT paused;
        IF FOUND THEN
            ok := ok || f.idx;
        ELSE
            conflicts := conflicts || f.job;
        END IF;
    END LOOP;
    SELECT count(*) INTO wanted FROM json_populate_recordset(NULL::task_in, p_tasks) n WHERE n.firing = ANY (ok);
    PERFORM ds_prune(now, 100 + 2 * wanted);
    created := cardinality(ds_create(
        (SELECT coalesce(json_agg(e), '[]') FROM json_array_elements(p_tasks) e
          WHERE (e->>'firing')::int = ANY (ok)), now, p_retention));
    existing := wanted - created;
    PERFORM ds_notify_activity();
END $$;
