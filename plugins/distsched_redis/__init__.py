"""Built-in distsched plugin: Redis storage and election (``redis://``, ``rediss://``,
``redis+unix://``, ``redis+sentinel://``, ``redis+cluster://``). See ``docs/redis.md``."""
