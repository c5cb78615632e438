-- distsched PostgreSQL schema, version 22: the lease row records its holder's renew interval
-- (renew_interval, seconds), written when a node takes the lease, so a status flags a
-- renewal overdue by the holder's own interval: it estimated it as 30 % of the lease TTL,
-- and a deployment renewing less often than every 60 % of its TTL saw "renewal overdue" on
-- a live leader. NULL (a lease taken before this version): the status estimates it as
-- before. ds_lease_acquire (version 17) is restated with the interval as a third argument.

ALTER TABLE lease ADD COLUMN renew_interval float8;

CREATE FUNCTION ds_lease_acquire(p_node text, p_ttl float8, p_renew float8) RETURNS bigint LANGUAGE sql AS $$
    UPDATE lease SET holder = p_node, last_holder = p_node,
                     term = CASE WHEN term = 9223372036854775807 THEN 1 ELSE term + 1 END,
                     acquired_at = clock_timestamp(), renewed_at = clock_timestamp(),
                     expires_at = clock_timestamp() + make_interval(secs => p_ttl),
                     renew_interval = p_renew
    WHERE id = 1 AND (holder IS NULL OR holder = p_node OR expires_at <= clock_timestamp()
                      OR expires_at > clock_timestamp() + interval '3600 seconds')
    RETURNING term
$$;

-- The two-argument form, for a node of version 21 still running when this one was applied:
-- the lease it takes records no interval (the status estimates it), rather than keeping the
-- previous holder's.
CREATE OR REPLACE FUNCTION ds_lease_acquire(p_node text, p_ttl float8) RETURNS bigint LANGUAGE sql AS $$
    SELECT ds_lease_acquire(p_node, p_ttl, NULL::float8)
$$;
