-- distsched PostgreSQL schema, version 17: a lease term at the limit of its bigint column
-- starts again at 1. Each acquisition adds one; a row with a term of 2^63 - 1 (written by
-- hand, or restored from elsewhere) failed every acquisition with "bigint out of range", and
-- no node could ever lead again. The fence compares holder and term, so the old term's holder
-- is refused as after any takeover. ds_lease_acquire (version 13) is restated with this
-- change only.

CREATE OR REPLACE FUNCTION ds_lease_acquire(p_node text, p_ttl float8) RETURNS bigint LANGUAGE sql AS $$
    UPDATE lease SET holder = p_node, last_holder = p_node,
                     term = CASE WHEN term = 9223372036854775807 THEN 1 ELSE term + 1 END,
                     acquired_at = clock_timestamp(), renewed_at = clock_timestamp(),
                     expires_at = clock_timestamp() + make_interval(secs => p_ttl)
    WHERE id = 1 AND (holder IS NULL OR holder = p_node OR expires_at <= clock_timestamp()
                      OR expires_at > clock_timestamp() + interval '3600 seconds')
    RETURNING term
$$;
