"""XXL-JOB's alarm email, as a distsched observer: load it with `distsched -p alerts ...` on
every scheduler (it sees the events of the node that leads). It prints on stderr (stdout is
the task log); send mail, page or post to a chat from here - in a thread of your own: an
observer must not block the loop."""

import sys

from distsched import hookimpl


@hookimpl
def distsched_event(event):
    if event.kind == "task.finished" and event.state != "succeeded":
        print(f"ALERT job {event.job} {event.state} after {event.attempt} attempt(s): {event.error}", file=sys.stderr, flush=True)
