"""The event observer: one JSON line per engine event.

Observers are called on the engine's event loop, off the scheduling path, after the state
change is stored. A small append per event is fine; an observer that talks to the network
should hand the event to a queue or a thread instead of blocking. An exception raised here
is logged with the plugin's name and swallowed by distsched.
"""

from __future__ import annotations

import json
from pathlib import Path

from distsched.model.events import Event


def append_event(path: str | Path, event: Event) -> None:
    line = json.dumps(event.to_dict(), sort_keys=True, default=str)
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")
