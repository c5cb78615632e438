-- distsched PostgreSQL schema, version 13: a lease that claims to run longer than any node
-- takes one (LEASE_TTL_MAX, an hour) can be taken. expires_at is a timestamptz, which takes
-- 'infinity'; a row written so (by hand, or restored from elsewhere) never lapsed, and once
-- its holder was gone no node could ever lead again. No node's lease runs past an hour from
-- its last renewal, so such a lease is broken: ds_lease_acquire takes it as it takes an
-- expired one (the new term fences whatever its holder still sends).

CREATE OR REPLACE FUNCTION ds_lease_acquire(p_node text, p_ttl float8) RETURNS bigint LANGUAGE sql AS $$
    UPDATE lease SET holder = p_node, last_holder = p_node, term = term + 1,
                     acquired_at = clock_timestamp(), renewed_at = clock_timestamp(),
                     expires_at = clock_timestamp() + make_interval(secs => p_ttl)
    WHERE id = 1 AND (holder IS NULL OR holder = p_node OR expires_at <= clock_timestamp()
                      OR expires_at > clock_timestamp() + interval '3600 seconds')
    RETURNING term
$$;
