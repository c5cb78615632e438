"""XXL-JOB's alarm, as a distsched observer of your own: load it with `distsched -p alarm ...`
on every scheduler (it sees the events of the node that leads). It prints on stderr (stdout
is the task log). For mail and chat webhooks the built-in `alerts` plugin needs only a
`[plugins.alerts]` table (docs/alerts.md); an observer is for anything else - in a thread
of your own: an observer must not block the loop."""

import sys

from distsched import hookimpl


@hookimpl
def distsched_event(event):
    if event.kind == "task.finished" and event.state != "succeeded":
        print(f"ALERT job {event.job} {event.state} after {event.attempt} attempt(s): {event.error}", file=sys.stderr, flush=True)
