-- distsched PostgreSQL schema, version 6: a worker's blocked execution slots (heartbeat).

ALTER TABLE workers ADD COLUMN blocked int NOT NULL DEFAULT 0;

-- workers.register: store a worker, heartbeat = database time; wakes the leader.
CREATE OR REPLACE FUNCTION ds_register(p_id text, p_data text, p_draining boolean) RETURNS void LANGUAGE sql AS $$
    INSERT INTO workers (id, data, heartbeat, draining, dead, blocked)
    VALUES (p_id, p_data, ds_now(), p_draining, false, 0)
    ON CONFLICT (id) DO UPDATE SET data = excluded.data, heartbeat = excluded.heartbeat,
                                   draining = excluded.draining, dead = false, blocked = 0;
    SELECT ds_notify_activity();
$$;
