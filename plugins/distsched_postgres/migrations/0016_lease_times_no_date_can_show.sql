-- distsched PostgreSQL schema, version 16: a lease row whose acquisition time no date can
-- show ('-infinity' or 'infinity': timestamptz takes both, written by hand or restored from
-- elsewhere) is written whole again by its holder's next renewal. The renewal wrote
-- renewed_at and expires_at only, so an acquisition time of -infinity stayed for the whole
-- term, and the status showed no leader all that while (it cannot show such a lease; see
-- PostgresElection.lease). A finite acquisition time is kept, as before.
-- ds_lease_renew (version 2) is restated with this change only.

CREATE OR REPLACE FUNCTION ds_lease_renew(p_node text, p_term bigint, p_ttl float8) RETURNS boolean LANGUAGE sql AS $$
    UPDATE lease SET renewed_at = clock_timestamp(), expires_at = clock_timestamp() + make_interval(secs => p_ttl),
                     acquired_at = CASE WHEN isfinite(acquired_at) THEN acquired_at ELSE clock_timestamp() END
    WHERE id = 1 AND holder = p_node AND term = p_term AND expires_at > clock_timestamp()
    RETURNING true
$$;
