"""Runs a contract body in a fresh event loop with a freshly opened backend."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from ...plugin.manager import ELECTION, STORAGE, PluginManager
from ...ports import Election, Fence, StorageBackend


def plugin_manager_for(request: Any) -> PluginManager:
    """Entry points plus the ``distsched_plugins`` fixture's extra plugins, when the
    distsched pytest plugin (or the test module) defines that fixture: override it to run a
    contract against a plugin that is not installed."""
    import pytest

    try:
        extra = request.getfixturevalue("distsched_plugins")
    except pytest.FixtureLookupError:
        extra = []
    return PluginManager(plugins=extra)


@attrs.define
class Harness:
    plugins: PluginManager
    url: str
    options: dict[str, Any]
    opened: list[StorageBackend] = attrs.field(factory=list)

    async def storage(self) -> StorageBackend:
        backend = await self.plugins.build(STORAGE, self.url, self.url, options=dict(self.options))
        self.opened.append(backend)
        return backend

    async def election(self, storage: StorageBackend, *, ttl: float = 10.0, renew_interval: float = 3.0) -> Election:
        return await self.plugins.build(ELECTION, self.url, self.url, storage=storage,
                                        options={"ttl": ttl, "renew_interval": renew_interval})

    async def leader(self, storage: StorageBackend, node: str = "leader-1", **kw: Any) -> tuple[Election, Fence]:
        election = await self.election(storage, **kw)
        fence = await election.acquire(node)
        assert fence is not None, "a fresh store must grant the lease to the first node"
        return election, fence

    async def close(self) -> None:
        for backend in self.opened:
            await backend.close()

    def run(self, body: Callable[..., Awaitable[Any]]) -> Any:
        async def main() -> Any:
            try:
                return await body(self)
            finally:
                await self.close()

        return asyncio.run(main())


async def poll(predicate: Callable[[], Awaitable[bool]], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Await ``predicate`` until it is true or ``timeout`` passed (no blind sleeps)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if await predicate():
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(interval)
