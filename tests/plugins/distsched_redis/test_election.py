"""The Redis lease: one holder, expiry, release, strictly increasing terms (even after Redis
lost its data), and the fence that every leader-write script checks first."""

import re
from importlib import resources

import pytest

from distsched.model import FencedError, Task, TaskSpec, TaskState, ValidationError
from distsched.ports import Fence
from distsched_redis.election import RedisElection
from distsched_redis.scripts import NAMES, source

pytestmark = pytest.mark.redis


async def test_acquire_renew_release_current(storage, election) -> None:
    other = RedisElection(storage)
    assert await election.current() is None
    fa = await election.acquire("node|a")  # a '|' in a node id is fine
    assert fa is not None and fa.node_id == "node|a"
    assert await other.acquire("b") is None
    assert await other.current() == fa
    assert await storage.client.get(storage.prefix + "lease") == f"node|a|{fa.term}"
    assert 0 < await storage.client.pttl(storage.prefix + "lease") <= 10_000
    assert await election.renew(fa) is True
    assert await other.renew(Fence("b", fa.term)) is False
    again = await election.acquire("node|a")
    assert again is not None and again.term > fa.term, "re-acquiring gives a new term"
    assert await election.renew(fa) is False, "the superseded term cannot renew"
    await other.release(Fence("b", again.term))
    assert await election.current() == again, "releasing someone else's lease does nothing"
    await election.release(again)
    assert await election.current() is None
    fb = await other.acquire("b")
    assert fb is not None and fb.term > again.term


async def test_expiry_hands_over_and_the_old_leader_is_fenced(storage, poll) -> None:
    a = RedisElection(storage, ttl=0.3, renew_interval=0.1)
    b = RedisElection(storage, ttl=0.3, renew_interval=0.1)
    fa = await a.acquire("a")
    await storage.tasks.submit([Task(id="t", spec=TaskSpec(target="f"), created_at=1.0)])
    fb = await poll(lambda: b.acquire("b"), timeout=5.0)
    assert fb.term > fa.term
    assert await a.renew(fa) is False
    t = await storage.tasks.get("t")
    t.cancel("by the old leader", 2.0)
    with pytest.raises(FencedError, match=f"term {fa.term} refused"):
        await storage.tasks.save(fa, [t])
    assert (await storage.tasks.get("t")).state is TaskState.PENDING
    t.version = 1
    assert await storage.tasks.save(fb, [t]) == [True]


async def test_terms_keep_increasing_after_redis_lost_its_data(private_server, open_storage, poll) -> None:
    s = await open_storage(private_server.url)
    e = RedisElection(s)
    first = await e.acquire("a")
    await e.release(first)
    second = await e.acquire("a")
    assert second.term > first.term
    private_server.kill()  # no persistence: the term counter is gone with everything else
    private_server.restart()
    third = await poll(lambda: e.acquire("b"), timeout=10.0)
    assert third.term > second.term, "terms derive from server time, so they survive data loss"


def test_options_are_validated(storage) -> None:
    with pytest.raises(ValidationError, match="renew_interval"):
        RedisElection(storage, ttl=2.0, renew_interval=3.0)
    with pytest.raises(ValidationError, match="ttl"):
        RedisElection(storage, ttl=0)
    with pytest.raises(TypeError):
        RedisElection(object())


async def test_election_factory_reuses_the_storage_and_checks_the_url(storage, redis_url) -> None:
    from distsched.plugin.manager import PluginManager

    reg = PluginManager().election.for_url(redis_url)
    election = reg.factory(redis_url, storage=storage, options={"ttl": 5.0, "renew_interval": 1.0})
    assert (election.ttl, election.renew_interval) == (5.0, 1.0)
    assert election.storage.client is storage.client, "the lease uses the storage's connection pool"
    other_ns = redis_url.replace("namespace=", "namespace=x")
    with pytest.raises(ValidationError, match="same Redis and namespace"):
        reg.factory(other_ns, storage=storage, options={})


def _body(name: str) -> str:
    return resources.files("distsched_redis").joinpath("lua", f"{name}.lua").read_text()


def test_the_fence_check_exists_once_and_comes_first_in_every_leader_write() -> None:
    lua = resources.files("distsched_redis").joinpath("lua")
    defining = [p.name for p in lua.iterdir() if p.name.endswith(".lua") and "function fence_ok" in p.read_text()]
    defining += [f"lib/{p.name}" for p in lua.joinpath("lib").iterdir() if "function fence_ok" in p.read_text()]
    assert defining == ["lib/common.lua"]
    for name in ("save", "dispatch", "fire", "reap"):
        code = [line.strip() for line in _body(name).splitlines() if line.strip() and not line.strip().startswith("--")]
        # the reply-cache lookup (a read) may precede it; nothing else may
        assert code[0] == "local replay = op_replay()" and code[1].startswith("if replay then return")
        assert code[2] == "if not fence_ok(ARGV[2]) then return fenced_reply() end", name
    for name in NAMES:
        assert source(name).count("local function fence_ok") == 1
        assert re.search(r"redis\.call\('(EVAL|KEYS|FLUSH)", source(name)) is None


async def test_a_lease_said_to_be_expired_is_gone(storage, election) -> None:
    """The status's expiry (leaseinfo ``e``) is never before Redis drops the lease key (the
    key is gone once the server's millisecond clock is past PEXPIRETIME): a lease that
    ``lease()`` calls expired can be taken at once. It was up to 1 ms early (the contract
    test's acquire right after ``expired`` failed once in CI)."""
    fa = await election.acquire("a")
    assert fa is not None
    for _ in range(20):  # acquire, then renewals: each sets the key's TTL and the expiry told
        expiry_ms = await storage.client.pexpiretime(storage.prefix + "lease")
        info = await election.lease()
        assert info is not None and info.expires_at * 1000 >= expiry_ms + 1, (info.expires_at, expiry_ms)
        assert info.expires_at - info.renewed_at < 10.0 + 0.01
        assert await election.renew(fa)


async def test_the_lease_record_carries_the_holders_renew_interval_of_its_own_term(storage) -> None:
    """`renewal overdue` estimated the holder's renew interval as 30 % of the lease TTL (the
    record did not carry it). A holder records its own in {ns}:leaseinfo (``i``, with its term
    ``it``) as it takes the lease; an older node taking the lease runs its own acquire script,
    which records none: the interval of the term before is not taken as its own. Each renewal
    writes it again, as the rest of the record; a value that is no number reads as none,
    never a status that fails."""
    from distsched.status import leader_status

    key = storage.prefix + "leaseinfo"
    slow = RedisElection(storage, ttl=10.0, renew_interval=8.0)
    fence = await slow.acquire("slow")
    assert fence is not None
    info = await slow.lease()
    assert info.renew_interval == 8.0 and await storage.client.hmget(key, ["i", "it"]) == ["8.0", str(fence.term)]
    assert leader_status(info).renewal_overdue_after == 16.0
    await storage.client.hdel(key, "i")
    assert (await slow.lease()).renew_interval is None
    assert await slow.renew(fence)
    assert (await slow.lease()).renew_interval == 8.0, "a renewal writes the record whole, the interval too"
    await slow.release(fence)

    # a node of an older version: its acquire script records no interval (the one of cdfed3e
    # wrote it afterwards, in a second call; the one before never)
    recording = "'e', exp,\n           'i', ARGV[4], 'it', term)"
    assert source("lease_acquire").count(recording) == 1
    older = storage.client.register_script(source("lease_acquire").replace(recording, "'e', exp)"))
    old_term = await older(keys=[storage.prefix + "lease"], args=[storage.prefix, "old-node", "10000"])
    info = await slow.lease()
    assert info.holder == "old-node" and info.term == int(old_term) and info.renew_interval is None
    assert await storage.client.hget(key, "it") == str(fence.term), "the term before's, left as it was"
    assert leader_status(info).renewal_overdue_after == pytest.approx(6.0, abs=0.01)  # the estimate: 2 x 30 % of 10 s
    await storage.client.delete(storage.prefix + "lease")

    other = RedisElection(storage, ttl=10.0, renew_interval=4.0)
    fence = await other.acquire("other")
    assert fence is not None and (await other.lease()).renew_interval == 4.0
    for broken in ("x", "nan", "-1", ""):
        await storage.client.hset(key, "i", broken)
        info = await other.lease()
        assert info is not None and leader_status(info).renew_interval is None, broken
        assert leader_status(info).renewal_overdue_after == pytest.approx(6.0, abs=0.01), broken


async def _top_level_calls(server, prefix, action) -> list[list[str]]:
    """The commands clients sent to ``server`` naming a key of ``prefix`` (MONITOR; the ones
    scripts ran, and a new connection's CLIENT SETNAME, left out) while ``action()`` ran, each
    as its words."""
    import uuid

    from redis.asyncio import Redis

    marker = f"done-{uuid.uuid4().hex}"
    monitor_client, marker_client = Redis.from_url(server.url), Redis.from_url(server.url)
    try:
        async with monitor_client.monitor() as monitor:
            await marker_client.echo(f"start-{marker}")
            seen: list[list[str]] = []
            while f"start-{marker}" not in (await monitor.next_command())["command"]:
                pass
            await action()
            await marker_client.echo(marker)
            while True:
                call = await monitor.next_command()
                if call["command"] == f"ECHO {marker}":
                    return seen
                if call["client_type"] != "lua" and prefix in call["command"]:
                    seen.append(call["command"].split())
    finally:
        await monitor_client.aclose()
        await marker_client.aclose()


@pytest.mark.parametrize("server_fixture", ["private_server", "private_server6"])
async def test_the_interval_is_recorded_in_the_acquisition_and_read_with_the_record(
        request, server_fixture, open_storage) -> None:
    """The renew interval was written by an HSET after the acquire script (a node paused or
    cut off between the two held its term with no interval recorded) and read by an HMGET
    after the record's script. Now acquire and renew are one script call each that writes it,
    and ``lease()`` one that reads it with the record: counted on a server of the test's own
    (MONITOR, the commands the scripts run left out), as functions (Redis 7) and as scripts
    (Redis 6.2, EVALSHA)."""
    server = request.getfixturevalue(server_fixture)
    storage = await open_storage(server.url_for(namespace="calls"))
    election = RedisElection(storage, ttl=10.0, renew_interval=2.5)
    got = {}

    async def take_renew_read() -> None:
        got["fence"] = fence = await election.acquire("n1")
        got["renewed"] = await election.renew(fence)
        got["info"] = await election.lease()

    calls = await _top_level_calls(server, storage.prefix, take_renew_read)
    assert got["fence"] is not None and got["renewed"] and got["info"].renew_interval == 2.5
    assert [call[0].upper() for call in calls] == ["FCALL" if server_fixture == "private_server" else "EVALSHA"] * 3, \
        calls
