"""Each hook, implemented by a small plugin object and used through the facade."""

import asyncio
import uuid

from distsched import DistributeSchedule, hookimpl
from distsched.model import Outcome


class ToyPlugin:
    """A third-party-style plugin: a storage alias, an election, an executor, a balancer,
    a function and an observer."""

    def __init__(self):
        self.events = []
        self.opened = []

    @hookimpl
    def distsched_register_storage(self, registry):
        registry.add("toy", schemes=("toy",), factory=self.open_storage, description="memory under another name")

    def open_storage(self, url, *, options):
        from distsched_memory.storage import MemoryStorage

        self.opened.append(url)
        return MemoryStorage.open("memory://" + url.split("://", 1)[1])

    @hookimpl
    def distsched_register_election(self, registry):
        registry.add("toy", schemes=("toy",), factory=self.open_election)

    def open_election(self, url, *, storage, options):
        from distsched_memory.election import MemoryElection

        return MemoryElection(storage, **options)

    @hookimpl
    def distsched_register_executors(self, registry):
        registry.add("echo", lambda context: Echo(), description="returns its arguments")

    @hookimpl
    def distsched_register_balancers(self, registry):
        registry.add("first-free", FirstFree)

    @hookimpl
    def distsched_register_functions(self, registry):
        registry.add("plugin-double", lambda x: 2 * x)

    @hookimpl
    def distsched_event(self, event):
        self.events.append(event)


class Echo:
    async def run(self, task):
        return Outcome.success({"target": task.spec.target, "args": list(task.spec.args)})


class FirstFree:
    def select(self, task, workers, *, now, ttl):
        return next((w for w in sorted(workers, key=lambda w: w.id) if w.can_accept(now, ttl)), None)


async def test_every_hook_through_the_facade():
    plugin = ToyPlugin()
    app = DistributeSchedule(f"toy://hooks-{uuid.uuid4().hex}", plugins=[("toy", plugin)])
    info = app.plugins.plugins["toy"]
    assert info.provides == {"storage": ["toy"], "election": ["toy"], "executor": ["echo"],
                             "balancer": ["first-free"], "function": ["plugin-double"]}
    async with app.running():
        echoed = await app.submit("anything", 1, 2, executor="echo", balancer="first-free")
        assert (await app.result(echoed, timeout=5)).value == {"target": "anything", "args": [1, 2]}
        doubled = await app.submit("plugin-double", 21)
        assert (await app.result(doubled, timeout=5)).value == 42
        for _ in range(100):
            if sum(e.kind == "task.finished" for e in plugin.events) >= 2:
                break
            await asyncio.sleep(0.01)
    assert plugin.opened and plugin.opened[0].startswith("toy://")
    kinds = [e.kind for e in plugin.events]
    assert kinds.count("task.finished") == 2 and "leader.elected" in kinds


class ValidatingPlugin:
    """An executor that registers ``validate``: its targets must be upper case; ``crash``
    stands for a validator with a bug."""

    @hookimpl
    def distsched_register_executors(self, registry):
        registry.add("shout", lambda context: Echo(), validate=self.validate)

    @staticmethod
    def validate(spec):
        from distsched.model import ValidationError

        if spec.target == "crash":
            raise KeyError("a bug in the validator")
        if spec.target != spec.target.upper():
            raise ValidationError("target", f"the shout executor needs an upper-case target, not {spec.target!r}")


async def test_an_executor_validator_refuses_a_job_before_it_is_stored():
    import pytest

    from distsched.jobs import JobsFileError, parse_jobs
    from distsched.model import ValidationError
    from distsched.plugin.errors import PluginError

    app = DistributeSchedule(f"memory://validate-{uuid.uuid4().hex}", plugins=[("shouter", ValidatingPlugin())])
    async with app:
        with pytest.raises(ValidationError) as info:
            await app.add_job("quiet", every="1s", executor="shout", target="hello")
        assert str(info.value) == "job 'quiet': target: the shout executor needs an upper-case target, not 'hello'"
        with pytest.raises(PluginError) as crash:
            await app.submit("crash", executor="shout")
        assert "validator of executor 'shout' from plugin 'shouter' failed: KeyError" in str(crash.value)
        assert await app.jobs() == []
        await app.add_job("loud", every="1s", executor="shout", target="HELLO")
        assert [job.name for job in await app.jobs()] == ["loud"]
    data = {"jobs": [{"name": "quiet", "every": "1s", "executor": "shout", "target": "hello"},
                     {"name": "bug", "every": "1s", "executor": "shout", "target": "crash"}]}
    with pytest.raises(JobsFileError) as loaded:
        parse_jobs(data, "jobs.toml", check_spec=app.check_spec)
    assert loaded.value.problems[0] == "job 'quiet': target: the shout executor needs an upper-case target, not 'hello'"
    assert loaded.value.problems[1].startswith("job 'bug': the validator of executor 'shout' from plugin 'shouter'")


def test_a_validate_that_is_not_callable_breaks_only_its_plugin():
    from distsched.plugin.manager import PluginManager

    class Broken:
        @hookimpl
        def distsched_register_executors(self, registry):
            registry.add("bad", lambda context: Echo(), validate="not a function")

    pm = PluginManager(plugins=[("broken", Broken())])
    [info] = [p for p in pm.describe() if p["name"] == "broken"]
    assert "validate 'not a function' is not callable" in info["error"]
    assert "bad" not in pm.executors and "http" in pm.executors
