"""Built-in distsched plugin: Redis storage and election (``redis://``, ``rediss://``,
``redis+sentinel://``). See ``docs/redis.md``."""
