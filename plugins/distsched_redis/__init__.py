"""Built-in distsched plugin: Redis storage and election (``redis://``, ``rediss://``,
``redis+unix://``, ``redis+sentinel://``, ``redis+cluster://``, ``rediss+cluster://``). See
``docs/redis.md``."""
