-- distsched PostgreSQL schema, version 20: a task dispatched ahead of its not_before is due
-- at not_before + timeout at the earliest. A slot is dispatched ahead of its time
-- (fire_ahead) and its worker takes it at once, then holds it until then; the deadline
-- counted from the take (or the dispatch), so a fire_ahead longer than the timeout grace had
-- the leader time out every slot before it ran. A generated column cannot be redefined in
-- place before PostgreSQL 17: it is dropped and added again (the table is rewritten once),
-- and its index with it.

DROP INDEX IF EXISTS tasks_deadline;
ALTER TABLE tasks DROP COLUMN deadline;
ALTER TABLE tasks ADD COLUMN deadline float8 GENERATED ALWAYS AS (
    CASE WHEN state IN ('dispatched', 'running')
         THEN greatest(coalesce(started_at, dispatched_at), not_before) + timeout END
) STORED;
CREATE INDEX tasks_deadline ON tasks (deadline) WHERE deadline IS NOT NULL;
