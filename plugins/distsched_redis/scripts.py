"""Loads the Lua scripts that live beside this module (``lua/*.lua``).

Each script names the shared snippets it needs on its first line, e.g.
``--! requires: common tasks``; the loader prepends ``lua/lib/common.lua`` and
``lua/lib/tasks.lua`` (in that order), so every helper - above all the fence check that is
the first step of every leader write - exists once in the source. Every script begins with
``begin_call(KEYS, ARGV, lazy_clock)`` (common.lua): a script whose header also says
``--! clock: lazy`` reads the server time only when it calls ``read_clock()`` (every other
script reads it once at the start).

The same sources are served two ways:

- as scripts, registered with redis-py (EVALSHA, with a NOSCRIPT fallback that reloads them,
  e.g. after a Redis restart) and loaded once when the store opens: every connection kind
  and every Redis version;
- as one function library (:func:`library`, Redis 7 and newer, ``FUNCTION LOAD``), called
  with ``FCALL`` on the lean connection. A script call runs its whole source each time,
  the ~600 lines of shared snippets included (defining their functions costs Redis about
  19 µs per call); a library defines them once, when it is loaded, and a call runs only its
  own function. The library's name and its function names carry a hash of its text, so
  deployments of different versions (or a test's mutated scripts) sharing one Redis never
  replace each other's functions.
"""

from __future__ import annotations

import hashlib
import logging
import re
from functools import cache
from importlib import resources
from typing import Any

from redis._parsers.base import BaseParser
from redis.exceptions import NoPermissionError, OutOfMemoryError, ReadOnlyError, ResponseError

log = logging.getLogger("distsched.redis")

_REQUIRES = re.compile(r"^--!\s*requires:\s*(.*)$")
_LAZY_CLOCK = re.compile(r"^--!\s*clock:\s*lazy\s*$", re.MULTILINE)

#: Every script the backend calls, by name (the file name without ``.lua``).
NAMES = (
    "submit", "save", "cancel", "dispatch", "settle", "fire", "reap", "pull", "report", "report_pull", "task_read", "counts",
    "job_add", "job_add_many", "job_update", "job_remove", "job_pause", "job_read",
    "worker_register", "worker_heartbeat", "worker_deregister", "worker_list",
    "lease_acquire", "lease_renew", "lease_release", "stats_read", "scheduler_node",
    "quarantine", "quarantine_since", "prune", "history_backfill", "job_check", "park", "unpark",
)

#: How Redis before 7 answers a script whose write it refused before running the command (out
#: of memory, a read-only replica, a failed save, too few replicas): a generic ERR around the
#: command's error, ``Error running script (call to f_<sha>): @user_script:<line>:
#: @user_script: <line>: -OOM command not allowed when used memory > 'maxmemory'.``
_WRAPPED_REFUSAL = re.compile(
    r"^Error running script \(call to f_([0-9a-f]+)\): @user_script:(\d+): (?:@user_script: \d+: )?"
    r"-(OOM|READONLY|MISCONF|NOREPLICAS) (.*?)\s*$", re.DOTALL)

#: The shared snippets in the order a library defines them (a snippet may use the ones
#: before it: every script's ``requires`` line lists them in this order).
LIBS = ("common", "tasks", "jobs", "queues")


def _read(rel: str) -> str:
    return (resources.files(__package__) / "lua" / rel).read_text(encoding="utf-8")


def _parts(name: str) -> tuple[list[str], bool, str]:
    """The snippets script ``name`` requires, whether it reads the clock lazily, its body."""
    body = _read(f"{name}.lua")
    match = _REQUIRES.match(body.split("\n", 1)[0])
    libs = match.group(1).split() if match else []
    unknown = [lib for lib in libs if lib not in LIBS]
    if unknown:  # pragma: no cover - a new snippet must be added to LIBS
        raise ValueError(f"{name}.lua requires unknown snippets {unknown}")
    return libs, bool(_LAZY_CLOCK.search(body)), body


def _begin(lazy: bool, keys: str = "KEYS", argv: str = "ARGV") -> str:
    return f"begin_call({keys}, {argv}, {'true' if lazy else 'false'})"


@cache
def source(name: str) -> str:
    """The full source of script ``name``: the snippets it requires, then its body."""
    libs, lazy, body = _parts(name)
    parts = [f"-- distsched script {name!r} (generated: lib snippets + {name}.lua)",
             # common.lua's locals KEYS and ARGV hide the script's globals of these names
             "local CALL_KEYS, CALL_ARGV = KEYS, ARGV"]
    for lib in libs:
        parts.append(f"-- >>> lib/{lib}.lua\n{_read(f'lib/{lib}.lua')}")
    parts.append(f"-- >>> {name}.lua\n{_begin(lazy, 'CALL_KEYS', 'CALL_ARGV')}\n{body}")
    return "\n".join(parts)


@cache
def library() -> tuple[str, dict[str, str]]:
    """The function library of every script: its source (for ``FUNCTION LOAD``) and the
    function name of each script. Each script's body becomes the body of its function.
    Built once per process, like :func:`source` (every store opened shares it)."""
    parts = [f"-- >>> lib/{lib}.lua\n{_read(f'lib/{lib}.lua')}" for lib in LIBS]
    for name in NAMES:
        _, lazy, body = _parts(name)
        parts.append(f"-- >>> {name}.lua\nredis.register_function('@@_{name}', function(KEYS, ARGV)\n"
                     f"{_begin(lazy)}\n{body}\nend)")
    text = "\n".join(parts)
    tag = "distsched_" + hashlib.sha1(text.encode()).hexdigest()[:16]
    text = text.replace("'@@_", f"'{tag}_")
    return f"#!lua name={tag}\n-- distsched's scripts as one function library (generated by scripts.py)\n{text}", {
        name: f"{tag}_{name}" for name in NAMES}


class Scripts:
    """The registered scripts of one client, as attributes (``scripts.save(keys, args)``),
    and the function library of the same scripts where the server took it."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._scripts = {name: client.register_script(source(name)) for name in NAMES}
        #: The library's source and function names (:func:`library`).
        self.library, self._names = library()
        #: The function name of each script object, once the library is loaded (by id: a
        #: script object put in ``_scripts`` later, as a mutation test does, is not in it).
        self._functions: dict[int, str] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_scripts"][name]
        except KeyError:
            raise AttributeError(f"no Lua script named {name!r}") from None

    def function(self, script: Any) -> str | None:
        """The library function that runs ``script``, or None (no library loaded)."""
        return self._functions.get(id(script))

    async def load(self, client: Any = None) -> None:
        """Load every script into the server now (compile errors surface at open)."""
        client = client or self._client
        for script in self._scripts.values():
            sha = await client.script_load(script.script)
            if sha != script.sha:  # pragma: no cover - encodings differ
                script.sha = sha

    async def load_library(self, client: Any) -> bool:
        """Load the function library (``FUNCTION LOAD``); True if the server has it now.
        False, and the scripts stay the way to call, where the server cannot take it: a
        Redis older than 7, a user whose ACL does not allow ``FUNCTION``, a server that
        refuses writes (:func:`refused`)."""
        try:
            await client.execute_command("FUNCTION", "LOAD", self.library)
        except ResponseError as exc:  # a refusal (unknown command, NOPERM...): use the scripts
            if "already exists" not in str(exc):
                if not refused(exc):  # anything else is a fault the operator should hear of
                    log.warning("the function library was not loaded (%s); the scripts are called with "
                                "EVALSHA instead", exc)
                self._functions = {}
                return False
        self._functions = {id(self._scripts[name]): fn for name, fn in self._names.items()}
        return True


def refused(exc: ResponseError) -> bool:
    """Whether ``FUNCTION LOAD`` failed because the server or the user may not run it: a
    Redis older than 7 (unknown command), an ACL without ``FUNCTION`` (NOPERM), or a server
    that refuses writes (a read-only replica, which would refuse every function call too;
    a primary at ``maxmemory``)."""
    text = str(exc).lower()
    return (isinstance(exc, (NoPermissionError, ReadOnlyError, OutOfMemoryError)) or "unknown command" in text
            or "noperm" in text)


def unwrap_refusal(exc: ResponseError) -> ResponseError:
    """The error Redis 7 gives for a script's refused write, from the ERR that Redis 6 wraps
    around it (:data:`_WRAPPED_REFUSAL`): ``OutOfMemoryError`` for OOM, ``ReadOnlyError`` for
    READONLY (redis-py's classes, as for any command), with Redis 7's text (``command not
    allowed when used memory > 'maxmemory'. script: <sha>, on @user_script:<line>.``).
    Any other error is returned as it is."""
    match = _WRAPPED_REFUSAL.match(str(exc))
    if match is None:
        return exc
    sha, line, code, text = match.groups()
    return BaseParser.parse_error(f"{code} {text} script: {sha}, on @user_script:{line}.")
