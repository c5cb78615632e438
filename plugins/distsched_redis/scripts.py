"""Loads the Lua scripts that live beside this module (``lua/*.lua``).

Each script names the shared snippets it needs on its first line, e.g.
``--! requires: common tasks``; the loader prepends ``lua/lib/common.lua`` and
``lua/lib/tasks.lua`` (in that order), so every helper - above all the fence check that is
the first step of every leader write - exists once in the source. A script whose header also
says ``--! clock: lazy`` reads the server time only when it calls ``read_clock()`` (every
other script reads it once at the start). Scripts are registered
with redis-py (EVALSHA, with a NOSCRIPT fallback that reloads them, e.g. after a Redis
restart) and loaded once when the store opens.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

_REQUIRES = re.compile(r"^--!\s*requires:\s*(.*)$")
_LAZY_CLOCK = re.compile(r"^--!\s*clock:\s*lazy\s*$", re.MULTILINE)

#: Every script the backend calls, by name (the file name without ``.lua``).
NAMES = (
    "submit", "save", "cancel", "dispatch", "settle", "fire", "reap", "pull", "report", "report_pull", "task_read", "counts",
    "job_add", "job_add_many", "job_update", "job_remove", "job_pause", "job_read",
    "worker_register", "worker_heartbeat", "worker_deregister", "worker_list",
    "lease_acquire", "lease_renew", "lease_release", "stats_read", "scheduler_node",
    "quarantine", "prune",
)


def _read(rel: str) -> str:
    return (resources.files(__package__) / "lua" / rel).read_text(encoding="utf-8")


@cache
def source(name: str) -> str:
    """The full source of script ``name``: the snippets it requires, then its body."""
    body = _read(f"{name}.lua")
    first = body.split("\n", 1)[0]
    match = _REQUIRES.match(first)
    libs = match.group(1).split() if match else []
    parts = [f"-- distsched script {name!r} (generated: lib snippets + {name}.lua)",
             # "--! clock: lazy": the script reads the server time only if it needs it
             f"local LAZY_CLOCK = {'true' if _LAZY_CLOCK.search(body) else 'false'}"]
    for lib in libs:
        parts.append(f"-- >>> lib/{lib}.lua\n{_read(f'lib/{lib}.lua')}")
    parts.append(f"-- >>> {name}.lua\n{body}")
    return "\n".join(parts)


class Scripts:
    """The registered scripts of one client, as attributes (``scripts.save(keys, args)``)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._scripts = {name: client.register_script(source(name)) for name in NAMES}

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_scripts"][name]
        except KeyError:
            raise AttributeError(f"no Lua script named {name!r}") from None

    async def load(self, client: Any = None) -> None:
        """Load every script into the server now (compile errors surface at open)."""
        client = client or self._client
        for script in self._scripts.values():
            sha = await client.script_load(script.script)
            if sha != script.sha:  # pragma: no cover - encodings differ
                script.sha = sha
