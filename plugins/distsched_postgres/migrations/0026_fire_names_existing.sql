-- distsched PostgreSQL schema, version 26: ds_fire also names the tasks it found stored already
-- (existing_ids, as many as `existing`), so that the leader announces no task.skipped for a
-- skipped record of its firing that was stored - and announced - before (by it or an earlier
-- leader), or that is a live task which runs (FireReport.existing_ids). It counted them
-- only, and the leader announced every skipped record of an applied firing. Otherwise as in
-- version 24.

DROP FUNCTION ds_fire(text, bigint, json, json, float8);
CREATE FUNCTION ds_fire(p_node text, p_term bigint, p_firings json, p_tasks json, p_retention float8,
                        OUT created int, OUT existing int, OUT conflicts text[], OUT skipped text[],
                        OUT existing_ids text[])
LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
    now float8;
    f record;
    t record;
    ok int[] := '{}';
    wanted int;
    n_live int;
    n_held int;
    hold text[] := '{}';
    why jsonb := '{}';
    v_tasks json := p_tasks;
    made text[];
BEGIN
    PERFORM ds_fence(p_node, p_term);
    now := ds_now();
    conflicts := '{}';
    skipped := '{}';
    FOR f IN SELECT * FROM json_to_recordset(p_firings)
             AS x(job text, expected float8, nxt float8, last float8, idx int, serial int, backlog int)
    LOOP
        UPDATE jobs SET next_fire_at = f.nxt, last_slot = f.last
        WHERE name = f.job AND next_fire_at = f.expected AND enabled AND NOT paused;
        IF NOT FOUND THEN
            conflicts := conflicts || f.job;
            CONTINUE;
        END IF;
        ok := ok || f.idx;
        CONTINUE WHEN f.serial IS NULL;
        SELECT count(*), count(*) FILTER (WHERE held) INTO n_live, n_held FROM tasks
        WHERE job = f.job AND state NOT IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped');
        FOR t IN SELECT e->>'id' AS id FROM json_array_elements(p_tasks) WITH ORDINALITY AS a(e, n)
                 WHERE (e->>'firing')::int = f.idx AND e->>'state' = 'pending' AND e->>'serial_limit' IS NOT NULL
                 ORDER BY n
        LOOP
            -- an existing task is left as it is (a final one past its retention is made anew)
            CONTINUE WHEN EXISTS (SELECT 1 FROM tasks WHERE id = t.id AND (expires_at IS NULL OR expires_at >= now));
            IF f.backlog IS NOT NULL AND n_live >= f.serial + f.backlog THEN
                skipped := skipped || t.id;
                why := why || jsonb_build_object(t.id, format('overlap: backlog full (max_backlog = %s)', f.backlog));
            ELSE
                IF n_held > 0 OR n_live - n_held >= f.serial THEN
                    hold := hold || t.id;
                    n_held := n_held + 1;
                END IF;
                n_live := n_live + 1;
            END IF;
        END LOOP;
    END LOOP;
    IF cardinality(skipped) > 0 THEN  -- as Task.skipped: finished at its creation
        v_tasks := (SELECT json_agg(CASE WHEN why ? (e->>'id') THEN
                                      (e::jsonb || jsonb_build_object('state', 'skipped', 'reason', why->>(e->>'id'),
                                                                      'finished_at', e->'created_at'))::json
                                  ELSE e END ORDER BY n)
                  FROM json_array_elements(p_tasks) WITH ORDINALITY AS a(e, n));
    END IF;
    SELECT count(*) INTO wanted FROM json_populate_recordset(NULL::task_in, v_tasks) n WHERE n.firing = ANY (ok);
    made := ds_create(
        (SELECT coalesce(json_agg(e), '[]') FROM json_array_elements(v_tasks) e
          WHERE (e->>'firing')::int = ANY (ok)), now, p_retention);
    created := cardinality(made);
    existing := wanted - created;
    -- the tasks of the applied firings left as they were (stored already), in firing order
    existing_ids := ARRAY(SELECT e->>'id' FROM json_array_elements(v_tasks) WITH ORDINALITY AS a(e, n)
                          WHERE (e->>'firing')::int = ANY (ok) AND NOT (e->>'id' = ANY (made)) ORDER BY n);
    IF cardinality(hold) > 0 THEN
        UPDATE tasks SET held = true WHERE id = ANY (hold) AND id = ANY (made);
    END IF;
    IF cardinality(skipped) > 0 THEN
        skipped := ARRAY(SELECT s FROM unnest(skipped) WITH ORDINALITY AS u(s, n) WHERE s = ANY (made) ORDER BY n);
    END IF;
    PERFORM ds_notify_activity();
END $$;
