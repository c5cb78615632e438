-- distsched PostgreSQL schema, version 12: tasks.finished ("what failed in the last hour", on
-- every load of the dashboard's overview) has an index again. It was written for the
-- (state, updated_at) index that 0002 dropped; since then it read every retained task of the
-- states asked for (tasks_rare_created, filtered by finished_at), or the whole table under a
-- generic plan of its prepared statement (plan_cache_mode = force_generic_plan). The finish
-- time of the rare final states now has a small index of its own, beside tasks_rare_created
-- and with its predicate (a `succeeded` task, nearly every row, is written into neither): the
-- query reads only the tasks of those states that finished since the time asked.
-- tasks.finished names the predicate in its SQL when it asks only for these states, so a
-- generic plan uses the index too; asked for `succeeded`, it still reads the table.

CREATE INDEX tasks_rare_finished ON tasks (state, finished_at, id COLLATE "C")
    WHERE state IN ('failed', 'timed_out', 'cancelled', 'skipped');
