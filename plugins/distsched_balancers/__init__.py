"""Built-in distsched plugin: the ``least-tasks``, ``round-robin`` and ``consistent-hash``
balancers. Every one of them is capacity-aware: it never picks a worker that is full,
draining, or whose heartbeat is older than the TTL, and returns None when none can accept.
"""
