"""Built-in distsched plugin: Redis storage and election (``redis://``, ``rediss://``,
``redis+unix://``, ``redis(s)+sentinel://``, ``redis(s)+cluster://``). See ``docs/redis.md``."""
