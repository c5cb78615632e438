"""The order of the whole session, and the chaos runs started early (``chaos_run.EARLY``).

A chaos profile is 20-90 s of real processes that use about a quarter of a 2-core machine,
mostly waiting for their faults' timers. The session starts the runs its selected
tests need when collection ends, one at a time in the background, and orders its tests:

1. the tests marked neither ``slow`` nor ``timing`` (in-process: the model, the contract
   suites, the CLI...), while the early runs go on beside them;
2. the tests that read an early run (they wait for it if it is not over);
3. the ``slow`` tests (multi-process, benchmarks' short modes, the browser) and the ``timing``
   ones (they assert how long the loop is held or a call takes, to the millisecond: a run
   beside them would preempt them);
4. the endurance profile (five minutes of load that keeps the machine busy) last.

No two multi-process runs share the machine: an early run overlaps only the in-process tests.
A module stays in one piece (its module-scoped fixtures run once), in the group of its
slowest test; within a group the collection order holds.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chaos_run import BACKGROUND_KEY, EARLY, Background  # noqa: E402

ENDURANCE = "test_endurance.py"


def _group(items: list[pytest.Item]) -> int:
    if any(item.path.name == ENDURANCE for item in items):
        return 3
    if any(name in EARLY for item in items for name in getattr(item, "fixturenames", ())):
        return 1
    if any(item.get_closest_marker("slow") is not None or item.get_closest_marker("timing") is not None
           for item in items):
        return 2
    return 0


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    modules: dict[Path, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.path, []).append(item)
    groups = {path: _group(its) for path, its in modules.items()}
    items[:] = sorted(items, key=lambda item: groups[item.path])  # stable: collection order within a group


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if any(getattr(config.option, option, False) for option in ("collectonly", "setuponly", "setupplan")):
        return  # nothing runs
    wanted = {name for item in session.items for name in getattr(item, "fixturenames", ()) if name in EARLY}
    names = [name for name, early in EARLY.items() if name in wanted and early.can_run()]
    if not names:
        return
    factory = getattr(config, "_tmp_path_factory", None)  # pytest's tmp_path_factory (it keeps the last runs)
    base = factory.mktemp("chaos-early") if factory is not None else Path(tempfile.mkdtemp(prefix="chaos-early-"))
    background = Background(names, base)
    config.stash[BACKGROUND_KEY] = background
    background.start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    background = session.config.stash.get(BACKGROUND_KEY, None)
    if background is not None:
        background.stop()
